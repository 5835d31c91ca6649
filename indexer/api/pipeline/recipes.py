"""Train a named recipe: its stages in order, each registered as a model, a finished stage kept on a rerun."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from indexer.api.pipeline.training import TrainOutcome, train
from indexer.api.workspace import Workspace, check_artifact_name
from indexer.core.errors import InputError
from models.errors import ConfigError
from models.recipes import RECIPE_OVERRIDES, RECIPES, Recipe, recipe_configs, same_training

KEPT_STAGE = "kept from an earlier run"  # TrainOutcome.val_source of a stage not trained again

__all__ = ["KEPT_STAGE", "RECIPES", "RECIPE_OVERRIDES", "Recipe", "train_recipe"]


def train_recipe(workspace: Workspace, recipe: str | Recipe, name: str | None = None, *, progress: bool = True,
                 **overrides: Any) -> list[TrainOutcome]:
    """Train every stage of ``recipe`` (a name in ``RECIPES``, such as ``"best"``, or a :class:`Recipe`).

    The last stage is model ``name`` (default: the recipe's name); earlier stages are ``NAME-stage1``, ... and
    each starts from the previous one's checkpoint. ``overrides`` are ``RECIPE_OVERRIDES`` (``epochs`` sets the
    last stage's). A stage already registered with exactly its config is kept, not trained again, so a rerun
    after an interruption goes on where it stopped (a stage cut short resumes from its own saved state).
    Returns one :class:`TrainOutcome` per stage trained or kept, first to last.
    """
    try:
        configs = recipe_configs(recipe, name or (recipe if isinstance(recipe, str) else recipe.name),
                                 lambda stage: str(workspace.models_dir / stage / "model.pt"), **overrides)
    except ConfigError as exc:
        raise InputError(str(exc)) from None
    for config in configs:
        check_artifact_name("model", config.name)
    outcomes: list[TrainOutcome] = []
    retrained = False  # once a stage trains, every later one starts from new weights and trains too
    for config in configs:
        kept = None if retrained else _kept_stage(workspace, config)
        if kept is not None:
            outcomes.append(kept)
            continue
        outcomes.append(train(workspace, config, progress=progress))
        retrained = True
    return outcomes


def _kept_stage(workspace: Workspace, config) -> TrainOutcome | None:
    """The outcome of an already registered model trained exactly as ``config``, if its checkpoint is there."""
    with workspace.catalog() as catalog:
        models = {model.name: model for model in catalog.models()}
    model = models.get(config.name)
    if model is None or not same_training(model.params.get("config"), config):
        return None
    checkpoint = workspace.resolve(model.path)
    if not Path(checkpoint).is_file():
        return None
    return TrainOutcome(name=config.name, checkpoint=checkpoint, metrics=dict(model.metrics or {}), epochs_run=0,
                        seconds=0.0, train_images=0, val_images=0, val_source=KEPT_STAGE)
