"""The gpu-flat kind through the API: refused in one line without a GPU; with the device forced to the CPU
(INDEXER_GPU_FLAT_DEVICE=cpu) built, held on the torch device and answering exactly as flat does."""

from __future__ import annotations

import json

import numpy as np
import pytest

from indexer.api.devices import GPU_FLAT_DEVICE_ENV, device_refusal
from tests.indexer.api.conftest import image_path, run


def _no_cuda() -> None:
    from models.device import cuda_available

    if cuda_available():
        pytest.skip("a CUDA GPU is present: gpu-flat is not refused here")


@pytest.mark.parametrize("command", [("build", "--index", "gpu-flat"), ("bench", "--indexes", "flat,gpu-flat")])
def test_gpu_flat_without_a_gpu_is_refused_in_one_line(ws, monkeypatch, command):
    _no_cuda()
    monkeypatch.delenv(GPU_FLAT_DEVICE_ENV, raising=False)
    result = run(ws, *command, ok=False)
    assert result.exit_code != 0
    message = result.output.strip()
    assert "index kind 'gpu-flat' needs a CUDA GPU" in message and len(message.splitlines()) == 1
    assert "Traceback" not in result.output


def test_a_held_gpu_flat_index_without_a_gpu_is_refused_at_query(trained, ws, monkeypatch):
    _no_cuda()
    monkeypatch.setenv(GPU_FLAT_DEVICE_ENV, "cpu")
    run(ws, "build", "--index", "gpu-flat", "--name", "gf")
    monkeypatch.delenv(GPU_FLAT_DEVICE_ENV)
    result = run(ws, "query", image_path(trained), "--index", "gf", ok=False)
    assert result.exit_code != 0 and "needs a CUDA GPU" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert run(ws, "query", image_path(trained), "--index", "flat").exit_code == 0  # other kinds are untouched


def test_cpu_kinds_need_no_device_check():
    assert device_refusal("flat") is None and device_refusal("ivf") is None


def test_gpu_flat_on_the_torch_cpu_answers_as_flat(trained, ws, monkeypatch):
    from indexer.api import Searcher, Workspace

    monkeypatch.setenv(GPU_FLAT_DEVICE_ENV, "cpu")
    run(ws, "build", "--index", "gpu-flat", "--name", "gf")
    searcher = Searcher(Workspace.at(ws), "gf")
    held = searcher.held()
    assert held.kind == "gpu-flat" and held.device is not None and held.device.serves(held.index)
    calls = []
    search = held.device.searcher.search
    monkeypatch.setattr(held.device.searcher, "search", lambda q, k: calls.append(k) or search(q, k))
    images = [image_path(trained, name, i) for name in ("red_circle",) for i in range(3)]
    on_device = searcher.answer(images, k=10)
    assert calls, "the query went through the torch searcher"
    on_flat = json.loads(run(ws, "query", *images, "-k", "10", "--index", "flat", "--json").stdout)
    for got, want in zip(on_device.answers, on_flat):
        assert [hit.id for hit in got.results] == [hit["id"] for hit in want["results"]]
        assert np.allclose([hit.score for hit in got.results], [hit["score"] for hit in want["results"]], atol=1e-4)


def test_the_device_copy_serves_only_the_sealed_index_it_holds_without_pending_changes():
    from indexer.api.devices import DeviceCopy
    from indexer.core.build import build_index
    from indexer.core.factory import IndexParams
    from indexer.core.segments import SegmentedIndex

    x = np.random.default_rng(0).standard_normal((20, 4)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    sealed, _ = build_index(IndexParams("gpu-flat"), x[:10], np.arange(10))
    copy = DeviceCopy(sealed, searcher=None)
    held = SegmentedIndex(sealed)
    assert copy.serves(held)
    assert not copy.serves(held.added(np.array([100]), x[10:11]))  # a growing row: FAISS answers
    assert not copy.serves(held.removed(np.array([3]))[0])  # a deletion mark: FAISS answers
    other, _ = build_index(IndexParams("flat"), x[:10], np.arange(10))
    assert not copy.serves(SegmentedIndex(other))  # a folded (new) sealed index: FAISS answers
