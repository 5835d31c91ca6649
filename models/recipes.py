"""Named training recipes: several :class:`TrainConfig` stages run in order, each starting from the last.

A stage is a dict of TrainConfig fields; ``weights: PREVIOUS_STAGE`` means the previous stage's checkpoint.
Every stage but the last is registered as ``NAME-stageN``; the last is ``NAME``. The ``best`` recipe is the
two-stage MobileNetV2 measured in docs/BENCHMARKS.md ("A stronger CPU recipe"): a head trained on the frozen
ImageNet backbone, then the whole network fine-tuned from it, with the test-time flip stored in the model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from models.config import FIELD_NAMES, LABELS_AUTO, LABELS_CATALOG, TrainConfig
from models.errors import ConfigError

PREVIOUS_STAGE = "previous-stage"
# What a caller may set over a recipe: the model's name aside, these apply to every stage, except
# ``epochs``, which sets the last stage's (the earlier stages' epochs are part of the recipe).
RECIPE_OVERRIDES = ("seed", "device", "tta", "epochs", "image_size", "num_workers")


@dataclass(frozen=True)
class Recipe:
    """``stages``: TrainConfig field values per stage, first to last."""

    name: str
    description: str
    stages: tuple[dict[str, Any], ...]

    def __post_init__(self) -> None:
        if not self.stages:
            raise ConfigError(f"recipe {self.name!r} has no stages")
        for number, stage in enumerate(self.stages, 1):
            unknown = set(stage) - FIELD_NAMES
            if unknown or "name" in stage:
                raise ConfigError(f"recipe {self.name!r} stage {number}: keys {sorted(unknown | {'name'} & set(stage))} "
                                  f"are not allowed")
            if number == 1 and stage.get("weights") == PREVIOUS_STAGE:
                raise ConfigError(f"recipe {self.name!r}: its first stage has no previous stage to start from")


_V4_HEAD = {"network": "mobilenet_v2", "weights": "imagenet", "freeze_backbone": True, "image_size": 128,
            "tta": "flip", "holdout_fraction": 0, "labels": LABELS_CATALOG}
_V4_FINE_TUNE = {"network": "mobilenet_v2", "weights": PREVIOUS_STAGE, "image_size": 128, "epochs": 26,
                 "batch_classes": 16, "lr": 3e-4, "tta": "flip", "holdout_fraction": 0, "labels": LABELS_CATALOG}
_BEST_HEAD = {**_V4_HEAD, "image_size": 160}
_BEST_FINE_TUNE = {**_V4_FINE_TUNE, "image_size": 160, "epochs": 40, "warmup_epochs": 2, "ema_decay": 0.998}

RECIPES = {
    # Issue 31 (docs/BENCHMARKS.md, "Issue 31"): 160 px and the warm-up + weight average were chosen on hold-out
    # runs (train against val); measured on test with two seeds.
    "best": Recipe(
        name="best",
        description="MobileNetV2 from ImageNet, 160 px: 60 head epochs on the frozen backbone, then 40 epochs "
                    "of the whole network (16 classes x 4 per batch, head lr 3e-4, backbone 1e-4; a 2-epoch "
                    "warm-up, cosine to zero, an average of the weights kept), each on every train + val image "
                    "with its last epoch kept; test-time flip",
        stages=(_BEST_HEAD, _BEST_FINE_TUNE),
    ),
    "best-v4": Recipe(
        name="best-v4",
        description="best until 2026-12-07: 128 px, 60 head epochs, then 26 epochs of the whole network "
                    "without warm-up or weight average; test-time flip",
        stages=(_V4_HEAD, _V4_FINE_TUNE),
    ),
    # For a GPU (issue 29): what a GPU's time buys over best, larger inputs (192 px) and a longer schedule.
    # Prepared for benchmarks/gpu_check.py; not yet measured on a device.
    "best-gpu": Recipe(
        name="best-gpu",
        description="UNMEASURED, for a GPU (hours on 2 CPU cores): best at 192 px with 60 epochs of the "
                    "whole network",
        stages=({**_BEST_HEAD, "image_size": 192}, {**_BEST_FINE_TUNE, "image_size": 192, "epochs": 60}),
    ),
}


def get_recipe(recipe: str | Recipe) -> Recipe:
    """``recipe`` itself, or the named one from :data:`RECIPES` (ConfigError naming the choices)."""
    if isinstance(recipe, Recipe):
        return recipe
    if recipe not in RECIPES:
        raise ConfigError(f"recipe: {recipe!r} is invalid; expected one of {', '.join(sorted(RECIPES))}")
    return RECIPES[recipe]


def stage_name(name: str, number: int, count: int) -> str:
    """The model name of stage ``number`` (1-based) of ``count``: ``name`` for the last, ``name-stageN`` before."""
    return name if number == count else f"{name}-stage{number}"


def recipe_configs(recipe: str | Recipe, name: str, checkpoint_of: Callable[[str], str],
                   **overrides: Any) -> list[TrainConfig]:
    """The validated TrainConfig of every stage of ``recipe`` for a model called ``name``.

    ``checkpoint_of(model_name)`` gives the checkpoint file a stage writes (for the next stage's weights);
    ``overrides`` (None: unset) are :data:`RECIPE_OVERRIDES`.
    """
    recipe = get_recipe(recipe)
    unknown = {key for key, value in overrides.items() if value is not None} - set(RECIPE_OVERRIDES)
    if unknown:
        raise ConfigError(f"a recipe takes {', '.join(RECIPE_OVERRIDES)} as overrides, not {', '.join(sorted(unknown))}")
    configs: list[TrainConfig] = []
    count = len(recipe.stages)
    for number, stage in enumerate(recipe.stages, 1):
        values = dict(stage)
        if values.get("weights") == PREVIOUS_STAGE:
            values["weights"] = checkpoint_of(configs[-1].name)
        for key, value in overrides.items():
            if value is not None and (key != "epochs" or number == count):
                values[key] = value
        configs.append(TrainConfig(name=stage_name(name, number, count), **values))
    return configs


def same_training(saved: dict[str, Any] | None, config: TrainConfig) -> bool:
    """Whether a model registered with ``saved`` (its params' ``config``) was trained exactly as ``config``."""
    if not saved:
        return False
    saved = {"labels": LABELS_CATALOG, **saved}  # models trained before the labels mode existed used labels
    if config.labels == LABELS_AUTO:  # "auto" was saved as what it chose for the catalog
        saved["labels"] = LABELS_AUTO
    try:
        return TrainConfig.from_dict(saved).resolved() == config.resolved()
    except (ConfigError, TypeError):
        return False
