"""`indexer train --recipe`: stages in order, each from the previous one's checkpoint, a finished stage kept."""

from __future__ import annotations

import pytest

from tests.indexer.api.conftest import run

TINY = {"network": "mobilenet_v2", "image_size": 32, "batch_classes": 3, "batch_per_class": 2}


def test_the_best_recipe_is_two_stages_and_overrides_reach_the_right_stages(tmp_path):
    from models.errors import ConfigError
    from models.recipes import RECIPES, recipe_configs

    configs = recipe_configs("best", "mine", lambda stage: str(tmp_path / stage / "model.pt"), seed=3, epochs=7)
    first, last = configs
    assert (first.name, last.name) == ("mine-stage1", "mine")
    assert first.freeze_backbone and first.weights == "imagenet" and first.epochs is None  # the recipe's 60 kept
    assert not last.freeze_backbone and last.weights == str(tmp_path / "mine-stage1" / "model.pt")
    assert last.epochs == 7 and first.seed == last.seed == 3 and first.tta == last.tta == "flip"
    assert RECIPES["best"].stages[1]["epochs"] == 40
    with pytest.raises(ConfigError, match="not lr"):
        recipe_configs("best", "mine", str, lr=0.1)
    with pytest.raises(ConfigError, match=r"recipe: 'fast' is invalid; expected one of best, best-gpu, best-v4"):
        recipe_configs("fast", "mine", str)


def test_best_sets_the_warm_up_average_and_size_on_its_last_stage_and_v4_keeps_the_old_recipe(tmp_path):
    from models.recipes import recipe_configs

    first, last = recipe_configs("best", "b", lambda stage: str(tmp_path / stage / "model.pt"))
    assert (first.warmup_epochs, first.ema_decay, first.image_size, first.epochs) == (0, 0.0, 160, None)
    assert (last.epochs, last.warmup_epochs, last.ema_decay, last.tta, last.image_size) == (40, 2, 0.998, "flip", 160)
    with pytest.raises(Exception, match="warmup_epochs: 2 is invalid"):  # --epochs must leave room for the decay
        recipe_configs("best", "b", str, epochs=2)
    old_first, old_last = recipe_configs("best-v4", "v4", str)
    assert (old_first.image_size, old_last.image_size, old_last.epochs) == (128, 128, 26)
    assert (old_last.warmup_epochs, old_last.ema_decay) == (0, 0.0)
    gpu_last = recipe_configs("best-gpu", "g", str)[1]
    assert (gpu_last.image_size, gpu_last.epochs, gpu_last.ema_decay) == (192, 60, 0.998)


def test_a_recipe_trains_its_stages_registers_them_and_keeps_finished_ones(ws):
    from indexer.api import KEPT_STAGE, Recipe, Workspace, train_recipe
    from models.recipes import PREVIOUS_STAGE

    recipe = Recipe("tiny", "two tiny stages", (
        {**TINY, "freeze_backbone": True, "epochs": 2, "augment_views": 1},
        {**TINY, "weights": PREVIOUS_STAGE, "epochs": 1, "lr": 3e-4, "ema_decay": 0.9,
         "augment": "crop-flip-trivial"},
    ))
    workspace = Workspace.at(ws)
    first, last = train_recipe(workspace, recipe, "two", progress=False)
    assert (first.name, last.name) == ("two-stage1", "two") and first.epochs_run == 2 and last.epochs_run == 1
    with workspace.catalog() as catalog:
        models = {model.name: model for model in catalog.models()}
    assert models["two"].params["config"]["weights"] == str(first.checkpoint)
    assert models["two-stage1"].params["config"]["freeze_backbone"] is True

    again = train_recipe(workspace, recipe, "two", progress=False)  # both finished: nothing trains
    assert [outcome.val_source for outcome in again] == [KEPT_STAGE, KEPT_STAGE]
    assert again[1].metrics["loss"] == pytest.approx(last.metrics["loss"])  # the registered figures

    changed = train_recipe(workspace, recipe, "two", progress=False, epochs=2)  # only the last stage differs
    assert changed[0].val_source == KEPT_STAGE and changed[1].epochs_run == 2


def test_the_cli_runs_a_recipe_and_refuses_flags_it_sets_itself(ws):
    result = run(ws, "train", "--recipe", "best", "--network", "siamese", "--lr", "0.1", ok=False)
    assert result.exit_code == 2 and "--recipe sets the network" in result.output and "--lr, --network" in result.output
    result = run(ws, "train", "--recipe", "best", "--weights", "x.pt", ok=False)
    assert result.exit_code == 2 and "--weights" in result.output


def test_embed_with_the_onnx_engine_matches_the_torch_engine(ws):
    import numpy as np

    from indexer.api import Workspace, embed
    from indexer.api.registry.indexes import catalog_vectors

    workspace = Workspace.at(ws)
    ids, torch_vectors = catalog_vectors(workspace, "tiny")
    (ws / "embeddings" / "tiny").rename(ws / "embeddings" / "tiny-torch")
    report = embed(workspace, "tiny", engine="onnx", progress=False)
    assert report.embedded == len(ids) and not report.failed
    onnx_ids, onnx_vectors = catalog_vectors(workspace, "tiny")
    assert onnx_ids.tolist() == ids.tolist()
    assert np.min(np.sum(onnx_vectors * torch_vectors, axis=1)) >= 0.9999
    result = run(ws, "embed", "--model", "tiny", "--engine", "onnx", "--actors", "2", ok=False)
    assert result.exit_code == 1 and "ray engine" in result.output


def test_embed_decoding_on_the_device_matches_and_other_engines_refuse_it(ws):
    import numpy as np

    from indexer.api import Workspace
    from indexer.api.registry.indexes import catalog_vectors

    workspace = Workspace.at(ws)
    ids, cpu_vectors = catalog_vectors(workspace, "tiny")
    (ws / "embeddings" / "tiny").rename(ws / "embeddings" / "tiny-cpu")
    result = run(ws, "embed", "--model", "tiny", "--decode", "device")
    assert f"{len(ids)} embedded" in result.output and "0 failed" in result.output
    device_ids, device_vectors = catalog_vectors(workspace, "tiny")
    assert device_ids.tolist() == ids.tolist()
    assert np.min(np.sum(device_vectors * cpu_vectors, axis=1)) >= 0.999
    result = run(ws, "embed", "--model", "tiny", "--engine", "onnx", "--decode", "device", ok=False)
    assert result.exit_code == 1 and "--decode device applies to --engine local" in result.output
    assert len(result.output.strip().splitlines()) == 1
