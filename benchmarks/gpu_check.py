"""One prepared run of every GPU path: environment, training throughput, the Flowers recipe, embedding, exact search.

Usage (device machine):  PYTHONPATH=. python benchmarks/gpu_check.py OUT.json --flowers DIR --weights FILE
Usage (CPU, tiny sizes): python benchmarks/gpu_check.py OUT.json --small --device cpu   (what the test runs)

Writes the figures as JSON to OUT.json (also after a failed step: each step records its own error and the
run goes on) and prints one line per step. Steps:
1. environment: GPU name, torch / CUDA / cuDNN / onnxruntime versions;
2. training throughput (images/s, bf16 autocast + channels-last on CUDA) of the Siamese net at 64 px,
   MobileNetV2 at 128 px and ResNet-50 at 224 px, fresh weights, the largest batch that fits;
3. the Flowers recipes of ``--recipes`` (default best-gpu: the stages ``indexer train --recipe`` runs) on
   train+val, the test split embedded and scored with exact search on the device: P@1, MAP@R, F1@10, training
   seconds;
4. catalog embedding rate (DataLoader workers + device forward) against its loader alone (decode-only) and the
   bare forward, after start-up and with the start-up seconds beside it, on >= 50,000 images, with the JPEGs
   decoded by the workers and on the device (``--decode device``, and its vectors' cosine to the workers');
   the same two ways on 12 MP JPEGs made from the test images, where decoding is all of the cost; and the
   gpu-flat searcher (models.gpu_flat: fp16 scan, fp32 re-score) over N random unit vectors × 128 (1M and 10M;
   10k and 20k with --small): one-query p50, 1,024-query batch q/s, recall@10 against an fp32 reference;
5. device catalog vectors against the ONNX CPU query vectors of the same images (min cosine, target 0.999).
Needs on the device machine, besides torch/torchvision/onnx/onnxruntime: pytorch-metric-learning (carry its
wheel). FAISS is not needed there.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

THROUGHPUT_NETS = (("siamese", 64), ("mobilenet_v2", 128), ("resnet50", 224))
BATCHES = (1024, 512, 256, 128, 64, 32)
EMBED_IMAGES = 50_000  # the embedding step repeats the test images to at least this many


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", help="JSON file to write")
    parser.add_argument("--device", default="auto", help="auto (cuda when present), cuda or cpu")
    parser.add_argument("--small", action="store_true", help="tiny sizes and generated images (CPU test)")
    parser.add_argument("--flowers", default=None, help="Flowers-102 folder (jpg/ + the two .mat files)")
    parser.add_argument("--weights", default=None, help="ImageNet MobileNetV2 checkpoint file")
    parser.add_argument("--recipes", default="best-gpu",
                        help="comma-separated recipes to train and score (models.recipes; the two stages of "
                             "best-v4 took 82-89 s on an H200 on 2026-12-04)")
    parser.add_argument("--photos", type=int, default=96,
                        help="12 MP JPEGs made from the test images for the decoding step (each embedded 8 times)")
    args = parser.parse_args()
    args.recipes = [name for name in args.recipes.split(",") if name]

    import torch

    from indexer.core.files import write_json

    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    report: dict[str, Any] = {"device": str(device), "small": args.small, "errors": {}}
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    if args.weights:  # where "weights: imagenet" finds torchvision's file, as a connected machine caches it
        cached = work / "torch" / "hub" / "checkpoints"
        cached.mkdir(parents=True)
        (cached / Path(args.weights).name).symlink_to(Path(args.weights).resolve())
        os.environ["TORCH_HOME"] = str(work / "torch")
    steps = [
        ("environment", lambda: environment(device)),
        ("train_throughput", lambda: train_throughput(device, args.small)),
        ("flowers_recipe", lambda: flowers_recipe(device, args, work, report)),
        ("embedding", lambda: embedding_rates(device, report, args.small)),
        ("photo_decoding", lambda: photo_decoding(device, args, work, report)),
        ("exact_search", lambda: exact_search_rates(device, args.small)),
        ("onnx_agreement", lambda: onnx_agreement(device, report)),
    ]
    for name, step in steps:
        started = time.perf_counter()
        try:
            report[name] = step()
        except Exception as exc:  # noqa: BLE001 - a failed step is recorded and the run goes on
            report["errors"][name] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
        report.setdefault("step_seconds", {})[name] = round(time.perf_counter() - started, 2)
        write_json(args.out, _public(report), indent=2, default=str)  # a crash keeps the steps before
        print(f"{name}: {json.dumps(_public(report).get(name, report['errors'].get(name)), default=str)[:400]}",
              flush=True)


def _public(report: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in report.items() if not key.startswith("_")}


def environment(device) -> dict[str, Any]:
    import onnxruntime
    import torch

    cuda = device.type == "cuda"
    return {
        "torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
        "onnxruntime": onnxruntime.__version__, "gpu": torch.cuda.get_device_name(device) if cuda else None,
        "gpu_memory_gib": round(torch.cuda.get_device_properties(device).total_memory / 2**30, 1) if cuda else None,
        "python": sys.version.split()[0],
    }


def train_throughput(device, small: bool) -> dict[str, Any]:
    """Images/s of full training steps (forward, loss, backward, AdamW) on random images, per network."""
    import torch
    from pytorch_metric_learning import losses

    from models.config import TrainConfig
    from models.networks import build_network

    out = {}
    for network, size in THROUGHPUT_NETS:
        size = 32 if small else size
        model = build_network(TrainConfig(network=network, image_size=size)).to(device)
        if device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        optimiser = torch.optim.AdamW(model.parameters(), lr=1e-4)
        for batch in ((4,) if small else BATCHES):
            try:
                _training_rate(model, optimiser, losses.MultiSimilarityLoss(), device, batch, size, 1)  # warm-up
                rate = _training_rate(model, optimiser, losses.MultiSimilarityLoss(), device, batch, size,
                                      1 if small else 20)
                out[network] = {"image_size": size, "batch": batch, "images_per_s": round(rate, 1)}
                break
            except torch.OutOfMemoryError:  # too large a batch: try the next one down
                torch.cuda.empty_cache()
        del model, optimiser
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return out


def _training_rate(model, optimiser, loss_fn, device, batch: int, size: int, steps: int) -> float:
    """Images/s of ``steps`` training steps on one random (batch, 3, size, size) batch, bf16 autocast on CUDA."""
    import torch

    cuda = device.type == "cuda"
    images = torch.randn(batch, 3, size, size, device=device)
    if cuda:
        images = images.contiguous(memory_format=torch.channels_last)
        torch.cuda.synchronize()
    labels = torch.arange(batch, device=device) // 2
    began = time.perf_counter()
    for _ in range(steps):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            embeddings = model(images)
        loss = loss_fn(embeddings.float(), labels)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    if cuda:
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - began)


def _items(args, work: Path) -> list:
    """(path, label, split) of every image: Flowers-102, or generated shapes with --small."""
    if args.small:
        return _generated_items(work / "images")
    from indexer.datasets.flowers102 import flowers102_items

    return [(str(item.path), item.label_id, item.split) for item in flowers102_items(args.flowers, work / "download")]


def _generated_items(root: Path, classes: int = 4, per_class: int = 12) -> list:
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    items = []
    for label in range(classes):
        for i in range(per_class):
            img = Image.new("RGB", (48, 48), (20, 20, 20))
            colour = tuple(int(v) for v in rng.integers(90, 256, 3))
            box = [int(v) for v in (*rng.integers(2, 12, 2), *rng.integers(30, 46, 2))]
            (ImageDraw.Draw(img).ellipse if label % 2 else ImageDraw.Draw(img).rectangle)(box, fill=colour)
            path = root / f"c{label}_{i}.png"
            img.save(path)
            items.append((str(path), label + 1, ("train", "val", "test", "test")[i % 4]))
    return items


def flowers_recipe(device, args, work: Path, report: dict[str, Any]) -> dict[str, Any]:
    """Each of ``--recipes`` (the stages ``indexer train --recipe NAME`` runs, on the device) trained on
    train+val and scored on test with exact search on the device; the last one's model feeds the later steps.
    With --small: two tiny stages stand in (no ImageNet weights needed)."""
    from models.train import train_model

    items = _items(args, work)
    train = [(path, label) for path, label, split in items if split != "test"]
    test = [(path, label) for path, label, split in items if split == "test"]
    dev = "cuda" if device.type == "cuda" else "cpu"
    out: dict[str, Any] = {}
    for recipe in args.recipes:
        began, stages = time.perf_counter(), []
        for config in _recipe_stages(recipe, args, work, dev):
            result = train_model(config, train, None, work / config.name, progress=False)
            stages.append(round(result.seconds, 1))
        train_s = time.perf_counter() - began
        metrics, rate = _scored(result.checkpoint_path, test, dev, work / f"{recipe}-test-store")
        out[recipe] = {"train_s": round(train_s, 1), "stage_s": stages, "embed_images_per_s": round(rate, 1),
                       **metrics}
        report["_recipe"] = (result.checkpoint_path, test)  # for the embedding and ONNX steps
    out.update(train_images=len(train), test_images=len(test),
               targets={"p_at_1": 0.86, "map_at_r": 0.60, "train_s": 300,
                        "never_below": "the CPU recipe's test P@1 0.840 / MAP@R 0.575"})
    return out


def _recipe_stages(recipe: str, args, work: Path, dev: str) -> list:
    """The TrainConfigs ``indexer train --recipe RECIPE`` runs (on ``dev``); with --small, two tiny stages."""
    from models.config import TrainConfig
    from models.recipes import recipe_configs

    if not args.small:
        return recipe_configs(recipe, recipe, lambda name: str(work / name / "model.pt"), device=dev)
    if args.weights:
        first = TrainConfig(name=f"{recipe}-stage1", network="mobilenet_v2", weights=args.weights,
                            freeze_backbone=True, image_size=64, epochs=2, device=dev)
    else:  # no ImageNet weights on a CPU test: the Siamese net stands in
        first = TrainConfig(name=f"{recipe}-stage1", network="siamese", image_size=32, epochs=1, batch_classes=4,
                            batch_per_class=2, device=dev)
    second = TrainConfig(name=recipe, network=first.network, weights=str(work / first.name / "model.pt"),
                         image_size=first.image_size, epochs=1, batch_classes=4, batch_per_class=2, lr=3e-4,
                         device=dev)
    return [first, second]


def _scored(checkpoint, test: list, dev: str, store_dir: Path) -> tuple[dict[str, float], float]:
    """({p_at_1, map_at_r, f1_at_10}, images/s embedding them) of ``checkpoint`` on the test items, each queried
    against the others by exact search on the device."""
    import numpy as np

    from indexer.core.metrics import label_metrics, relevant_counts
    from models.embed import embed_items
    from models.embedding_store import EmbeddingStore
    from models.exact_search import torch_exact_search

    store = EmbeddingStore(store_dir)
    embedded = embed_items(checkpoint, list(enumerate(path for path, _ in test)), store, progress=False, device=dev)
    ids, vectors = store.ids(), np.asarray(store.vectors(mmap=False))
    labels = np.array([test[i][1] for i in ids])
    relevant = relevant_counts(labels, labels)
    depth = int(min(len(ids) - 1, max(10, relevant.max())))
    _, rows = torch_exact_search(vectors, vectors, depth + 1, device=dev)
    neighbours = np.array([[r for r in row if r != own][:depth] for own, row in enumerate(rows)])
    metrics = label_metrics(labels, labels[neighbours], relevant, min(10, depth))
    return ({"p_at_1": metrics["precision_at_1"], "map_at_r": metrics["map_at_r"], "f1_at_10": metrics["f1_at_k"]},
            embedded.images_per_s)


def embedding_rates(device, report: dict[str, Any], small: bool) -> dict[str, Any]:
    """The catalog path (models.embed) against what its DataLoader alone delivers (decode-only, same workers)
    and the bare forward, over the test images repeated to >= 50,000 (ids distinct): each rate after start-up
    (the first batch), with the start-up seconds beside it. Target (issue 29): path >= 90% of decode-only."""
    from models.checkpoint import load_model
    from models.embed import default_workers, embed_items, measure_forward_rate, measure_loader_rate
    from models.embedding_store import EmbeddingStore

    checkpoint, test = _trained(report)
    dev = "cuda" if device.type == "cuda" else "cpu"
    batch = 16 if small else 256
    paths = [path for path, _ in test] * (1 if small else -(-EMBED_IMAGES // len(test)))
    items = list(enumerate(paths))
    workers = default_workers(dev)
    bare = measure_forward_rate(checkpoint, batch_size=batch, n_batches=2 if small else 20, device=dev)
    _, spec, _ = load_model(checkpoint)
    decode = measure_loader_rate(items, spec, batch_size=batch, num_workers=workers, device=dev)
    with tempfile.TemporaryDirectory() as tmp:
        pipeline = embed_items(checkpoint, items, EmbeddingStore(Path(tmp) / "cpu"), batch_size=batch,
                               progress=False, device=dev, num_workers=workers)
        on_device = _device_decoding(checkpoint, spec, items, batch, workers, dev, Path(tmp))
    steady_decode = decode.steady_images_per_s
    return {"device_decoding": on_device, "bare_forward_images_per_s": round(bare, 1),
            "decode_only_images_per_s": round(steady_decode, 1), "decode_only_startup_s": round(decode.startup_seconds, 2),
            "catalog_path_images_per_s": round(pipeline.steady_images_per_s, 1),
            "catalog_path_startup_s": round(pipeline.startup_seconds, 2),
            "catalog_path_overall_images_per_s": round(pipeline.images_per_s, 1),
            "share_of_decode_only": round(pipeline.steady_images_per_s / steady_decode, 3) if steady_decode else None,
            "share_of_bare": round(pipeline.steady_images_per_s / bare, 3), "batch": batch, "workers": workers,
            "images": pipeline.embedded, "targets": {"share_of_decode_only": 0.9, "images": EMBED_IMAGES},
            "rates": "images/s after the first batch; start-up: from the call to the first batch's vectors"}


def _device_decoding(checkpoint, spec, items: list, batch: int, workers: int, dev: str, stores: Path) -> dict:
    """``--decode device`` on ``items`` (embedded with the CPU loader into ``stores/cpu`` already): its
    :func:`_decoder_rates`, and its vectors' cosine to the CPU loader's."""
    import numpy as np

    from models.embedding_store import EmbeddingStore

    rates = _decoder_rates(checkpoint, spec, items, batch, workers, dev, stores / "device", "device")
    cosine = _cosines(EmbeddingStore(stores / "cpu"), EmbeddingStore(stores / "device"))
    return {**rates, "min_cosine_to_cpu_loader": float(np.min(cosine)) if len(cosine) else None,
            "target_min_cosine": 0.999}


def _decoder_rates(checkpoint, spec, items: list, batch: int, workers: int, dev: str, store_dir: Path,
                   decode: str) -> dict:
    """One decoder (``decode``) on ``items``: the loader alone and the catalog path into ``store_dir``, each
    after start-up, with the start-up seconds and the failures."""
    from models.embed import embed_items, measure_loader_rate
    from models.embedding_store import EmbeddingStore

    loader = measure_loader_rate(items, spec, batch_size=batch, num_workers=workers, device=dev, decode=decode)
    path = embed_items(checkpoint, items, EmbeddingStore(store_dir), batch_size=batch, progress=False,
                       device=dev, num_workers=workers, decode=decode)
    return {"decode_only_images_per_s": round(loader.steady_images_per_s, 1),
            "decode_only_startup_s": round(loader.startup_seconds, 2),
            "catalog_path_images_per_s": round(path.steady_images_per_s, 1),
            "catalog_path_startup_s": round(path.startup_seconds, 2), "failed": len(path.failed)}


def _cosines(first, second):
    """Cosine of each id's vector in two embedding stores (the ids both hold)."""
    import numpy as np

    ids_a, vectors_a = first.items()
    ids_b, vectors_b = second.items()
    common, at_a, at_b = np.intersect1d(ids_a, ids_b, return_indices=True)
    a, b = np.asarray(vectors_a)[at_a], np.asarray(vectors_b)[at_b]
    return np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def photo_decoding(device, args, work: Path, report: dict[str, Any]) -> dict[str, Any]:
    """12 MP JPEGs (``--photos`` test images upscaled, each listed 8 times; 8 of 512 px with --small), where
    decoding is all of the cost: the CPU loader (DCT-scaled decoding in the workers) against ``--decode
    device``, decode-only and the catalog path, each after start-up, and the two paths' vectors' cosine."""
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image

    from models.checkpoint import load_model
    from models.embed import default_workers
    from models.embedding_store import EmbeddingStore

    checkpoint, test = _trained(report)
    dev = "cuda" if device.type == "cuda" else "cpu"
    side, count = (512, 8) if args.small else (3464, args.photos)
    folder = work / "photos"
    folder.mkdir(exist_ok=True)

    def make(number: int) -> str:
        target = folder / f"photo{number:04d}.jpg"
        with Image.open(test[number % len(test)][0]) as img:
            img.convert("RGB").resize((side, side), Image.Resampling.BICUBIC).save(target, quality=90)
        return str(target)

    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        paths = list(pool.map(make, range(count)))
    made_s = time.perf_counter() - began
    items = list(enumerate(paths * 8))
    _, spec, _ = load_model(checkpoint)
    workers, batch = default_workers(dev), 32
    out: dict[str, Any] = {"photos": count, "megapixels": round(side * side / 1e6, 1), "items": len(items),
                           "made_s": round(made_s, 1), "workers": workers, "batch": batch}
    with tempfile.TemporaryDirectory() as tmp:
        for decode in ("cpu", "device"):
            out[decode] = _decoder_rates(checkpoint, spec, items, batch, workers, dev, Path(tmp) / decode, decode)
        cosine = _cosines(EmbeddingStore(Path(tmp) / "cpu"), EmbeddingStore(Path(tmp) / "device"))
    out["min_cosine_device_to_cpu"] = float(cosine.min()) if len(cosine) else None
    return out


