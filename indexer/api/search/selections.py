"""What a filter selects, kept for reuse, and the search among it.

A filter (``where``) is answered by the catalog's SQL once; the selection (the matching ids and their FAISS
bitmap) is kept for later queries with the same filter, and so are the stored vectors an exact search over it
gathered (the next page asks for them again). :func:`search_selected` picks the plan: exact over the selection's
stored vectors when it is small, else the index's own search with a selector and a widened nprobe / efSearch.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from indexer.api.search.held import HeldIndex
from indexer.api.workspace import Workspace
from indexer.core.errors import InputError
from indexer.core.filtered import Plan, Selection
from indexer.core.rerank import Rerank

SELECTION_CACHE = 64  # filters whose selection a searcher keeps
SELECTION_TTL_S = 5.0  # the longest a kept selection is reused (another process may change the catalog)
GATHERED_BYTES = 128 * 2**20  # stored vectors kept for the exact plan of recent selections (a page after a page)
EXACT_MAX_ENV = "INDEXER_EXACT_MAX"  # at most this many selected vectors are searched exactly (default: by cost)

Stored = Callable[[np.ndarray], tuple[list[int], np.ndarray]]  # ids -> (ids with a stored vector, (n, d) vectors)


class Selections:
    """The selections of recent filters and the stored vectors gathered for them; safe from any thread.

    A kept selection is used while ``generation`` (the searcher's count of published changes) is the one it was
    made at and for at most :data:`SELECTION_TTL_S` (a change made by another process is seen within that
    time); at most :data:`SELECTION_CACHE` filters and :data:`GATHERED_BYTES` of vectors are kept, the least
    recently used dropped first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._selections: OrderedDict[str, tuple[float, int, Selection]] = OrderedDict()
        self._gathered: OrderedDict[int, tuple[Selection, np.ndarray, np.ndarray]] = OrderedDict()

    def matching(self, workspace: Workspace, where: str | None, generation: int) -> Selection | None:
        """The ok catalog images filter ``where`` matches (None without a filter); InputError naming what is
        wrong with the filter."""
        if where is None:
            return None
        from storage.filters import FilterError

        key, now = where.strip(), time.monotonic()
        with self._lock:
            cached = self._selections.get(key)
            if cached is not None and cached[1] == generation and now - cached[0] < SELECTION_TTL_S:
                self._selections.move_to_end(key)
                return cached[2]
        with workspace.catalog() as catalog:
            try:
                condition = catalog.parse_filter(where)  # the catalog's own fields and its user fields
            except FilterError as exc:
                raise InputError(str(exc)) from None
            selection = Selection(np.asarray(catalog.matching_ids(condition), np.int64))
        with self._lock:
            self._selections[key] = (now, generation, selection)
            self._selections.move_to_end(key)
            while len(self._selections) > SELECTION_CACHE:
                self._selections.popitem(last=False)
        return selection

    def gathered(self, allowed: Selection, stored: Stored) -> tuple[np.ndarray, np.ndarray]:
        """(ids with a stored vector, their (n, d) vectors) of selection ``allowed``, read by ``stored`` once and
        kept while the selection lives (a kept selection is replaced when the vectors or rows change, so its
        gathered vectors stay true)."""
        key = id(allowed)
        with self._lock:
            kept = self._gathered.get(key)
            if kept is not None and kept[0] is allowed:
                self._gathered.move_to_end(key)
                return kept[1], kept[2]
        found, vectors = stored(allowed.ids)
        found = np.asarray(found, np.int64)
        if vectors.nbytes <= GATHERED_BYTES:
            with self._lock:
                self._gathered[key] = (allowed, found, vectors)
                total = sum(kept_vectors.nbytes for _, _, kept_vectors in self._gathered.values())
                while total > GATHERED_BYTES:
                    _, (_, _, dropped) = self._gathered.popitem(last=False)
                    total -= dropped.nbytes
        return found, vectors


def search_selected(held: HeldIndex, vectors: np.ndarray, wanted: int, nprobe: int | None, rerank: Rerank,
                    allowed: Selection, gathered: Callable[[Selection], tuple[np.ndarray, np.ndarray]],
                    ) -> tuple[np.ndarray, np.ndarray, Plan]:
    """(scores, ids, plan) of a search of (q, d) float32 ``vectors`` among the ids ``allowed``: exactly over
    their stored vectors (``gathered``) when they are few, else the index's search with a selector and a widened
    nprobe / efSearch."""
    from indexer.core.filtered import choose_plan, exact_within, search_within

    if rerank.mode == "qe":
        raise InputError("a filter and re-ranking 'qe' together are not supported; drop one of them")
    plan = choose_plan(held.index, len(allowed), held.ntotal, k=wanted, nprobe=nprobe,
                       exact_max=0 if rerank.mode == "dba" else exact_max(),
                       widening=(held.sidecar.get("tuning") or {}).get("filter_widen"))
    if plan.kind == "exact":
        found, stored = gathered(allowed)
        scores, ids = exact_within(stored, found, vectors, wanted,
                                   inner_product=getattr(held.index, "inner_product", True))
        return scores, ids, plan
    return (*search_within(held.index, vectors, wanted, allowed, plan), plan)


def exact_max() -> int | None:
    """The ``INDEXER_EXACT_MAX`` environment variable's value (None: the planner's own cost rule)."""
    value = os.environ.get(EXACT_MAX_ENV)
    if value is None:
        return None
    try:
        return max(0, int(value))
    except ValueError:
        raise InputError(f"{EXACT_MAX_ENV}: expected a whole number; got {value!r}") from None

