"""Many IVF lists: the nlist rule past 1M, two-level k-means, and the HNSW coarse quantizer tied to nprobe.

The thresholds are lowered to 64 lists so that the same code runs on a few thousand vectors."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.core import coarse
from indexer.core.build import build_index
from indexer.core.factory import IndexParams, default_nlist, factory_string, find_ivf
from indexer.core.index_io import load_index, save_index
from indexer.core.ondisk import build_on_disk
from indexer.core.search import exact_search, search
from indexer.core.settings import search_parameters, set_default_settings


def _clustered(n=6_000, d=16, centres=40, seed=0):
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, d)).astype(np.float32)
    x = c[rng.integers(0, centres, n)] + 0.3 * rng.standard_normal((n, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return np.arange(n, dtype=np.int64) + 100, x


@pytest.fixture
def low_thresholds(monkeypatch):
    monkeypatch.setattr(coarse, "TWO_LEVEL_MIN_NLIST", 64)
    monkeypatch.setattr(coarse, "HNSW_COARSE_MIN_NLIST", 64)


def _recall(found, truth):
    return np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, truth)])


def test_nlist_is_4_sqrt_n_up_to_a_million_then_lists_of_256():
    assert default_nlist(100_000) == 1265
    assert default_nlist(1_000_000) == 4000
    assert default_nlist(10_000_000) == 10_000_000 // 256 == 39_062
    assert factory_string(IndexParams("ivf"), 1_000_000, 128) == "IVF4000,Flat"
    assert factory_string(IndexParams("ivf"), 10_000_000, 128) == "IVF39062_HNSW32,Flat"
    assert factory_string(IndexParams("ivfsq"), 10_000_000, 128) == "IVF39062_HNSW32,SQ8"
    assert factory_string(IndexParams("ivf", nlist=100), 10_000_000, 128) == "IVF100,Flat"


@pytest.mark.parametrize("kind", ["ivf", "ivfsq"])
def test_two_level_centroids_in_a_graph_answer_like_exact_search(low_thresholds, kind):
    ids, x = _clustered()
    index, info = build_index(IndexParams(kind, nlist=100, seed=3), x, ids)
    ivf = find_ivf(index)
    graph = coarse.quantizer_hnsw(ivf)
    assert info.factory.startswith("IVF100_HNSW32,")
    assert graph is not None and graph.ntotal == 100 and index.ntotal == len(ids)
    sizes = np.array([ivf.invlists.list_size(i) for i in range(100)])
    assert (sizes > 0).sum() >= 90, "two-level k-means spreads the vectors over the lists"
    queries = x[:200] + 0.02
    truth = exact_search(x, ids, queries, 10)[1]
    assert _recall(search(index, queries, 10, nprobe=20)[1], truth) >= 0.9
    again, _ = build_index(IndexParams(kind, nlist=100, seed=3), x, ids)
    assert np.array_equal(search(again, queries, 10, nprobe=5)[1], search(index, queries, 10, nprobe=5)[1]), \
        "seeded: the same build twice gives the same index"


def test_the_graph_quantizer_searches_nprobe_candidates(low_thresholds, tmp_path):
    ids, x = _clustered(3_000)
    index, _ = build_index(IndexParams("ivf", nlist=64), x, ids)
    graph = coarse.quantizer_hnsw(find_ivf(index))
    assert graph.hnsw.efSearch == coarse.ASSIGN_EF
    params = search_parameters(index, nprobe=40)
    (graph_params,) = params.referenced_objects  # the object behind params.quantizer_params, kept alive
    assert params.nprobe == 40 and params.quantizer_params is not None and graph_params.efSearch == 40
    assert search_parameters(index, nprobe=3).referenced_objects[0].efSearch == coarse.ASSIGN_EF
    set_default_settings(index, nprobe=45)
    assert graph.hnsw.efSearch == 45
    save_index(index, tmp_path / "i.faiss")
    loaded, _ = load_index(tmp_path / "i.faiss")
    assert coarse.quantizer_hnsw(find_ivf(loaded)).hnsw.efSearch == 45 and find_ivf(loaded).nprobe == 45


def test_flat_quantizer_below_the_threshold_gets_no_quantizer_params():
    ids, x = _clustered(3_000)
    index, info = build_index(IndexParams("ivf", nlist=64), x, ids)
    assert info.factory == "IVF64,Flat" and coarse.quantizer_hnsw(find_ivf(index)) is None
    assert search_parameters(index, nprobe=4).quantizer_params is None


def test_on_disk_build_uses_the_same_two_level_quantizer(low_thresholds, tmp_path):
    ids, x = _clustered(4_000)
    params = IndexParams("ivf", nlist=80, seed=1)

    def read(start, stop):
        return ids[start:stop], x[start:stop]

    on_disk, _ = build_on_disk(params, read, len(ids), x.shape[1], tmp_path / "i.faiss", shards=4)
    in_memory, _ = build_index(params, x, ids)
    queries = x[:100] + 0.02
    assert coarse.quantizer_hnsw(find_ivf(on_disk)) is not None
    assert np.array_equal(search(on_disk, queries, 10, nprobe=10)[1], search(in_memory, queries, 10, nprobe=10)[1])


def test_a_lloyd_step_moves_each_centroid_to_the_normalised_mean_of_its_points():
    _, x = _clustered(2_000, centres=10)
    start = x[:20].copy()
    away = -x.mean(axis=0)
    start[19] = away / np.linalg.norm(away)  # faces away from every point: gets none, so keeps its place
    nearest = np.argmax(x @ start.T, axis=1)
    refined = coarse.refine_centroids(start.copy(), x, 1, spherical=True, metric=0)  # 0: inner product
    for c in range(19):
        if (nearest == c).any():
            mean = x[nearest == c].mean(axis=0)
            np.testing.assert_allclose(refined[c], mean / np.linalg.norm(mean), atol=1e-5)
    assert not (nearest == 19).any() and np.array_equal(refined[19], start[19])
    fit = lambda c: np.mean(np.max(x @ c.T, axis=1))  # noqa: E731
    assert fit(coarse.refine_centroids(start.copy(), x, 3, spherical=True, metric=0)) > fit(start) + 0.01
