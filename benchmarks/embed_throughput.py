"""Embedding pipeline rate (decode + resize + forward) against the bare model forward, same batch size.

Usage: python benchmarks/embed_throughput.py --workspace WS --model NAME [--images 2000] [--batch-size 128]
The pipeline embeds the first N ok catalog images into a throw-away store; the bare rate runs the model on
random tensors of the same shape. Target: pipeline >= 90% of bare.
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
    args = parser.parse_args()

    from indexer.api.workspace import Workspace
    from models.embed import embed_items, measure_forward_rate
    from models.embedding_store import EmbeddingStore

    workspace = Workspace.at(args.workspace)
    with workspace.catalog() as catalog:
        checkpoint = workspace.resolve(catalog.model(args.model).path)
        rows = catalog.images()[: args.images]
    bare = measure_forward_rate(checkpoint, batch_size=args.batch_size, n_batches=max(3, args.images // args.batch_size))
    with tempfile.TemporaryDirectory() as tmp:
        report = embed_items(checkpoint, [(r.id, r.path) for r in rows], EmbeddingStore(tmp),
                             batch_size=args.batch_size, progress=False)
    print(f"bare forward: {bare:.1f} images/s; pipeline: {report.images_per_s:.1f} images/s "
          f"({100 * report.images_per_s / bare:.0f}% of bare) on {report.embedded} images, batch {args.batch_size}")


if __name__ == "__main__":
    main()
