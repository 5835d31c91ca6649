"""benchmarks/gpu_check.py runs on the CPU at tiny sizes, so the script for the GPU machine cannot rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def test_gpu_check_runs_every_step_on_the_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), str(out), "--small",
                           "--device", "cpu"], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["errors"] == {}, report["errors"]
    assert report["device"] == "cpu" and report["environment"]["torch"]
    assert set(report["train_throughput"]) == {"siamese", "mobilenet_v2", "resnet50"}
    assert all(row["images_per_s"] > 0 for row in report["train_throughput"].values())
    recipes = report["flowers_recipe"]
    recipe = recipes["best-gpu"]  # the default --recipes
    assert recipes["test_images"] > 0 and 0 <= recipe["p_at_1"] <= 1 and recipe["train_s"] > 0
    assert len(recipe["stage_s"]) == 2
    embedding = report["embedding"]
    assert embedding["catalog_path_images_per_s"] > 0 and embedding["decode_only_images_per_s"] > 0
    assert embedding["catalog_path_startup_s"] > 0 and embedding["share_of_decode_only"] > 0
    assert embedding["images"] == recipes["test_images"] and embedding["workers"] == 1
    on_device = embedding["device_decoding"]
    assert on_device["failed"] == 0 and on_device["min_cosine_to_cpu_loader"] >= 0.999
    photos = report["photo_decoding"]  # 512 px JPEGs here: decoded by torchvision on the CPU "device"
    assert photos["items"] == 64 and photos["cpu"]["failed"] == photos["device"]["failed"] == 0
    assert photos["device"]["catalog_path_images_per_s"] > 0 and photos["min_cosine_device_to_cpu"] >= 0.999
    assert set(report["exact_search"]) == {"10000", "20000", "targets", "faiss_cpu_reference"}
    for n in ("10000", "20000"):
        gpu_flat = report["exact_search"][n]
        assert gpu_flat["recall_at_10"] == 1.0 and gpu_flat["single_query_p50_ms"] > 0
        assert gpu_flat["batch_1024_qps"] > 0
    assert report["onnx_agreement"]["min_cosine"] >= 0.999
