"""IVF indexes whose inverted lists live in a file on disk (FAISS's ``OnDiskInvertedLists``), built shard by shard.

The build never holds all vectors at once. It reads rows through ``read_rows(start, stop)`` three times:

1. a seeded training sample (the same rule as :func:`indexer.core.build.training_sample`) trains the coarse
   quantizer once;
2. every shard is assigned to its lists, which gives each list's final length;
3. the data file is laid out once, list after list, exactly as FAISS's own ``merge_from_multiple`` lays it out
   (contrib ``ondisk.merge_ondisk``), and each shard's codes and ids are written into their lists.

FAISS's merge needs every shard's lists open at once and maps the whole output, so its resident memory grows
with N; here one shard is in memory at a time and the output's pages are handed back to the page cache after
each shard (``madvise(MADV_DONTNEED)`` on the shared file mapping: the data stays in the file and the cache).

The ``.faiss`` file holds the quantizer and the lists' offsets; the codes and ids are in
``<stem>.<token>.ivfdata`` beside it (a new token per build, so a reader of the previous index keeps a
consistent pair). Loading maps the data file read-only: queries touch only the lists they probe.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from indexer.core.errors import IndexerError, IndexFileError, InputError

DATA_SUFFIX = ".ivfdata"
MADV_DONTNEED = 4
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

    from indexer.core.build import BuildInfo, train_ivf, training_rows
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
        lists[a:b] = _assign(ivf, _vectors(x, d))
        report("assign", done, len(bounds))
    sizes = np.bincount(lists, minlength=ivf.nlist).astype(np.uint64)

    from indexer.core.index_io import index_paths

    data_path = _next_data_path(index_paths(faiss_path)[0])
    invlists = faiss.OnDiskInvertedLists(int(ivf.nlist), int(ivf.code_size), str(data_path))
    entry = int(ivf.code_size) + 8  # codes, then int64 ids
    with quiet_stdout():  # FAISS prints "resizing ..." on stdout
        invlists.update_totsize(max(int(sizes.sum()) * entry, 1))
    invlists.set_all_lists_sizes(faiss.swig_ptr(sizes))
    cursor = np.zeros(int(ivf.nlist), dtype=np.int64)
    for done, (a, b) in enumerate(bounds, 1):
        ids, x = read_rows(a, b)
        _write_shard(ivf, invlists, cursor, np.ascontiguousarray(ids, dtype=np.int64), _vectors(x, d),
                     lists[a:b])
        _drop_resident_pages(invlists)
        report("write", done, len(bounds))
    if not np.array_equal(cursor, sizes.astype(np.int64)):
        raise IndexerError("on-disk build: the shards did not fill their lists; the rows changed between passes")
    _fsync(data_path)
    ivf.replace_invlists(invlists, True)
    invlists.this.disown()
    index.ntotal = n
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
        scores, found = exact_search(_vectors(x, queries.shape[1]), np.asarray(ids, np.int64), queries,
                                     min(k, b - a), exclude_self_ids=exclude_self_ids)
        scores = np.concatenate([best_scores, scores], axis=1)
        found = np.concatenate([best_ids, found], axis=1)
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        best_scores, best_ids = np.take_along_axis(scores, top, 1), np.take_along_axis(found, top, 1)
    return best_scores, best_ids


def rewrite_on_disk(index: Any, *, remove: np.ndarray | None = None,
                    add: tuple[np.ndarray, np.ndarray] | None = None) -> int:
    """Remove ids from and/or add (ids, vectors) to an on-disk index by writing its lists to a new data file
    beside the old one (the quantizer is kept: no retraining); returns how many ids were removed.

    FAISS's in-place ``add``/``remove_ids`` cannot be used on lists laid out by a merge (their free-space
    book-keeping claims the whole file is free), so every change rewrites the file: O(N) work and disk,
    list by list, with one list in memory at a time. ``index`` is changed in place; other objects that map
    the old file keep reading it until they are closed."""
    import faiss

    from indexer.core.factory import find_ivf

    ivf = find_ivf(index)
    old = faiss.downcast_InvertedLists(ivf.invlists)
    nlist, code_size = int(ivf.nlist), int(ivf.code_size)
    remove = np.zeros(0, np.int64) if remove is None else np.asarray(remove, np.int64).reshape(-1)
    add_ids = np.zeros(0, np.int64) if add is None else np.ascontiguousarray(add[0], dtype=np.int64)
    add_x = np.empty((0, ivf.d), np.float32) if add is None else _vectors(add[1], ivf.d)
    add_lists = _assign(ivf, add_x) if len(add_ids) else np.zeros(0, np.int64)
    add_codes = np.empty((len(add_ids), code_size), dtype=np.uint8)
    if len(add_ids):
        ivf.encode_vectors(len(add_ids), faiss.swig_ptr(add_x), faiss.swig_ptr(add_lists),
                           faiss.swig_ptr(add_codes), False)
    order = np.argsort(add_lists, kind="stable")
    add_lists, add_ids, add_codes = add_lists[order], add_ids[order], add_codes[order]
    add_start = np.searchsorted(add_lists, np.arange(nlist + 1))

    kept = []  # per list: the boolean mask of old entries kept (None: all)
    sizes = np.zeros(nlist, dtype=np.uint64)
    for number in range(nlist):
        ids = _list_ids(old, number)
        mask = ~np.isin(ids, remove) if len(remove) and len(ids) else None
        kept.append(mask)
        sizes[number] = (len(ids) if mask is None else int(mask.sum())) + add_start[number + 1] - add_start[number]
    removed = int(old.compute_ntotal()) + len(add_ids) - int(sizes.sum())

    data_path = _next_data_path(Path(old.filename))
    new = faiss.OnDiskInvertedLists(nlist, code_size, str(data_path))
    with quiet_stdout():
        new.update_totsize(max(int(sizes.sum()) * (code_size + 8), 1))
    new.set_all_lists_sizes(faiss.swig_ptr(sizes))
    for number in range(nlist):
        ids, codes = _list_ids(old, number), _list_codes(old, number, code_size)
        if kept[number] is not None:
            ids, codes = ids[kept[number]], codes[kept[number]]
        a, b = add_start[number], add_start[number + 1]
        if b > a:
            ids, codes = np.concatenate([ids, add_ids[a:b]]), np.concatenate([codes, add_codes[a:b]])
        if len(ids):
            new.update_entries(number, 0, len(ids), faiss.swig_ptr(np.ascontiguousarray(ids)),
                               faiss.swig_ptr(np.ascontiguousarray(codes)))
        if number % 1024 == 1023:
            _drop_resident_pages(new)
    _fsync(data_path)
    ivf.replace_invlists(new, True)
    new.this.disown()
    index.ntotal = ivf.ntotal = int(sizes.sum())
    return removed


def is_on_disk(index: Any) -> bool:
    """True when ``index`` keeps its inverted lists in an ``.ivfdata`` file."""
    import faiss

    from indexer.core.factory import find_ivf

    ivf = find_ivf(index)
    return ivf is not None and isinstance(faiss.downcast_InvertedLists(ivf.invlists), faiss.OnDiskInvertedLists)


def data_file(index: Any) -> Path:
    """The ``.ivfdata`` file an on-disk index reads (as recorded in it)."""
    import faiss

    from indexer.core.factory import find_ivf

    return Path(faiss.downcast_InvertedLists(find_ivf(index).invlists).filename)


def read_on_disk(faiss_path: Path, flags: int = 0) -> Any:
    """Load an on-disk index: the ``.faiss`` part, then its data file from the same folder, mapped read-only."""
    import faiss

    from indexer.core.factory import find_ivf

    index = faiss.read_index(str(faiss_path), flags | faiss.IO_FLAG_SKIP_IVF_DATA)
    invlists = faiss.downcast_InvertedLists(find_ivf(index).invlists)
    data_path = faiss_path.parent / Path(invlists.filename).name
    if not data_path.is_file():
        raise IndexFileError(f"index {faiss_path} keeps its lists in {data_path.name}, which is missing")
    if data_path.stat().st_size < invlists.totsize:
        raise IndexFileError(f"{data_path} is shorter than index {faiss_path.name} needs (a partial copy?)")
    invlists.filename = str(data_path)
    invlists.read_only = True
    invlists.do_mmap()
    return index


def sweep_data_files(faiss_path: str | os.PathLike[str], keep: Path | None) -> int:
    """Delete the ``<stem>.*.ivfdata`` files beside ``faiss_path`` except ``keep``; returns how many went.
    (A reader that still maps an old one keeps its pages until it closes it.)"""
    faiss_path = Path(faiss_path)
    removed = 0
    for path in faiss_path.parent.glob(f"{faiss_path.stem}.*{DATA_SUFFIX}"):
        if keep is None or path.name != keep.name:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Silence what C code prints on file descriptor 1 (FAISS's progress lines) for the duration."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


# -- internals ---------------------------------------------------------------------------------------------------


def _vectors(x: np.ndarray, d: int) -> np.ndarray:
    from indexer.core.arrays import as_vectors

    return as_vectors(np.asarray(x, dtype=np.float32), d)


def _read_positions(read_rows: RowReader, bounds: list[tuple[int, int]], rows: np.ndarray,
                    d: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors) of the sorted row positions ``rows``, reading only the shards that hold some."""
    ids, vectors = [np.zeros(0, np.int64)], [np.empty((0, d), np.float32)]
    for start, stop in bounds:
        lo, hi = np.searchsorted(rows, [start, stop])
        if lo < hi:
            shard_ids, x = read_rows(start, stop)
            ids.append(np.asarray(shard_ids, np.int64)[rows[lo:hi] - start])
            vectors.append(_vectors(np.asarray(x)[rows[lo:hi] - start], d))
    return np.concatenate(ids), np.concatenate(vectors)


