"""The one bench routine: build each index kind over the same vectors, tune it, and measure it.

Catalog and synthetic runs differ only in their :class:`BenchData`: catalog queries are stored
vectors (each one's own id is left out of its results), synthetic queries are held out; catalog
data carries labels deep enough for MAP@R, synthetic data its cluster labels.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from indexer.bench.sweeps import at_target, results, retime_at_target, sweep
from indexer.bench.timing import IndexTimer, latency_ms, single_query_seconds, throughput_qps
from indexer.core.auto import build_auto
from indexer.core.build import build_index
from indexer.core.errors import InputError
from indexer.core.factory import IndexParams
from indexer.core.fidelity import ann_recall_at_k
from indexer.core.kinds import AUTO, BENCH_CHOICES, DEFAULT_PCA_DIM, ON_DISK
from indexer.core.metrics import label_metrics, relevant_counts
from indexer.core.rerank import Rerank, augment_database, lookup_vectors, search_expanded
from indexer.core.search import drop_self, exact_search
from indexer.core.settings import default_settings, knob_of
from indexer.core.tuning import tune_search_param

EXTRA_EXACT = 10  # exact neighbours beyond k, so ties past rank k are visible
SWEEP_QUERIES = 300
AT_TARGET_ROUNDS = 5  # interleaved rounds the at-target settings are timed in again (sweeps.retime_at_target)


@dataclass(frozen=True)
class BenchData:
    """The vectors one bench run measures every kind on.

    base (n, d) float32 L2-normalised with ids (n,) int64; queries (q, d) float32.
    query_ids (q,): the ids of queries that are base vectors (left out of their own results),
    or None for held-out queries. tune_queries (t, d): held-out queries to tune on (None: tune
    on sampled base vectors). base_labels (n,) / query_labels (q,): for label metrics (P@1,
    MAP@R, F1@k), or None. deep_labels: search the top R of each query so MAP@R is exact.
    """

    base: np.ndarray
    base_ids: np.ndarray
    queries: np.ndarray
    query_ids: np.ndarray | None = None
    tune_queries: np.ndarray | None = None
    base_labels: np.ndarray | None = None
    query_labels: np.ndarray | None = None
    deep_labels: bool = True
    metadata: Sequence[dict[str, Any]] | None = None  # one row per base vector, stored by database peers


def check_bench_kinds(kinds: Sequence[str], peers: Sequence[str] = ()) -> None:
    """InputError unless ``kinds`` is a non-empty list of benchable kinds (every kind but raw, and auto)
    and every peer is known."""
    from indexer.bench.peer_bench import check_peers

    unknown = [kind for kind in kinds if kind not in BENCH_CHOICES]
    if unknown or not kinds:
        raise InputError(
            f"cannot bench index kind(s) {', '.join(map(repr, unknown)) or '(none given)'}; "
            f"choose from {', '.join(BENCH_CHOICES)}"
        )
    check_peers(peers)


@dataclass(frozen=True)
class AutoParams:
    """Stands in for IndexParams when the bench measures ``auto``."""

    seed: int = 0
    max_memory_mb: float | None = None
    kind: str = AUTO


@dataclass(frozen=True)
class OnDiskParams:
    """Stands in for IndexParams when the bench measures ``ivf-ondisk``: the ivf kind, lists on disk."""

    seed: int = 0
    shards: int = 4
    kind: str = ON_DISK

    def ivf(self) -> IndexParams:
        return IndexParams("ivf", seed=self.seed)


def bench_params(kind: str, d: int, seed: int, shards: int = 4) -> IndexParams | AutoParams | OnDiskParams:
    """The params ``indexer build`` uses for ``kind``, with PCA to at most d/4 dims (32 at d = 128)."""
    if kind == AUTO:
        return AutoParams(seed=seed)
    if kind == ON_DISK:
        return OnDiskParams(seed=seed, shards=shards)
    return IndexParams(kind, pca_dim=max(1, min(DEFAULT_PCA_DIM, d // 4)), seed=seed)


def index_bytes(index: Any) -> int:
    """Size of the serialised index in bytes (with an on-disk index's lists file)."""
    import faiss

    from indexer.core.ondisk_lists import data_bytes

    return int(faiss.serialize_index(index).size) + data_bytes(index)


def build_on_disk_in_memory_data(params: OnDiskParams, data: BenchData) -> tuple[Any, Any]:
    """An ``ivf-ondisk`` index over ``data.base``, its lists in a temporary file (deleted at once: the
    mapping keeps it readable until the index is freed)."""
    import shutil
    import tempfile
    from pathlib import Path

    from indexer.core.ondisk import build_on_disk

    folder = tempfile.mkdtemp(prefix="indexer-ondisk-")
    try:
        return build_on_disk(params.ivf(), lambda a, b: (data.base_ids[a:b], data.base[a:b]), len(data.base_ids),
                             data.base.shape[1], Path(folder) / "bench.faiss", shards=params.shards)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def bytes_per_vector(index: Any) -> float:
    """Serialised index size / ntotal (includes ids, centroids, graph links)."""
    return index_bytes(index) / max(1, index.ntotal)


def _expandedresults(index: Any, data: BenchData, k: int, rerank: Rerank):
    """Top-k after query expansion; a stored query is never expanded with, nor returned as, itself."""
    lookup = lookup_vectors(data.base_ids, data.base)
    if data.query_ids is None:
        return search_expanded(index, data.queries, k, lookup, rerank)
    scores, found = search_expanded(index, data.queries, min(k + 1, int(index.ntotal)), lookup, rerank,
                                    exclude_ids=data.query_ids)
    return drop_self(scores, found, data.query_ids, min(k, int(index.ntotal) - 1))


def expanded_latency_ms(index: Any, data: BenchData, k: int, rerank: Rerank, n: int) -> float:
    """Single-query p50 (ms, one thread) of the whole query-expansion path: two searches and a lookup."""
    from indexer.bench.timing import faiss_threads

    lookup = lookup_vectors(data.base_ids, data.base)
    times = []
    with faiss_threads(1):
        for i in range(min(n, len(data.queries))):
            started = time.perf_counter()
            search_expanded(index, data.queries[i : i + 1], k, lookup, rerank)
            times.append(time.perf_counter() - started)
    return float(np.median(times) * 1e3)


def faiss_direct_overhead(index: Any, queries: np.ndarray, k: int, n_repeats: int = 3) -> dict[str, float]:
    """Single-query p50 of our ``search()`` vs ``index.search`` directly, interleaved, one thread."""
    x = np.ascontiguousarray(queries, dtype=np.float32)
    ours, direct = [], []
    for _ in range(n_repeats):  # interleave so drift from other load hits both equally
        direct.append(single_query_seconds(index, x, k, search_fn=lambda ix, q, kk: ix.search(q, kk)))
        ours.append(single_query_seconds(index, x, k))
    ours_ms = float(np.median(np.concatenate(ours)) * 1e3)
    direct_ms = float(np.median(np.concatenate(direct)) * 1e3)
    return {
        "ours_p50_ms": ours_ms,
        "direct_p50_ms": direct_ms,
        "overhead_us_per_query": (ours_ms - direct_ms) * 1e3,
        "overhead_pct": 100.0 * (ours_ms - direct_ms) / direct_ms,
    }


NO_LABEL = np.iinfo(np.int64).min  # the label of a padding slot: no query has it


def _neighbour_labels(found: np.ndarray, base_ids: np.ndarray, base_labels: np.ndarray) -> np.ndarray:
    """(q, k) int64 labels of the found ids; padding (-1) gets NO_LABEL."""
    order = np.argsort(base_ids)
    sorted_ids = base_ids[order]
    at = np.clip(np.searchsorted(sorted_ids, found), 0, len(sorted_ids) - 1)
    known = (found >= 0) & (sorted_ids[at] == found)
    return np.where(known, np.asarray(base_labels, dtype=np.int64)[order][at], NO_LABEL)


def bench_kind(
    params: IndexParams,
    data: BenchData,
    exact: tuple[np.ndarray, np.ndarray],
    k: int,
    target_recall: float,
    *,
    n_latency: int = 200,
    n_tune_queries: int = 200,
    overhead_repeats: int = 3,
    with_sweep: bool = True,
    rerank: Rerank | None = None,
    keep: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], list[dict[str, float]]]:
    """Build one index over ``data.base``, tune it, and measure it. Returns (row, sweep).

    ``keep``: when given and the kind has a search knob, ``keep[kind]`` becomes a timer of the index (a
    setting -> (q,) seconds over the sweep queries), which holds the index until the caller drops it.

    ``rerank`` "qe": the label metrics (P@1, MAP@R, ...) come from expanded queries and the row adds
    ``rerank_ms_p50``, the single-query latency of the expanded search; fidelity (ann recall),
    tuning and the latency sweep stay those of the plain search. "dba" is applied to ``data.base``
    by :func:`run_bench` before this is called. ``params`` may be :class:`AutoParams`: the kind
    :func:`indexer.core.auto.build_auto` picks; or :class:`OnDiskParams`.
    """
    rerank = rerank or Rerank()
    exact_scores, exact_ids = exact
    choice = None
    if params.kind == AUTO:  # the kind indexer.core.auto picks, measured like any other
        index, info, choice, _ = build_auto(
            data.base, data.base_ids, target_recall=target_recall, k=k, seed=params.seed,
            max_memory_mb=params.max_memory_mb, tune_queries=data.tune_queries,
        )
    elif params.kind == ON_DISK:
        index, info = build_on_disk_in_memory_data(params, data)
    else:
        index, info = build_index(params, data.base, data.base_ids)
    tuned = tune_search_param(
        index, data.base, data.base_ids, k, target_recall, n_queries=n_tune_queries, seed=params.seed,
        queries=data.tune_queries,
    )
    labelled = data.base_labels is not None and data.query_labels is not None
    relevant = (
        relevant_counts(data.query_labels, data.base_labels, queries_in_reference=data.query_ids is not None)
        if labelled else None
    )
    depth = int(max(k, relevant.max(initial=0))) if labelled and data.deep_labels else k
    _, found = results(index, data.queries, data.query_ids, depth)
    plain_found = found
    if rerank.mode == "qe":
        _, found = _expandedresults(index, data, depth, rerank)
    lat = latency_ms(index, data.queries[:n_latency], k)
    size = index_bytes(index)
    settings = default_settings(index)
    row: dict[str, Any] = {
        "kind": params.kind,
        "system": "indexer",
        "factory": info.factory,
        "n": info.n,
        "d": info.d,
        "nlist": info.nlist,
        "nprobe": settings.get("nprobe"),
        "efSearch": settings.get("efSearch"),
        "tune_reached_target": None if tuned is None else tuned.reached,
        "tuned_recall": None if tuned is None else tuned.recall,
        "rerank": rerank.label(),
        "ann_recall_at_k": ann_recall_at_k(plain_found[:, :k], exact_ids, k, exact_scores=exact_scores),
        "search_ms_p50": lat["p50"],
        "search_ms_p95": lat["p95"],
        "search_ms_p99": lat["p99"],
        "qps": throughput_qps(index, data.queries, k),
        "qps_1t": 1e3 / lat["mean"],
        "build_s": info.build_s,
        "train_s": info.train_s,
        "add_s": info.add_s,
        "train_n": info.train_n,
        "bytes_per_vector": size / max(1, index.ntotal),
        "index_bytes": size,
        "our_overhead_pct": faiss_direct_overhead(
            index, data.queries[: min(n_latency, 200)], k, n_repeats=overhead_repeats
        )["overhead_pct"],
    }
    if rerank.mode == "qe":
        row["rerank_ms_p50"] = expanded_latency_ms(index, data, k, rerank, n_latency)
    if choice is not None:
        row.update(auto_kind=choice.params.kind, auto_reason=choice.reason)
    if labelled:
        quality = label_metrics(
            data.query_labels, _neighbour_labels(found, data.base_ids, data.base_labels), relevant, k
        )
        row.update(
            p_at_1=quality["precision_at_1"], p_at_k=quality["precision_at_k"], r_at_k=quality["recall_at_k"],
            f1_at_k=quality["f1_at_k"], map_at_r=quality["map_at_r"] if data.deep_labels else None,
        )
    curve = []
    if with_sweep and knob_of(index) is not None:
        n = min(SWEEP_QUERIES, len(data.queries))
        curve = sweep(
            index, data.queries[:n], (exact_scores[:n], exact_ids[:n]), k, n_latency=n,  # the peers time all n too
            query_ids=None if data.query_ids is None else data.query_ids[:n],
        )
        if keep is not None:
            keep[params.kind] = IndexTimer(index, data.queries[:n], k)
    return row, curve


