import json

import pytest

from models.config import TrainConfig
from models.train import train_model
from tests.requirements import require_cuda


def _config(**kw):
    base = dict(name="t", network="siamese", image_size=32, epochs=2, batch_classes=4, batch_per_class=2, seed=3)
    return TrainConfig(**{**base, **kw})


@pytest.mark.parametrize(("loss", "miner"), [("triplet", "batch-hard"), ("triplet", "semi-hard"),
                                             ("multi-similarity", None)])
def test_train_siamese_writes_artifacts(tiny_items, tmp_path, loss, miner):
    result = train_model(_config(loss=loss, miner=miner), tiny_items, None, tmp_path / "out", progress=False)
    assert result.checkpoint_path.is_file() and result.onnx_path.is_file()
    assert result.epochs_run == 2 and set(result.metrics) >= {"precision_at_1", "map_at_r"}
    sidecar = json.loads((tmp_path / "out" / "config.json").read_text())
    assert sidecar["config"]["loss"] == loss and sidecar["preprocess"]["image_size"] == 32


@pytest.mark.parametrize("loss", ["multi-similarity", "proxy-anchor"])
def test_frozen_backbone_trains_head_only(tiny_items, tmp_path, loss):
    import torch

    from models.checkpoint import read_checkpoint
    from models.networks import build_network

    config = _config(network="mobilenet_v2", freeze_backbone=True, augment_views=1, loss=loss, epochs=3)
    result = train_model(config, tiny_items[:12], tiny_items[12:], tmp_path / "out", progress=False)
    state = read_checkpoint(result.checkpoint_path)["state_dict"]
    torch.manual_seed(3)  # the seed train_model used, so the untouched backbone must match a fresh build
    fresh = build_network(config).state_dict()
    assert torch.equal(state["backbone.features.0.0.weight"], fresh["backbone.features.0.0.weight"])


def test_same_seed_same_weights(tiny_items, tmp_path):
    import torch

    from models.checkpoint import read_checkpoint

    states = [read_checkpoint(train_model(_config(epochs=1), tiny_items, None, tmp_path / str(i),
                                          progress=False).checkpoint_path)["state_dict"] for i in range(2)]
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_tiny_catalog_does_not_crash(tmp_path):
    from tests.models.conftest import make_images

    items = make_images(tmp_path / "img", classes=2, per_class=2)
    result = train_model(_config(epochs=1, batch_classes=8, batch_per_class=4), items, None, tmp_path / "out",
                         progress=False)
    assert result.checkpoint_path.is_file()


@pytest.mark.gpu
def test_amp_training_on_cuda(tiny_items, tmp_path):
    require_cuda()
    result = train_model(_config(network="mobilenet_v2", device="cuda", epochs=2, num_workers=2),
                         tiny_items, None, tmp_path / "out", progress=False)
    assert result.checkpoint_path.is_file()


def test_our_checkpoint_initialises_backbone_and_head_for_fine_tuning(tmp_path):
    import torch

    from models.checkpoint import save_checkpoint
    from models.config import TrainConfig
    from models.networks import build_network
    from models.preprocess import PreprocessSpec

    config = TrainConfig(network="mobilenet_v2", image_size=32, freeze_backbone=True)
    trained = build_network(config)
    path = save_checkpoint(tmp_path / "model.pt", trained, config, PreprocessSpec(32), {}, {})
    again = build_network(TrainConfig(network="mobilenet_v2", image_size=32, weights=str(path)))
    for key, value in trained.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key
    other = build_network(TrainConfig(network="mobilenet_v2", image_size=32, weights=str(path), embedding_dim=64))
    assert other.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 64), "a head of another size starts fresh"
    assert torch.equal(other.backbone.features[0][0].weight, trained.backbone.features[0][0].weight)


def _dies_after_epoch_2(real_save):
    """A ``_save_state`` that saves, then stops the run (as a kill would) once epoch 2 is saved."""

    def save_then_die(setup, epoch, *args):
        real_save(setup, epoch, *args)
        if epoch == 2:
            raise KeyboardInterrupt

    return save_then_die