def _list_ids(invlists: Any, number: int) -> np.ndarray:
    import faiss

    size = int(invlists.list_size(number))
    return faiss.rev_swig_ptr(invlists.get_ids(number), size).copy() if size else np.zeros(0, np.int64)


def _list_codes(invlists: Any, number: int, code_size: int) -> np.ndarray:
    import faiss

    size = int(invlists.list_size(number))
    if not size:
        return np.empty((0, code_size), np.uint8)
    return faiss.rev_swig_ptr(invlists.get_codes(number), size * code_size).reshape(size, code_size).copy()


def _next_data_path(current: Path) -> Path:
    """A new data file name for the index whose data file is ``current`` (``<stem>.<token>.ivfdata``)."""
    stem = current.name.split(".")[0]
    return current.with_name(f"{stem}.{secrets.token_hex(4)}{DATA_SUFFIX}")


def _assign(ivf: Any, x: np.ndarray) -> np.ndarray:
    _, lists = ivf.quantizer.search(x, 1)
    return lists[:, 0].astype(np.int64)


def _write_shard(ivf: Any, invlists: Any, cursor: np.ndarray, ids: np.ndarray, x: np.ndarray,
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
        invlists.update_entries(number, int(cursor[number]), b - a, faiss.swig_ptr(ids[a:b]),
                                faiss.swig_ptr(codes[a:b]))
        cursor[number] += b - a


def _drop_resident_pages(invlists: Any) -> None:
    """Hand the written pages of the shared file mapping back to the page cache (they stay in the file)."""
    import ctypes

    import faiss

    size = int(invlists.totsize)
    if size == 0:
        return
    address = faiss.rev_swig_ptr(invlists.ptr, size).ctypes.data
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    libc.madvise(ctypes.c_void_p(address - address % os.sysconf("SC_PAGE_SIZE")), size, MADV_DONTNEED)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

