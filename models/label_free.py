"""Training without labels (``labels: none``): a head on a frozen pretrained backbone, learned from the images.

The backbone's features are cached once, as for supervised frozen training (:mod:`models.features`): the clean
view of every image and ``augment_views`` augmented ones. The head is :class:`models.pca.ResidualWhitening`: the
PCA-whitening of ``--epochs 0`` fitted on the clean views, whose projection is then trained together with a
residual MLP that starts at zero, so training starts from the untrained model and moves away from it. It learns
from pseudo-labels, with pytorch-metric-learning's losses, miners and samplers:

- ``views`` (the default): each image is its own class; a batch holds two views of each of P images
  (``MPerClassSampler(m=2)``) and :class:`~pytorch_metric_learning.losses.NTXentLoss` pulls the two together
  against every other image of the batch (SimCLR's loss, on cached features);
- ``clusters``: k-means over the current embeddings of the clean views (one cluster per ``images_per_cluster``
  images), refreshed every ``refresh_every`` epochs, gives every view its image's cluster as the label, trained
  with the multi-similarity loss and miner (a resumed run clusters again with the head it resumes from);
- ``both``: the sum of the two over the same batches.

Nothing is validated (there are no labels to score with): the last epoch is kept. Which method is the
default, and why, is measured in docs/BENCHMARKS.md ("Your own photos").
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.config import LABELS_NONE, TrainConfig
from models.errors import ConfigError

METHODS = ("views", "clusters", "both")


@dataclass(frozen=True)
class LabelFreeSpec:
    """The label-free method and its settings (see the module docstring)."""

    method: str = "views"
    temperature: float = 0.2  # NTXentLoss
    images_per_cluster: int = 20  # k-means clusters: one per this many images
    refresh_every: int = 5  # epochs between k-means refreshes
    cluster_weight: float = 1.0  # "both": weight of the cluster loss

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"method: {self.method!r} is invalid; expected one of {', '.join(METHODS)}")
        if not self.temperature > 0:
            raise ConfigError(f"temperature: {self.temperature!r} is invalid; expected a number > 0")
        for name in ("images_per_cluster", "refresh_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name}: {value!r} is invalid; expected an integer >= 1")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class _ViewsAndClustersLoss:
    """NTXent over image labels plus the multi-similarity loss (with its miner) over cluster labels; ``labels``
    is (B, 2): image index, cluster."""

    def __init__(self, spec: LabelFreeSpec) -> None:
        from pytorch_metric_learning import losses, miners

        self.spec = spec
        self.contrastive = losses.NTXentLoss(temperature=spec.temperature)
        self.clustered = losses.MultiSimilarityLoss(alpha=2.0, beta=50.0, base=0.5)
        self.miner = miners.MultiSimilarityMiner(epsilon=0.1)

    def parameters(self):
        return iter(())

    def __call__(self, embeddings, labels, _pairs=None):
        images, clusters = labels[:, 0], labels[:, 1]
        loss = 0.0
        if self.spec.method in ("views", "both"):
            loss = loss + self.contrastive(embeddings, images)
        if self.spec.method in ("clusters", "both"):
            weight = self.spec.cluster_weight if self.spec.method == "both" else 1.0
            loss = loss + weight * self.clustered(embeddings, clusters, self.miner(embeddings, clusters))
        return loss


def cluster_labels(vectors: np.ndarray, clusters: int, seed: int) -> np.ndarray:
    """(n,) int64 k-means assignments of (n, d) vectors (FAISS, spherical, seeded)."""
    import faiss

    x = np.ascontiguousarray(vectors, np.float32)
    clusters = max(2, min(clusters, len(x) // 2))
    kmeans = faiss.Kmeans(x.shape[1], clusters, niter=20, seed=seed, spherical=True, verbose=False)
    kmeans.train(x)
    return kmeans.index.search(x, 1)[1][:, 0].astype(np.int64)


def fit_head_without_labels(model, setup, features, images, spec: LabelFreeSpec):
    """Train ``model.head`` on cached ``features`` ((N, F) tensor: every view of every image) whose ``images``
    ((N,) int64 tensor) say which image each row is a view of; the first rows, one per image in image order, are
    the clean views. Returns ``(history, state of the last epoch)`` like the supervised loops."""
    import torch
    import torch.nn.functional as F
    from pytorch_metric_learning.samplers import MPerClassSampler

    from models.pca import PcaWhitening, ResidualWhitening
    from models.train_loops import fit_loop

    config, device = setup.config, setup.device
    model.backbone.requires_grad_(False)
    count = int(images.max()) + 1
    clean = features[:count]
    features, images = features.to(device), images.to(device)
    batch = min(config.batch_classes * config.batch_per_class, 2 * count)
    batch -= batch % 2
    # an epoch shows every image once, as two of its views (PML's NTXentLoss costs O(B^3) memory, so the
    # batch stays at P x K and the epoch is kept to images, not views)
    sampler = MPerClassSampler(images.cpu().numpy(), m=2, batch_size=batch,
                               length_before_new_iter=max(2 * count, batch))
    clusters = torch.zeros_like(images)
    needs_clusters = spec.method != "views"

    def refresh(epoch: int) -> None:
        """k-means over the clean views: their L2-normalised features first, then the current embeddings."""
        if epoch == 1 and not isinstance(model.head, (PcaWhitening, ResidualWhitening)):  # a random head
            vectors = F.normalize(clean.float(), dim=1).numpy()
        else:
            model.head.eval()
            with torch.no_grad():
                vectors = model.embed_features(clean.to(device)).cpu().numpy()
        per_image = torch.from_numpy(cluster_labels(vectors, max(2, count // spec.images_per_cluster),
                                                    config.seed + epoch)).to(device)
        clusters.copy_(per_image[images])

    def batches(epoch: int):
        if needs_clusters and (epoch - 1) % spec.refresh_every == 0:
            refresh(epoch)
        order = list(iter(sampler))
        for start in range(0, len(order) - batch + 1, batch):
            index = torch.as_tensor(order[start:start + batch], device=device)
            yield features[index], torch.stack([images[index], clusters[index]], dim=1)

    threads = torch.get_num_threads()
    if device.type == "cpu":  # a small head and PML's many small tensor ops: one thread is as fast alone and
        torch.set_num_threads(1)  # several times faster on a busy machine (docs/BENCHMARKS.md, "Your own photos")
    try:
        return fit_loop(model, _ViewsAndClustersLoss(spec), None, setup, batches, len(sampler) // batch,
                        lambda: None, np.zeros(0), forward=model.embed_features, train_modules=[model.head])
    finally:
        torch.set_num_threads(threads)


def train_label_free(config: TrainConfig, paths: Sequence[str], out_dir: str | os.PathLike[str], *,
                     progress: bool = True, spec: LabelFreeSpec | None = None):
    """Train ``config``'s head on its frozen pretrained backbone from the images at ``paths`` alone, and write
    the model (``model.pt``, ``model.onnx``, ``config.json``) in ``out_dir``; a killed run resumes from its
    last saved epoch. Returns a :class:`models.artifacts.TrainResult` (no validation metrics)."""
    import torch

    from models.artifacts import RESUME_FILE, write_model
    from models.device import resolve_device
    from models.features import backbone_runner, cache_training_features
    from models.networks import build_network
    from models.pca import ResidualWhitening, WhiteningSpec
    from models.preprocess import PreprocessSpec
    from models.seeding import seed_everything
    from models.train_setup import FitSetup, num_workers

    started = time.perf_counter()
    config = dataclasses.replace(config, labels=LABELS_NONE).resolved()
    spec = spec or LabelFreeSpec()
    if len(paths) < 2:
        raise ConfigError(f"images: {len(paths)} image(s) is too few; training without labels needs at least 2")
    generator = seed_everything(config.seed)
    device = resolve_device(config.device)
    preprocess = PreprocessSpec(config.image_size, tta=config.tta)
    model = build_network(config).to(device)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    setup = FitSetup(config, device, generator, preprocess, progress, num_workers(config, device), out / RESUME_FILE)
    items = [(path, index) for index, path in enumerate(paths)]
    with backbone_runner(model.backbone, config.image_size, device) as runner:  # onnxruntime on a CPU
        features, images = cache_training_features(
            model.backbone, items, np.arange(len(items)), preprocess, views=max(1, config.augment_views),
            device=device, batch_size=64, num_workers=setup.num_workers, generator=generator, progress=progress,
            runner=runner)
    _, images = torch.unique(images, return_inverse=True)  # unreadable images left out: number the rest 0..m-1
    if len(images) == 0 or int(images.max()) < 1:
        raise ConfigError("images: fewer than 2 decodable images; training without labels needs at least 2")
    count = int(images.max()) + 1  # the first `count` rows are the clean views, one per image
    model.head = ResidualWhitening.fitted(features[:count].numpy(), WhiteningSpec(dim=config.embedding_dim),
                                          config.head_hidden or 512).to(device)
    config = dataclasses.replace(config, embedding_dim=model.head.dim)
    setup = dataclasses.replace(setup, config=config)
    history, state = fit_head_without_labels(model, setup, features, images, spec)
    model.load_state_dict(state)
    model = model.to("cpu").eval()
    extra = {"epochs_run": len(history), "num_train_items": count, "num_val_items": 0,
             "label_free": spec.to_dict(), "pca": WhiteningSpec(dim=model.head.dim).to_dict()}
    return write_model(out, model, config, preprocess, {}, extra, history, started)
