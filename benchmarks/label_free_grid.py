"""Choose the label-free models' settings: PCA-whitening for `--epochs 0`, the loss for `--labels none`.

Step 1 (`features`) computes a frozen backbone's pooled features once, as training does (models.features):
the clean view of every catalog image and `--views` augmented views of every image outside the test split,
saved in one .npz. Step 2 (`pca`) fits each PCA variant on the clean features outside the test split (no
labels) and scores exact search; step 3 (`train`) trains label-free heads on the cached views with
models.label_free and scores them the same way. Scores are P@1, MAP@R and F1@10 of each image queried against
the others of its group: train + val (where the settings are chosen; their labels are read only to score) and
test (shown for the record, the protocol of `indexer bench`).

Usage:
  python benchmarks/label_free_grid.py features WORKSPACE --weights FILE --out feats.npz [--views 8]
  python benchmarks/label_free_grid.py pca feats.npz [--dims 64,128,256] [--whitenings 0,0.5,1] [--powers 1,0.5]
  python benchmarks/label_free_grid.py train feats.npz --methods views,kmeans,both [--epochs 30] [--json F]
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

    vectors = np.ascontiguousarray(vectors, np.float32)
    relevant = relevant_counts(labels, labels)
    k = max(int(relevant.max()), 10) + 1
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    _, neighbours = index.search(vectors, k)
    own = neighbours == np.arange(len(vectors))[:, None]
    others = np.array([row[~mask][: k - 1] for row, mask in zip(neighbours, own, strict=True)])
    metrics = label_metrics(labels, labels[others], relevant, 10)
    return {"p_at_1": round(metrics["precision_at_1"], 4), "map_at_r": round(metrics["map_at_r"], 4),
            "f1_at_10": round(metrics["f1_at_k"], 4)}


def cache_features(args) -> None:
    import torch

    from indexer.api.workspace import Workspace
    from models.config import TrainConfig
    from models.data import ImageDataset
    from models.features import compute_features
    from models.networks import build_network
    from models.preprocess import PreprocessSpec

    with Workspace.at(args.workspace).catalog() as catalog:
        rows = [row for row in catalog.images() if row.label_id is not None]
    spec = PreprocessSpec(args.image_size)
    net = build_network(TrainConfig(network=args.network, weights=args.weights, freeze_backbone=True,
                                    image_size=args.image_size)).eval()
    items = [(row.path, row.label_id) for row in rows]
    labels = np.asarray([row.label_id for row in rows])
    split = np.asarray([row.split or "" for row in rows])
    device = torch.device("cpu")
    began = time.perf_counter()
    clean, _ = compute_features(net.backbone, ImageDataset(items, labels, spec, augment=False), device=device,
                                progress=True, desc="clean")
    print(f"clean features of {len(items)} images in {time.perf_counter() - began:.0f} s", flush=True)
    fit = np.flatnonzero(split != "test")
    fit_items = [items[i] for i in fit]
    torch.manual_seed(args.seed)
    views = []
    for view in range(args.views):
        began = time.perf_counter()
        part, _ = compute_features(net.backbone, ImageDataset(fit_items, labels[fit], spec, augment=True),
                                   device=device, progress=True, desc=f"view {view + 1}")
        views.append(part.numpy())
        print(f"view {view + 1}/{args.views} of {len(fit)} images in {time.perf_counter() - began:.0f} s", flush=True)
    np.savez(args.out, clean=clean.numpy(), labels=labels, split=split, fit=fit,
             views=np.stack(views) if views else np.zeros((0, len(fit), clean.shape[1]), np.float32))
    print(f"wrote {args.out}")


def groups(data) -> dict[str, np.ndarray]:
    split = data["split"]
    found = {"train+val": np.flatnonzero(split != "test"), "test": np.flatnonzero(split == "test")}
    if data.get("holdout") is not None:  # trained on train only: val is unseen, like test
        found["val"] = np.flatnonzero(split == "val")
    return found


def report(name: str, embed, data, rows: list) -> None:
    """Score ``embed(features of a group) -> vectors`` on each group, print one line and keep it."""
    entry = {"setting": name}
    for group, index in groups(data).items():
        if len(index):
            entry[group] = scores(embed(data["clean"][index]), data["labels"][index])
    rows.append(entry)
    print(json.dumps(entry), flush=True)


def pca_grid(args) -> None:
    from models.pca import WhiteningSpec, apply_whitening, fit_whitening, normalise_features

    data = dict(np.load(args.features))
    fit = data["clean"][data["fit"]]
    rows: list = []
    report("raw pooled features, L2", lambda x: normalise_features(x, 1.0).astype(np.float32), data, rows)
    for power in map(float, args.powers.split(",")):
        if power != 1:
            report(f"raw, power {power}, L2", lambda x, p=power: normalise_features(x, p).astype(np.float32),
                   data, rows)
        for dim in map(int, args.dims.split(",")):
            for whitening in map(float, args.whitenings.split(",")):
                for shrinkage in map(float, args.shrinkages.split(",")):
                    spec = WhiteningSpec(dim=dim, power=power, whitening=whitening, shrinkage=shrinkage)
                    mean, projection = fit_whitening(fit, spec)
                    report(f"pca dim {dim} power {power} whitening {whitening} shrinkage {shrinkage}",
                           lambda x, m=mean, p=projection, s=spec: apply_whitening(x, m, p, s.power), data, rows)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=1)


def train_grid(args) -> None:
    """Each setting: a head trained by models.label_free on the cached views, scored on the clean features."""
    import dataclasses

    import torch
    from torch import nn

    from models.config import TrainConfig
    from models.label_free import LabelFreeSpec, fit_head_without_labels
    from models.networks import EmbeddingNet, build_head
    from models.pca import PcaWhitening, ResidualWhitening, WhiteningSpec
    from models.preprocess import PreprocessSpec
    from models.seeding import seed_everything
    from models.train_setup import FitSetup

    torch.set_num_threads(args.threads)
    data = dict(np.load(args.features))
    fit = data["fit"]
    views = data["views"][: args.views]
    if args.fit_split:  # train on one split's images only (the others of train + val are scored unseen)
        keep = data["split"][fit] == args.fit_split
        fit, views = fit[keep], views[:, keep]
        data["fit"], data["holdout"] = fit, True
    features = torch.from_numpy(np.concatenate([data["clean"][fit], *views]))
    images = torch.arange(len(fit)).repeat(1 + len(views))
    rows: list = []
    for setting in args.settings.split(";"):
        values = dict(item.split("=") for item in setting.split(",") if item)
        head_kind = values.pop("head", "mlp")
        power, whitening = float(values.pop("power", 0.5)), float(values.pop("whitening", 0.25))
        spec_keys = {f.name for f in dataclasses.fields(LabelFreeSpec)}
        spec = LabelFreeSpec(**{k: type(getattr(LabelFreeSpec(), k))(v) for k, v in values.items() if k in spec_keys})
        config_values = {k: v for k, v in values.items() if k not in spec_keys}
        defaults = TrainConfig(network="mobilenet_v2", weights="imagenet", labels="none", epochs=args.epochs)
        config = TrainConfig(**{**defaults.to_dict(), **{k: type(getattr(defaults, k))(v)
                                                         for k, v in config_values.items()}}).resolved()
        generator = seed_everything(config.seed)
        width = features.shape[1]
        whitened = WhiteningSpec(dim=config.embedding_dim, power=power, whitening=whitening)
        if head_kind in ("pca", "pca0"):  # --epochs 0's PCA-whitening (pca0: as it is; pca: its projection trained)
            head = PcaWhitening.fitted(data["clean"][fit], whitened, trainable=head_kind == "pca")
        elif head_kind in ("pca-res", "pca-res-fixed"):  # + a residual MLP from zero (what --labels none trains)
            head = ResidualWhitening.fitted(data["clean"][fit], whitened, config.head_hidden)
            head.pca.projection.requires_grad_(head_kind == "pca-res")  # fixed: only the residual learns
        else:
            head = build_head(width, config.embedding_dim, config.dropout, config.head_hidden)
        model = EmbeddingNet(nn.Identity(), head, width)
        setup = FitSetup(config, torch.device("cpu"), generator, PreprocessSpec(128), False, 0, None)
        began = time.perf_counter()
        history, state = ([{"loss": float("nan")}], model.state_dict()) if head_kind == "pca0" else \
            fit_head_without_labels(model, setup, features, images, spec)
        seconds = time.perf_counter() - began
        model.load_state_dict(state)
        model.eval()

        def embed(x, model=model):
            with torch.no_grad():
                return model(torch.from_numpy(np.ascontiguousarray(x))).numpy()

        report(f"{setting or 'defaults'} epochs {config.epochs} views {len(views)} ({seconds:.0f} s, "
               f"loss {history[-1]['loss']:.3f})", embed, data, rows)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="step", required=True)
    features = sub.add_parser("features")
    features.add_argument("workspace")
    features.add_argument("--weights", required=True)
    features.add_argument("--network", default="mobilenet_v2")
    features.add_argument("--image-size", type=int, default=128)
    features.add_argument("--views", type=int, default=8)
    features.add_argument("--seed", type=int, default=0)
    features.add_argument("--out", required=True)
    pca = sub.add_parser("pca")
    pca.add_argument("features")
    pca.add_argument("--dims", default="128")
    pca.add_argument("--powers", default="1")
    pca.add_argument("--whitenings", default="0,0.5,1")
    pca.add_argument("--shrinkages", default="0.1")
    pca.add_argument("--json", default=None)
    train = sub.add_parser("train")
    train.add_argument("features")
    train.add_argument("--settings", default="method=views",
                       help="';'-separated settings, each 'key=value,...' of LabelFreeSpec and TrainConfig fields")
    train.add_argument("--epochs", type=int, default=30)
    train.add_argument("--views", type=int, default=8, help="cached augmented views to use (at most those cached)")
    train.add_argument("--fit-split", default=None,
                       help="train on this split's images only (e.g. train), so val is scored on unseen images")
    train.add_argument("--threads", type=int, default=1, help="torch threads (1 suffers least from a busy machine)")
    train.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.step == "train":
        train_grid(args)
    elif args.step == "features":
        cache_features(args)
    elif args.step == "pca":
        pca_grid(args)


if __name__ == "__main__":
    main()
