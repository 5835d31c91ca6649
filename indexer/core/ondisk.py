"""IVF indexes whose inverted lists live in a file on disk (FAISS's ``OnDiskInvertedLists``), built shard by shard.

The build never holds all vectors at once. It reads rows through ``read_rows(start, stop)`` three times:

1. a seeded training sample (the same rule as :func:`indexer.core.build.training_sample`) trains the coarse
   quantizer once;
2. every shard is assigned to its lists, which gives each list's final length;
3. the data file is laid out once, list after list, exactly as FAISS's own ``merge_from_multiple`` lays it out
   (contrib ``ondisk.merge_ondisk``), and each shard's codes and ids are written into their lists.

FAISS's merge needs every shard's lists open at once and maps the whole output, so its resident memory grows
with N; here one shard is in memory at a time and its entries are written with ``pwrite`` at their lists'
offsets (:class:`indexer.core.ondisk_lists.ListsWriter`), never through a mapping, so the written pages stay in
the page cache and out of the build's resident memory.

The files, loading (mapped read-only: queries touch only the lists they probe) and changes (remove, add) are
:mod:`indexer.core.ondisk_lists`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from indexer.core.build import BuildInfo, train_ivf, training_rows
from indexer.core.errors import IndexerError, InputError
from indexer.core.ondisk_lists import (
    PREFETCH_THREADS,
    ListsWriter,
    assign_lists,
    float_vectors,
    next_data_path,
    quiet_stdout,
)
from indexer.core.settings import set_default_settings

RowReader = Callable[[int, int], tuple[np.ndarray, np.ndarray]]  # (start, stop) -> (ids, vectors)


def shard_bounds(n: int, shards: int) -> list[tuple[int, int]]:
    """``shards`` contiguous row ranges covering 0..n (the last ones may be one row shorter)."""
    if shards < 1:
        raise InputError(f"--shards must be at least 1; got {shards}")
    shards = min(shards, max(n, 1))
    edges = np.linspace(0, n, shards + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def build_on_disk(params, read_rows: RowReader, n: int, d: int, faiss_path: str | os.PathLike[str], *,
                  shards: int = 1, progress: Callable[[str, int, int], None] | None = None) -> tuple[Any, Any]:
    """Build an IVF index of kind ``params.kind`` over rows 0..n of ``read_rows`` with its lists on disk.

    ``faiss_path``: where the index will be saved; the data file is written beside it now. ``progress(stage,
    done, total)`` is called after each shard of each pass. Returns (index, BuildInfo); the caller saves the
    index with :func:`indexer.core.index_io.save_index` (which writes only the small ``.faiss`` part).
    """
    import faiss

    from indexer.core.factory import create_index, factory_string

    if n < 1:
        raise InputError("an on-disk index needs at least one vector")
    index = create_index(params, n, d)  # the factory's object, already of its own class (and its owner)
    ivf = index
    if not isinstance(index, faiss.IndexIVF):
        raise InputError(f"--on-disk needs an IVF kind without a pre-transform (ivf, ivfsq, ivfpq, ivf-hnsw); "
                         f"got {params.kind!r}")
    bounds = shard_bounds(n, shards)
    report = progress or (lambda stage, done, total: None)
    t0 = time.perf_counter()
    _, sample = _read_positions(read_rows, bounds, training_rows(n, int(ivf.nlist), params.seed), d)
    report("train", 1, 1)
    train_ivf(index, sample, params, n, d)
    train_s, train_n = time.perf_counter() - t0, len(sample)
    del sample

    t1 = time.perf_counter()
    lists = np.empty(n, dtype=np.int64)
    for done, (a, b) in enumerate(bounds, 1):
        _, x = read_rows(a, b)
        lists[a:b] = assign_lists(ivf, float_vectors(x, d))
        report("assign", done, len(bounds))
    sizes = np.bincount(lists, minlength=ivf.nlist).astype(np.uint64)

    data_path = next_data_path(Path(faiss_path))
    invlists = faiss.OnDiskInvertedLists(int(ivf.nlist), int(ivf.code_size), str(data_path))
    entry = int(ivf.code_size) + 8  # codes, then int64 ids
    with quiet_stdout():  # FAISS prints "resizing ..." on stdout
        invlists.update_totsize(max(int(sizes.sum()) * entry, 1))
    invlists.set_all_lists_sizes(faiss.swig_ptr(sizes))
    cursor = np.zeros(int(ivf.nlist), dtype=np.int64)
    writer = ListsWriter(data_path, sizes, int(ivf.code_size))
    try:
        for done, (a, b) in enumerate(bounds, 1):
            ids, x = read_rows(a, b)
            _write_shard(ivf, writer, cursor, np.ascontiguousarray(ids, dtype=np.int64), float_vectors(x, d),
                         lists[a:b])
            report("write", done, len(bounds))
    finally:
        writer.close()
    if not np.array_equal(cursor, sizes.astype(np.int64)):
        raise IndexerError("on-disk build: the shards did not fill their lists; the rows changed between passes")
    ivf.replace_invlists(invlists, True)
    invlists.prefetch_nthread = PREFETCH_THREADS
    invlists.this.disown()
    index.ntotal = n
    set_default_settings(index, nprobe=params.nprobe)
    info = BuildInfo(kind=params.kind, factory=factory_string(params, n, d), n=n, d=d, nlist=int(ivf.nlist),
                     train_n=train_n, train_s=train_s, add_s=time.perf_counter() - t1, seed=params.seed,
                     metric=params.metric)
    return index, info


def sample_rows(read_rows: RowReader, n: int, count: int, seed: int, d: int, shards: int = 1,
                ) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors) of ``count`` seeded rows of 0..n, read shard by shard."""
    rows = np.sort(np.random.default_rng(seed).choice(n, size=min(count, n), replace=False))
    return _read_positions(read_rows, shard_bounds(n, shards), rows, d)


