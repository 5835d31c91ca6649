"""How the catalog path feeds the model: uint8 pixels normalised on the device, outputs stored one batch
behind, flushes by time. None of it may change a vector."""

import numpy as np
import pytest
from PIL import Image

from models.checkpoint import load_model, write_variant
from models.embed import default_workers, embed_items, embed_model, measure_loader_rate
from models.embedding_store import EmbeddingStore
from models.preprocess import load_and_preprocess
from tests.requirements import require_cuda


@pytest.fixture
def photos(trained, tmp_path):
    """The tiny model's images plus ones that need resizing: wide, tall, large JPEG, grey; (id, path)."""
    _, items = trained
    paths = [path for path, _ in items[:9]]
    source = Image.open(paths[0]).convert("RGB")
    for name, size in (("wide.png", (75, 40)), ("tall.png", (33, 90)), ("big.jpg", (400, 300))):
        source.resize(size, Image.Resampling.BICUBIC).save(tmp_path / name)
        paths.append(str(tmp_path / name))
    source.convert("L").save(tmp_path / "grey.png")
    paths.append(str(tmp_path / "grey.png"))
    return list(enumerate(paths))


def _reference(checkpoint, items, batch_size: int) -> np.ndarray:
    """The previous path: float32 arrays made in the workers, views stacked there, outputs read at once."""
    import torch

    from models.device import channels_last

    model, spec, _ = load_model(checkpoint)
    channels_last(model)
    rows = []
    with torch.inference_mode():
        for at in range(0, len(items), batch_size):
            batch = np.stack([load_and_preprocess(path, spec) for _, path in items[at:at + batch_size]])
            outputs = model(channels_last(torch.from_numpy(spec.views(batch)))).float().cpu().numpy()
            rows.append(spec.merge(outputs))
    return np.concatenate(rows)


@pytest.mark.parametrize("tta", ["none", "flip"])
@pytest.mark.parametrize("raw", [True, False])
def test_vectors_equal_the_previous_path(trained, photos, tmp_path, tta, raw):
    """uint8 pixels normalised by table look-up (raw), or float32 from the workers: the same vectors, bit for bit."""
    result, _ = trained
    checkpoint = write_variant(result.checkpoint_path, tmp_path / tta / "model.pt", name=f"tiny-{tta}", tta=tta)
    model, spec, _ = load_model(checkpoint)
    store = EmbeddingStore(tmp_path / "store")
    report = embed_model(model, spec, photos, store, batch_size=4, progress=False, num_workers=1, raw=raw,
                         flush_seconds=0)
    assert report.embedded == len(photos) and not report.failed
    ids, vectors = store.items()
    order = np.argsort(ids)
    np.testing.assert_array_equal(ids[order], [i for i, _ in photos])
    np.testing.assert_array_equal(vectors[order], _reference(checkpoint, photos, batch_size=4))


def test_failures_are_reported_and_the_report_times_the_start_up(trained, photos, tmp_path):
    result, _ = trained
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 truncated")
    items = [*photos[:6], (99, str(bad)), *photos[6:]]
    model, spec, _ = load_model(result.checkpoint_path)
    report = embed_model(model, spec, items, EmbeddingStore(tmp_path / "store"), batch_size=3, progress=False,
                         num_workers=0, raw=True)
    assert report.embedded == len(photos) and [f[:2] for f in report.failed] == [(99, str(bad))]
    assert 0 < report.startup_seconds < report.seconds
    assert report.steady_images_per_s > 0 and report.images_per_s > 0
    single = embed_items(result.checkpoint_path, photos[:2], EmbeddingStore(tmp_path / "one"), batch_size=8,
                         progress=False, num_workers=0)
    assert single.embedded == 2 and single.steady_images_per_s == 0.0 and single.startup_seconds > 0


def test_flushes_follow_the_clock_and_the_end_is_durable(trained, photos, tmp_path, monkeypatch):
    result, _ = trained
    model, spec, _ = load_model(result.checkpoint_path)
    appends = []
    real_append = EmbeddingStore.append
    monkeypatch.setattr(EmbeddingStore, "append", lambda self, ids, vectors: (appends.append(len(ids)),
                                                                             real_append(self, ids, vectors)))
    store = EmbeddingStore(tmp_path / "rare")
    embed_model(model, spec, photos, store, batch_size=4, progress=False, num_workers=0, flush_seconds=1e9)
    assert appends == [len(photos)] and len(store) == len(photos)  # one write, at the end
    appends.clear()
    embed_model(model, spec, photos, EmbeddingStore(tmp_path / "often"), batch_size=4, progress=False,
                num_workers=0, flush_seconds=0)
    assert appends == [4, 4, 4, 1]  # every batch, one behind the forward


def test_a_run_killed_mid_way_resumes_to_the_same_vectors(trained, photos, tmp_path):
    """The forward dies on the fourth batch: the batches flushed before stay, and a second run completes them."""
    result, _ = trained
    model, spec, _ = load_model(result.checkpoint_path)
    calls = []

    def dying(module, inputs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt("killed")

    hook = model.register_forward_pre_hook(dying)
    store = EmbeddingStore(tmp_path / "store")
    with pytest.raises(KeyboardInterrupt):
        embed_model(model, spec, photos, store, batch_size=3, progress=False, num_workers=0, flush_seconds=0)
    assert len(store) == 6  # batches 1 and 2 were flushed; batch 3 was in flight
    hook.remove()
    again = embed_model(model, spec, photos, store, batch_size=3, progress=False, num_workers=0)
    assert (again.embedded, again.skipped_existing) == (len(photos) - 6, 6)
    ids, vectors = store.items()
    clean = EmbeddingStore(tmp_path / "clean")
    embed_model(model, spec, photos, clean, batch_size=3, progress=False, num_workers=0)
    clean_ids, clean_vectors = clean.items()
    np.testing.assert_allclose(vectors[np.argsort(ids)], clean_vectors[np.argsort(clean_ids)], atol=1e-6)


def test_workers_default_to_the_cores_on_cuda_and_the_loader_rate_counts_everything(trained, photos, monkeypatch):
    import os

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 5}, raising=False)
    assert default_workers("cuda") == 4 and default_workers("cuda:1") == 4
    assert default_workers("cpu") == default_workers(None) == 1
    _, spec, _ = load_model(trained[0].checkpoint_path)
    rate = measure_loader_rate([*photos, (99, "/no/such.png")], spec, batch_size=4, num_workers=0, raw=True)
    assert rate.images == len(photos) + 1 and rate.images_per_s > 0 and 0 < rate.startup_seconds < rate.seconds


@pytest.mark.gpu
def test_the_device_path_gives_the_cpu_vectors(trained, photos, tmp_path):
    """On CUDA (uint8 pixels, device normalisation, outputs one batch behind) against the CPU path."""
    require_cuda()
    result, _ = trained
    on_cpu = EmbeddingStore(tmp_path / "cpu")
    on_gpu = EmbeddingStore(tmp_path / "gpu")
    embed_items(result.checkpoint_path, photos, on_cpu, batch_size=4, progress=False, device="cpu")
    embed_items(result.checkpoint_path, photos, on_gpu, batch_size=4, progress=False, device="cuda")
    np.testing.assert_allclose(on_gpu.vectors(mmap=False)[np.argsort(on_gpu.ids())],
                               on_cpu.vectors(mmap=False)[np.argsort(on_cpu.ids())], atol=1e-5)
