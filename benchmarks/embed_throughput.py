"""Embedding pipeline rate (decode + resize + forward) against the bare model forward, same batch size.

Usage: python benchmarks/embed_throughput.py --workspace WS --model NAME [--images 2000] [--batch-size 128]
The pipeline embeds the first N ok catalog images into a throw-away store; the bare rate runs the model on
random tensors of the same shape. Target: pipeline >= 90% of bare. With --onnx it then embeds the same images
with the model's ONNX export (`indexer embed --engine onnx`) and prints that rate beside the torch pipeline's.
"""

from __future__ import annotations

import argparse
import tempfile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--onnx", action="store_true", help="Also time the ONNX engine on the same images.")
    args = parser.parse_args()

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
                             batch_size=args.batch_size, progress=False)
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
