import math

import pytest

from models.schedule import lr_schedule


def _lrs(total: int, warmup: int) -> list[float]:
    import torch

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = lr_schedule(optimizer, total, warmup)
    seen = []
    for _ in range(total):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return seen + [optimizer.param_groups[0]["lr"]]


def test_warmup_rises_linearly_then_cosine_falls_to_zero():
    lrs = _lrs(total=20, warmup=4)
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert all(a >= b for a, b in zip(lrs[3:], lrs[4:])), "no rise after the warm-up"
    assert lrs[12] == pytest.approx(0.5 * (1 + math.cos(math.pi * 8 / 16)))
    assert lrs[-1] == pytest.approx(0.0, abs=1e-12)


def test_without_warmup_it_is_the_cosine_schedule_training_always_used():
    import torch

    lrs = _lrs(total=10, warmup=0)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    assert isinstance(lr_schedule(optimizer, 10, 0), torch.optim.lr_scheduler.CosineAnnealingLR)
    assert lrs[0] == 1.0 and lrs[5] == pytest.approx(0.5) and lrs[-1] == pytest.approx(0.0, abs=1e-12)
