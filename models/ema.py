"""An exponential moving average of a model's weights, kept beside the model and swapped in to evaluate."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


class WeightAverage:
    """Shadow copy of every tensor of ``model.state_dict()``: floating ones averaged after each step with
    ``decay`` (lower for the first steps, min(decay, (1 + n) / (10 + n)), so a short run is not dominated by its
    initial weights), integer ones (BatchNorm's step counter) copied."""

    def __init__(self, model, decay: float) -> None:
        self.decay = float(decay)
        self.updates = 0
        self.shadow = {key: value.detach().clone() for key, value in model.state_dict().items()}

    def update(self, model) -> None:
        """Fold the model's current weights into the average (call after each optimiser step)."""
        import torch

        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        with torch.no_grad():
            for key, value in model.state_dict().items():
                if value.dtype.is_floating_point:
                    self.shadow[key].mul_(decay).add_(value.detach(), alpha=1 - decay)
                else:
                    self.shadow[key].copy_(value)

    @contextlib.contextmanager
    def applied(self, model) -> Iterator[None]:
        """The averaged weights in ``model`` inside the block, its own weights back after it."""
        import copy

        own = copy.deepcopy(model.state_dict())
        model.load_state_dict(self.shadow)
        try:
            yield
        finally:
            model.load_state_dict(own)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        self.decay, self.updates = float(state["decay"]), int(state["updates"])
        for key, value in state["shadow"].items():
            self.shadow[key].copy_(value)
