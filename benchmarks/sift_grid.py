"""Choose SIFT-VLAD's dense grid and whitening: P@1 and MAP@R for each setting, chosen on train + val.

For each patch (px, the side of the square each grid descriptor describes) the script fits the codebook as
`indexer train --network sift-vlad` does (on every image outside the test split), computes every catalog
image's raw VLAD once, then for each whitening power fits the PCA on the same images and scores exact search,
each image queried against the others of its group (train + val, then test, itself excluded). Defaults are
chosen on the train + val columns; test is printed for the record only.

Usage: python benchmarks/sift_grid.py WORKSPACE [--patches 16,24,32,48] [--step 8] [--image-size 128]
       [--codebook 64] [--whitenings 0.25] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def scores(vectors: np.ndarray, labels: np.ndarray) -> dict:
    """P@1, MAP@R and F1@10 of exact inner-product search, each vector against the others."""
    import faiss

    from indexer.core.metrics import label_metrics, relevant_counts

    relevant = relevant_counts(labels, labels)
    k = int(relevant.max()) + 1
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    _, neighbours = index.search(vectors, k)
    own = neighbours == np.arange(len(vectors))[:, None]
    others = np.array([row[~mask][: k - 1] for row, mask in zip(neighbours, own, strict=True)])
    metrics = label_metrics(labels, labels[others], relevant, 10)
    return {"p_at_1": round(metrics["precision_at_1"], 4), "map_at_r": round(metrics["map_at_r"], 4),
            "f1_at_10": round(metrics["f1_at_k"], 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workspace")
    parser.add_argument("--patches", default="16,24,32,48")
    parser.add_argument("--step", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--codebook", type=int, default=64)
    parser.add_argument("--whitenings", default="0.25", help="Whitening powers to score (0 plain PCA, 1 full).")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    from indexer.api.pipeline.training import HELD_OUT_SPLIT
    from indexer.api.workspace import Workspace
    from indexer.core.files import write_json
    from models.sift_vlad import (
        SiftVladModel,
        SiftVladSpec,
        dense_root_sift,
        fit_projection,
        fit_sift_vlad,
        open_image,
        vlad,
    )

    workspace = Workspace.at(args.workspace)
    with workspace.catalog() as catalog:
        rows = [row for row in catalog.images() if row.label_id is not None]
    labels = np.array([row.label_id for row in rows])
    is_test = np.array([row.split == HELD_OUT_SPLIT for row in rows])
    out = []
    for patch in [int(p) for p in args.patches.split(",")]:
        spec = SiftVladSpec(codebook=args.codebook, image_size=args.image_size, step=args.step, patch=patch)

        def load(row, spec=spec):  # as the model's embedder decodes
            return open_image(workspace.resolve(row.path), spec)

        started = time.perf_counter()
        centroids = fit_sift_vlad([load(r) for r, test in zip(rows, is_test, strict=True) if not test],
                                  spec).centroids
        fit_s = time.perf_counter() - started
        started = time.perf_counter()
        raw = np.stack([vlad(dense_root_sift(load(row), spec), centroids) for row in rows])
        per_s = len(rows) / (time.perf_counter() - started)
        for whitening in [float(w) for w in args.whitenings.split(",")]:
            mean, projection = fit_projection(raw[~is_test], spec.dim, whitening)
            vectors = SiftVladModel(spec, centroids, mean, projection).project(raw)  # as the model embeds
            row = {"patch": patch, "step": args.step, "image_size": args.image_size, "codebook": args.codebook,
                   "whitening": whitening, "fit_s": round(fit_s, 1), "images_per_s": round(per_s, 1),
                   "train_val": scores(vectors[~is_test], labels[~is_test]),
                   "test": scores(vectors[is_test], labels[is_test])}
            print(json.dumps(row), flush=True)
            out.append(row)
    if args.json:
        write_json(args.json, out, indent=2)


if __name__ == "__main__":
    main()