def _trained(report: dict[str, Any]):
    """(checkpoint path, test items) of the recipe's model."""
    if "_recipe" not in report:
        raise RuntimeError("the flowers_recipe step did not produce a model")
    return report["_recipe"]


def exact_search_rates(device, small: bool) -> dict[str, Any]:
    """The gpu-flat searcher (models.gpu_flat) over N random unit vectors x 128: one query at a time (p50 ms),
    1,024-query batches (q/s) and recall@10 against an fp32 matrix-product reference on a query sample."""
    import numpy as np
    import torch

    from models.exact_search import torch_topk
    from models.gpu_flat import GpuFlatSearcher

    out: dict[str, Any] = {}
    cuda = device.type == "cuda"
    generator = torch.Generator(device=device).manual_seed(0)
    for n in ((10_000, 20_000) if small else (1_000_000, 10_000_000)):
        base = torch.nn.functional.normalize(torch.randn(n, 128, device=device, generator=generator), dim=1)
        queries = torch.nn.functional.normalize(torch.randn(1024, 128, device=device, generator=generator), dim=1)
        sample = 32 if small else 200
        reference = np.vstack([torch_topk(base, queries[at:at + 50], 10)[1] for at in range(0, sample, 50)])
        searcher = GpuFlatSearcher(base.cpu().numpy(), device=str(device), tile_rows=4096 if small else None)
        del base
        xq = queries.cpu().numpy()
        searcher.search(xq[:1], 10)  # warm-up
        single = []
        for i in range(20 if small else 200):
            began = time.perf_counter()
            searcher.search(xq[i:i + 1], 10)  # returns CPU arrays: the device has finished
            single.append(time.perf_counter() - began)
        searcher.search(xq, 10)  # warm-up of the batch shapes
        batches = 1 if small else 5
        began = time.perf_counter()
        for _ in range(batches):
            _, found = searcher.search(xq, 10)
        batch_s = (time.perf_counter() - began) / batches
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found[:sample], reference)])
        out[str(n)] = {"single_query_p50_ms": round(float(np.median(single)) * 1e3, 3),
                       "batch_1024_qps": round(1024 / batch_s, 1), "recall_at_10": round(float(recall), 4),
                       "recall_queries": sample, "fp32_rescans": searcher.fallbacks,
                       "device_mib": round((searcher.ntotal * searcher.d * 6) / 2**20, 1)}
        del searcher
        if cuda:
            torch.cuda.empty_cache()
    out["targets"] = {"at": "10M x 128", "single_query_ms": 1.0, "batch_1024_qps": 30_000, "recall_at_10": 1.0}
    out["faiss_cpu_reference"] = "flat, 1M x 128, one query at a time on 2 CPU cores: 20.6 ms p50 (docs/BENCHMARKS.md)"
    return out


