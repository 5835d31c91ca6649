"""``--index auto`` chooses differently for small and large N and under a memory budget."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.core.auto import FLAT_MAX_N, GRAPH_MIN_N, build_auto, estimate_bytes, ivf_nlist, plan
from indexer.core.errors import InputError
from indexer.core.search import search


def test_small_n_is_flat_medium_n_graph_or_ivf_large_n_an_hnsw_quantizer() -> None:
    assert [c.params.kind for c in plan(5_000, 128)] == ["flat"]
    medium = plan(1_000_000, 128)
    assert [c.params.kind for c in medium] == ["hnsw", "ivf"]
    assert medium[1].params.nlist == ivf_nlist(1_000_000) == 4000
    large = plan(20_000_000, 128)
    assert large[0].params.kind == "ivf-hnsw" and large[0].params.nlist == round(16 * np.sqrt(20_000_000))
    assert all("N = " in c.reason for c in medium + large)


def test_a_tight_memory_budget_picks_codes() -> None:
    n, d = 1_000_000, 128
    tight = plan(n, d, max_memory_mb=estimate_bytes("ivf", n, d) / 2**20 * 0.5)
    assert [c.params.kind for c in tight] == ["ivfsq", "ivfpq"]
    assert "MB" in tight[0].reason
    tighter = plan(n, d, max_memory_mb=estimate_bytes("ivfsq", n, d) / 2**20 * 0.9)
    assert [c.params.kind for c in tighter] == ["ivfpq"]
    with pytest.raises(InputError, match="no index kind fits"):
        plan(n, d, max_memory_mb=1)
    with pytest.raises(InputError, match="max-memory-mb"):
        plan(n, d, max_memory_mb=0)
    assert [c.params.kind for c in plan(FLAT_MAX_N, d, max_memory_mb=1)][0] != "flat"
    assert GRAPH_MIN_N > 1_000_000


def test_build_auto_small_is_exact_and_larger_is_measured(clustered) -> None:
    base, ids, _ = clustered
    index, info, choice, tuned = build_auto(base[:500], ids[:500])
    assert choice.params.kind == "flat" and tuned is None and info.factory == "Flat"
    big = np.concatenate([base] * 6)
    big_ids = np.arange(len(big), dtype=np.int64)
    big = big + np.random.default_rng(0).normal(0, 0.05, big.shape).astype(np.float32)
    big /= np.linalg.norm(big, axis=1, keepdims=True)
    assert len(big) > FLAT_MAX_N
    index, info, choice, tuned = build_auto(big, big_ids, target_recall=0.9)
    assert choice.params.kind in {"hnsw", "ivf"} and len(choice.measured) == 2
    assert {m["kind"] for m in choice.measured} == {"hnsw", "ivf"}
    assert tuned.reached and tuned.recall >= 0.9 and "recall@10" in choice.reason
    assert search(index, big[:3], 5)[1].shape == (3, 5)
