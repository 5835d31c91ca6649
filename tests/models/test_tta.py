"""Test-time flip: every embedding path (torch catalog embedding, ONNX query, Ray actor, training validation)
gives an image the L2-normalised mean of the network's vectors of the image and of its horizontal mirror."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image, ImageOps

from models.checkpoint import load_model, write_variant
from models.config import TrainConfig
from models.embed import embed_items
from models.embedding_store import EmbeddingStore
from models.errors import ConfigError
from models.onnx_embedder import OnnxEmbedder
from models.preprocess import PreprocessSpec, load_for_model
from models.ray_embed import ActorModel, EmbedActor
from tests.requirements import require_cuda


def _normalised_mean(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    mean = (a + b) / 2
    return mean / np.linalg.norm(mean, axis=1, keepdims=True)


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _torch_vectors(checkpoint, paths, tmp_path, name) -> np.ndarray:
    store = EmbeddingStore(tmp_path / name)
    report = embed_items(checkpoint, list(enumerate(paths)), store, batch_size=4, progress=False, num_workers=0)
    assert report.embedded == len(paths) and not report.failed
    return store.vectors()


@pytest.fixture
def flip(trained, tmp_path):
    """(flip checkpoint, flip spec) of the module's tiny model, and the model's images with mirrored copies."""
    result, items = trained
    checkpoint = write_variant(result.checkpoint_path, tmp_path / "flip" / "model.pt", name="tiny-flip", tta="flip")
    paths = [path for path, _ in items[:6]]
    mirrors = []
    for number, path in enumerate(paths):  # 32 px squares at image_size 32: no resize, so the mirror is exact
        mirrors.append(str(tmp_path / f"mirror_{number}.png"))
        ImageOps.mirror(Image.open(path).convert("RGB")).save(mirrors[-1])
    return checkpoint, dataclasses.replace(result.preprocess, tta="flip"), paths, mirrors


def _symmetric_image(path, size: int = 32, seed: int = 0) -> str:
    """Mirror-symmetric left to right, random top to bottom (so a vertical flip would change it)."""
    half = np.random.default_rng(seed).integers(0, 256, (size, size // 2, 3), dtype=np.uint8)
    Image.fromarray(np.concatenate([half, half[:, ::-1]], axis=1)).save(path)
    return str(path)


def test_a_flip_vector_is_the_normalised_mean_of_the_image_and_its_mirror(trained, flip, tmp_path):
    result, _ = trained
    checkpoint, spec, paths, mirrors = flip
    plain = _torch_vectors(result.checkpoint_path, paths, tmp_path, "plain")
    mirrored = _torch_vectors(result.checkpoint_path, mirrors, tmp_path, "mirrored")
    flipped = _torch_vectors(checkpoint, paths, tmp_path, "flipped")
    assert np.abs(plain - mirrored).max() > 1e-4  # pooled features: close, yet well beyond the tolerance below
    assert not np.allclose(flipped, plain, atol=1e-5)
    np.testing.assert_allclose(flipped, _normalised_mean(plain, mirrored), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(flipped, axis=1), 1.0, atol=1e-5)
    onnx = OnnxEmbedder(result.onnx_path, spec, batch_size=4)  # chunks of 4 with their mirrors: 8 per run
    query = onnx.embed_images([onnx.load(path) for path in paths])
    plain_onnx = OnnxEmbedder(result.onnx_path, result.preprocess)
    np.testing.assert_allclose(query, _normalised_mean(plain_onnx.embed_images([plain_onnx.load(p) for p in paths]),
                                                       plain_onnx.embed_images([plain_onnx.load(p) for p in mirrors])),
                               atol=1e-5)


def test_the_torch_and_onnx_paths_agree_with_flip(trained, flip, tmp_path):
    result, _ = trained
    checkpoint, spec, paths, _ = flip
    catalog = _torch_vectors(checkpoint, paths, tmp_path, "catalog")
    query = OnnxEmbedder(result.onnx_path, spec).embed_images([load_for_model(path, spec) for path in paths])
    assert _cosine(catalog, query).min() >= 0.9999
    model, loaded_spec, meta = load_model(checkpoint)
    assert loaded_spec == spec and meta["config"]["tta"] == "flip" and meta["config"]["name"] == "tiny-flip"


def test_a_symmetric_image_gets_the_same_vector_with_and_without_flip(trained, flip, tmp_path):
    result, _ = trained
    checkpoint, spec, _, _ = flip
    paths = [_symmetric_image(tmp_path / f"symmetric_{seed}.png", seed=seed) for seed in range(3)]
    plain = _torch_vectors(result.checkpoint_path, paths, tmp_path, "plain")
    flipped = _torch_vectors(checkpoint, paths, tmp_path, "flipped")
    np.testing.assert_allclose(flipped, plain, atol=1e-5)
    onnx = OnnxEmbedder(result.onnx_path, spec)
    np.testing.assert_allclose(onnx.embed_images([onnx.load(p) for p in paths]), plain, atol=1e-4)


def test_the_ray_actor_honours_the_registered_flip(trained, flip):
    result, _ = trained
    _, spec, paths, _ = flip
    params = {"onnx": "model.onnx", "preprocess": spec.to_dict()}
    actor = EmbedActor(ActorModel(params=params, files={"model.onnx": str(result.onnx_path)}))
    out = actor({"id": np.arange(len(paths)), "path": np.array(paths, dtype=object)})
    onnx = OnnxEmbedder(result.onnx_path, spec)
    np.testing.assert_allclose(out["vector"], onnx.embed_images([onnx.load(p) for p in paths]), atol=1e-6)


@pytest.mark.gpu
def test_the_gpu_actor_honours_the_flip(trained, flip):
    require_cuda()
    result, _ = trained
    checkpoint, spec, paths, _ = flip
    params = {"onnx": "model.onnx", "preprocess": spec.to_dict()}
    model = ActorModel(params=params, files={"model.onnx": str(result.onnx_path)}, checkpoint=str(checkpoint))
    batch = {"id": np.arange(len(paths)), "path": np.array(paths, dtype=object)}
    on_gpu = EmbedActor(model, use_gpu=True)(batch)["vector"]
    on_cpu = EmbedActor(model, use_gpu=False)(batch)["vector"]
    assert _cosine(on_gpu, on_cpu).min() >= 0.9999


@pytest.mark.parametrize("network", ["siamese", "mobilenet_v2"])  # end to end, and head-only on cached features
def test_training_with_flip_saves_it_and_validates_with_it(tiny_items, tmp_path, network, monkeypatch):
    """The vectors validation scores are the saved checkpoint's, flip merged in (compared as vectors: with a
    1-epoch net on a few images, near-ties make the metrics of vectors 1e-8 apart differ)."""
    import models.train_loops
    from models.evaluation import retrieval_metrics
    from models.train import train_model
    from tests.models.conftest import make_images

    scored = []

    def recording(embeddings, labels, *args, **kwargs):
        scored.append(np.array(embeddings))
        return retrieval_metrics(embeddings, labels, *args, **kwargs)

    monkeypatch.setattr(models.train_loops, "retrieval_metrics", recording)
    val_items = make_images(tmp_path / "val", per_class=3, seed=1)
    config = TrainConfig(name="t", network=network, image_size=32, epochs=1, batch_classes=4, batch_per_class=2,
                         seed=3, tta="flip", freeze_backbone=network != "siamese", augment_views=0)
    result = train_model(config, tiny_items, val_items, tmp_path / "out", progress=False)
    assert result.preprocess.tta == "flip" and load_model(result.checkpoint_path)[1].tta == "flip"
    vectors = _torch_vectors(result.checkpoint_path, [p for p, _ in val_items], tmp_path, "val")
    assert scored, "validation ran"
    np.testing.assert_allclose(scored[-1], vectors, atol=1e-5)
    assert result.metrics["map_at_r"] == pytest.approx(retrieval_metrics(scored[-1], np.array(
        [label for _, label in val_items]))["map_at_r"], abs=1e-9)


def test_old_specs_read_as_none_and_a_bad_value_is_named():
    assert PreprocessSpec.from_dict({"image_size": 32, "mean": [0.5] * 3, "std": [0.5] * 3}).tta == "none"
    assert PreprocessSpec.from_dict(PreprocessSpec(32, tta="flip").to_dict()).tta == "flip"
    with pytest.raises(ConfigError, match=r"^tta: 'rotate' is invalid; expected one of none, flip$"):
        PreprocessSpec.from_dict({"image_size": 32, "tta": "rotate"})
    with pytest.raises(ConfigError, match=r"^tta: 'mirror' is invalid"):
        TrainConfig(tta="mirror")
    assert TrainConfig.from_dict({k: v for k, v in TrainConfig().to_dict().items() if k != "tta"}).tta == "none"


def test_views_then_merge_is_one_pass_of_images_and_mirrors():
    spec = PreprocessSpec(8, tta="flip")
    batch = np.random.default_rng(0).standard_normal((3, 3, 8, 8)).astype(np.float32)
    views = spec.views(batch)
    assert views.shape == (6, 3, 8, 8)
    np.testing.assert_array_equal(views[3:], batch[:, :, :, ::-1])
    outputs = np.random.default_rng(1).standard_normal((6, 5)).astype(np.float32)
    np.testing.assert_allclose(spec.merge(outputs), _normalised_mean(outputs[:3], outputs[3:]), atol=1e-6)
    assert PreprocessSpec(8).views(batch) is batch
