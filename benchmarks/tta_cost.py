"""What test-time flip costs a query: the query path's embedding (decode + ONNX, one thread) of one image at a
time, for each model named, on the same catalog images.

Usage: python benchmarks/tta_cost.py WORKSPACE --models mnv2,mnv2-flip [--images 200] [--split test]
Prints, per model, its tta, the median and p95 ms per single-image embedding, and images/s in batches of 64.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("workspace")
    parser.add_argument("--models", required=True, help="Comma-separated model names.")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--split", default="test")
    args = parser.parse_args()

    from indexer.api.workspace import Workspace
    from models.embedders import open_embedder

    workspace = Workspace.at(args.workspace)
    with workspace.catalog() as catalog:
        paths = [row.path for row in catalog.images() if row.split == args.split][: args.images]
        models = [catalog.model(name) for name in args.models.split(",")]
    for model in models:
        embedder = open_embedder(model.params, workspace.resolve, threads=1)
        embedder.embed_images([embedder.load(paths[0])])  # warm-up
        times = []
        for path in paths:
            started = time.perf_counter()
            embedder.embed_images([embedder.load(path)])
            times.append(time.perf_counter() - started)
        pictures = [embedder.load(path) for path in paths]
        started = time.perf_counter()
        for start in range(0, len(pictures), 64):
            embedder.embed_images(pictures[start:start + 64])
        rate = len(pictures) / (time.perf_counter() - started)
        tta = model.params.get("preprocess", {}).get("tta", "none")
        print(f"{model.name}: tta {tta}, single image {np.median(times) * 1e3:.1f} ms median, "
              f"{np.percentile(times, 95) * 1e3:.1f} ms p95 over {len(paths)} images; batches of 64: {rate:.0f} images/s")


if __name__ == "__main__":
    main()
