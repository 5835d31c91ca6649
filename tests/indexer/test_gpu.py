"""GPU helpers: auto falls back to the CPU; an explicit --gpu without one is a clear error."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.errors import InputError
from indexer.gpu import faiss_gpu_count, resolve_gpu, to_cpu, torch_exact_search


def test_auto_uses_cpu_without_gpu_and_explicit_gpu_errors():
    if faiss_gpu_count() > 0:
        pytest.skip("a GPU is present")
    assert resolve_gpu(None) is False and resolve_gpu(False) is False
    with pytest.raises(InputError, match="--gpu: FAISS has no usable GPU"):
        resolve_gpu(True)


def test_to_cpu_leaves_cpu_index_alone():
    import faiss

    index = faiss.IndexFlatIP(4)
    assert to_cpu(index) is index


def test_torch_exact_search_matches_numpy_on_cpu():
    rng = np.random.default_rng(0)
    base, queries = rng.random((50, 8), dtype=np.float32), rng.random((3, 8), dtype=np.float32)
    scores, rows = torch_exact_search(base, queries, 5, device="cpu")
    expected = np.argsort(-(queries @ base.T), axis=1)[:, :5]
    assert np.array_equal(rows, expected)
    assert np.allclose(scores, np.take_along_axis(queries @ base.T, expected, axis=1), atol=1e-5)


@pytest.mark.gpu
def test_gpu_build_and_search_agree_with_cpu():
    if faiss_gpu_count() == 0:
        pytest.skip("needs FAISS's GPU build and a GPU")
    from indexer.factory import IndexParams, build_index
    from indexer.gpu import to_gpu

    rng = np.random.default_rng(0)
    x = rng.random((2000, 16), dtype=np.float32)
    cpu, _ = build_index(IndexParams("flat"), x, np.arange(2000))
    gpu = to_gpu(cpu)
    assert np.array_equal(cpu.search(x[:5], 10)[1], gpu.search(x[:5], 10)[1])
    scores, rows = torch_exact_search(x, x[:5], 10, device="cuda")
    assert np.array_equal(rows, cpu.search(x[:5], 10)[1])
