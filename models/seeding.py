"""One place that seeds every random number generator training touches."""

from __future__ import annotations

import random

import numpy as np


def seed_everything(seed: int):
    """Seed Python, numpy (pytorch-metric-learning's samplers use it) and torch; returns a torch.Generator."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    return torch.Generator().manual_seed(seed)
