"""The gpu-flat searcher's code paths with torch on the CPU: tiles, the top-k merge, the fp32 re-score, the
certificate and its fp32 fallback, padding and ids, against numpy's exact inner-product search."""

from __future__ import annotations

import numpy as np
import pytest

from models.errors import ConfigError
from models.gpu_flat import PAD_SCORE, GpuFlatSearcher
from tests.requirements import require_cuda


def clustered(n: int, d: int, seed: int = 0, clusters: int = 8) -> np.ndarray:
    """(n, d) float32 unit vectors around a few seeded centres."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, d))
    x = centres[rng.integers(0, clusters, n)] + 0.3 * rng.standard_normal((n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def exact(base: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores = queries.astype(np.float64) @ base.T.astype(np.float64)
    rows = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, rows, axis=1), rows


def recall(found: np.ndarray, expected: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, expected)]))


@pytest.mark.parametrize(("n", "tile_rows", "k"), [(1000, 97, 10), (300, 7, 50), (256, 256, 10), (64, 1000, 10)])
def test_gpu_flat_equals_exact_search(n, tile_rows, k):
    base, queries = clustered(n, 16), clustered(40, 16, seed=1)
    scores, rows = GpuFlatSearcher(base, device="cpu", tile_rows=tile_rows).search(queries, k)
    want_scores, want_rows = exact(base, queries, k)
    assert recall(rows, want_rows) == 1.0
    assert np.allclose(scores, want_scores, atol=1e-5)
    assert np.all(np.diff(scores, axis=1) <= 0)


def test_gpu_flat_returns_catalog_ids_and_pads_past_ntotal():
    base = clustered(5, 8)
    ids = np.array([40, 7, 1000, 3, 12], dtype=np.int64)
    scores, found = GpuFlatSearcher(base, ids, device="cpu", tile_rows=2).search(base[:2], 8)
    assert found.dtype == np.int64 and found.shape == (2, 8)
    assert list(found[:, 0]) == [40, 7]  # each vector finds itself first
    assert sorted(found[0, :5]) == sorted(ids) and np.all(found[:, 5:] == -1)
    assert np.all(scores[:, 5:] == PAD_SCORE) and np.allclose(scores[:, 0], 1.0, atol=1e-6)


def test_gpu_flat_falls_back_to_fp32_where_fp16_cannot_rank():
    # 200 near-copies of one vector, 1e-5 apart in score: fp16 (steps of ~5e-4) ties them all, so the
    # candidates cannot be certified and the fp32 scan must give the exact order
    rng = np.random.default_rng(3)
    centre = clustered(1, 32)[0]
    base = centre + 2e-5 * rng.standard_normal((200, 32)).astype(np.float32)
    base = np.vstack([base, clustered(300, 32, seed=4)]).astype(np.float32)
    queries = centre[None, :] + 1e-3 * rng.standard_normal((4, 32)).astype(np.float32)
    searcher = GpuFlatSearcher(base, device="cpu", tile_rows=64)
    scores, rows = searcher.search(queries, 10)
    want_scores, want_rows = exact(base, queries, 10)
    assert searcher.fallbacks > 0
    assert np.allclose(scores, want_scores, atol=1e-6)
    assert recall(rows, want_rows) == 1.0


def test_gpu_flat_certifies_clear_winners_without_the_fallback():
    base, queries = clustered(2000, 16), clustered(20, 16, seed=2)
    searcher = GpuFlatSearcher(base, device="cpu", tile_rows=300)
    searcher.search(queries, 10)
    assert searcher.fallbacks < len(queries)  # the fp16 pass is not a full fp32 scan in disguise


def test_gpu_flat_rejects_bad_shapes_and_k():
    searcher = GpuFlatSearcher(clustered(10, 8), device="cpu")
    with pytest.raises(ConfigError, match=r"queries must be \(q, 8\)"):
        searcher.search(np.zeros((2, 4), np.float32), 3)
    with pytest.raises(ConfigError, match="k must be"):
        searcher.search(np.zeros((2, 8), np.float32), 0)
    with pytest.raises(ConfigError, match="ids must be"):
        GpuFlatSearcher(clustered(10, 8), np.arange(3), device="cpu")


@pytest.mark.gpu
def test_gpu_flat_on_cuda_matches_the_cpu():
    require_cuda()
    base, queries = clustered(50_000, 64), clustered(100, 64, seed=1)
    _, on_cpu = GpuFlatSearcher(base, device="cpu", tile_rows=8192).search(queries, 10)
    _, on_gpu = GpuFlatSearcher(base, device="cuda", tile_rows=8192).search(queries, 10)
    assert recall(on_gpu, on_cpu) == 1.0


def test_gpu_flat_default_tiles_follow_the_query_count(monkeypatch):
    import models.gpu_flat as gpu_flat

    monkeypatch.setattr(gpu_flat, "MAX_SCORE_ELEMENTS", 1000)  # 40 queries → tiles of 25 rows
    monkeypatch.setattr(gpu_flat, "QUERY_BATCH", 7)  # and passes of 7 queries
    base, queries = clustered(500, 16), clustered(40, 16, seed=6)
    scores, rows = GpuFlatSearcher(base, device="cpu").search(queries, 12)
    want_scores, want_rows = exact(base, queries, 12)
    assert recall(rows, want_rows) == 1.0 and np.allclose(scores, want_scores, atol=1e-5)