def onnx_agreement(device, report: dict[str, Any]) -> dict[str, Any]:
    """The device's catalog vectors (fp32, as the catalog path embeds them) against the ONNX CPU query path."""
    import numpy as np

    from models.checkpoint import load_model
    from models.embed import embed_items
    from models.embedding_store import EmbeddingStore
    from models.images import open_rgb
    from models.onnx_embedder import OnnxEmbedder

    checkpoint, test = _trained(report)
    sample = test[:64]
    dev = "cuda" if device.type == "cuda" else "cpu"
    with tempfile.TemporaryDirectory() as tmp:
        store = EmbeddingStore(tmp)
        embed_items(checkpoint, list(enumerate(path for path, _ in sample)), store, progress=False, device=dev)
        catalog = np.asarray(store.vectors(mmap=False))[np.argsort(store.ids())]
    _, spec, _ = load_model(checkpoint)
    onnx = OnnxEmbedder(Path(checkpoint).with_name("model.onnx"), spec)
    query = onnx.embed_images([open_rgb(path) for path, _ in sample])
    cosine = np.sum(catalog * query, axis=1) / np.linalg.norm(catalog, axis=1) / np.linalg.norm(query, axis=1)
    return {"images": len(sample), "min_cosine": float(cosine.min()), "mean_cosine": float(cosine.mean()),
            "target_min_cosine": 0.999}


if __name__ == "__main__":
    main()
