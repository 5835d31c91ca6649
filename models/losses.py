"""Loss and miner from a config, all from pytorch-metric-learning."""

from __future__ import annotations

from models.config import TrainConfig
from models.errors import ConfigError


def build_loss(config: TrainConfig, num_classes: int):
    """The config's loss module (ProxyAnchorLoss has trainable proxies: give them their own param group)."""
    from pytorch_metric_learning import losses

    config = config.resolved()
    if config.loss == "multi-similarity":
        return losses.MultiSimilarityLoss(alpha=2.0, beta=50.0, base=0.5)
    if config.loss == "triplet":
        return losses.TripletMarginLoss(margin=0.2)
    if config.loss == "proxy-anchor":
        return losses.ProxyAnchorLoss(num_classes=num_classes, embedding_size=config.embedding_dim,
                                      margin=0.1, alpha=32)
    if config.loss == "supcon":  # supervised contrastive: every same-class pair of the batch a positive
        return losses.SupConLoss(temperature=0.1)
    raise ConfigError(f"loss: {config.loss!r} is invalid")


def build_miner(config: TrainConfig):
    """The config's miner, or None ("none")."""
    from pytorch_metric_learning import miners

    name = config.resolved().miner
    if name == "none":
        return None
    if name == "batch-hard":
        return miners.BatchHardMiner()
    if name in ("semi-hard", "hard", "all"):
        kind = {"semi-hard": "semihard", "hard": "hard", "all": "all"}[name]
        return miners.TripletMarginMiner(margin=0.2, type_of_triplets=kind)
    if name == "multi-similarity":
        return miners.MultiSimilarityMiner(epsilon=0.1)
    raise ConfigError(f"miner: {name!r} is invalid")
