"""Filtered search at scale: recall and latency within selections of 0.1 % to 50 % (``indexer bench --filters``).

Seeded synthetic vectors (the bench's generators) get two generated fields, independent of where a vector lies:
``category``, a label-like text field of 1,000 values (a selection of fraction f is ``category in`` the first
f x 1,000 values), and ``value``, a uniform number in [0, 1) (``value < f``). For each index kind (tuned to the
target recall unfiltered, as ``indexer build`` tunes it) and each selection, the plan the service would run
(:func:`indexer.core.filtered.choose_plan`: exact over the selected vectors when few, else the index's search
with a selector and a setting widened by the index's measured table, as ``indexer build`` measures it:
:func:`indexer.core.tuning.tune_filter_widening`) answers every query one at a time; recall@k is measured against exact
search within the selection, and p50 against the same index's unfiltered p50. The catalog's part (the SQL that
finds the selection) is not in these figures: the selection is computed once per filter with numpy and reused by
every query, as the service reuses a repeated filter's selection and bitmap (``Searcher._selection``).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from indexer.bench.peers.field_filter import FieldFilter
from indexer.bench.selection_recall import recall_within
from indexer.core.build import build_index
from indexer.core.errors import InputError
from indexer.core.factory import IndexParams
from indexer.core.filtered import Selection, choose_plan, exact_within, search_within
from indexer.core.search import exact_search, search
from indexer.core.tuning import tune_filter_widening, tune_search_param

CATEGORIES = 1_000
DEFAULT_FRACTIONS = (0.001, 0.01, 0.1, 0.5)
FIELDS = ("category", "value")


def generated_fields(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """((n,) int64 category numbers in [0, 1,000), (n,) float64 values in [0, 1)) of ids 0..n-1."""
    rng = np.random.default_rng(seed + 17)
    return rng.integers(0, CATEGORIES, n), rng.random(n)


def category_name(number: int) -> str:
    """The text a peer stores for category ``number``: "c0042"."""
    return f"c{int(number):04d}"


def selections(n: int, fractions: tuple[float, ...], seed: int) -> dict[tuple[str, float], np.ndarray]:
    """{(field, fraction): sorted ids 0..n-1 selected}: ``category in`` the first fraction x 1,000 categories,
    and ``value < fraction``."""
    category, value = generated_fields(n, seed)
    out = {}
    for fraction in fractions:
        out[("category", fraction)] = np.flatnonzero(category < _categories_in(fraction)).astype(np.int64)
        out[("value", fraction)] = np.flatnonzero(value < fraction).astype(np.int64)
    return out


def _categories_in(fraction: float) -> int:
    return max(1, round(fraction * CATEGORIES))


def field_filters(fractions: tuple[float, ...]) -> dict[tuple[str, float], FieldFilter]:
    """The same selections as :func:`selections`, as filters a peer runs on its stored metadata."""
    out = {}
    for fraction in fractions:
        out[("category", fraction)] = FieldFilter("category", tuple(map(category_name, range(_categories_in(fraction)))))
        out[("value", fraction)] = FieldFilter("value", below=float(fraction))
    return out


def peer_metadata(n: int, seed: int) -> list[dict[str, Any]]:
    """One row per id 0..n-1, the generated fields as a peer stores them: {"category": "c0042", "value": 0.31}."""
    category, value = generated_fields(n, seed)
    return [{"category": category_name(c), "value": float(v)} for c, v in zip(category.tolist(), value.tolist())]


def _timed(run, queries: np.ndarray) -> tuple[np.ndarray, list[float]]:
    ids, times = [], []
    run(queries[:1])  # warm-up
    for query in queries:
        started = time.perf_counter()
        _, found = run(query[None, :])
        times.append((time.perf_counter() - started) * 1e3)
        ids.append(found[0])
    return np.array(ids), times


def run_filtered_bench(base: np.ndarray, queries: np.ndarray, tune_queries: np.ndarray | None, kinds: list[str], *,
                       k: int = 10, target_recall: float = 0.95, fractions: tuple[float, ...] = DEFAULT_FRACTIONS,
                       seed: int = 0, exact_max: int | None = None, peers: tuple[str, ...] = (),
                       log=None) -> dict[str, Any]:
    """Rows of {kind, system, field, fraction, selected, plan, nprobe, efSearch, recall, p50_ms, p99_ms,
    unfiltered_p50_ms, ratio} for every kind and selection, then the ``peers``' rows for the same selections
    through their own filters (:mod:`indexer.bench.peer_filtered`; they need ``tune_queries``); ``notes``
    has a line per missing or failed peer."""
    n = len(base)
    ids = np.arange(n, dtype=np.int64)
    chosen = selections(n, fractions, seed)
    truths = {key: exact_search(base[allowed], allowed, queries, k)[1] if len(allowed) else None
              for key, allowed in chosen.items()}
    rows = []
    for kind in kinds:
        started = time.perf_counter()
        index, _ = build_index(IndexParams(kind=kind, seed=seed), base, ids)
        tuned = tune_search_param(index, base, ids, k=k, target_recall=target_recall, queries=tune_queries)
        widening = tune_filter_widening(index, base, ids, k=k, target_recall=target_recall, seed=seed,
                                        queries=tune_queries)
        build_s = time.perf_counter() - started
        _, plain_times = _timed(lambda q, index=index: search(index, q, k), queries)
        plain_p50 = float(np.median(plain_times))
        if log:
            log(f"{kind}: built and tuned in {build_s:.0f} s ({tuned.param_name if tuned else 'exact'} "
                f"{tuned.value if tuned else ''}; filtered widening {widening}); unfiltered p50 {plain_p50:.3f} ms")
        for (field, fraction), allowed in chosen.items():
            plan = choose_plan(index, len(allowed), n, k=k, exact_max=exact_max, widening=widening)
            if plan.kind == "exact":
                def run(q, allowed=allowed):  # the service gathers the selected vectors, then one product
                    return exact_within(base[allowed], allowed, q, k)
            else:
                selection = Selection(allowed)  # made once, as the service keeps a repeated filter's

                def run(q, selection=selection, plan=plan, index=index):
                    return search_within(index, q, k, selection, plan)
            found, times = _timed(run, queries)
            row = {"kind": kind, "system": "indexer", "field": field, "fraction": fraction, "selected": int(len(allowed)),
                   "plan": plan.kind, "nprobe": plan.nprobe, "efSearch": plan.efSearch,
                   "recall": round(recall_within(found, truths[(field, fraction)]), 4),
                   "p50_ms": round(float(np.median(times)), 3),
                   "p99_ms": round(float(np.percentile(times, 99)), 3), "unfiltered_p50_ms": round(plain_p50, 3),
                   "ratio": round(float(np.median(times)) / plain_p50, 2), "build_s": round(build_s, 1),
                   "widening": widening}
            rows.append(row)
            if log:
                log(" ".join(f"{key} {value}" for key, value in row.items()))
    notes: list[str] = []
    if peers:
        # the peers' packages are imported only when asked for
        from indexer.bench.peer_filtered import bench_peers_filtered

        if tune_queries is None:
            raise InputError("the filtered bench's peers are tuned on held-out queries; tune_queries is None")
        tune_truths = {key: exact_search(base[allowed], allowed, tune_queries, k)[1] for key, allowed in chosen.items()}
        tune_truths[None] = exact_search(base, ids, tune_queries, k)[1]
        peer_rows, notes = bench_peers_filtered(
            peers, base=base, ids=ids, queries=queries, tune_queries=tune_queries, metadata=peer_metadata(n, seed),
            filters=field_filters(fractions), truths=truths, tune_truths=tune_truths, k=k,
            target_recall=target_recall, log=log)
        rows += peer_rows
    return {"rows": rows, "n": n, "d": int(base.shape[1]), "k": k, "fractions": list(fractions),
            "exact_max": exact_max, "target_recall": target_recall, "peers": list(peers), "notes": notes}


def filtered_table(report: dict[str, Any]) -> str:
    """The report as a Markdown table."""
    lines = ["| kind | field | selected | plan | setting | recall@10 | p50 ms | p99 ms | / unfiltered p50 |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in report["rows"]:
        if row["field"] is None:  # a peer without a native filter: said so, not dropped
            lines.append(f"| {row['kind']} {row['version']} | - | - | {row['plan']} | - | - | - | - | - |")
            continue
        if row.get("system") == "peer":
            lines.append(_peer_line(row))
            continue
        setting = (f"nprobe {row['nprobe']}" if row["nprobe"] else f"efSearch {row['efSearch']}"
                   if row["efSearch"] else "-")
        lines.append(f"| {row['kind']} | {row['field']} | {row['fraction']:.1%} ({row['selected']:,}) | {row['plan']} "
                     f"| {setting} | {row['recall']:.3f} | {row['p50_ms']:.3f} | {row['p99_ms']:.3f} | "
                     f"{row['ratio']:.2f}x (of {row['unfiltered_p50_ms']:.3f}) |")
    return "\n".join(lines)


def _peer_line(row: dict[str, Any]) -> str:
    """A peer's row: its own filter form and knob; "(target not reached)" when the grid's top fell short;
    its ratio is to its own unfiltered p50 at its own unfiltered setting."""
    setting = row["setting"] + ("" if row["reached"] else " (target not reached)")
    return (f"| {row['kind']} {row['version']} | {row['field']} | {row['fraction']:.1%} ({row['selected']:,}) | "
            f"{row['plan']} | {setting} | {row['recall']:.3f} | {row['p50_ms']:.3f} | {row['p99_ms']:.3f} | "
            f"{row['ratio']:.2f}x (of {row['unfiltered_p50_ms']:.3f} at {row['unfiltered_setting']}) |")
