"""Segments: a sealed FAISS index that never changes, a small growing segment and deletion marks.

A write costs what it changes: an add extends the growing segment (exact search over a few thousand
vectors), a delete adds a mark that the sealed index's search skips (a FAISS ``IDSelector`` in per-call
``SearchParameters``), and the sealed index itself is shared, untouched, by every version. Answers merge
the segments' top k. A graph may also hold a **tail**: a small second sealed index of its folded adds,
searched beside the main one. Folding the pending changes into the sealed index (compaction) is
:mod:`indexer.core.compaction`'s.

Every :class:`SegmentedIndex` is immutable: :meth:`SegmentedIndex.added` and :meth:`SegmentedIndex.removed`
return new objects that share the sealed index, so readers on other threads never see a change mid-search.
The one exception is an in-place fold of an IVF index in memory: it changes the shared sealed index a few lists
at a time, each step behind the versions' shared :class:`Gate`, so a query waits at most one step.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import numpy as np

from indexer.core.arrays import AppendBuffer, as_ids, as_vectors, in_sorted, sorted_inserted
from indexer.core.errors import InputError


class Gate:
    """Many readers at once, or one writer (an in-place fold step); a waiting writer goes before new readers."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._readers = 0
        self._writer = False
        self._waiting = 0
        self.folded_into: bool | None = None  # set once a fold added growing vectors to the sealed index in place
        self.folded_ids = np.zeros(0, np.int64)  # the growing ids the last in-place fold put in the sealed index

    @contextlib.contextmanager
    def reading(self):
        with self._condition:
            while self._writer or self._waiting:
                self._condition.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._condition:
                self._readers -= 1
                if not self._readers:
                    self._condition.notify_all()

    @contextlib.contextmanager
    def writing(self):
        with self._condition:
            self._waiting += 1
            while self._writer or self._readers:
                self._condition.wait()
            self._waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._condition:
                self._writer = False
                self._condition.notify_all()


