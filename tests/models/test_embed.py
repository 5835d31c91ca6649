import subprocess
import sys

import numpy as np
import pytest

from models.embed import embed_items, measure_forward_rate
from models.embedding_store import EmbeddingStore
from models.onnx_embedder import OnnxEmbedder


def test_catalog_and_query_paths_agree(trained, tmp_path):
    """The catalog (torch, DataLoader) and query (ONNX) paths give one vector per image, a large photo included."""
    from PIL import Image

    from models.preprocess import load_for_model

    result, items = trained
    big = tmp_path / "big.jpg"
    Image.open(items[0][0]).convert("RGB").resize((2400, 1800), Image.Resampling.BICUBIC).save(big, quality=92)
    items = [*items, (str(big), items[0][1])]
    store = EmbeddingStore(tmp_path / "store")
    report = embed_items(result.checkpoint_path, [(i, p) for i, (p, _) in enumerate(items)], store,
                         batch_size=8, progress=False, num_workers=0)
    assert report.embedded == len(items) and not report.failed
    query = OnnxEmbedder(result.onnx_path, result.preprocess).embed_images(
        [load_for_model(p, result.preprocess) for p, _ in items])
    catalog = store.vectors()
    cosine = np.sum(query * catalog, axis=1) / np.linalg.norm(query, axis=1) / np.linalg.norm(catalog, axis=1)
    assert cosine.min() >= 0.9999


def test_the_catalog_path_never_lowers_precision(trained, tmp_path, monkeypatch):
    """No autocast around the catalog's forward on any device: bf16 catalog vectors disagreed with the fp32 ONNX
    query path (min cosine 0.9953 on an H200). Any autocast, enabled or not, now fails the embedding."""
    import torch

    def refused(*args, **kwargs):
        raise AssertionError(f"autocast{args} in the catalog path")

    monkeypatch.setattr(torch, "autocast", refused)
    result, items = trained
    store = EmbeddingStore(tmp_path / "store")
    report = embed_items(result.checkpoint_path, [(i, p) for i, (p, _) in enumerate(items[:4])], store,
                         batch_size=2, progress=False, num_workers=0)
    assert report.embedded == 4 and store.vectors().dtype == np.float32
    assert measure_forward_rate(result.checkpoint_path, batch_size=2, n_batches=1) > 0


def test_checkpoint_round_trip_and_torch_vs_onnx(trained):
    import torch

    from models.checkpoint import load_model
    from models.preprocess import load_and_preprocess

    result, items = trained
    batch = torch.from_numpy(np.stack([load_and_preprocess(p, result.preprocess) for p, _ in items[:5]]))
    first, spec, meta = load_model(result.checkpoint_path)
    second, _, _ = load_model(result.checkpoint_path)
    with torch.no_grad():
        a, b = first(batch).numpy(), second(batch).numpy()
    np.testing.assert_array_equal(a, b)
    assert spec == result.preprocess and meta["embedding_dim"] == a.shape[1] == 128
    onnx = OnnxEmbedder(result.onnx_path, spec).embed_arrays(batch.numpy())
    np.testing.assert_allclose(onnx, a, atol=1e-4)


def test_bad_image_is_reported_and_run_resumes(trained, tmp_path):
    result, items = trained
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 truncated")
    store = EmbeddingStore(tmp_path / "store")
    catalog = [(i, p) for i, (p, _) in enumerate(items[:5])] + [(99, str(bad))]
    report = embed_items(result.checkpoint_path, catalog, store, batch_size=2, progress=False, num_workers=0,
                         flush_seconds=0)
    assert report.embedded == 5 and [f[:2] for f in report.failed] == [(99, str(bad))]
    assert "broken.jpg" in report.failed[0][2]
    again = embed_items(result.checkpoint_path, catalog, store, batch_size=2, progress=False, num_workers=0)
    assert (again.embedded, again.skipped_existing, len(again.failed)) == (0, 5, 1)


def test_forward_rate_is_the_timed_images_over_the_timed_seconds(trained, monkeypatch):
    """One untimed warm-up forward, then ``n_batches`` timed forwards of (batch_size, 3, S, S): images / seconds."""
    import types

    import models.checkpoint
    import models.embed

    result = trained[0]
    size = result.preprocess.image_size
    shapes = []
    real_load_model = models.checkpoint.load_model

    def load_model_and_watch(*args, **kwargs):
        model, spec, meta = real_load_model(*args, **kwargs)
        model.register_forward_pre_hook(lambda module, inputs: shapes.append(tuple(inputs[0].shape)))
        return model, spec, meta

    clock = iter([100.0, 102.5])  # the two readings around the timed forwards: 2.5 s
    monkeypatch.setattr(models.checkpoint, "load_model", load_model_and_watch)
    monkeypatch.setattr(models.embed, "time", types.SimpleNamespace(perf_counter=lambda: next(clock)))
    rate = measure_forward_rate(result.checkpoint_path, batch_size=4, n_batches=2, device="cpu")
    assert rate == pytest.approx(4 * 2 / 2.5)
    assert shapes == [(4, 3, size, size)] * 3


def test_query_path_imports_no_torch():
    code = ("import sys, models, models.onnx_embedder, models.preprocess, models.embedding_store, "
            "models.config, models.errors; assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