def exact_search_in_shards(read_rows: RowReader, n: int, queries: np.ndarray, k: int, *, shards: int = 1,
                           exclude_self_ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top ``k`` of ``queries`` over rows 0..n, one shard in memory at a time.

    The same answer as :func:`indexer.core.search.exact_search` over all rows (ties aside)."""
    from indexer.core.search import exact_search

    best_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_ids = np.full((len(queries), k), -1, dtype=np.int64)
    for a, b in shard_bounds(n, shards):
        ids, x = read_rows(a, b)
        scores, found = exact_search(float_vectors(x, queries.shape[1]), np.asarray(ids, np.int64), queries,
                                     min(k, b - a), exclude_self_ids=exclude_self_ids)
        scores = np.concatenate([best_scores, scores], axis=1)
        found = np.concatenate([best_ids, found], axis=1)
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        best_scores, best_ids = np.take_along_axis(scores, top, 1), np.take_along_axis(found, top, 1)
    return best_scores, best_ids


def _read_positions(read_rows: RowReader, bounds: list[tuple[int, int]], rows: np.ndarray,
                    d: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors) of the sorted row positions ``rows``, reading only the shards that hold some.

    The output is allocated once and filled shard by shard (a 2.5M-row training sample is 1.3 GB at d = 128:
    gathering pieces and concatenating them would hold it twice)."""
    ids, vectors = np.empty(len(rows), np.int64), np.empty((len(rows), d), np.float32)
    for start, stop in bounds:
        lo, hi = np.searchsorted(rows, [start, stop])
        if lo < hi:
            shard_ids, x = read_rows(start, stop)
            ids[lo:hi] = np.asarray(shard_ids, np.int64)[rows[lo:hi] - start]
            vectors[lo:hi] = float_vectors(np.asarray(x)[rows[lo:hi] - start], d)
    return ids, vectors


def _write_shard(ivf: Any, writer: ListsWriter, cursor: np.ndarray, ids: np.ndarray, x: np.ndarray,
                 lists: np.ndarray) -> None:
    """Encode one shard for its lists and copy each list's run into the data file at that list's cursor."""
    import faiss

    codes = np.empty((len(x), int(ivf.code_size)), dtype=np.uint8)
    ivf.encode_vectors(len(x), faiss.swig_ptr(x), faiss.swig_ptr(lists), faiss.swig_ptr(codes), False)
    order = np.argsort(lists, kind="stable")
    lists, ids, codes = lists[order], np.ascontiguousarray(ids[order]), np.ascontiguousarray(codes[order])
    starts = np.flatnonzero(np.r_[True, lists[1:] != lists[:-1]]) if len(lists) else np.zeros(0, int)
    ends = np.r_[starts[1:], len(lists)]
    for a, b in zip(starts.tolist(), ends.tolist()):
        number = int(lists[a])
        writer.write(number, int(cursor[number]), ids[a:b], codes[a:b])
        cursor[number] += b - a
