"""Pick the smallest search setting (IVF nprobe / HNSW efSearch) that reaches a recall target."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from indexer.core.arrays import as_ids, as_vectors, check_k
from indexer.core.errors import InputError
from indexer.core.factory import find_ivf
from indexer.core.fidelity import ann_recall_at_k
from indexer.core.kinds import MAX_EF_SEARCH, NPROBE
from indexer.core.search import drop_self, exact_search, search
from indexer.core.settings import knob_of, search_parameters, set_default_settings


@dataclass(frozen=True)
class TuneResult:
    """Chosen setting and the (value, recall@k) pairs tried, in the order tried."""

    param_name: str  # "nprobe" or "efSearch"
    value: int
    recall: float
    reached: bool
    tried: list[tuple[int, float]] = field(default_factory=list)


def knob_range(index: Any, k: int) -> tuple[str, int, int] | None:
    """(knob, first value tried, largest value) for the index's search knob; None for exact kinds.

    nprobe runs from 1 to nlist; efSearch from max(16, k) to MAX_EF_SEARCH (below k FAISS uses k).
    """
    knob = knob_of(index)
    if knob is None:
        return None
    if knob == NPROBE:
        return knob, 1, int(find_ivf(index).nlist)
    return knob, max(16, k), MAX_EF_SEARCH


def tune_search_param(
    index: Any,
    base: np.ndarray,
    ids: np.ndarray | None = None,
    k: int = 10,
    target_recall: float = 0.95,
    n_queries: int = 200,
    seed: int = 0,
    apply: bool = True,
    queries: np.ndarray | None = None,
    exact: tuple[np.ndarray, np.ndarray, np.ndarray | None] | None = None,
) -> TuneResult | None:
    """Smallest nprobe / efSearch whose recall@k against exact search reaches the target.

    base: (n, d) float32, the vectors in the index, with their int64 ``ids``
    (default 0..n-1). Held-out ``queries`` (q, d) float32 are best; without them
    ``n_queries`` base rows are sampled with ``seed`` and each one's own id is
    excluded from both result lists, so finding itself earns nothing. (Indexed
    queries flatter HNSW: a stored vector's graph links already are its neighbours.)

    Search: doubling from 1 (efSearch: from max(16, k)), then bisecting; recall is
    assumed to rise with the setting. If even the largest value (nprobe = nlist,
    efSearch = MAX_EF_SEARCH) misses the target, ``reached=False`` and the value is
    the smallest reaching ``target_recall`` times the best recall seen. With
    ``apply`` the value becomes the index's stored default (do this before the index is
    shared); tuning itself searches with per-call settings. Exact kinds (flat, PCA): None.
    ``exact``: (queries, query_ids or None, (scores, ids) of their exact top k + 10) computed by the caller
    (an index larger than memory: :func:`indexer.core.ondisk.exact_search_in_shards`); ``base`` is then
    not read.
    """
    k = check_k(k)
    setting = knob_range(index, k)
    if setting is None:
        return None
    param, first, cap = setting
    if not 0.0 < target_recall <= 1.0:
        raise InputError(f"target_recall must be in (0, 1]; got {target_recall}")
    if exact is not None:
        xq, query_ids, (exact_scores, exact_ids) = as_vectors(exact[0], index.d, name="tuning queries"), *exact[1:]
    else:
        xb = as_vectors(base, index.d, name="base vectors")
        id_arr = np.arange(xb.shape[0], dtype=np.int64) if ids is None else as_ids(ids, xb.shape[0])
        if xb.shape[0] < k + 1:
            raise InputError(f"tuning recall@{k} needs at least {k + 1} base vectors; got {xb.shape[0]}")
        if queries is not None:
            xq, query_ids = as_vectors(queries, index.d, name="tuning queries"), None
        else:
            rng = np.random.default_rng(seed)
            rows = np.sort(rng.choice(xb.shape[0], size=min(n_queries, xb.shape[0]), replace=False))
            xq, query_ids = xb[rows], id_arr[rows]
        exact_scores, exact_ids = exact_search(xb, id_arr, xq, k + 10, exclude_self_ids=query_ids)

    def recall_at(value: int) -> float:  # per-call settings: the index itself is left alone
        params = search_parameters(index, **{param: value})
        if query_ids is None:
            _, found = search(index, xq, k, params=params)
        else:
            scores, found = search(index, xq, k + 1, params=params)
            _, found = drop_self(scores, found, query_ids, k)
        return ann_recall_at_k(found, exact_ids, k, exact_scores=exact_scores)

    tried: dict[int, float] = {}
    # efSearch below k acts as k in FAISS, so bisection never goes under k.
    floor = 0 if param == NPROBE else k - 1
    value, low = first, floor
    while True:
        tried[value] = recall_at(value)
        if tried[value] >= target_recall or value >= cap:
            break
        low, value = value, min(2 * value, cap)
    reached = tried[value] >= target_recall
    # Unreachable (PCA or PQ caps recall below the target): aim instead for the
    # target share of the best recall seen, so the setting is still economical.
    goal = target_recall if reached else target_recall * max(tried.values())
    if not reached:
        value = min(v for v, r in tried.items() if r >= goal)
        low = max([v for v in tried if v < value], default=floor)
    high = value  # bisect (low, high] for the smallest value reaching the goal
    while high - low > 1:
        mid = (low + high) // 2
        tried[mid] = recall_at(mid)
        if tried[mid] >= goal:
            high = mid
        else:
            low = mid
    value = high
    result = TuneResult(param, value, tried[value], reached, list(tried.items()))
    if apply:
        set_default_settings(index, **{param: value})
    return result


HELD_OUT_QUERIES = 200  # a graph build tunes on this many of its own vectors, added only once tuned
HELD_OUT_MIN_N = 1_000  # below this many vectors a graph is tuned on stored vectors (each excluding itself)


def held_out_rows(n: int, seed: int = 0, n_queries: int = HELD_OUT_QUERIES) -> np.ndarray | None:
    """Sorted seeded row positions a graph build withholds to tune on (None below ``HELD_OUT_MIN_N`` vectors).

    Stored vectors flatter a graph: its links already join each one to its neighbours, so a query that is itself
    indexed finds them at an efSearch far too small for a new photo (measured at 1M: tuned on stored vectors
    efSearch 15 gave held-out recall@10 0.876 against the 0.95 target).
    """
    if n < HELD_OUT_MIN_N:
        return None
    count = min(n_queries, n // 20)
    return np.sort(np.random.default_rng(seed).choice(n, size=count, replace=False))


def tune_held_out(index: Any, base: np.ndarray, ids: np.ndarray, rows: np.ndarray, *, k: int = 10,
                  target_recall: float = 0.95) -> TuneResult | None:
    """Tune ``index``, built from ``base`` without ``rows`` (``build_index(withhold=rows)``), with those rows as
    queries unseen by it, against exact search over the vectors it holds; then add them and apply the setting."""
    from indexer.core.build import add_vectors

    xb = as_vectors(base, index.d, name="base vectors")
    id_arr = as_ids(ids, xb.shape[0])
    rows = np.asarray(rows, dtype=np.int64)
    if int(index.ntotal) != xb.shape[0] - len(rows):
        raise InputError(f"the index holds {index.ntotal} vectors; tuning on {len(rows)} withheld rows expects "
                         f"{xb.shape[0] - len(rows)}")
    queries, withheld = xb[rows], id_arr[rows]
    depth = k + 10
    scores, found = exact_search(xb, id_arr, queries, depth + len(rows))
    held = np.isin(found, withheld)
    exact_scores = np.empty((len(rows), depth), dtype=np.float32)
    exact_ids = np.empty((len(rows), depth), dtype=np.int64)
    for row in range(len(rows)):  # each query's exact neighbours among the stored vectors (withheld ones dropped)
        keep = ~held[row]
        exact_scores[row], exact_ids[row] = scores[row][keep][:depth], found[row][keep][:depth]
    result = tune_search_param(index, None, k=k, target_recall=target_recall,
                               exact=(queries, None, (exact_scores, exact_ids)))
    add_vectors(index, queries, withheld)
    return result


FILTER_FRACTIONS = (0.5, 0.1, 0.01)  # selections the filtered setting is tuned at (see tune_filter_widening)
FILTER_MIN_SELECTED = 1_000  # smaller tuning selections say little (and the planner searches them exactly)


def tune_filter_widening(index: Any, base: np.ndarray, ids: np.ndarray | None = None, *, k: int = 10,
                         target_recall: float = 0.95, n_queries: int = 200, seed: int = 0,
                         fractions: tuple[float, ...] = FILTER_FRACTIONS, margin: float = 0.015,
                         queries: np.ndarray | None = None) -> dict[str, float]:
    """How many times its own nprobe / efSearch ``index`` needs, searched with a selector, to reach
    ``target_recall`` (plus ``margin``: the setting is picked on few queries and must hold on others) within a
    random selection of each fraction: ``{"0.1": 2.4, ...}`` (fractions whose
    selection would hold fewer than :data:`FILTER_MIN_SELECTED` vectors are left out; {} for exact kinds).

    The queries are the held-out ``queries`` when given (best, as for :func:`tune_search_param`), else
    ``n_queries`` base rows sampled with ``seed`` and left out of every selection (a stored vector would find
    itself). What a selection needs depends on the data and the index (20,000 clustered
    vectors at nprobe 4 of 128 lists needed 2.5x at 10 %; a realistic million at nprobe 37, 2.4x reached 0.955),
    so it is measured per index at build, like the unfiltered setting, and
    :func:`indexer.core.filtered.choose_plan` reads it back."""
    from indexer.core.filtered import Plan, Selection, search_within
    from indexer.core.settings import default_settings

    k = check_k(k)
    setting = knob_range(index, k)
    if setting is None:
        return {}
    param, _, cap = setting
    xb = as_vectors(base, index.d, name="base vectors")
    id_arr = np.arange(xb.shape[0], dtype=np.int64) if ids is None else as_ids(ids, xb.shape[0])
    goal = min(1.0, target_recall + margin)
    own = int(default_settings(index).get(param) or 1)
    own = own if param == NPROBE else max(own, k)  # FAISS's graph search uses max(efSearch, k)
    rng = np.random.default_rng(seed)
    if queries is not None:
        xq, others = as_vectors(queries, index.d, name="tuning queries"), np.arange(xb.shape[0])
    else:
        rows = rng.choice(xb.shape[0], size=min(n_queries, xb.shape[0]), replace=False)
        xq, others = xb[rows], np.setdiff1d(np.arange(xb.shape[0]), rows)
    table: dict[str, float] = {}
    for fraction in fractions:
        count = int(fraction * xb.shape[0])
        if count < max(FILTER_MIN_SELECTED, k):
            continue
        chosen = rng.choice(others, size=min(count, len(others)), replace=False)
        chosen = chosen[np.argsort(id_arr[chosen], kind="stable")]  # a selection is sorted by id
        selection = Selection(id_arr[chosen])
        _, truth = exact_search(xb[chosen], id_arr[chosen], xq, k)

        def reaches(value: int, selection: Selection = selection, truth: np.ndarray = truth) -> bool:
            _, found = search_within(index, xq, k, selection, Plan("filtered", len(selection), **{param: value}))
            return ann_recall_at_k(found, truth, k) >= goal

        value, low = own, own - 1
        while not reaches(value) and value < cap:
            low, value = value, min(2 * value, cap)
        while value - low > 1:  # bisect (low, value] for the smallest value reaching the target
            mid = (low + value) // 2
            low, value = (low, mid) if reaches(mid) else (mid, value)
        table[f"{fraction:g}"] = round(value / own, 3)
    return table
