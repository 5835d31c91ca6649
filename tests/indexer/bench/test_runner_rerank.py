"""The bench measures label quality with the re-ranking it is given, and every row says which."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.bench.runner import BenchData, run_bench
from indexer.core.rerank import Rerank
from tests.indexer.core.test_rerank import BASE, IDS, QUERY


@pytest.mark.parametrize("mode", ["qe", "dba"])
def test_bench_rows_carry_the_rerank_and_its_gain(mode):
    data = BenchData(base=BASE, base_ids=IDS, queries=QUERY, base_labels=np.array([0, 0, 1, 1]),
                     query_labels=np.array([0]))
    kwargs = {"k": 2, "n_latency": 5, "n_tune_queries": 2, "overhead_repeats": 1, "with_sweep": False,
              "progress": False}
    plain = run_bench(data, ["flat"], **kwargs)["results"][0]
    reranked = run_bench(data, ["flat"], rerank=Rerank(mode, n=1, alpha=3.0), **kwargs)["results"][0]
    assert plain["rerank"] == "none" and reranked["rerank"] == f"{mode}(n=1, alpha=3)"
    assert plain["map_at_r"] == pytest.approx(0.5) and reranked["map_at_r"] == pytest.approx(1.0)
    assert ("rerank_ms_p50" in reranked) == (mode == "qe")
