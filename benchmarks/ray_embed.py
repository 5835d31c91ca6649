"""Images/s of the local embedding path and of `indexer embed --engine ray`, side by side in one run.

Usage: python benchmarks/ray_embed.py --workspace WS --model NAME [--images N] [--actors N] [--batch-size 128]
Both embed the same ok catalog images (the first N; default all) into fresh throw-away stores, so the workspace
is only read: the local path exactly as `indexer embed` runs it (the torch checkpoint, a DataLoader worker), the
Ray path as `indexer embed --engine ray` runs it (a local Ray started and stopped inside the timing, ONNX actors).
A third row, not an engine, runs the Ray actors' ONNX export in this one process (all cores), to tell what Ray
adds from what ONNX does. Prints, per row, the wall time (start-up included) and the report's images/s, then the
smallest per-image cosine between the two engines' vectors.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--images", type=int, default=None)
    parser.add_argument("--actors", type=int, default=None, help="Ray actors (default: one per core)")
    parser.add_argument("--batch-size", type=int, default=128)
    args = parser.parse_args()

    import numpy as np

    from indexer.api.pipeline.ray_embed import embed_on_ray
    from indexer.api.workspace import Workspace
    from models.embed import embed_items
    from models.embedders import embed_with, open_embedder
    from models.embedding_store import EmbeddingStore

    workspace = Workspace.at(args.workspace)
    with workspace.catalog() as catalog:
        model = catalog.model(args.model)
        rows = catalog.images()[: args.images]
    items = [(row.id, row.path) for row in rows]
    print(f"{len(items)} images, model {args.model!r}, batch {args.batch_size}, {os.cpu_count()} cores, "
          f"load average before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        stores = {name: EmbeddingStore(f"{tmp}/{name}") for name in ("local", "onnx-1-process", "ray")}
        runs = {
            "local": lambda store: embed_items(workspace.resolve(model.path), items, store,
                                               batch_size=args.batch_size, progress=False),
            # not an engine: the ONNX export in this one process (all cores), to tell Ray's gain from ONNX's
            "onnx-1-process": lambda store: embed_with(open_embedder(model.params, workspace.resolve,
                                                                     threads=os.cpu_count() or 1),
                                                       items, store, batch_size=args.batch_size, progress=False),
            "ray": lambda store: embed_on_ray(workspace, model, items, store, actors=args.actors,
                                              batch_size=args.batch_size, progress=False),
        }
        print("| engine | images | failed | wall s (start-up included) | images/s (wall) | images/s (report) | load avg after |")
        print("|---|---|---|---|---|---|---|")
        for engine, run in runs.items():
            began = time.perf_counter()
            report = run(stores[engine])
            wall = time.perf_counter() - began
            print(f"| {engine} | {report.embedded} | {len(report.failed)} | {wall:.1f} | {report.embedded / wall:.1f} "
                  f"| {report.images_per_s:.1f} | {os.getloadavg()[0]:.2f} |", flush=True)
        vectors = {}
        for engine, store in stores.items():
            vectors[engine] = dict(zip(store.ids().tolist(), np.asarray(store.vectors(mmap=False))))
        common = sorted(set(vectors["local"]) & set(vectors["ray"]))
        local = np.stack([vectors["local"][i] for i in common])
        ray = np.stack([vectors["ray"][i] for i in common])
        cosine = (local * ray).sum(1) / (np.linalg.norm(local, axis=1) * np.linalg.norm(ray, axis=1))
        print(f"per-image cosine local vs ray over {len(common)} images: min {cosine.min():.6f}, "
              f"mean {cosine.mean():.6f}")


if __name__ == "__main__":
    main()
