"""Compaction: folding a :class:`~indexer.core.segments.SegmentedIndex`'s pending changes into sealed indexes.

Three ways, by kind, none of which readers ever wait on for more than one small step:

- :func:`fold_in_place` (an IVF index in memory): the shared sealed index changes a few lists at a time, each
  step behind the versions' :class:`~indexer.core.segments.Gate`, so no second copy of it is ever held;
- :func:`fold_tail` (a graph): HNSW cannot change in place while it is searched, nor delete, and folding into a
  copy would hold two graphs. The main graph is left alone: the growing vectors, with the live ones of the
  previous tail, become a new small sealed graph, the tail, and deletions of main-graph vectors stay marks (as
  hnswlib's ``mark_deleted`` keeps them), saved with the index (:func:`indexer.core.index_io.save_segments`),
  until the tail or the marks outgrow :data:`TAIL_SHARE` / :data:`MARKS_SHARE` of the main graph;
- :func:`fold`: a new sealed index of the live set (a copy, or the index changed in place), for the other kinds
  and for a graph then.

:func:`rebase` publishes the result with the changes made while it ran.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from indexer.core.arrays import in_sorted
from indexer.core.errors import InputError
from indexer.core.memory import release_free_memory
from indexer.core.segments import SegmentedIndex

FOLD_STEP_LISTS = 64  # inverted lists changed per exclusive step of an in-place fold
FOLD_STEP_ROWS = 2048  # growing vectors assigned and encoded at a time (beside the queries)
ASSIGN_BLAS_ROWS = 256  # FAISS's exhaustive search tiles its queries by this many rows x 1,024 centroids (1 MiB;
# its default, 4,096 rows, is a 16 MiB buffer, which stayed resident in the heap after the fold, and was slower)
MERGE_BLOCK = 65_536  # sealed ids merged at a time when a fold lists the ids it leaves
TRIM_EVERY_STEPS = 1  # an in-place fold gives freed heap pages back every this many steps (a trim: ~1-2 ms)
TAIL_SHARE = 0.25  # a graph's tail (folded adds) stays a segment of its own while at most this share of the main graph
MARKS_SHARE = 0.25  # and the main graph's deletion marks stay marks while at most this share of it


def fold(index: SegmentedIndex, *, copy: bool = True, sidecar: dict | None = None) -> Any:
    """A sealed FAISS index holding exactly ``index``'s live vectors: the sealed index (cloned when
    ``copy``, else changed in place) without the deleted ids, with the growing vectors added.

    An HNSW graph cannot delete: its sealed ids marked deleted are rebuilt away from its own vectors, which
    needs the index's ``sidecar`` (its build params, see :func:`indexer.core.build.remove_from_index`).
    """
    from indexer.core.build import add_vectors, copy_index, remove_from_index

    sealed = copy_index(index.sealed) if copy else index.sealed
    marks = index.main_marks()
    if len(marks):
        if sidecar is None:
            from indexer.core.factory import find_hnsw

            if find_hnsw(sealed) is not None:
                raise InputError("folding deletions into an HNSW graph rebuilds it: pass its sidecar")
        sealed, _ = remove_from_index(sealed, sidecar or {}, marks)
    tail_ids, tail_vectors = index.tail_rows()
    if len(tail_ids):
        add_vectors(sealed, tail_vectors, tail_ids)
    if len(index.growing_ids):
        add_vectors(sealed, index.growing_vectors, index.growing_ids)
    return sealed


def can_fold_tail(index: SegmentedIndex) -> bool:
    """Whether :func:`fold_tail` applies: a graph whose tail (after this fold) and deletion marks stay within
    :data:`TAIL_SHARE` and :data:`MARKS_SHARE` of its main graph."""
    from indexer.core.factory import find_hnsw

    if find_hnsw(index.sealed) is None:
        return False
    main = int(index.sealed.ntotal)
    tail = len(index.tail_ids) + len(index.growing_ids)
    marks = index.main_marks()
    if in_sorted(marks, index.growing_ids).any():  # an id deleted from the main graph, then added again: its mark
        return False  # would hide the new vector in the tail too (marks name ids), so the main graph is rebuilt
    return tail <= TAIL_SHARE * main and len(marks) <= MARKS_SHARE * main


def fold_tail(index: SegmentedIndex, params: dict) -> tuple[Any | None, np.ndarray]:
    """(the new tail, the marks kept): a graph's compaction that never touches its main graph. The live rows of
    the tail and of the growing segment are built into a new small index of the same kind (``params``: the
    index's build params, its sidecar's ``"params"``; None when nothing is left), with the main graph's default
    search settings; the deletion marks on main-graph ids stay (sorted), those on the tail's go with it.
    O(tail + growing)."""
    import faiss

    from indexer.core.build import build_index
    from indexer.core.factory import IndexParams
    from indexer.core.settings import default_settings, set_default_settings

    tail_ids, tail_vectors = index.tail_rows()
    marks = index.main_marks()
    if len(tail_ids):
        ids, vectors = np.concatenate([tail_ids, index.growing_ids]), np.concatenate([tail_vectors,
                                                                                      index.growing_vectors])
    else:  # the first tail: the growing rows as they are (a view when none went), no copy
        ids, vectors = index.growing_ids, index.growing_vectors
    if not len(ids):
        return None, marks
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # this thread's build leaves the other cores to the queries (per thread)
    try:
        tail, _ = build_index(IndexParams.from_dict(params), vectors, ids)
    finally:
        faiss.omp_set_num_threads(threads)
    set_default_settings(tail, efSearch=default_settings(index.sealed).get("efSearch"))
    return tail, marks


def rebase(snapshot: SegmentedIndex, current: SegmentedIndex, sealed: Any,
           sealed_ids: np.ndarray | None = None, *, tail: Any | None = None,
           marks: np.ndarray | None = None) -> SegmentedIndex:
    """``current``'s live set over ``sealed``, the :func:`fold` of ``snapshot`` (an earlier version of the same
    sealed index): the growing vectors added since the snapshot stay growing, and what was deleted since (sealed
    ids, or growing ones the fold took in) is marked deleted. O(growing + deleted).

    After :func:`fold_tail` (``sealed`` is then the snapshot's own main index): ``tail`` is the new tail and
    ``marks`` the deletion marks it kept, which stay marks (saved, so not pending)."""
    later = ~np.isin(current.growing_ids, snapshot.growing_ids)
    deleted = np.union1d(np.setdiff1d(current.deleted, snapshot.deleted),
                         np.setdiff1d(snapshot.growing_ids, current.growing_ids))
    kept = 0
    if marks is not None:
        deleted, kept = np.union1d(deleted, marks), len(marks)
        # the old tail's ids out, the new tail's in: O(N) block by block (np.union1d would sort a million ids again,
        # holding the GIL long enough to stall the queries on other threads)
        sealed_ids = _merged_ids(snapshot.sealed_ids, snapshot.tail_ids, indexed_ids_of(tail))
    gate = current.gate if sealed is current.sealed else None  # folded in place: the same sealed index
    return SegmentedIndex(sealed, current.growing_ids[later], current.growing_vectors[later], deleted,
                          sealed_ids=sealed_ids, gate=gate, tail=tail, kept_marks=kept)


def indexed_ids_of(index: Any | None) -> np.ndarray:
    """The sorted ids ``index`` holds (none for None)."""
    from indexer.core.membership import indexed_ids

    return np.zeros(0, np.int64) if index is None else indexed_ids(index)


def can_fold_in_place(index: SegmentedIndex) -> bool:
    """Whether :func:`fold_in_place` applies: an IVF index (no transform, no id map, no direct map) whose
    inverted lists are in memory."""
    import faiss

    sealed = faiss.downcast_index(index.sealed)
    if not isinstance(sealed, faiss.IndexIVF) or sealed.direct_map.type != faiss.DirectMap.NoMap:
        return False
    return isinstance(faiss.downcast_InvertedLists(sealed.invlists), faiss.ArrayInvertedLists)


def fold_in_place(index: SegmentedIndex) -> np.ndarray:
    """Fold ``index``'s deletions and growing vectors into its own sealed IVF index, with no second copy of it,
    and return the sealed ids after the fold (sorted). Every other version over the same sealed index stays
    correct meanwhile: deleted rows are masked by their marks until they go, and a growing vector found both in
    the growing segment and in the sealed index counts once. Only one fold may run on a sealed index at a time
    (the caller's job).

    The work that reads (assigning and encoding the growing vectors, finding the lists with deleted rows,
    building each changed list's new content) runs beside the queries; each exclusive step only swaps the content
    of at most :data:`FOLD_STEP_LISTS` lists. A list is emptied and refilled in one call, so its storage is
    reallocated to its exact new size: appending to FAISS's lists would double their capacity (700 MB more for
    50,000 vectors added across a million)."""
    import faiss

    if not can_fold_in_place(index):
        raise InputError("fold_in_place: only an IVF index with its lists in memory changes in place")
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # this thread's FAISS calls leave the other cores to the queries (per thread)
    try:
        return _fold_in_place(index)
    finally:
        faiss.omp_set_num_threads(threads)


def _fold_in_place(index: SegmentedIndex) -> np.ndarray:
    import faiss

    sealed = faiss.downcast_index(index.sealed)
    lists = faiss.downcast_InvertedLists(sealed.invlists)
    growing_ids, growing_vectors, live = index.growing_rows()  # views of the shared buffer: no copy of the rows
    added = _rows_by_list(sealed, growing_vectors, live)
    kept = growing_ids if live is None else growing_ids[live]  # the growing ids the fold takes in
    changed = set(added)
    if len(index.deleted):
        for list_no in range(sealed.nlist):
            size = lists.list_size(list_no)
            if size and in_sorted(index.deleted, faiss.rev_swig_ptr(lists.get_ids(list_no), size)).any():
                changed.add(list_no)
    if added:
        index.gate.folded_into = True  # from now on, versions over this sealed index answer each id once
        index.gate.folded_ids = np.sort(kept)  # a delete of one of them meanwhile marks it
    order = sorted(changed)
    for start in range(0, len(order), FOLD_STEP_LISTS):
        contents = []
        for list_no in order[start:start + FOLD_STEP_LISTS]:  # beside the queries: only this fold changes lists
            ids, codes = _new_content(index, sealed, lists, list_no, added.get(list_no), growing_ids, growing_vectors)
            contents.append((list_no, lists.list_size(list_no), ids, codes))
        with index.gate.writing():
            for list_no, size, ids, codes in contents:
                lists.resize(list_no, 0)
                if len(ids):
                    lists.add_entries(list_no, len(ids), faiss.swig_ptr(ids), faiss.swig_ptr(codes))
                sealed.ntotal += len(ids) - size
        if (start // FOLD_STEP_LISTS) % TRIM_EVERY_STEPS == TRIM_EVERY_STEPS - 1:
            release_free_memory()  # the old lists' buffers, freed in the heap: back to the system
    merged = _merged_ids(index.sealed_ids, index.deleted, kept)
    release_free_memory()
    return merged


def _new_content(index: SegmentedIndex, sealed: Any, lists: Any, list_no: int, rows: np.ndarray | None,
                 growing_ids: np.ndarray, growing_vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ids, codes) list ``list_no`` holds after the fold: its rows not deleted, then the growing ``rows`` it is
    assigned, written straight into one array of the exact new size each (read from FAISS's own buffers, which
    only this fold changes: no copy of the old content, no concatenation)."""
    import faiss

    size, code_size = lists.list_size(list_no), lists.code_size
    old_ids = faiss.rev_swig_ptr(lists.get_ids(list_no), size) if size else np.zeros(0, np.int64)
    old_codes = (faiss.rev_swig_ptr(lists.get_codes(list_no), size * code_size).reshape(size, code_size)
                 if size else np.zeros((0, code_size), np.uint8))
    keep = ~in_sorted(index.deleted, old_ids) if len(index.deleted) and size else None
    kept = size if keep is None else int(keep.sum())
    more = 0 if rows is None else len(rows)
    ids = np.empty(kept + more, np.int64)
    codes = np.empty((kept + more, code_size), np.uint8)
    if keep is None:
        ids[:kept], codes[:kept] = old_ids, old_codes
    else:
        np.compress(keep, old_ids, out=ids[:kept])
        np.compress(keep, old_codes, axis=0, out=codes[:kept])
    if more:
        ids[kept:] = growing_ids[rows]
        codes[kept:] = _encoded(sealed, list_no, growing_vectors[rows])
    return ids, codes


def _merged_ids(sealed_ids: np.ndarray, deleted: np.ndarray, growing_ids: np.ndarray) -> np.ndarray:
    """Sorted ``sealed_ids`` without the sorted ``deleted``, with ``growing_ids`` merged in: O(N), written into
    the one new array a block of :data:`MERGE_BLOCK` ids at a time (no intermediate copy of a million ids; and
    ``np.union1d`` would sort them all again: 0.8 s holding the GIL, which stalled queries on other threads)."""
    added = np.unique(np.asarray(growing_ids, np.int64))
    if len(added) and len(sealed_ids):  # an id both sealed (live) and growing counts once
        added = added[~(in_sorted(sealed_ids, added) & ~in_sorted(deleted, added))]
    gone = int(in_sorted(sealed_ids, deleted).sum()) if len(deleted) and len(sealed_ids) else 0
    out = np.empty(len(sealed_ids) - gone + len(added), np.int64)
    filled = taken = 0
    for start in range(0, max(len(sealed_ids), 1), MERGE_BLOCK):
        block = sealed_ids[start:start + MERGE_BLOCK]
        if len(deleted):
            block = block[~in_sorted(deleted, block)]
        end = start + MERGE_BLOCK
        upto = len(added) if end >= len(sealed_ids) else taken + int(np.searchsorted(added[taken:], sealed_ids[end]))
        if upto > taken:
            block = np.sort(np.concatenate([block, added[taken:upto]]))
            taken = upto
        out[filled:filled + len(block)] = block
        filled += len(block)
    return out


def _rows_by_list(sealed: Any, vectors: np.ndarray, live: np.ndarray | None = None) -> dict[int, np.ndarray]:
    """{list number: rows of ``vectors`` the IVF index assigns to it}, the coarse assignment made in steps of
    :data:`FOLD_STEP_ROWS` (8 bytes a row are kept, not the codes: each list's rows are encoded only when its
    step comes, so a fold of 50,000 vectors holds a few lists' codes at a time, not 25 MB of them twice). Rows
    where the bool mask ``live`` is False are left out."""
    if not len(vectors) or (live is not None and not live.any()):
        return {}
    import faiss

    assign = np.empty(len(vectors), np.int64)
    # FAISS's tile size is one process-wide setting; it changes how a search is cut up, never what it answers, so
    # a search on another thread meanwhile is unaffected whichever value it reads
    tiles = faiss.cvar.distance_compute_blas_query_bs
    faiss.cvar.distance_compute_blas_query_bs = min(tiles, ASSIGN_BLAS_ROWS)
    try:
        for start in range(0, len(vectors), FOLD_STEP_ROWS):
            part = np.ascontiguousarray(vectors[start:start + FOLD_STEP_ROWS], np.float32)
            _, nearest = sealed.quantizer.search(part, 1)
            assign[start:start + len(part)] = nearest.reshape(-1)
    finally:
        faiss.cvar.distance_compute_blas_query_bs = tiles
    order = np.argsort(assign, kind="stable")
    if live is not None:
        order = order[live[order]]
    bounds = np.flatnonzero(np.diff(assign[order])) + 1
    return {int(assign[order[lo]]): order[lo:hi]
            for lo, hi in zip(np.concatenate([[0], bounds]), np.concatenate([bounds, [len(order)]]))}


def _encoded(sealed: Any, list_no: int, vectors: np.ndarray) -> np.ndarray:
    """(n, code_size) codes of (n, d) ``vectors`` as list ``list_no`` of the IVF index stores them (its own
    ``encode_vectors``); nothing of the index changes."""
    import faiss

    x = np.ascontiguousarray(vectors, np.float32)
    lists = np.full(len(x), list_no, np.int64)
    codes = np.empty((len(x), sealed.code_size), np.uint8)
    sealed.encode_vectors(len(x), faiss.swig_ptr(x), faiss.swig_ptr(lists), faiss.swig_ptr(codes))
    return codes
