"""Torch exact search: one matrix product and top-k, equal to numpy's ranking."""

from __future__ import annotations

import numpy as np
import pytest

from models.exact_search import torch_exact_search
from tests.requirements import require_cuda


def test_torch_exact_search_matches_numpy_on_cpu():
    rng = np.random.default_rng(0)
    base, queries = rng.random((50, 8), dtype=np.float32), rng.random((3, 8), dtype=np.float32)
    scores, rows = torch_exact_search(base, queries, 5, device="cpu")
    expected = np.argsort(-(queries @ base.T), axis=1)[:, :5]
    assert np.array_equal(rows, expected)
    assert np.allclose(scores, np.take_along_axis(queries @ base.T, expected, axis=1), atol=1e-5)


@pytest.mark.gpu
def test_torch_exact_search_on_cuda_matches_cpu():
    require_cuda()
    x = np.random.default_rng(0).random((2000, 16), dtype=np.float32)
    _, on_cpu = torch_exact_search(x, x[:5], 10, device="cpu")
    _, on_gpu = torch_exact_search(x, x[:5], 10, device="cuda")
    assert np.array_equal(on_cpu, on_gpu)
