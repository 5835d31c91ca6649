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
    recipe = report["flowers_recipe"]
    assert recipe["test_images"] > 0 and 0 <= recipe["p_at_1"] <= 1 and recipe["train_s"] > 0
    embedding = report["embedding"]
    assert embedding["catalog_path_images_per_s"] > 0 and embedding["decode_only_images_per_s"] > 0
    assert embedding["catalog_path_startup_s"] > 0 and embedding["share_of_decode_only"] > 0
    assert embedding["images"] == recipe["test_images"] and embedding["workers"] == 1
    assert set(report["exact_search"]) == {"10000", "20000", "targets", "faiss_cpu_reference"}
    for n in ("10000", "20000"):
        gpu_flat = report["exact_search"][n]
        assert gpu_flat["recall_at_10"] == 1.0 and gpu_flat["single_query_p50_ms"] > 0
        assert gpu_flat["batch_1024_qps"] > 0
    assert report["onnx_agreement"]["min_cosine"] >= 0.999
