"""Embedding pipeline rate (decode + resize + forward) against the bare model forward, same batch size.

Usage: python benchmarks/embed_throughput.py --workspace WS --model NAME [--images 2000] [--batch-size 128]
The pipeline embeds the first N ok catalog images into a throw-away store; the bare rate runs the model on
random tensors of the same shape. Target: pipeline >= 90% of bare. With --onnx it then embeds the same images
with the model's ONNX export (`indexer embed --engine onnx`) and prints that rate beside the torch pipeline's.

Usage: python benchmarks/embed_throughput.py --generated 2000 [--side 128] [--workers 1] [--tta flip] [--raw]
The main process's own cost: N generated JPEGs (shorter side --side) read by the embedding path's DataLoader
alone (decode-only) and then embedded by that path with a near-zero-cost model (a linear map of one pixel), so
what the second run loses against the first is the main process's per-batch work; its CPU time is printed too.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace")
    parser.add_argument("--model")
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--onnx", action="store_true", help="Also time the ONNX engine on the same images.")
    parser.add_argument("--generated", type=int, default=0, metavar="N",
                        help="Time the main process's overhead on N generated JPEGs instead (no workspace).")
    parser.add_argument("--side", type=int, default=128, help="With --generated: image and model input side.")
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: the path's own).")
    parser.add_argument("--tta", default="none", help="With --generated: none or flip.")
    parser.add_argument("--raw", action="store_true", help="With --generated: the workers send uint8 pixels, "
                        "normalised in the main process (what CUDA gets; default on the CPU: float32).")
    args = parser.parse_args()
    if args.generated:
        main_process_overhead(args)
    elif args.workspace and args.model:
        workspace_rates(args)
    else:
        parser.error("give --workspace and --model, or --generated N")


def main_process_overhead(args) -> None:
    """Decode-only loader rate against the full path with a near-zero-cost model, on generated JPEGs."""
    import torch

    from models.embed import embed_model, measure_loader_rate
    from models.embedding_store import EmbeddingStore
    from models.preprocess import PreprocessSpec

    spec = PreprocessSpec(args.side, tta=args.tta)

    class OnePixel(torch.nn.Module):
        """A near-zero-cost model: a linear map of each input's top-left pixel to 128 dims."""

        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(3, 128)

        def forward(self, images):
            return self.linear(images[:, :, 0, 0])

    model = OnePixel().eval()
    with tempfile.TemporaryDirectory() as tmp:
        items = generated_jpegs(Path(tmp) / "images", args.generated, args.side)
        cpu = time.process_time()
        loader = measure_loader_rate(items, spec, batch_size=args.batch_size, num_workers=args.workers, raw=args.raw)
        loader_cpu, cpu = time.process_time() - cpu, time.process_time()
        report = embed_model(model, spec, items, EmbeddingStore(Path(tmp) / "store"), batch_size=args.batch_size,
                             progress=False, num_workers=args.workers, raw=args.raw)
        path_cpu = time.process_time() - cpu
        copy_cpu = _host_copy_cpu(items, spec, args)
    print(f"decode-only loader: {loader.steady_images_per_s:.1f} images/s after a start-up of "
          f"{loader.startup_seconds:.2f} s ({loader.images_per_s:.1f} overall)")
    print(f"embed_model, near-zero model: {report.steady_images_per_s:.1f} images/s after a start-up of "
          f"{report.startup_seconds:.2f} s ({100 * report.steady_images_per_s / loader.steady_images_per_s:.0f}% of "
          f"decode-only; {report.images_per_s:.1f} overall, "
          f"{100 * report.images_per_s / loader.images_per_s:.0f}%)")
    print(f"main process CPU: {1e3 * loader_cpu / loader.images:.3f} ms an image decode-only, "
          f"{1e3 * path_cpu / report.embedded:.3f} ms with the path (all its threads; the workers apart)")
    print(f"main process CPU with one host copy of each batch (the pin thread's work on CUDA): "
          f"{1e3 * copy_cpu / len(items):.3f} ms an image")
    print(f"{report.embedded} images, {args.side} px, batch {args.batch_size}, workers {args.workers}, "
          f"tta {args.tta}, pixels sent as {'uint8' if args.raw else 'float32'}")


def _host_copy_cpu(items, spec, args) -> float:
    """Main-process CPU seconds to read the path's batches and copy each once in host memory, as the pin thread
    copies each batch into pinned memory on CUDA (pinning itself needs CUDA)."""
    from models.embed import embedding_loader

    cpu = time.process_time()
    for images, _, _ in embedding_loader(items, spec, batch_size=args.batch_size, num_workers=args.workers,
                                         raw=args.raw):
        if images is not None:
            images.clone()
    return time.process_time() - cpu


def generated_jpegs(root: Path, n: int, side: int) -> list[tuple[int, str]]:
    """``n`` JPEGs of side × 1.25 side (noise under a coloured ellipse), as (id, path)."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    items = []
    for i in range(n):
        img = Image.fromarray(rng.integers(0, 256, (side, side * 5 // 4, 3), dtype=np.uint8))
        ImageDraw.Draw(img).ellipse([side // 8, side // 8, side, side * 7 // 8],
                                    fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        path = root / f"{i}.jpg"
        img.save(path, quality=90)
        items.append((i, str(path)))
    return items


def workspace_rates(args) -> None:
    from indexer.api.workspace import Workspace
    from models.embed import embed_items, measure_forward_rate
    from models.embedding_store import EmbeddingStore

    workspace = Workspace.at(args.workspace)
    with workspace.catalog() as catalog:
        model = catalog.model(args.model)
        checkpoint = workspace.resolve(model.path)
        rows = catalog.images()[: args.images]
    bare = measure_forward_rate(checkpoint, batch_size=args.batch_size, n_batches=max(3, args.images // args.batch_size))
    with tempfile.TemporaryDirectory() as tmp:
        report = embed_items(checkpoint, [(r.id, r.path) for r in rows], EmbeddingStore(tmp),
                             batch_size=args.batch_size, progress=False, num_workers=args.workers)
    print(f"bare forward: {bare:.1f} images/s; pipeline: {report.images_per_s:.1f} images/s "
          f"({100 * report.images_per_s / bare:.0f}% of bare) on {report.embedded} images, batch {args.batch_size}")
    if args.onnx:
        import os

        from models.embedders import embed_with, open_embedder

        embedder = open_embedder(model.params, workspace.resolve, threads=os.cpu_count() or 1)
        with tempfile.TemporaryDirectory() as tmp:
            fast = embed_with(embedder, [(r.id, r.path) for r in rows], EmbeddingStore(tmp),
                              batch_size=args.batch_size, progress=False)
        print(f"onnx engine: {fast.images_per_s:.1f} images/s on {fast.embedded} images "
              f"({fast.images_per_s / report.images_per_s:.2f}x the torch pipeline)")


if __name__ == "__main__":
    main()
