"""Embedding networks: (B, 3, S, S) float32 → (B, D) float32, L2-normalised.

Every network exposes ``backbone`` (images → (B, feature_dim) features), ``head`` (features → (B, D)
before normalisation) and ``feature_dim``, so a frozen backbone's features can be cached and only the head trained.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from models.config import LABELS_NONE, SIAMESE, TrainConfig
from models.errors import ConfigError, WeightsError


class EmbeddingNet(nn.Module):
    """``head(backbone(x))``, L2-normalised."""

    def __init__(self, backbone: nn.Module, head: nn.Module, feature_dim: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.feature_dim = feature_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) float32 → (B, D) float32 with unit L2 norm."""
        return self.embed_features(self.backbone(images))

    def embed_features(self, features: torch.Tensor) -> torch.Tensor:
        """(B, feature_dim) backbone features → (B, D) float32 with unit L2 norm."""
        return F.normalize(self.head(features).float(), dim=1)


class SiameseBackbone(nn.Module):
    """Small CNN for any square size: four conv blocks then global average pooling → (B, 256)."""

    def __init__(self, widths: tuple[int, ...] = (32, 64, 128, 256)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for width in widths:
            layers += [
                nn.Conv2d(channels, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.Conv2d(width, width, 3, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
            channels = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.out_dim = channels

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(images)).flatten(1)


def build_head(feature_dim: int, embedding_dim: int, dropout: float, hidden: int = 0) -> nn.Sequential:
    """(dropout) + Linear, or an MLP with one hidden layer when ``hidden > 0``."""
    if hidden <= 0:
        return nn.Sequential(nn.Dropout(dropout), nn.Linear(feature_dim, embedding_dim))
    return nn.Sequential(
        nn.Dropout(dropout),
        nn.Linear(feature_dim, hidden),
        nn.BatchNorm1d(hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(hidden, embedding_dim),
    )


def build_network(config: TrainConfig, *, load_weights: bool = True) -> EmbeddingNet:
    """The network ``config`` describes; with ``load_weights`` its ``weights`` are loaded (WeightsError).

    With ``epochs`` 0 the head is an unfitted :class:`models.pca.PcaWhitening` of ``embedding_dim`` dims; with
    ``labels`` "none" an unfitted :class:`models.pca.ResidualWhitening`.
    """
    config = config.resolved()
    if config.network == SIAMESE:
        backbone = SiameseBackbone()
        net = EmbeddingNet(backbone, build_head(backbone.out_dim, config.embedding_dim, config.dropout,
                                                config.head_hidden), backbone.out_dim)
        if load_weights and config.weights is not None:
            _load_into(net, config.weights, config.network)
        return net

    backbone, feature_dim, classifier_name = _torchvision_backbone(config.network)
    if config.untrained:  # a fixed PCA-whitening, fitted by models.pretrained (or restored from a checkpoint)
        from models.pca import PcaWhitening

        head: nn.Module = PcaWhitening(feature_dim, config.embedding_dim)
    elif config.labels == LABELS_NONE:  # PCA-whitening + residual, fitted and trained by models.label_free
        from models.pca import ResidualWhitening

        head = ResidualWhitening(feature_dim, config.embedding_dim, config.head_hidden or 512)
    else:
        head = build_head(feature_dim, config.embedding_dim, config.dropout, config.head_hidden)
    if load_weights and config.weights is not None:
        from models.weights import load_pretrained

        state = load_pretrained(config.network, config.weights)
        if any(k.startswith("backbone.") for k in state):  # one of our checkpoints: backbone, and head if it fits
            _load_head_if_it_fits(head, {k[len("head."):]: v for k, v in state.items() if k.startswith("head.")})
            state = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
        else:  # torchvision's: drop the classifier layer we replaced
            state = {k: v for k, v in state.items() if not k.startswith(f"{classifier_name}.")}
        _load_strict(backbone, state, config.weights, config.network)
    return EmbeddingNet(backbone, head, feature_dim)


def _load_head_if_it_fits(head: nn.Module, state: dict) -> bool:
    """Start from a trained head (two-stage training: head on a frozen backbone, then fine-tune) when the
    shapes agree; a head of another size keeps its fresh initialisation."""
    own = head.state_dict()
    if state.keys() != own.keys() or any(state[k].shape != own[k].shape for k in own):
        return False
    head.load_state_dict(state)
    return True


def _torchvision_backbone(name: str) -> tuple[nn.Module, int, str]:
    """A torchvision classifier with its last Linear layer replaced by Identity: (module, in_features, layer name)."""
    import torchvision

    kwargs = {"aux_logits": False, "init_weights": False} if name in ("inception_v3", "googlenet") else {}
    model = torchvision.models.get_model(name, weights=None, **kwargs)
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ConfigError(f"network: {name!r} is invalid; it has no final Linear classifier to replace")
    layer_name, layer = linears[-1]
    parent = model.get_submodule(layer_name.rsplit(".", 1)[0]) if "." in layer_name else model
    setattr(parent, layer_name.rsplit(".", 1)[-1], nn.Identity())
    return model, layer.in_features, layer_name


def _load_strict(module: nn.Module, state: dict, source: str, network: str) -> None:
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0:3]
        raise WeightsError(f"weights {source!r} do not fit network {network!r}: {' '.join(first)}") from None


def _load_into(net: EmbeddingNet, weights: str, network: str) -> None:
    from models.weights import load_pretrained

    _load_strict(net, load_pretrained(network, weights), weights, network)
