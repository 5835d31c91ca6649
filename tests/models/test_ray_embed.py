"""The Ray actor's batch function on its own (no Ray needed): vectors, failures, and the GPU actor's torch model."""

from __future__ import annotations

import numpy as np
import pytest

from models.embedders import open_embedder
from models.ray_embed import ActorModel, EmbedActor
from tests.requirements import require_cuda


def _actor_model(result) -> ActorModel:
    params = {"onnx": "model.onnx", "preprocess": result.preprocess.to_dict()}
    return ActorModel(params=params, files={"model.onnx": str(result.onnx_path)},
                      checkpoint=str(result.checkpoint_path))


def test_a_batch_gives_the_embedders_vectors_and_names_what_failed(trained, tmp_path):
    result, items = trained
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    paths = [items[0][0], str(broken), items[1][0]]
    actor = EmbedActor(_actor_model(result))
    out = actor({"id": np.array([7, 8, 9]), "path": np.array(paths, dtype=object)})
    assert out["id"].tolist() == [7, 8, 9] and out["vector"].dtype == np.float32
    assert out["error"][0] == out["error"][2] == "" and "broken.png" in out["error"][1]
    assert not out["vector"][1].any()
    embedder = open_embedder(_actor_model(result).params, lambda _: result.onnx_path)
    expected = embedder.embed_images([embedder.load(items[0][0]), embedder.load(items[1][0])])
    np.testing.assert_allclose(out["vector"][[0, 2]], expected, atol=1e-6)


@pytest.mark.gpu
def test_the_gpu_actor_matches_the_onnx_export(trained):
    require_cuda()
    result, items = trained
    batch = {"id": np.arange(len(items)), "path": np.array([path for path, _ in items], dtype=object)}
    on_gpu = EmbedActor(_actor_model(result), use_gpu=True)(batch)["vector"]
    on_cpu = EmbedActor(_actor_model(result), use_gpu=False)(batch)["vector"]
    cosine = (on_gpu * on_cpu).sum(1) / (np.linalg.norm(on_gpu, axis=1) * np.linalg.norm(on_cpu, axis=1))
    assert cosine.min() >= 0.9999


def test_an_interrupted_ray_run_keeps_its_chunks_and_the_next_one_does_only_the_rest(local_ray, trained, tmp_path,
                                                                                      monkeypatch):
    from models.embedding_store import EmbeddingStore
    from models.ray_embed import embed_on_ray

    result, paths = trained
    items = [(100 + number, path) for number, (path, _) in enumerate(paths)]
    store = EmbeddingStore(tmp_path / "store")
    dim = open_embedder(_actor_model(result).params, lambda _: result.onnx_path).dim
    real_append, calls = EmbeddingStore.append, []

    def append_then_die(self, ids, vectors):
        calls.append(len(ids))
        if len(calls) == 2:
            raise KeyboardInterrupt  # the process is stopped between two chunks
        real_append(self, ids, vectors)

    monkeypatch.setattr(EmbeddingStore, "append", append_then_die)
    with pytest.raises(KeyboardInterrupt):
        embed_on_ray(_actor_model(result), dim, items, store, actors=2, batch_size=2, flush_rows=4, progress=False)
    monkeypatch.setattr(EmbeddingStore, "append", real_append)
    kept = len(store)
    assert 4 <= kept == calls[0] < len(items)
    report = embed_on_ray(_actor_model(result), dim, items, store, actors=2, batch_size=2, flush_rows=4,
                          progress=False)
    assert (report.embedded, report.skipped_existing, report.failed) == (len(items) - kept, kept, [])
    assert sorted(store.ids().tolist()) == [item_id for item_id, _ in items]