class SegmentedIndex:
    """``sealed`` (a FAISS index with ids) + growing ``(ids, vectors)`` + ``deleted`` marks on sealed ids.

    ``tail``: a second, small sealed index of the same kind (a graph's folded adds, see :func:`indexer.core.compaction.fold_tail`),
    searched beside ``sealed``; its ids count as sealed ones. ``sealed_ids``: the sorted ids the sealed index (and
    the tail) hold (computed when omitted, O(N) once per sealed index; versions made by :meth:`added` /
    :meth:`removed` reuse it). ``kept_marks``: how many of ``deleted`` are already saved with the index file as
    marks (a graph's), so not pending. A write makes a new version that shares
    everything it does not change: the growing rows live in an :class:`AppendBuffer` that versions share (an
    add writes its rows past every version's count; a removed growing row is marked ``gone``, not copied out),
    and the deletion marks are a sorted array plus a bitmap that FAISS's selector reads (a delete copies the
    bitmap, one bit per id: 125 KiB at a million ids, never the index).
    """

    segmented = True  # what indexer.core.search and indexer.core.membership look for (they import nothing of here)

    def __init__(self, sealed: Any, growing_ids: np.ndarray | None = None, growing_vectors: np.ndarray | None = None,
                 deleted: np.ndarray | None = None, *, sealed_ids: np.ndarray | None = None,
                 gate: Gate | None = None, tail: Any | None = None, kept_marks: int = 0) -> None:
        import faiss

        from indexer.core.membership import indexed_ids

        self.sealed = sealed
        self.gate = gate if gate is not None else Gate()  # shared by every version over this sealed index
        self.d = int(sealed.d)
        self.metric_type = sealed.metric_type
        self.inner_product = sealed.metric_type == faiss.METRIC_INNER_PRODUCT
        self.tail = tail if tail is not None and tail.ntotal else None
        self.tail_ids = indexed_ids(self.tail) if self.tail is not None else np.zeros(0, np.int64)
        if sealed_ids is None:
            sealed_ids = indexed_ids(sealed)
            sealed_ids = np.union1d(sealed_ids, self.tail_ids) if len(self.tail_ids) else sealed_ids
        self.sealed_ids = sealed_ids
        self.kept_marks = kept_marks
        self._transform = _transform_of(sealed)  # growing vectors are compared in the sealed index's space
        self._rows = AppendBuffer(self.d)
        self._space = None if self._transform is None else AppendBuffer(self._space_dim())
        self._count = 0
        self.gone = np.zeros(0, np.int64)  # sorted ids of growing rows removed since they were added
        if growing_ids is not None and len(growing_ids):
            self._append_rows(as_ids(growing_ids, name="growing ids"), as_vectors(growing_vectors, self.d))
        self.deleted = np.zeros(0, np.int64) if deleted is None else np.unique(np.asarray(deleted, np.int64))
        self._bits = _with_bits(np.zeros(0, np.uint8), self.deleted)
        self._selector: Any | None = None  # made on first search, from _bits

    def _space_dim(self) -> int:
        return int(self._transform.apply(np.zeros((1, self.d), np.float32)).shape[1])

    def _append_rows(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Write rows after this (not yet published) version's count (see :class:`AppendBuffer`)."""
        count = self._count
        self._rows = self._rows.extended(count, ids, vectors)
        if self._space is not None:
            self._space = self._space.extended(count, ids, self._transform.apply(np.ascontiguousarray(vectors)))
        self._count = count + len(ids)

    def _version(self, *, deleted: np.ndarray | None = None, bits: np.ndarray | None = None,
                 gone: np.ndarray | None = None) -> SegmentedIndex:
        """A new version sharing this one's sealed index, growing rows and marks, but what is given."""
        version = object.__new__(SegmentedIndex)
        version.__dict__.update(self.__dict__)
        if deleted is not None:
            version.deleted, version._bits, version._selector = deleted, bits, None
        if gone is not None:
            version.gone = gone
        return version

    @property
    def growing_ids(self) -> np.ndarray:
        """(g,) int64 ids of the live growing rows, in the order they were added."""
        ids = self._rows.ids[:self._count]
        return ids[~in_sorted(self.gone, ids)] if len(self.gone) else ids

    def growing_rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(ids, vectors, live): views of every growing row written for this version (none copied) and a bool
        mask of the live ones (None: all are); what :attr:`growing_ids` / :attr:`growing_vectors` copy out."""
        ids, vectors = self._rows.ids[:self._count], self._rows.vectors[:self._count]
        return ids, vectors, (~in_sorted(self.gone, ids) if len(self.gone) else None)

    @property
    def growing_vectors(self) -> np.ndarray:
        """(g, d) float32 vectors of :attr:`growing_ids`."""
        vectors = self._rows.vectors[:self._count]
        return vectors[~in_sorted(self.gone, self._rows.ids[:self._count])] if len(self.gone) else vectors

    @property
    def ntotal(self) -> int:
        """Live vectors: sealed ones not marked deleted, plus the growing ones."""
        return len(self.sealed_ids) - len(self.deleted) + self._count - len(self.gone)

    @property
    def pending(self) -> int:
        """Changes not yet folded into the sealed index (growing vectors + deletion marks not yet saved)."""
        return self._count - len(self.gone) + len(self.deleted) - self.kept_marks

    def describe(self) -> dict[str, int]:
        """``{"sealed", "tail", "growing", "deleted"}``: vectors per segment (``sealed`` counts the tail's too)
        and deletion marks."""
        return {"sealed": len(self.sealed_ids), "tail": len(self.tail_ids), "growing": self._count - len(self.gone),
                "deleted": len(self.deleted)}

    def main_marks(self) -> np.ndarray:
        """The deletion marks on the main sealed index's ids (not the tail's), sorted."""
        return self.deleted[~in_sorted(self.tail_ids, self.deleted)] if len(self.tail_ids) else self.deleted

    def tail_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, vectors) of the tail's live rows (reconstructed from it; none without a tail)."""
        from indexer.core.build import stored_vectors

        if self.tail is None:
            return np.zeros(0, np.int64), np.zeros((0, self.d), np.float32)
        ids, vectors = stored_vectors(self.tail)
        live = ~in_sorted(self.deleted, ids)
        return ids[live], vectors[live]

    def ids(self) -> np.ndarray:
        """Sorted (n,) int64 live ids (O(N); the sealed ids themselves, not a copy, when nothing is pending)."""
        live = self.sealed_ids[~in_sorted(self.deleted, self.sealed_ids)] if len(self.deleted) else self.sealed_ids
        return sorted_inserted(live, self.growing_ids) if self._count else live  # no sort of a million ids again

    def sharing_ids(self, ids: np.ndarray) -> SegmentedIndex:
        """This version with ``ids`` as its sealed ids when they equal them (one array of a million ids held once,
        where a service's row table and stored vectors list the same ids); else this version itself."""
        if ids is self.sealed_ids or not np.array_equal(ids, self.sealed_ids):
            return self
        version = self._version()
        version.sealed_ids = ids
        return version

    def _growing_live(self, ids: np.ndarray) -> np.ndarray:
        """Which of ``ids`` are live growing rows of this version (O(len(ids)))."""
        return (self._rows.rows(ids, self._count) >= 0) & ~in_sorted(self.gone, ids)

    def holds(self, image_id: int) -> bool:
        """Whether ``image_id`` is live here (O(log N))."""
        image_id = np.array([int(image_id)], np.int64)
        return bool(self._growing_live(image_id)[0] or (in_sorted(self.sealed_ids, image_id)[0]
                                                         and not in_sorted(self.deleted, image_id)[0]))

    def added(self, ids: np.ndarray, vectors: np.ndarray) -> SegmentedIndex:
        """A version with (n,) ``ids`` and their (n, d) ``vectors`` in the growing segment (O(n), amortised)."""
        vectors = as_vectors(vectors, self.d, name="vectors to add")
        ids = as_ids(ids, len(vectors), name="ids to add")
        taken = (in_sorted(self.sealed_ids, ids) & ~in_sorted(self.deleted, ids)) | self._growing_live(ids)
        if taken.any():
            raise InputError(f"id {int(ids[taken][0])} is already indexed")
        if in_sorted(self.gone, ids).any():  # an id added again after its growing row went: one row per id
            base = SegmentedIndex(self.sealed, self.growing_ids, self.growing_vectors, self.deleted,
                                  sealed_ids=self.sealed_ids, gate=self.gate, tail=self.tail,
                                  kept_marks=self.kept_marks)
            return base.added(ids, vectors)
        version = self._version()
        version._append_rows(ids, vectors)
        return version

    def removed(self, ids: np.ndarray) -> tuple[SegmentedIndex, int]:
        """(a version without ``ids``, how many went): growing ones are marked gone, sealed ones marked deleted
        (O(n log N + deleted), the deleted part a copy of the sorted marks and of their bitmap); unknown ids
        are skipped."""
        ids = np.unique(np.asarray(ids, np.int64).reshape(-1))
        growing = ids[self._growing_live(ids)]
        in_sealed = in_sorted(self.sealed_ids, ids) | in_sorted(self.gate.folded_ids, ids)  # see compaction.fold_in_place
        sealed = ids[in_sealed & ~in_sorted(self.deleted, ids)]
        if not len(growing) and not len(sealed):
            return self, 0
        marks = {}
        if len(sealed):
            marks = {"deleted": sorted_inserted(self.deleted, sealed), "bits": _with_bits(self._bits, sealed)}
        version = self._version(gone=sorted_inserted(self.gone, growing) if len(growing) else None, **marks)
        return version, len(np.union1d(growing, sealed))

    def _deletion_selector(self) -> Any | None:
        """The FAISS selector that skips this version's deletion marks (made once per version)."""
        import faiss

        if not len(self.deleted):
            return None
        if self._selector is None:
            bits = self._bits
            marked = faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits))
            marked.referenced = bits  # FAISS holds raw pointers: keep the bytes and the inner selector alive
            selector = faiss.IDSelectorNot(marked)
            selector.referenced = marked
            self._selector = selector
        return self._selector

    def search(self, queries: np.ndarray, k: int, *, nprobe: int | None = None,
               efSearch: int | None = None, allowed: Any | None = None,  # noqa: N803
               ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` of the live vectors for (q, d) float32 ``queries``: ((q, k) scores, (q, k) ids), best
        first, padded as :func:`indexer.core.search.search` pads. ``allowed``: a filter's selection (a
        :class:`indexer.core.filtered.Selection`, or sorted ids); only those are answered (the sealed index
        searched with a selector over them, less the deletion marks)."""
        from indexer.core.filtered import as_selection
        from indexer.core.search import PAD_ID, search
        from indexer.core.settings import search_parameters

        params = None
        selector = self._deletion_selector()
        live = len(self.sealed_ids) - len(self.deleted)
        if allowed is not None:
            allowed = as_selection(allowed)
            selector = allowed.selector(self.deleted, self._bits) if len(allowed) else None
            live = len(allowed)
        if selector is not None:
            params = search_parameters(self.sealed, nprobe=nprobe, efSearch=efSearch, selector=selector)
        sealed_k = min(k, max(live, 0))
        if sealed_k:
            with self.gate.reading():
                scores, ids = search(self.sealed, queries, sealed_k, nprobe=nprobe, efSearch=efSearch, params=params)
        else:
            scores = np.zeros((len(queries), 0), np.float32)
            ids = np.zeros((len(queries), 0), np.int64)
        if sealed_k and self.tail is not None:  # the same selector: marks and a filter name ids, whichever segment
            tail_params = None if selector is None else search_parameters(self.tail, efSearch=efSearch,
                                                                          selector=selector)
            tail_k = min(sealed_k, int(self.tail.ntotal))
            scores, ids = _merge(scores, ids, *search(self.tail, queries, tail_k, efSearch=efSearch,
                                                      params=tail_params), self.inner_product)
        if self._count > len(self.gone):
            rows = self._rows.ids[:self._count]
            keep = ~in_sorted(self.gone, rows) if len(self.gone) else None
            if allowed is not None:
                keep = allowed.holds(rows) if keep is None else keep & allowed.holds(rows)
            if keep is None or keep.any():
                scores, ids = _merge(scores, ids, *self._search_growing(queries, k, keep), self.inner_product)
            if self.gate.folded_into:  # a vector folded in place may still be growing in this version: one answer each
                scores, ids = _unique_per_row(scores, ids, self.inner_product)
        if ids.shape[1] < k:  # fewer live vectors than k: pad as FAISS does
            pad = k - ids.shape[1]
            worst = -np.inf if self.inner_product else np.inf
            scores = np.hstack([scores, np.full((len(queries), pad), worst, np.float32)])
            ids = np.hstack([ids, np.full((len(queries), pad), PAD_ID, np.int64)])
        return np.ascontiguousarray(scores[:, :k]), np.ascontiguousarray(ids[:, :k])

    def _search_growing(self, queries: np.ndarray, k: int,
                        keep: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Exact top ``k`` over the growing rows (``keep``: the rows that count; the others never answer)."""
        x = np.ascontiguousarray(queries, np.float32)
        stored, growing_ids = self._rows.vectors[:self._count], self._rows.ids[:self._count]
        if self._transform is not None:
            x, stored = self._transform.apply(x), self._space.vectors[:self._count]
        if self.inner_product:
            scores = x @ stored.T
        else:
            scores = -(np.sum(x * x, 1)[:, None] - 2 * x @ stored.T + np.sum(stored ** 2, 1)[None, :])
        if keep is not None:  # masked, not copied out: the rows stay shared
            scores[:, ~keep] = -np.inf
        k = min(k, scores.shape[1] if keep is None else int(keep.sum()))
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < scores.shape[1] else np.argsort(-scores, axis=1)
        best = np.take_along_axis(scores, top, 1)
        order = np.argsort(-best, axis=1, kind="stable")
        top, best = np.take_along_axis(top, order, 1), np.take_along_axis(best, order, 1)
        return (best if self.inner_product else -best).astype(np.float32), growing_ids[top]


def _with_bits(bits: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """A copy of the bitmap ``bits`` (bit ``id & 7`` of byte ``id >> 3``, as FAISS's ``IDSelectorBitmap`` reads
    it) with the (non-negative) ``ids`` set, grown to cover them."""
    ids = np.asarray(ids, np.int64)
    size = max(len(bits), int(ids.max()) // 8 + 1) if len(ids) else len(bits)
    marked = np.zeros(size, np.uint8)
    marked[:len(bits)] = bits
    np.bitwise_or.at(marked, ids >> 3, (1 << (ids & 7)).astype(np.uint8))
    return marked


def _unique_per_row(scores: np.ndarray, ids: np.ndarray, inner_product: bool) -> tuple[np.ndarray, np.ndarray]:
    """Each row's first answer per id kept (rows are best first), the repeats padded at the end; O(k log k)."""
    from indexer.core.search import PAD_ID

    order = np.argsort(ids, axis=1, kind="stable")  # equal ids side by side, the better one first
    ordered = np.take_along_axis(ids, order, 1)
    repeat_sorted = np.zeros(ids.shape, bool)
    repeat_sorted[:, 1:] = (ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)
    repeat = np.empty_like(repeat_sorted)
    np.put_along_axis(repeat, order, repeat_sorted, 1)
    if not repeat.any():
        return scores, ids
    keep_first = np.argsort(repeat, axis=1, kind="stable")
    scores = np.take_along_axis(scores, keep_first, 1)
    ids = np.take_along_axis(ids, keep_first, 1)
    moved = np.take_along_axis(repeat, keep_first, 1)
    scores[moved] = -np.inf if inner_product else np.inf
    ids[moved] = PAD_ID
    return scores, ids


def _transform_of(sealed: Any) -> Any:
    """The sealed index's vector transform (PCA, normalisation) when it has one, else None."""
    import faiss

    current = faiss.downcast_index(sealed)
    while isinstance(current, (faiss.IndexIDMap, faiss.IndexIDMap2)):
        current = faiss.downcast_index(current.index)
    if not isinstance(current, faiss.IndexPreTransform):
        return None
    return _Chain([current.chain.at(i) for i in range(current.chain.size())])


class _Chain:
    """A transform's steps applied in order to (n, d) float32 rows (FAISS's own ``apply``)."""

    def __init__(self, steps: list[Any]) -> None:
        self.steps = steps

    def apply(self, x: np.ndarray) -> np.ndarray:
        for step in self.steps:
            x = step.apply(np.ascontiguousarray(x, np.float32))
        return x


def _contains(sorted_ids: np.ndarray, value: int) -> bool:
    position = int(np.searchsorted(sorted_ids, value))
    return position < len(sorted_ids) and int(sorted_ids[position]) == value


def _merge(scores_a: np.ndarray, ids_a: np.ndarray, scores_b: np.ndarray, ids_b: np.ndarray,
           inner_product: bool) -> tuple[np.ndarray, np.ndarray]:
    """Two (q, *) result lists merged best first (padding ids sort last)."""
    scores = np.hstack([scores_a, scores_b])
    ids = np.hstack([ids_a, ids_b])
    key = np.where(ids < 0, np.inf, -scores if inner_product else scores)
    order = np.argsort(key, axis=1, kind="stable")
    return np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)