def run_bench(
    data: BenchData,
    kinds: Sequence[str],
    *,
    k: int = 10,
    target_recall: float = 0.95,
    seed: int = 0,
    n_latency: int = 200,
    n_tune_queries: int = 200,
    overhead_repeats: int = 3,
    with_sweep: bool = True,
    progress: bool = True,
    desc: str = "bench",
    rerank: Rerank | None = None,
    peers: Sequence[str] = (),
    shards: int = 4,
    at_target_rounds: int = AT_TARGET_ROUNDS,
) -> dict[str, Any]:
    """Benchmark every kind (and every peer) on ``data``; returns {"results": [row per kind, then per
    peer], "sweeps": {kind: [...]}, "ground_truth_s", "data": {n, dim, lid, relative_contrast},
    "notes": [one line per missing peer]}.

    Each row: kind, factory, ann_recall_at_k (against exact search, ties tolerated),
    search_ms_p50/p95/p99 (one query at a time, one thread), qps (one batch, all threads),
    build_s, bytes_per_vector, index_bytes, nprobe / efSearch (tuned to ``target_recall``),
    our_overhead_pct, speedup_vs_flat (when flat ran), and with labels P@1, P@k, R@k, F1@k,
    MAP@R and map_at_r_change (against flat); ``rerank`` (its label) and, for "qe", rerank_ms_p50.

    ``at_target_rounds``: the at-target rows' latencies are timed again in this many interleaved rounds
    (:func:`indexer.bench.sweeps.retime_at_target`; 0: the sweep's single pass), which keeps every swept
    index and peer open until the end of the run.
    ``shards``: how many shards the ``ivf-ondisk`` kind is built in. ``rerank`` "dba" augments ``data.base``
    once before anything is built (the queries stay as
    they are, as they would at query time); ground truth is then exact search over the
    augmented vectors.
    """
    rerank = rerank or Rerank()
    if rerank.mode == "dba":
        from dataclasses import replace

        data = replace(data, base=augment_database(data.base, rerank.n, rerank.alpha))

    from indexer.bench.data_stats import data_stats
    from indexer.bench.peer_bench import bench_peers

    check_bench_kinds(kinds, peers)
    stats = data_stats(data.base, data.queries if data.query_ids is None else None, seed=seed)
    started = time.perf_counter()
    exact = exact_search(
        data.base, data.base_ids, data.queries, k + EXTRA_EXACT, exclude_self_ids=data.query_ids
    )
    ground_truth_s = time.perf_counter() - started
    results, sweeps = [], {}
    timers: dict[str, Any] | None = {} if at_target_rounds > 0 and with_sweep else None  # kind -> its timer
    try:
        iterator = _progress(list(kinds), progress, desc)
        for kind in iterator:
            if progress:
                iterator.set_postfix_str(kind, refresh=False)
            row, curve = bench_kind(
                bench_params(kind, data.base.shape[1], seed, shards), data, exact, k, target_recall,
                n_latency=n_latency, n_tune_queries=n_tune_queries, overhead_repeats=overhead_repeats,
                with_sweep=with_sweep, rerank=rerank, keep=timers,
            )
            results.append(row)
            if curve:
                sweeps[kind] = curve
        notes: list[str] = []
        if peers:
            peer_rows, peer_sweeps, notes = bench_peers(
                peers, base=data.base, base_ids=data.base_ids, queries=data.queries, exact=exact, k=k,
                target_recall=target_recall, query_ids=data.query_ids, tune_queries=data.tune_queries,
                metadata=data.metadata, n_sweep_queries=SWEEP_QUERIES, keep=timers,
            )
            results += peer_rows
            sweeps.update(peer_sweeps)
        rows = at_target(results, sweeps, target_recall)
        if timers:
            retime_at_target(rows, timers, at_target_rounds, seed)
    finally:
        for timer in (timers or {}).values():
            timer.close()
    flat = next((row for row in results if row["kind"] == "flat"), None)
    for row in results:
        row["speedup_vs_flat"] = flat["search_ms_p50"] / row["search_ms_p50"] if flat else None
        if row.get("map_at_r") is not None and flat is not None and flat.get("map_at_r") is not None:
            row["map_at_r_change"] = row["map_at_r"] - flat["map_at_r"]
    report = {"results": results, "sweeps": sweeps, "ground_truth_s": ground_truth_s, "data": stats, "notes": notes,
              "at_target": rows}
    if data.base_labels is not None and data.query_labels is not None and data.query_ids is not None:
        from indexer.bench.calibration import calibration, suggested_cutoff

        report["calibration"] = calibration(exact[0], exact[1], data.base_ids, data.base_labels, data.query_labels, k)
        report["suggested_min_score"] = suggested_cutoff(report["calibration"])
    return report


def _progress(items: list[str], enabled: bool, desc: str) -> Any:
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit="kind")