def test_killed_training_resumes_where_it_stopped(tiny_items, tmp_path, monkeypatch):
    """A run killed after epoch 2 of 3 trains only epoch 3 when started again, from the saved state."""
    import models.train_loops as loops
    from models.config import TrainConfig
    from models.train import RESUME_FILE, train_model

    config = TrainConfig(network="siamese", image_size=32, epochs=3, batch_classes=3, batch_per_class=2, seed=3)
    real_save, real_metrics = loops._save_state, loops.retrieval_metrics
    monkeypatch.setattr(loops, "SAVE_EVERY_S", 0.0)  # save after every epoch
    save_then_die = _dies_after_epoch_2(real_save)

    monkeypatch.setattr(loops, "_save_state", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train_model(config, tiny_items, None, tmp_path / "run", progress=False)
    assert (tmp_path / "run" / RESUME_FILE).is_file()

    evaluated = []
    monkeypatch.setattr(loops, "_save_state", real_save)
    monkeypatch.setattr(loops, "retrieval_metrics", lambda *a: evaluated.append(1) or real_metrics(*a))
    result = train_model(config, tiny_items, None, tmp_path / "run", progress=False)
    assert len(evaluated) == 1, "only the third epoch is trained again"
    assert [h["epoch"] for h in result.history] == [1, 2, 3]
    assert not (tmp_path / "run" / RESUME_FILE).exists(), "a finished run leaves nothing to resume"

    changed = TrainConfig(network="siamese", image_size=32, epochs=3, batch_classes=3, batch_per_class=2, seed=4)
    monkeypatch.setattr(loops, "_save_state", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train_model(config, tiny_items, None, tmp_path / "other", progress=False)
    monkeypatch.setattr(loops, "_save_state", real_save)
    evaluated.clear()
    train_model(changed, tiny_items, None, tmp_path / "other", progress=False)
    assert len(evaluated) == 3, "a state saved under another config is not resumed"


def _shape_images(root, per_class: int, seed: int, size: int = 32) -> list[tuple[str, int]]:
    """Four classes that differ by shape only (ellipse, square, triangle, cross), each in a random bright colour."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    items = []
    for label, shape in enumerate(("ellipse", "rectangle", "triangle", "cross")):
        for i in range(per_class):
            img = Image.new("RGB", (size, size), (20, 20, 20))
            draw = ImageDraw.Draw(img)
            colour = tuple(int(v) for v in rng.integers(90, 256, 3))
            x, y = (int(v) for v in rng.integers(1, size // 4, 2))
            extent = int(rng.integers(size // 2, size - 6))
            box = [x, y, x + extent, y + extent]
            if shape == "triangle":
                draw.polygon([(x + extent // 2, y), (x, y + extent), (x + extent, y + extent)], fill=colour)
            elif shape == "cross":
                bar = max(2, extent // 4)
                draw.rectangle([x + extent // 2 - bar // 2, y, x + extent // 2 + bar // 2, y + extent], fill=colour)
                draw.rectangle([x, y + extent // 2 - bar // 2, x + extent, y + extent // 2 + bar // 2], fill=colour)
            else:
                getattr(draw, shape)(box, fill=colour)
            path = root / f"{shape}_{i}.png"
            img.save(path)
            items.append((str(path), label))
    return items


def test_training_learns_shapes_that_an_untrained_network_cannot_tell_apart(tmp_path):
    """After 20 short epochs, unseen images of the same shape are each other's neighbours (chance P@1 ~0.25)."""
    import numpy as np
    import torch

    from models.checkpoint import load_model
    from models.evaluation import retrieval_metrics
    from models.networks import build_network
    from models.preprocess import load_and_preprocess

    train_items = _shape_images(tmp_path / "train", per_class=24, seed=0)
    test_items = _shape_images(tmp_path / "test", per_class=12, seed=1)
    config = _config(epochs=20, batch_classes=4, batch_per_class=8, seed=0, lr=3e-3)
    result = train_model(config, train_items, None, tmp_path / "out", progress=False)

    def scores(model, spec) -> dict:
        images = torch.from_numpy(np.stack([load_and_preprocess(path, spec) for path, _ in test_items]))
        with torch.no_grad():
            return retrieval_metrics(model.eval()(images).numpy(), np.array([label for _, label in test_items]))

    trained = scores(*load_model(result.checkpoint_path)[:2])
    torch.manual_seed(0)
    untrained = scores(build_network(config), result.preprocess)
    assert trained["precision_at_1"] >= 0.8 and trained["map_at_r"] >= 0.6, trained
    assert trained["map_at_r"] >= untrained["map_at_r"] + 0.3, (trained, untrained)


def test_no_holdout_trains_on_every_item_and_keeps_the_last_epoch(tiny_items, tmp_path):
    import math

    result = train_model(_config(epochs=2, holdout_fraction=0), tiny_items, None, tmp_path / "out", progress=False)
    assert result.num_train_items == len(tiny_items) and result.num_val_items == 0
    assert [entry["epoch"] for entry in result.history] == [1, 2]
    assert all(math.isnan(entry["precision_at_1"]) for entry in result.history)
    assert json.loads((tmp_path / "out" / "config.json").read_text())["best_epoch"] == 2
    frozen = _config(network="mobilenet_v2", freeze_backbone=True, augment_views=1, epochs=2, holdout_fraction=0)
    assert train_model(frozen, tiny_items, None, tmp_path / "frozen", progress=False).num_val_items == 0


def test_warmup_average_trivial_augment_and_supcon_train_and_are_saved(tiny_items, tmp_path):
    import json

    config = _config(epochs=3, warmup_epochs=1, ema_decay=0.9, augment="crop-flip-trivial", loss="supcon")
    result = train_model(config, tiny_items, None, tmp_path / "out", progress=False)
    assert result.epochs_run == 3 and result.checkpoint_path.is_file()
    saved = json.loads((tmp_path / "out" / "config.json").read_text())["config"]
    assert (saved["warmup_epochs"], saved["ema_decay"], saved["augment"], saved["miner"]) == (
        1, 0.9, "crop-flip-trivial", "none")


def test_the_weight_average_is_what_is_kept(tiny_items, tmp_path, monkeypatch):
    """With ``ema_decay`` the checkpoint holds the averaged weights, not the last step's."""
    import torch

    import models.train_loops as loops
    from models.checkpoint import read_checkpoint

    averages = []
    real = loops.WeightAverage

    class Recording(real):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            averages.append(self)

    monkeypatch.setattr(loops, "WeightAverage", Recording)
    config = _config(epochs=2, ema_decay=0.5, holdout_fraction=0)
    result = train_model(config, tiny_items, None, tmp_path / "out", progress=False)
    state = read_checkpoint(result.checkpoint_path)["state_dict"]
    (average,) = averages
    assert all(torch.equal(state[key], average.shadow[key].cpu()) for key in state)


def test_a_killed_run_resumes_its_weight_average(tiny_items, tmp_path, monkeypatch):
    """The average is part of the saved state: a resumed run goes on averaging from it, not from scratch.
    (Compared by update count: a resumed run's weights are not bit-identical to an uninterrupted one's, with or
    without the average.)"""
    import models.train_loops as loops

    averages = []
    real_average, real_save = loops.WeightAverage, loops._save_state

    class Recording(real_average):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            averages.append(self)

    monkeypatch.setattr(loops, "WeightAverage", Recording)
    config = _config(epochs=3, ema_decay=0.8, warmup_epochs=1, holdout_fraction=0)
    train_model(config, tiny_items, None, tmp_path / "whole", progress=False)
    monkeypatch.setattr(loops, "SAVE_EVERY_S", 0.0)
    save_then_die = _dies_after_epoch_2(real_save)

    monkeypatch.setattr(loops, "_save_state", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train_model(config, tiny_items, None, tmp_path / "run", progress=False)
    monkeypatch.setattr(loops, "_save_state", real_save)
    train_model(config, tiny_items, None, tmp_path / "run", progress=False)
    whole, killed, resumed = averages
    assert whole.updates > killed.updates > 0
    assert resumed.updates == whole.updates
