"""The peers measured the way :mod:`indexer.bench.runner` measures our kinds.

Same base vectors, same queries, same exact ground truth; one query per call after a warm-up at every setting.
Each peer sweeps its own knob (cheapest first); the value reported in its row is the smallest
whose recall@k on the held-out tuning queries reaches the target (as our tuner picks nprobe /
efSearch), and every value tried is kept as its sweep.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from indexer.bench.grids import STOP_RECALL
from indexer.bench.peers import PEERS, Peer, PeerUnavailable, peer_class
from indexer.bench.timing import percentiles_ms
from indexer.core.errors import InputError
from indexer.core.fidelity import ann_recall_at_k
from indexer.core.search import drop_self, exact_search

WARM_UP = 10


def check_peers(names: Sequence[str]) -> None:
    """InputError for a name that is not a known peer."""
    unknown = [name for name in names if name not in PEERS]
    if unknown:
        raise InputError(f"unknown peer(s) {', '.join(unknown)}; expected some of {', '.join(PEERS)}")


def _found(peer: Peer, queries: np.ndarray, query_ids: np.ndarray | None, k: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """((q, k) ids, (q,) seconds per call): each query alone, own id left out for stored queries."""
    depth = k if query_ids is None else k + 1
    ids = np.full((len(queries), depth), -1, dtype=np.int64)
    seconds = np.empty(len(queries))
    for i, vector in enumerate(queries):
        started = time.perf_counter()
        got = peer.query(vector, min(depth, n))
        seconds[i] = time.perf_counter() - started
        ids[i, : len(got)] = got[:depth]
    if query_ids is not None:
        _, ids = drop_self(np.zeros(ids.shape, dtype=np.float32), ids, query_ids, k)
    return ids, seconds


def bench_peer(
    name: str,
    base: np.ndarray,
    base_ids: np.ndarray,
    queries: np.ndarray,
    exact: tuple[np.ndarray, np.ndarray],
    k: int,
    target_recall: float,
    *,
    query_ids: np.ndarray | None = None,
    tune_queries: np.ndarray | None = None,
    metadata: Sequence[dict[str, Any]] | None = None,
    n_sweep_queries: int = 300,
    keep: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], list[dict[str, float]]]:
    """Build peer ``name`` over base (n, d) float32 and measure it. Returns (row, sweep).

    Raises PeerUnavailable when its package is missing. ``metadata``: one dict per base
    vector, stored by database peers, whose end-to-end call (top k with rows) is timed too.
    ``keep``: when given, the peer is left open and ``keep[name]`` becomes its timer (a setting -> (q,)
    seconds of the sweep queries, one per call), for :func:`indexer.bench.sweeps.retime_at_target`; the
    caller closes it with ``keep[name].close()``.
    """
    cls = peer_class(name)
    peer = cls()
    kept = False
    try:
        started = time.perf_counter()
        peer.build(base_ids, base, metadata if cls.database else None)
        build_s = time.perf_counter() - started
        size = peer.index_bytes()
        n = len(base_ids)
        exact_scores, exact_ids = exact
        tune_exact = None
        if tune_queries is not None:
            tune_exact = exact_search(base, base_ids, tune_queries, k + 10)
        sweep_q = queries[:n_sweep_queries]
        sweep_ids = None if query_ids is None else query_ids[:n_sweep_queries]
        curve, chosen = [], None
        for value in cls.sweep:
            peer.set_knob(value)
            # Warm up at every setting: Chroma's set_knob reopens the collection, and the first query after
            # that loads the whole index from disk (seconds at 1M), which is start-up, not search.
            for vector in sweep_q[:WARM_UP]:
                peer.query(vector, min(k, n))
            found, seconds = _found(peer, sweep_q, sweep_ids, k, n)
            lat = percentiles_ms(seconds)
            point = {
                "value": int(value),
                "recall": ann_recall_at_k(found, exact_ids[: len(sweep_q)], k, exact_scores=exact_scores[: len(sweep_q)]),
                "p50_ms": lat["p50"], "p95_ms": lat["p95"], "p99_ms": lat["p99"], "qps_1t": 1e3 / lat["mean"],
            }
            if tune_exact is not None:
                tuned, _ = _found(peer, tune_queries, None, k, n)
                point["tune_recall"] = ann_recall_at_k(tuned, tune_exact[1], k, exact_scores=tune_exact[0])
            curve.append(point)
            if chosen is None and point.get("tune_recall", point["recall"]) >= target_recall:
                chosen = point
            if point["recall"] >= STOP_RECALL and chosen is not None:
                break
        reached = chosen is not None
        chosen = chosen or max(curve, key=lambda p: p["recall"])
        row: dict[str, Any] = {
            "kind": name, "system": "peer", "version": cls.version(), "knob": cls.knob, "knob_value": chosen["value"],
            "n": n, "d": int(base.shape[1]), "tune_reached_target": reached,
            "tuned_recall": chosen.get("tune_recall"), "ann_recall_at_k": chosen["recall"],
            "search_ms_p50": chosen["p50_ms"], "search_ms_p95": chosen["p95_ms"], "search_ms_p99": chosen["p99_ms"],
            "qps": chosen["qps_1t"], "qps_1t": chosen["qps_1t"], "build_s": build_s,
            "bytes_per_vector": size / max(1, n), "index_bytes": size,
        }
        if cls.database and metadata is not None:
            peer.set_knob(chosen["value"])
            times = []
            for vector in sweep_q[:100]:
                t0 = time.perf_counter()
                peer.query_rows(vector, min(k, n))
                times.append(time.perf_counter() - t0)
            row["rows_ms_p50"] = float(np.median(times) * 1e3)
        if keep is not None:
            keep[name], kept = PeerTimer(peer, sweep_q, sweep_ids, k, n), True
        return row, curve
    finally:
        if not kept:
            peer.close()


class PeerTimer:
    """(q,) seconds of one-query calls of an open peer at a setting, after a warm-up at it."""

    def __init__(self, peer: Peer, queries: np.ndarray, query_ids: np.ndarray | None, k: int, n: int) -> None:
        self.peer, self.queries, self.query_ids, self.k, self.n = peer, queries, query_ids, k, n

    def __call__(self, value: int) -> np.ndarray:
        self.peer.set_knob(value)
        for vector in self.queries[:WARM_UP]:
            self.peer.query(vector, min(self.k, self.n))
        return _found(self.peer, self.queries, self.query_ids, self.k, self.n)[1]

    def close(self) -> None:
        self.peer.close()


def bench_peers(names: Sequence[str], **kwargs: Any) -> tuple[list[dict[str, Any]], dict[str, list], list[str]]:
    """Every peer in ``names``: (rows, sweeps, notes); a missing peer, or one that fails (a database that
    cannot take the data, say), is one note, and the others are still measured."""
    rows, sweeps, notes = [], {}, []
    for name in names:
        try:
            row, curve = bench_peer(name, **kwargs)
        except PeerUnavailable as exc:
            notes.append(f"peer {name} skipped: {exc}")
            continue
        except Exception as exc:  # noqa: BLE001 - another system's failure must not lose a long run's other rows
            notes.append(f"peer {name} failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            continue
        rows.append(row)
        sweeps[name] = curve
    return rows, sweeps, notes
