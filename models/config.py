"""Typed training configuration: a frozen dataclass filled from YAML (ours or the seed project's) and flags."""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass, field
from typing import Any

from models.errors import ConfigError
from models.preprocess import TTA_MODES, TTA_NONE

SIAMESE = "siamese"
LOSSES = ("multi-similarity", "triplet", "proxy-anchor", "supcon")
MINERS = ("batch-hard", "semi-hard", "hard", "all", "multi-similarity", "none")
DEFAULT_MINER = {"multi-similarity": "multi-similarity", "triplet": "batch-hard", "proxy-anchor": "none",
                 "supcon": "none"}
# Random views for training (models.data.augmentation): every policy starts with a random-resized crop and a
# horizontal flip, then colour jitter, torchvision's TrivialAugmentWide, or its RandAugment
AUGMENT_JITTER, AUGMENT_TRIVIAL, AUGMENT_RAND = "crop-flip-jitter", "crop-flip-trivial", "crop-flip-rand"
AUGMENTS = (AUGMENT_JITTER, AUGMENT_TRIVIAL, AUGMENT_RAND)
DEVICES = ("auto", "cpu", "cuda")
# Which labels training uses: "catalog" (the images' labels), "none" (the images alone, models.label_free),
# "auto" (the caller's choice: the catalog's when it has enough, else none; unresolved it means "catalog")
LABELS_AUTO, LABELS_CATALOG, LABELS_NONE = "auto", "catalog", "none"
LABEL_MODES = (LABELS_AUTO, LABELS_CATALOG, LABELS_NONE)
LABEL_FREE_EPOCHS = 30  # default epochs and augmented views per image without labels (docs/BENCHMARKS.md,
LABEL_FREE_VIEWS = 8  # "Your own photos")


