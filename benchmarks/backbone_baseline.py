"""Quality of a frozen ImageNet backbone alone (no trained head), on the same protocol as `indexer bench`.

Usage: python benchmarks/backbone_baseline.py --workspace WS --weights mobilenet_v2-b0353104.pth
       [--network mobilenet_v2] [--image-size 128] [--split test]
Embeds the split's images with the backbone's pooled features (L2-normalised), queries every image
against the rest of the split (itself excluded) and prints P@1, MAP@R and F1@10.
"""

from __future__ import annotations

import argparse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--weights", required=True)
    parser.add_argument("--network", default="mobilenet_v2")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--split", default="test")
    args = parser.parse_args()

    import numpy as np
    import torch

    from indexer.api.workspace import Workspace
    from indexer.core.metrics import label_metrics, relevant_counts
    from indexer.core.search import exact_search
    from models.config import TrainConfig
    from models.networks import build_network
    from models.preprocess import PreprocessSpec, load_and_preprocess

    with Workspace.at(args.workspace).catalog() as catalog:
        rows = [r for r in catalog.images(splits=[args.split]) if r.label_id is not None]
    net = build_network(TrainConfig(network=args.network, weights=args.weights, freeze_backbone=True,
                                    image_size=args.image_size)).eval()
    spec = PreprocessSpec(args.image_size)
    features = []
    with torch.inference_mode():
        for start in range(0, len(rows), 128):
            batch = np.stack([load_and_preprocess(r.path, spec) for r in rows[start:start + 128]])
            features.append(net.backbone(torch.from_numpy(batch)).flatten(1).numpy())
    x = np.concatenate(features).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids = np.arange(len(rows), dtype=np.int64)
    labels = np.array([r.label_id for r in rows])
    relevant = relevant_counts(labels, labels)
    _, found = exact_search(x, ids, x, int(max(10, relevant.max())), exclude_self_ids=ids)
    metrics = label_metrics(labels, labels[found], relevant, 10)
    print(f"{args.network} frozen backbone ({x.shape[1]}-d pooled features, {args.image_size}px), "
          f"{args.split} split, {len(rows)} images: P@1 {metrics['precision_at_1']:.3f}, "
          f"MAP@R {metrics['map_at_r']:.3f}, F1@10 {metrics['f1_at_k']:.3f}")


if __name__ == "__main__":
    main()
