"""The lists file of an on-disk IVF index (FAISS's ``OnDiskInvertedLists``): load it mapped, change it, sweep it.

An on-disk index's ``.faiss`` file holds the quantizer and each list's offset and length; its codes and ids
are in ``<stem>.<token>.ivfdata`` beside it (a new token for every build or change, so a reader of the previous
version keeps a consistent pair until it closes it). Built by :mod:`indexer.core.ondisk`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from indexer.core.errors import IndexFileError

DATA_SUFFIX = ".ivfdata"
PREFETCH_THREADS = 0  # FAISS starts 32 threads per search to prefetch lists; from the page cache that costs ms


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
    add_x = np.empty((0, ivf.d), np.float32) if add is None else float_vectors(add[1], ivf.d)
    add_lists = assign_lists(ivf, add_x) if len(add_ids) else np.zeros(0, np.int64)
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

    data_path = next_data_path(Path(old.filename))
    new = faiss.OnDiskInvertedLists(nlist, code_size, str(data_path))
    with quiet_stdout():
        new.update_totsize(max(int(sizes.sum()) * (code_size + 8), 1))
    new.set_all_lists_sizes(faiss.swig_ptr(sizes))
    writer = ListsWriter(data_path, sizes, code_size)
    try:
        for number in range(nlist):
            ids, codes = _list_ids(old, number), _list_codes(old, number, code_size)
            if kept[number] is not None:
                ids, codes = ids[kept[number]], codes[kept[number]]
            a, b = add_start[number], add_start[number + 1]
            if b > a:
                ids, codes = np.concatenate([ids, add_ids[a:b]]), np.concatenate([codes, add_codes[a:b]])
            if len(ids):
                writer.write(number, 0, ids, codes)
    finally:
        writer.close()
    ivf.replace_invlists(new, True)
    new.prefetch_nthread = PREFETCH_THREADS
    new.this.disown()
    index.ntotal = ivf.ntotal = int(sizes.sum())
    return removed


def is_on_disk(index: Any) -> bool:
    """True when ``index`` keeps its inverted lists in an ``.ivfdata`` file."""
    import faiss

    from indexer.core.factory import find_ivf

    ivf = find_ivf(index)
    return ivf is not None and isinstance(faiss.downcast_InvertedLists(ivf.invlists), faiss.OnDiskInvertedLists)


def without_prefetch(index: Any) -> Any:
    """``index`` with FAISS's list prefetch threads turned off (when its lists are on disk); returns it."""
    import faiss

    from indexer.core.factory import find_ivf

    if is_on_disk(index):
        faiss.downcast_InvertedLists(find_ivf(index).invlists).prefetch_nthread = PREFETCH_THREADS
    return index


def data_bytes(index: Any) -> int:
    """Size of an on-disk index's lists file (0 for any other index)."""
    import faiss

    from indexer.core.factory import find_ivf

    return int(faiss.downcast_InvertedLists(find_ivf(index).invlists).totsize) if is_on_disk(index) else 0


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
    invlists.prefetch_nthread = PREFETCH_THREADS
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


def float_vectors(x: np.ndarray, d: int) -> np.ndarray:
    from indexer.core.arrays import as_vectors

    return as_vectors(np.asarray(x, dtype=np.float32), d)


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


def next_data_path(current: Path) -> Path:
    """A new data file name beside ``current`` (the index's ``name.faiss`` or its data file
    ``name.<token>.ivfdata``): ``name.<new token>.ivfdata``."""
    stem = current.name.split(".")[0]
    return current.with_name(f"{stem}.{secrets.token_hex(4)}{DATA_SUFFIX}")


def assign_lists(ivf: Any, x: np.ndarray) -> np.ndarray:
    _, lists = ivf.quantizer.search(x, 1)
    return lists[:, 0].astype(np.int64)


class ListsWriter:
    """Writes entries into a new lists file laid out back to back, as ``OnDiskInvertedLists.set_all_lists_sizes``
    lays it out (list after list; in each, its codes, then its int64 ids), with ``pwrite``.

    Not through FAISS's shared mapping: a write through the map makes the kernel map whole large folios into the
    process (on Linux 6.18, writing 8 bytes every 64 KB of a 1 GB mapping made 1 GB resident), so a build's
    resident memory grew with the file. Written with ``pwrite`` the pages go to the page cache only.
    """

    def __init__(self, path: Path, sizes: np.ndarray, code_size: int) -> None:
        self.sizes = np.asarray(sizes, dtype=np.int64)
        self.code_size = int(code_size)
        ends = np.cumsum(self.sizes * (self.code_size + 8))
        self.offsets = np.concatenate([[0], ends[:-1]]).astype(np.int64)
        self.fd = os.open(path, os.O_WRONLY)

    def write(self, number: int, start: int, ids: np.ndarray, codes: np.ndarray) -> None:
        """Entries ``start .. start + len(ids)`` of list ``number``."""
        base = int(self.offsets[number])
        self._pwrite(codes, base + start * self.code_size)
        self._pwrite(np.asarray(ids, dtype=np.int64), base + int(self.sizes[number]) * self.code_size + start * 8)

    def _pwrite(self, array: np.ndarray, offset: int) -> None:
        if array.size == 0:
            return
        view = memoryview(np.ascontiguousarray(array)).cast("B")
        while len(view):
            written = os.pwrite(self.fd, view, offset)
            view, offset = view[written:], offset + written

    def close(self) -> None:
        """fsync and close: the file is complete on disk when this returns."""
        try:
            os.fsync(self.fd)
        finally:
            os.close(self.fd)