@functools.lru_cache(maxsize=1)
def classifier_names() -> frozenset[str]:
    """Names of torchvision's image-classification models (imports torchvision once)."""
    import torchvision

    return frozenset(torchvision.models.list_models(module=torchvision.models))


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a trained model. ``None`` fields mean "the default for this network/mode";
    :meth:`resolved` fills them in (train_model saves the resolved copy)."""

    name: str = "model"
    network: str = SIAMESE  # "siamese" or a torchvision classifier name (resnet18, mobilenet_v2, ...)
    embedding_dim: int = 128
    image_size: int | None = None  # None: 64 for siamese, 128 otherwise
    weights: str | None = None  # None (random init), "imagenet", or a file path
    freeze_backbone: bool = False
    head_hidden: int = 512  # 0: linear head; >0: MLP with one hidden layer of this width
    loss: str = "multi-similarity"
    miner: str | None = None  # None: DEFAULT_MINER[loss]
    # None: 30 without labels, 60 for a frozen backbone (cheap head epochs), else 12; 0: no training, the
    # pretrained backbone's pooled features PCA-whitened to embedding_dim (models.pretrained)
    epochs: int | None = None
    batch_classes: int = 32  # P classes per batch
    batch_per_class: int = 4  # K images per class
    lr: float = 1e-3  # head (and whole Siamese net); proxies get 100x
    backbone_lr: float = 1e-4
    weight_decay: float = 1e-4
    # learning rate: linear warm-up over this many epochs (0: none), then cosine to zero at the last step
    warmup_epochs: int = 0
    # exponential moving average of the weights, updated every step (0: none): the averaged weights are the
    # ones validated and kept
    ema_decay: float = 0.0
    dropout: float = 0.3
    augment: str = AUGMENT_JITTER  # one of AUGMENTS
    augment_views: int | None = None  # augmented views per image cached with a frozen backbone (None: 8 without
    # labels, else 4)
    # validation hold-out taken from the training items when none are given; 0: none, every training image is
    # trained on and the last epoch is kept
    holdout_fraction: float = 0.15
    seed: int = 0
    train_splits: tuple[str, ...] = ("train", "val")  # every split but test
    device: str = "auto"
    num_workers: int | None = None  # None: 0 on CPU, min(8, cores) on CUDA
    tta: str = TTA_NONE  # test-time augmentation saved in the model's preprocessing: "none" or "flip"
    labels: str = LABELS_AUTO  # one of LABEL_MODES

    def __post_init__(self) -> None:
        _require(isinstance(self.name, str) and self.name.strip() != "", "name", self.name, "a non-empty string")
        _validate_network(self.network)
        _positive_int(self, "embedding_dim")
        if self.image_size is not None:
            _positive_int(self, "image_size", minimum=16)
        if self.weights is not None:
            _require(isinstance(self.weights, str) and self.weights != "", "weights", self.weights,
                     "None, 'imagenet' or a file path")
            _require(not (self.network == SIAMESE and self.weights == "imagenet"), "weights", self.weights,
                     "a checkpoint path or None for network 'siamese' (no ImageNet weights exist for it)")
        _require(isinstance(self.freeze_backbone, bool), "freeze_backbone", self.freeze_backbone, "true or false")
        _require(not (self.freeze_backbone and self.network == SIAMESE), "freeze_backbone", True,
                 "false for network 'siamese' (it has no separate backbone)")
        _positive_int(self, "head_hidden", minimum=0)
        _require(self.loss in LOSSES, "loss", self.loss, f"one of {', '.join(LOSSES)}")
        if self.miner is not None:
            _require(self.miner in MINERS, "miner", self.miner, f"one of {', '.join(MINERS)}")
        if self.epochs is not None:
            _positive_int(self, "epochs", minimum=0)
            _require(self.epochs > 0 or self.pretrained_backbone, "epochs", 0,
                     "an integer >= 1 here: 0 registers a pretrained backbone without training, which needs a "
                     "torchvision network and weights ('imagenet' or a file)")
        _positive_int(self, "batch_classes", minimum=2)
        _positive_int(self, "batch_per_class", minimum=2)
        for name in ("lr", "backbone_lr"):
            _positive_float(self, name)
        _positive_float(self, "weight_decay", allow_zero=True)
        _positive_int(self, "warmup_epochs", minimum=0)
        if self.epochs is not None and self.epochs > 0:
            _require(self.warmup_epochs < self.epochs, "warmup_epochs", self.warmup_epochs,
                     f"an integer below epochs ({self.epochs}): the cosine decay needs at least one epoch")
        _require(_is_number(self.ema_decay) and 0 <= self.ema_decay < 1, "ema_decay", self.ema_decay,
                 "a number in [0, 1) (0: no averaging)")
        _require(self.augment in AUGMENTS, "augment", self.augment, f"one of {', '.join(AUGMENTS)}")
        _require(_is_number(self.dropout) and 0 <= self.dropout < 1, "dropout", self.dropout, "a number in [0, 1)")
        if self.augment_views is not None:
            _positive_int(self, "augment_views", minimum=0)
        _require(_is_number(self.holdout_fraction) and 0 <= self.holdout_fraction < 1, "holdout_fraction",
                 self.holdout_fraction, "a number in [0, 1)")
        _require(isinstance(self.seed, int) and not isinstance(self.seed, bool), "seed", self.seed, "an integer")
        splits = (self.train_splits,) if isinstance(self.train_splits, str) else self.train_splits
        _require(isinstance(splits, (tuple, list)) and len(splits) > 0 and all(isinstance(s, str) for s in splits),
                 "train_splits", self.train_splits, "a non-empty list of split names")
        object.__setattr__(self, "train_splits", tuple(splits))
        _require(self.device in DEVICES or str(self.device).startswith("cuda:"), "device", self.device,
                 f"one of {', '.join(DEVICES)} or 'cuda:N'")
        if self.num_workers is not None:
            _positive_int(self, "num_workers", minimum=0)
        _require(self.tta in TTA_MODES, "tta", self.tta, f"one of {', '.join(TTA_MODES)}")
        _require(self.labels in LABEL_MODES, "labels", self.labels, f"one of {', '.join(LABEL_MODES)}")
        _require(self.labels != LABELS_NONE or self.pretrained_backbone, "labels", LABELS_NONE,
                 "'catalog' here: training without labels learns a head on a pretrained backbone's features, "
                 "which needs a torchvision network and weights ('imagenet' or a file)")

    @property
    def pretrained_backbone(self) -> bool:
        """A torchvision network with weights: what ``epochs`` 0 and ``labels`` "none" need."""
        return self.network != SIAMESE and self.weights is not None

    @property
    def untrained(self) -> bool:
        """``epochs`` 0: the pretrained backbone with a fitted PCA-whitening head, nothing trained."""
        return self.epochs == 0

    def resolved(self) -> TrainConfig:
        """A copy with every ``None`` default filled in (image_size, miner, epochs, augment_views); ``epochs`` 0 and ``labels``
        "none" freeze the backbone (nothing, or only a head on its cached features, is trained)."""
        frozen = self.freeze_backbone or self.epochs == 0 or self.labels == LABELS_NONE
        return dataclasses.replace(
            self,
            image_size=self.image_size or (64 if self.network == SIAMESE else 128),
            miner=self.miner or DEFAULT_MINER[self.loss],
            epochs=self.epochs if self.epochs is not None else (
                LABEL_FREE_EPOCHS if self.labels == LABELS_NONE else 60 if frozen else 12),
            freeze_backbone=frozen,
            augment_views=self.augment_views if self.augment_views is not None else (
                LABEL_FREE_VIEWS if self.labels == LABELS_NONE else 4),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field."""
        data = dataclasses.asdict(self)
        data["train_splits"] = list(self.train_splits)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`ConfigError`."""
        unknown = set(data) - FIELD_NAMES
        if unknown:
            raise ConfigError(f"unknown config key(s) {sorted(unknown)}; allowed: {', '.join(sorted(FIELD_NAMES))}")
        return cls(**data)


FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(TrainConfig))


@dataclass(frozen=True)
class SeedPaths:
    """Path keys of the seed project's YAML that are not training settings; the caller decides how to honour them."""

    labels_fpath: str | None = None
    save_network_path: str | None = None
    embeddings_output_path: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # what of the file was read but not used, one line each


