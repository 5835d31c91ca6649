"""Sweeps of a search knob: recall and single-query latency at each value of the shared grid, and the cheapest
value reaching a recall target (ours and the peers' alike)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from indexer.bench.grids import GRAPH_SWEEP, IVF_SWEEP, STOP_RECALL
from indexer.bench.timing import latency_ms
from indexer.core.factory import find_ivf
from indexer.core.fidelity import ann_recall_at_k
from indexer.core.kinds import EF_SEARCH, NPROBE
from indexer.core.search import drop_self, search
from indexer.core.settings import knob_of, search_parameters


def results(index: Any, queries: np.ndarray, query_ids: np.ndarray | None, k: int, params: Any = None):
    """Top-k with each query's own id left out when the queries are stored vectors."""
    if query_ids is None:
        return search(index, queries, k, params=params)
    scores, found = search(index, queries, min(k + 1, int(index.ntotal)), params=params)
    return drop_self(scores, found, query_ids, min(k, int(index.ntotal) - 1))


def default_sweep_values(index: Any, k: int) -> list[int]:
    """The shared grids (:mod:`indexer.bench.grids`): nprobe up to min(nlist, 512), efSearch from k to 512."""
    knob = knob_of(index)
    if knob == NPROBE:
        return [v for v in IVF_SWEEP if v <= find_ivf(index).nlist]
    if knob == EF_SEARCH:
        return [v for v in GRAPH_SWEEP if v >= k]
    return []


def sweep(
    index: Any,
    queries: np.ndarray,
    exact: tuple[np.ndarray, np.ndarray],
    k: int,
    values: Sequence[int] | None = None,
    *,
    n_latency: int = 100,
    query_ids: np.ndarray | None = None,
) -> list[dict[str, float]]:
    """Recall@k and single-query p50 (ms) at each nprobe / efSearch value, set per call.

    queries (q, d) float32; exact = (scores, ids) (q, >= k), each query's own id already left
    out when ``query_ids`` (q,) says the queries are stored vectors. Returns
    [{value, recall, p50_ms}]; the index is never modified.
    """
    knob = knob_of(index)
    exact_scores, exact_ids = exact
    rows = []
    for value in values if values is not None else default_sweep_values(index, k):
        params = search_parameters(index, **{knob: int(value)})  # made once, outside the timed calls
        _, found = results(index, queries, query_ids, k, params)
        recall = ann_recall_at_k(found, exact_ids, k, exact_scores=exact_scores)
        lat = latency_ms(index, queries[:n_latency], k, params=params)
        rows.append({"value": int(value), "recall": recall, "p50_ms": lat["p50"], "p95_ms": lat["p95"],
                     "p99_ms": lat["p99"], "qps_1t": 1e3 / lat["mean"]})
        if recall >= STOP_RECALL:  # as the peers' sweeps: further values only buy latency
            break
    return rows


def at_target(results: list[dict[str, Any]], sweeps: dict[str, list[dict[str, float]]],
              target: float) -> list[dict[str, Any]]:
    """Per system, the cheapest swept setting (the smallest knob value; the sweeps run in increasing order
    on the same grids for every system) whose recall@k reaches ``target``, else its row if that reaches it;
    None where none did."""
    out = []
    for row in results:
        points = [p for p in sweeps.get(row["kind"], []) if p["recall"] >= target]
        if not points and row.get("ann_recall_at_k", 0) >= target:
            points = [{"value": None, "recall": row["ann_recall_at_k"], "p50_ms": row["search_ms_p50"],
                       "p99_ms": row["search_ms_p99"], "qps_1t": row["qps_1t"]}]
        best = points[0] if points else None
        out.append({"kind": row["kind"], "system": row["system"],
                    **({key: best.get(key) for key in ("value", "recall", "p50_ms", "p99_ms", "qps_1t")}
                       if best else {"value": None, "recall": None, "p50_ms": None, "p99_ms": None, "qps_1t": None})})
    return out


def retime_at_target(rows: list[dict[str, Any]], timers: dict[str, Any], rounds: int, seed: int = 0) -> None:
    """Time every system's at-target setting again in ``rounds`` interleaved rounds, in place.

    The sweeps run one system after another, minutes apart, and each point is one pass of a few hundred
    queries (tens of ms): on a shared machine a burst of other load moves one point by ±30 %, so the
    at-target ratio of two sweeps measured the load. Here each round times every system once (a new seeded
    order each round), and a row's ``p50_ms`` / ``p99_ms`` / ``qps_1t`` become the medians over rounds
    (the sweep's own figure stays as ``sweep_p50_ms``; ``p50_ms_rounds`` lists the rounds, ``rounds`` counts them).
    ``timers[kind](value)`` returns (q,) seconds of single-query calls at that setting; rows without a value
    (exact kinds) or without a timer keep their sweep figures.
    """
    from indexer.bench.timing import percentiles_ms

    timed = [row for row in rows if row.get("value") is not None and row["kind"] in timers]
    if rounds < 1 or not timed:
        return
    rng = np.random.default_rng(seed)
    per_round: dict[str, list[dict[str, float]]] = {row["kind"]: [] for row in timed}
    for _ in range(rounds):
        for i in rng.permutation(len(timed)):
            row = timed[i]
            per_round[row["kind"]].append(percentiles_ms(timers[row["kind"]](int(row["value"]))))
    for row in timed:
        lat = per_round[row["kind"]]
        row["rounds"] = rounds
        row["sweep_p50_ms"] = row["p50_ms"]
        row["p50_ms_rounds"] = [r["p50"] for r in lat]
        row["p50_ms"] = float(np.median([r["p50"] for r in lat]))
        row["p99_ms"] = float(np.median([r["p99"] for r in lat]))
        row["qps_1t"] = float(np.median([1e3 / r["mean"] for r in lat]))
