"""Filtered search: only among the vectors whose ids a filter selected, with a plan chosen per query.

The caller (the API) asks the catalog which ids pass the filter; this module decides how to search them:

- ``exact``: few ids (fewer than the filtered search would compare, see :func:`choose_plan`, or an index
  with no approximate knob): their vectors are compared with the query (:func:`exact_within`), so recall is 1;
- ``post`` (IVF): most ids (at least :data:`POST_FROM` of the index): the index's unfiltered search for k / fraction x
  :data:`POST_OVERFETCH` results at :data:`POST_WIDEN` x its own setting, then the first k selected (no
  selector in the scan);
  "filtered" when a query keeps fewer than k;
- ``filtered``: many ids: the index's own search with a FAISS ``IDSelector`` over them in the per-call
  parameters, its nprobe / efSearch raised as the selection narrows, because an IVF list or a graph
  neighbourhood holds fewer selected vectors the more selective the filter is: nprobe by :func:`widened`
  (the inverse square root of the fraction selected), efSearch by the inverse fraction (FAISS's graph search
  keeps unselected nodes in its candidate list, so only a fraction f of its ef candidates can answer).

Selections are sorted int64 id arrays. Large ones travel to FAISS as a bitmap over the id range
(``IDSelectorBitmap``, built in one numpy pass), small ones as a hashed batch (``IDSelectorBatch``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from indexer.core.arrays import in_sorted
from indexer.core.factory import find_hnsw, find_ivf

EXACT_MIN = 2_000  # selections up to this many vectors are always searched exactly
POST_FROM = 0.25  # a selection of at least this fraction is searched unfiltered, then filtered
POST_OVERFETCH = 2.0  # ... for k / fraction x this many results, falling back to "filtered" when short
POST_WIDEN = 1.25  # ... at this many times the index's setting (without a measured table; with one, the filtered
#                    plan's widening: at one nprobe both plans scan the same lists and reached the same recall at
#                    1M, benchmarks/post_plan.py): its deeper ranks need more than its top 10
EXACT_COST = 2.0  # a selected vector compared exactly costs about this many vectors an index scans (the gather)
MAX_WIDEN = 16  # nprobe grows at most this many times for a narrow selection
WIDEN = 1.5  # nprobe x WIDEN / sqrt(fraction selected)
MAX_EF = 4096
BITMAP_FROM = 4_096  # selections of at least this many ids become a bitmap, smaller ones a hashed batch


@dataclass(frozen=True)
class Plan:
    """How one filtered search runs: ``kind`` "exact" or "filtered", ``selected`` ids passing the filter, and
    the nprobe / efSearch the filtered search uses (None where the index has no such knob)."""

    kind: str
    selected: int
    nprobe: int | None = None
    efSearch: int | None = None  # noqa: N815 - FAISS's name

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "selected": self.selected}
        if self.nprobe is not None:
            out["nprobe"] = self.nprobe
        if self.efSearch is not None:
            out["efSearch"] = self.efSearch
        return out


def choose_plan(index: Any, selected: int, total: int, *, k: int, nprobe: int | None = None,
                efSearch: int | None = None, exact_max: int | None = None,  # noqa: N803
                widening: Mapping[str, float] | None = None) -> Plan:
    """The plan for a selection of ``selected`` ids out of ``total`` vectors in ``index`` (a FAISS index or a
    segmented one). ``nprobe`` / ``efSearch``: the unfiltered setting asked for (default: the index's own).

    Exact when the selection is small (``exact_max``; default: at most :data:`EXACT_MIN`, or fewer than the
    vectors the filtered search would compare over :data:`EXACT_COST`, i.e. the widened nprobe's share of the
    lists, or efSearch x the graph's level-0 degree), or when the index has nothing approximate to widen.
    ``widening``: the index's measured table (:func:`indexer.core.tuning.tune_filter_widening`, kept in its
    sidecar); without it nprobe grows by :func:`widened` and efSearch by the inverse fraction."""
    sealed = getattr(index, "sealed", index)
    ivf, graph = find_ivf(sealed), find_hnsw(sealed)
    if ivf is None and graph is None:
        return Plan("exact", selected)
    if ivf is not None:
        base = nprobe if nprobe is not None else int(ivf.nprobe)
        times = widened(selected, total) if not widening else tuned_widening(widening, selected, total, graph=False)
        plan = Plan("filtered", selected, nprobe=min(int(ivf.nlist), math.ceil(base * times)))
        scanned = plan.nprobe * total / max(1, int(ivf.nlist))
    else:
        base = max(k, efSearch if efSearch is not None else int(graph.hnsw.efSearch))  # FAISS searches max(ef, k)
        times = total / max(selected, 1) if not widening else tuned_widening(widening, selected, total, graph=True)
        plan = Plan("filtered", selected, efSearch=min(MAX_EF, math.ceil(base * times)))
        scanned = plan.efSearch * int(graph.hnsw.nb_neighbors(0))
    limit = max(EXACT_MIN, scanned / EXACT_COST) if exact_max is None else exact_max
    if selected <= limit:
        return Plan("exact", selected)
    if ivf is not None and selected >= POST_FROM * total and exact_max is None:  # most pass: search, then keep
        post = POST_WIDEN if not widening else tuned_widening(widening, selected, total, graph=False)
        return Plan("post", selected, nprobe=min(int(ivf.nlist), math.ceil(base * post)))
    return plan  # a graph: its filtered search at 50 % cost 1.6x unfiltered at 1M, its post search 2.3x


def widened(selected: int, total: int) -> float:
    """How many times the unfiltered nprobe / efSearch a selection of ``selected`` of ``total`` needs:
    1.5 / sqrt(fraction selected), between 1 and :data:`MAX_WIDEN` (50 %: 2.1x; 10 %: 4.7x; 1 %: 15x).

    Measured on 20,000 clustered vectors tuned to recall@10 0.95 unfiltered (tests/indexer/core/test_filtered.py):
    the setting needed for 0.95 within a random selection grows about as the inverse square root of the
    fraction (IVF 2x at 10 %, 4x at 1 %; HNSW 2x at 10 %, 8x at 1 %), not as the inverse fraction."""
    if selected <= 0 or total <= 0:
        return 1.0
    return float(min(MAX_WIDEN, max(1.0, WIDEN * math.sqrt(total / selected))))


def tuned_widening(table: Mapping[str, float], selected: int, total: int, *, graph: bool) -> float:
    """The multiple of the unfiltered setting for a selection of ``selected`` of ``total``, from an index's
    measured ``{fraction: multiple}`` table: interpolated in log fraction between the measured points (and 1x
    at everything selected); below the narrowest point, grown as :func:`widened` grows (an IVF: the inverse
    square root of the fraction, at most :data:`MAX_WIDEN`) or as the inverse fraction (a graph)."""
    fraction = min(1.0, max(selected, 1) / max(total, 1))
    points = sorted([(float(f), float(w)) for f, w in table.items()] + [(1.0, 1.0)])
    narrowest, times = points[0]
    if fraction <= narrowest:
        grown = times * (narrowest / fraction if graph else math.sqrt(narrowest / fraction))
        return grown if graph else min(float(MAX_WIDEN), grown)
    for (low_f, low_w), (high_f, high_w) in zip(points, points[1:]):
        if fraction <= high_f:
            at = (math.log(fraction) - math.log(low_f)) / max(math.log(high_f) - math.log(low_f), 1e-12)
            return max(1.0, low_w + at * (high_w - low_w))
    return 1.0


class Selection:
    """A filter's selected ids (sorted, non-negative int64) with its FAISS bitmap, made once and shared by every
    query that reuses the selection (a cached filter): a query then pays only for its own deletion marks."""

    def __init__(self, ids: np.ndarray) -> None:
        self.ids = np.ascontiguousarray(ids, np.int64)
        self._bits: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def bits(self) -> np.ndarray:
        """The bitmap FAISS reads: bit (id & 7) of byte (id >> 3) set for every selected id (built on first use)."""
        if self._bits is None:
            mask = np.zeros(int(self.ids[-1]) + 1 if len(self.ids) else 0, bool)
            mask[self.ids] = True
            self._bits = np.packbits(mask, bitorder="little")
        return self._bits

    def selector(self, excluded: np.ndarray | None = None, excluded_bits: np.ndarray | None = None) -> Any:
        """A FAISS ``IDSelector`` admitting the selected ids but the sorted ``excluded`` ones (deletion marks;
        ``excluded_bits``: the same as a bitmap, when the caller has one): a hashed batch for a small selection,
        else a copy of the bitmap with those bits cleared."""
        import faiss

        excluded = None if excluded is None or not len(excluded) else excluded
        if len(self.ids) < BITMAP_FROM:
            ids = self.ids if excluded is None else self.ids[~in_sorted(excluded, self.ids)]
            return faiss.IDSelectorBatch(np.ascontiguousarray(ids))
        bits = self.bits
        if excluded is not None:
            bits = bits.copy()
            if excluded_bits is not None:  # one vectorised pass over the bytes
                common = min(len(bits), len(excluded_bits))
                bits[:common] &= np.invert(excluded_bits[:common])
            else:
                gone = excluded[excluded < 8 * len(bits)]
                np.bitwise_and.at(bits, gone >> 3, np.invert((1 << (gone & 7)).astype(np.uint8)))
        selector = faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits))
        selector.referenced = bits  # FAISS holds a raw pointer: keep the bytes alive
        return selector

    def holds(self, ids: np.ndarray) -> np.ndarray:
        """Which of ``ids`` are selected (a bool array the length of ``ids``; negative ids never are). A large
        selection reads its bitmap (one cached byte per id, where a binary search over a large id array
        misses the cache at every step); a small one searches its ids."""
        ids = np.asarray(ids, np.int64)
        if len(self.ids) < BITMAP_FROM:
            return in_sorted(self.ids, ids)
        bits = self.bits
        inside = (ids >= 0) & (ids < 8 * len(bits))
        safe = np.where(inside, ids, 0)
        return inside & ((bits[safe >> 3] >> (safe & 7).astype(np.uint8)) & 1).astype(bool)


def id_selector(ids: np.ndarray) -> Any:
    """A FAISS ``IDSelector`` that admits exactly the (sorted, non-negative) int64 ``ids``."""
    return Selection(ids).selector()


def as_selection(allowed: Selection | np.ndarray) -> Selection:
    """``allowed`` as a :class:`Selection` (sorted ids are wrapped)."""
    return allowed if isinstance(allowed, Selection) else Selection(allowed)


def search_within(index: Any, queries: np.ndarray, k: int, allowed: Selection | np.ndarray,
                  plan: Plan) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` of ``index`` among the ids ``allowed`` (a :class:`Selection`, or sorted ids) for a "filtered"
    ``plan``: a segmented index searches each segment within them, a FAISS index takes them as a selector.
    Padded as :func:`indexer.core.search.search` pads."""
    from indexer.core.search import search
    from indexer.core.settings import search_parameters

    allowed = as_selection(allowed)
    if plan.kind == "post":
        found = _post_filtered(index, queries, k, allowed, plan)
        if found is not None:
            return found
        total = getattr(index, "ntotal", len(allowed))
        ivf = find_ivf(getattr(index, "sealed", index))
        plan = Plan("filtered", plan.selected, nprobe=None if plan.nprobe is None else min(
            int(ivf.nlist), math.ceil(plan.nprobe * widened(plan.selected, total))), efSearch=plan.efSearch)
    if getattr(type(index), "segmented", False):
        return index.search(queries, k, nprobe=plan.nprobe, efSearch=plan.efSearch, allowed=allowed)
    params = search_parameters(index, nprobe=plan.nprobe, efSearch=plan.efSearch, selector=allowed.selector())
    return search(index, queries, k, params=params)


def _post_filtered(index: Any, queries: np.ndarray, k: int, allowed: Selection,
                   plan: Plan) -> tuple[np.ndarray, np.ndarray] | None:
    """The "post" plan: the unfiltered top k / fraction x :data:`POST_OVERFETCH`, then the first k selected of
    each row; None when a row keeps fewer than k while the index holds more (the caller falls back). Row by
    row, a few numpy calls each: at 1M an unfiltered IVF query takes ~0.2 ms, so every 10 us here is 5 % of
    the plan's ratio to it."""
    from indexer.core.search import PAD_ID, search

    total = int(getattr(index, "ntotal", 0))
    fetch = min(total, math.ceil(k * POST_OVERFETCH * total / max(plan.selected, 1)))
    if fetch <= 0:
        return None
    scores, ids = search(index, queries, fetch, nprobe=plan.nprobe, efSearch=plan.efSearch)
    keep = allowed.holds(ids.reshape(-1)).reshape(ids.shape)  # a padding id (-1) is never selected
    need = min(k, plan.selected)
    out_scores = np.full((len(ids), k), -np.inf if getattr(index, "inner_product", True) else np.inf, np.float32)
    out_ids = np.full((len(ids), k), PAD_ID, np.int64)
    for row in range(len(ids)):
        kept = np.flatnonzero(keep[row])[:k]
        if len(kept) < need and fetch < total:
            return None
        out_ids[row, :len(kept)] = ids[row, kept]
        out_scores[row, :len(kept)] = scores[row, kept]
    return out_scores, out_ids


def exact_within(vectors: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int,
                 inner_product: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` of (n, d) float32 ``vectors`` with ``ids`` for (q, d) ``queries`` by one matrix product (no
    index built): ((q, k) scores, (q, k) ids), best first, padded with -1 ids when n < k."""
    from indexer.core.search import PAD_ID

    x = np.ascontiguousarray(queries, np.float32)
    if inner_product:
        scores = x @ vectors.T
    else:
        scores = -(np.sum(x * x, 1)[:, None] - 2 * x @ vectors.T + np.sum(vectors * vectors, 1)[None, :])
    found = min(k, scores.shape[1])
    if found == 0:
        pad_scores = np.full((len(x), k), -np.inf if inner_product else np.inf, np.float32)
        return pad_scores, np.full((len(x), k), PAD_ID, np.int64)
    top = np.argpartition(-scores, found - 1, axis=1)[:, :found] if found < scores.shape[1] else \
        np.tile(np.arange(scores.shape[1]), (len(x), 1))
    best = np.take_along_axis(scores, top, 1)
    order = np.argsort(-best, axis=1, kind="stable")
    top, best = np.take_along_axis(top, order, 1), np.take_along_axis(best, order, 1)
    out_scores = (best if inner_product else -best).astype(np.float32)
    out_ids = np.asarray(ids, np.int64)[top]
    if found < k:
        out_scores = np.hstack([out_scores, np.full((len(x), k - found), -np.inf if inner_product else np.inf,
                                                    np.float32)])
        out_ids = np.hstack([out_ids, np.full((len(x), k - found), PAD_ID, np.int64)])
    return out_scores, out_ids