# The seed's ``resnet:`` section configures its ResNet only: it applies to torchvision backbones
# and is set aside (with a note) when the network is the Siamese net.
_BACKBONE_SECTION = "resnet."
# seed YAML key → (our field or a SeedPaths field, converter)
_SEED_KEYS = {
    "general.labels_fpath": "labels_fpath",
    "train.save_network_path": "save_network_path",
    "train.embeddings_output_path": "embeddings_output_path",
    "train.epochs": "epochs",
    "train.hw": "image_size",
    "train.network": "network",
    "resnet.freeze_backbone": "freeze_backbone",
}
_FLOAT_FIELDS = frozenset({"lr", "backbone_lr", "weight_decay", "dropout", "holdout_fraction", "ema_decay"})
_SEED_PATH_FIELDS = ("labels_fpath", "save_network_path", "embeddings_output_path")


def config_from_yaml(
    path: str | os.PathLike[str] | None, overrides: dict[str, Any] | None = None
) -> tuple[TrainConfig, SeedPaths]:
    """Read ``path`` (our flat keys, ``train.<field>``, or the seed project's keys), apply non-None
    ``overrides`` (flags win), validate. Returns the config and the seed-only path keys."""
    values: dict[str, Any] = {}
    backbone_values: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    if path is not None:
        for key, value in _flatten(_read_yaml(path)).items():
            target = backbone_values if key.startswith(_BACKBONE_SECTION) else values
            _apply_key(key, value, target, paths, source=os.fspath(path))
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key not in FIELD_NAMES:
            raise ConfigError(f"unknown config override {key!r}; allowed: {', '.join(sorted(FIELD_NAMES))}")
        values[key] = value
    notes: list[str] = []
    if backbone_values and values.get("network", SIAMESE) == SIAMESE:
        notes.append(f"the resnet: section of {os.fspath(path)} was not used: it configures a ResNet backbone "
                     f"and the network is {SIAMESE!r}")
    else:
        values = {**backbone_values, **values}  # a flag still wins over the file
    for key in _FLOAT_FIELDS & values.keys():
        if isinstance(values[key], str):  # YAML reads "1e-3" as a string
            try:
                values[key] = float(values[key])
            except ValueError:
                raise ConfigError(f"{key}: {values[key]!r} is invalid; expected a number") from None
    if isinstance(values.get("train_splits"), list):
        values["train_splits"] = tuple(values["train_splits"])
    paths["notes"] = tuple(notes)
    return TrainConfig(**values), SeedPaths(**paths)


def _apply_key(key: str, value: Any, values: dict[str, Any], paths: dict[str, Any], source: str) -> None:
    short = key.split(".", 1)[1] if key.startswith(("train.", "model.")) else key
    if key in _SEED_KEYS:
        target = _SEED_KEYS[key]
        if target in _SEED_PATH_FIELDS:
            paths[target] = None if value is None else str(value)
        elif target == "image_size":
            values["image_size"] = _seed_hw(value, source)
        elif target == "network":
            values["network"] = _seed_network(value)
        else:
            values[target] = value
    elif short in FIELD_NAMES and "." not in short:
        values[short] = value
    else:
        raise ConfigError(f"unknown config key {key!r} in {source}")


def _seed_network(value: Any) -> str:
    """The seed's ``train.network``: "resnet" meant resnet50, anything else its Siamese net."""
    name = str(value).strip().lower()
    if name == "resnet":
        return "resnet50"
    if name == SIAMESE or name in classifier_names():
        return name
    return SIAMESE


def _seed_hw(value: Any, source: str) -> int:
    if isinstance(value, (list, tuple)) and len(value) == 2 and value[0] == value[1]:
        value = value[0]
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ConfigError(f"train.hw: {value!r} in {source} is invalid; expected one integer or a square [h, w]")


def _read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    import yaml

    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {os.fspath(path)!r} not found") from None
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"config file {os.fspath(path)!r} is unreadable: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {os.fspath(path)!r} must hold a mapping, not {type(data).__name__}")
    return data


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        full = f"{prefix}{key}"
        if isinstance(value, dict) and full not in _SEED_KEYS:
            flat.update(_flatten(value, f"{full}."))
        else:
            flat[full] = value
    return flat


def _require(ok: bool, name: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{name}: {value!r} is invalid; expected {allowed}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _positive_int(config: TrainConfig, name: str, minimum: int = 1) -> None:
    value = getattr(config, name)
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
    _require(ok, name, value, f"an integer >= {minimum}")


def _positive_float(config: TrainConfig, name: str, allow_zero: bool = False) -> None:
    value = getattr(config, name)
    ok = _is_number(value) and (value >= 0 if allow_zero else value > 0)
    _require(ok, name, value, "a number >= 0" if allow_zero else "a number > 0")


def _validate_network(network: Any) -> None:
    if network == SIAMESE:
        return
    if not isinstance(network, str) or network not in classifier_names():
        examples = "resnet18, resnet50, mobilenet_v2, efficientnet_b0"
        raise ConfigError(f"network: {network!r} is invalid; expected 'siamese' or a torchvision "
                          f"classifier name ({examples}, ...)")
