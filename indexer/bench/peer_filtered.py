"""The filtered bench's peers: the same selections as our kinds, through each peer's own filter, in the same run.

Each peer is built once over the same vectors with the two generated fields as its metadata. Its knob is tuned as
:func:`indexer.core.tuning.tune_search_param` tunes ours: the smallest value on the shared grid
(:mod:`indexer.bench.grids`) whose recall@k on the held-out tuning queries reaches the target, unfiltered; that
setting gives the peer's own unfiltered p50. For each selection the knob is then raised from there (never
lowered) until recall@k within the selection, on the tuning queries, reaches the target plus the margin our
planner's widening is tuned with (:func:`indexer.core.tuning.tune_filter_widening`), as our planner widens
nprobe / efSearch for a narrow selection (on the first :data:`TUNE_QUERIES` tuning queries). Unlike ours, which is tuned on random selections of 1 %, 10 % and 50 %
and read back for any filter, a peer's setting is tuned on the very selection it is measured on: if anything,
that favours the peer. The measured queries then run one at a time after a warm-up.

A peer without a native filter gets one row that says so; a missing or failing peer, one note.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from indexer.bench.peers import FieldFilter, Peer, PeerUnavailable, peer_class
from indexer.bench.selection_recall import padded, recall_within

WARM_UP = 10
FILTER_MARGIN = 0.015  # tune_filter_widening's default margin: a setting picked on few queries must hold on others
TUNE_QUERIES = 100  # of the held-out tuning queries; a Chroma query within a wide filter takes 0.1-1 s at 200k

Key = tuple[str, float]


def smallest_reaching(grid: Sequence[int], start: int, reaches: Callable[[int], bool]) -> tuple[int, bool]:
    """The smallest grid value >= ``start`` for which ``reaches`` holds (assumed monotone): doubling steps along
    the grid, then bisection. (value, True), or (the grid's last value, False) when none does."""
    values = [value for value in grid if value >= start] or [grid[-1]]
    low, high = -1, 0
    while not reaches(values[high]):
        if high == len(values) - 1:
            return values[-1], False
        low, high = high, min(len(values) - 1, 2 * high + 1)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (low, middle) if reaches(values[middle]) else (middle, high)
    return values[high], True


def _run(search: Callable[[np.ndarray], np.ndarray], queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """((q, k) ids padded with -1, (q,) ms per call), one query per call after a warm-up."""
    for vector in queries[:WARM_UP]:
        search(vector)
    found, ms = [], np.empty(len(queries))
    for i, vector in enumerate(queries):
        started = time.perf_counter()
        found.append(search(vector))
        ms[i] = (time.perf_counter() - started) * 1e3
    return padded(found, k), ms


class _Knob:
    """The peer's knob, set only when it changes (Chroma reopens its collection to apply one)."""

    def __init__(self, peer: Peer) -> None:
        self.peer, self.value = peer, None

    def __call__(self, value: int) -> None:
        if value != self.value:
            self.peer.set_knob(value)
            self.value = value


def bench_peer_filtered(name: str, base: np.ndarray, ids: np.ndarray, queries: np.ndarray, tune_queries: np.ndarray,
                        metadata: Sequence[dict[str, Any]], filters: dict[Key, FieldFilter],
                        truths: dict[Key | None, np.ndarray], tune_truths: dict[Key | None, np.ndarray], *,
                        k: int = 10, target_recall: float = 0.95, log: Callable[[str], None] | None = None,
                        ) -> list[dict[str, Any]]:
    """Rows of {kind, system, version, field, fraction, selected, plan, setting, reached, recall, outside, p50_ms,
    p99_ms, unfiltered_p50_ms, unfiltered_setting, ratio, build_s} for peer ``name``, one per filter; a single
    row with plan "no filter: ..." for a peer without one. ``truths`` / ``tune_truths``: (q, k) exact ids per
    filter key, and under None unfiltered. ``outside`` counts returned ids that fail the filter (0 expected)."""
    cls = peer_class(name)
    version = cls.version()
    if not cls.filters:
        return [{"kind": name, "system": "peer", "version": version, "field": None, "fraction": None,
                 "selected": None, "plan": f"no filter: {cls.no_filter}"}]
    fields = sorted({where.field for where in filters.values()})
    tune_queries = tune_queries[:TUNE_QUERIES]
    tune_truths = {key: truth[:TUNE_QUERIES] for key, truth in tune_truths.items()}
    peer = cls(filter_fields=fields)
    try:
        started = time.perf_counter()
        peer.build(ids, base, metadata)
        build_s = time.perf_counter() - started
        knob = _Knob(peer)

        def reaches(value: int, where: FieldFilter | None, goal: float) -> bool:
            knob(value)
            search = (lambda v: peer.query(v, k)) if where is None else (lambda v: peer.query_filtered(v, k, where))
            found = padded([search(v) for v in tune_queries], k)
            return recall_within(found, tune_truths[None if where is None else key_of[where]]) >= goal

        key_of = {where: key for key, where in filters.items()}
        plain, _ = smallest_reaching(cls.sweep, cls.sweep[0], lambda v: reaches(v, None, target_recall))
        knob(plain)
        _, plain_ms = _run(lambda v: peer.query(v, k), queries, k)
        plain_p50 = float(np.median(plain_ms))
        if log:
            log(f"{name}: built in {build_s:.0f} s; unfiltered {cls.knob} {plain}, p50 {plain_p50:.3f} ms")
        column = {field: np.array([row[field] for row in metadata]) for field in fields}
        selected_ids = {key: set(ids[where.mask(column[where.field])].tolist()) for key, where in filters.items()}
        rows = []
        for key, where in filters.items():
            value, reached = smallest_reaching(
                cls.sweep, plain, lambda v, where=where: reaches(v, where, min(1.0, target_recall + FILTER_MARGIN)))
            knob(value)
            found, ms = _run(lambda v, where=where: peer.query_filtered(v, k, where), queries, k)
            outside = sum(int(i) not in selected_ids[key] for i in found.ravel() if i >= 0)
            row = {"kind": name, "system": "peer", "version": version, "field": key[0], "fraction": key[1],
                   "selected": len(selected_ids[key]), "plan": cls.filter_form, "setting": f"{cls.knob} {value}",
                   "reached": reached, "recall": round(recall_within(found, truths[key]), 4), "outside": outside,
                   "p50_ms": round(float(np.median(ms)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3),
                   "unfiltered_p50_ms": round(plain_p50, 3), "unfiltered_setting": f"{cls.knob} {plain}",
                   "ratio": round(float(np.median(ms)) / plain_p50, 2), "build_s": round(build_s, 1)}
            rows.append(row)
            if log:
                log(" ".join(f"{column_name} {cell}" for column_name, cell in row.items()))
        return rows
    finally:
        peer.close()


def bench_peers_filtered(names: Sequence[str], **kwargs: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """Every peer in ``names``: (rows, notes). A missing peer, or one that fails, is one note; the others are
    still measured (a long run must not lose them)."""
    rows, notes = [], []
    for name in names:
        try:
            rows += bench_peer_filtered(name, **kwargs)
        except PeerUnavailable as exc:
            notes.append(f"peer {name} skipped: {exc}")
        except Exception as exc:  # noqa: BLE001 - another system's failure must not lose the other rows
            notes.append(f"peer {name} failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    return rows, notes
