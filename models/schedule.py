"""The learning-rate schedule of the epoch loops: optional linear warm-up, then cosine to zero."""

from __future__ import annotations

import math


def lr_schedule(optimizer, total_steps: int, warmup_steps: int = 0):
    """A per-step scheduler for ``optimizer``: each group's lr rises linearly from lr/warmup_steps to lr over
    ``warmup_steps``, then falls along a cosine to zero at ``total_steps``. Without warm-up it is torch's
    ``CosineAnnealingLR`` (what training always used, so resumable states of older runs still load)."""
    import torch

    total_steps = max(1, total_steps)
    if warmup_steps <= 0:
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    warmup_steps = min(warmup_steps, total_steps - 1)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
