"""Models without labels: a pretrained backbone PCA-whitened (epochs 0), and a head trained from the images alone."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.config import TrainConfig
from models.errors import ConfigError
from models.train import train_model


def _config(weights, **kw):
    base = dict(name="t", network="mobilenet_v2", weights=weights, image_size=32, seed=3)
    return TrainConfig(**{**base, **kw})


def _unlabelled(items):
    return [(path, None) for path, _ in items]


def test_epochs_zero_fits_a_pca_head_and_trains_nothing(tiny_items, tmp_path, mnv2_weights):
    from models.checkpoint import load_model
    from models.embedders import open_embedder

    result = train_model(_config(mnv2_weights, epochs=0, embedding_dim=8), _unlabelled(tiny_items), None,
                         tmp_path / "out", progress=False)
    assert result.epochs_run == 0 and result.metrics == {} and result.num_train_items == len(tiny_items)
    assert result.config.freeze_backbone and result.config.labels == "none" and result.config.embedding_dim == 8
    sidecar = json.loads((tmp_path / "out" / "config.json").read_text())
    assert sidecar["pca"]["dim"] == 8 and sidecar["pca"]["fit_images"] == len(tiny_items)
    model, spec, _ = load_model(result.checkpoint_path)  # the checkpoint rebuilds the PCA head
    assert type(model.head).__name__ == "PcaWhitening" and model.head.dim == 8

    # the ONNX export (the query path) agrees with torch on real images
    import torch

    from models.preprocess import load_and_preprocess

    embedder = open_embedder({"onnx": str(result.onnx_path), "preprocess": spec.to_dict()}, lambda p: p)
    images = [embedder.load(path) for path, _ in tiny_items[:4]]
    batch = torch.from_numpy(np.stack([load_and_preprocess(path, spec) for path, _ in tiny_items[:4]]))
    with torch.no_grad():
        expected = model(batch).numpy()
    got = embedder.embed_images(images)
    assert got.shape == (4, 8)
    np.testing.assert_allclose(np.sum(got * expected, axis=1), 1.0, atol=1e-4)


def test_epochs_zero_is_deterministic_and_caps_dim_for_a_small_sample(tiny_items, tmp_path, mnv2_weights):
    import torch

    from models.checkpoint import read_checkpoint

    config = _config(mnv2_weights, epochs=0, embedding_dim=128)
    states = [read_checkpoint(train_model(config, tiny_items, None, tmp_path / str(i),
                                          progress=False).checkpoint_path) for i in range(2)]
    assert states[0]["embedding_dim"] == len(tiny_items) - 1  # 24 images give 23 axes
    assert all(torch.equal(states[0]["state_dict"][k], states[1]["state_dict"][k]) for k in states[0]["state_dict"])


def test_fit_sample_is_seeded_and_bounded():
    from models.pretrained import fit_sample

    paths = [f"img{i}.png" for i in range(100)]
    assert fit_sample(paths, 0, limit=200) == paths
    first, again, other = fit_sample(paths, 0, limit=10), fit_sample(paths, 0, limit=10), fit_sample(paths, 1, limit=10)
    assert first == again and first != other and len(first) == 10 and first == sorted(first, key=paths.index)


@pytest.mark.parametrize("method", ["views", "clusters", "both"])
def test_label_free_training_writes_a_model_from_images_alone(tiny_items, tmp_path, mnv2_weights, method):
    from models.label_free import LabelFreeSpec, train_label_free

    config = _config(mnv2_weights, labels="none", epochs=2, augment_views=1, embedding_dim=16)
    result = train_label_free(config, [path for path, _ in tiny_items], tmp_path / "out", progress=False,
                              spec=LabelFreeSpec(method=method, images_per_cluster=4, refresh_every=1))
    assert result.checkpoint_path.is_file() and result.onnx_path.is_file()
    assert result.epochs_run == 2 and result.metrics == {} and result.num_train_items == len(tiny_items)
    assert result.config.freeze_backbone and result.config.labels == "none"
    assert all(np.isfinite(entry["loss"]) for entry in result.history)
    from models.checkpoint import load_model

    model, _, _ = load_model(result.checkpoint_path)  # the checkpoint rebuilds the PCA + residual head
    assert type(model.head).__name__ == "ResidualWhitening" and model.head.dim == 16


def test_label_free_training_ignores_labels_and_is_deterministic(tiny_items, tmp_path, mnv2_weights):
    import torch

    from models.checkpoint import read_checkpoint

    config = _config(mnv2_weights, labels="none", epochs=1, augment_views=1)
    labelled = train_model(config, tiny_items, None, tmp_path / "a", progress=False)
    unlabelled = train_model(config, _unlabelled(tiny_items), None, tmp_path / "b", progress=False)
    first, second = (read_checkpoint(r.checkpoint_path)["state_dict"] for r in (labelled, unlabelled))
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_label_free_training_resumes_a_killed_run(tiny_items, tmp_path, mnv2_weights, monkeypatch):
    import models.train_loops as loops
    from models.train import RESUME_FILE

    config = _config(mnv2_weights, labels="none", epochs=3, augment_views=1)
    paths = _unlabelled(tiny_items)
    whole = train_model(config, paths, None, tmp_path / "whole", progress=False)
    monkeypatch.setattr(loops, "SAVE_EVERY_S", 0.0)  # save after every epoch
    original = loops._save_state

    def save_then_die(setup, epoch, *args):
        original(setup, epoch, *args)
        if epoch == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(loops, "_save_state", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train_model(config, paths, None, tmp_path / "cut", progress=False)
    assert (tmp_path / "cut" / RESUME_FILE).is_file()
    monkeypatch.setattr(loops, "_save_state", original)
    resumed = train_model(config, paths, None, tmp_path / "cut", progress=False)
    assert [e["epoch"] for e in resumed.history] == [1, 2, 3]
    assert resumed.history[-1]["loss"] == pytest.approx(whole.history[-1]["loss"], rel=1e-5)


def test_without_a_pretrained_backbone_both_modes_are_refused():
    with pytest.raises(ConfigError, match="epochs: 0 is invalid.*pretrained"):
        TrainConfig(network="siamese", epochs=0)
    with pytest.raises(ConfigError, match="epochs: 0 is invalid"):
        TrainConfig(network="mobilenet_v2", epochs=0)  # no weights
    with pytest.raises(ConfigError, match="labels: 'none' is invalid"):
        TrainConfig(network="siamese", labels="none")
    with pytest.raises(ConfigError, match="labels: 'some' is invalid"):
        TrainConfig(labels="some")


def test_saved_configs_without_a_labels_mode_still_read_as_trained_with_labels():
    from models.recipes import same_training

    config = TrainConfig(network="mobilenet_v2", weights="imagenet", freeze_backbone=True, labels="catalog")
    saved = config.to_dict()
    del saved["labels"]
    assert same_training(saved, config)
