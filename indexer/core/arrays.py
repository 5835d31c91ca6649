"""Validation of the numpy arrays that enter the FAISS core.

Every public function of the core funnels its inputs through here so that a bad
shape, dtype or dimension fails with one clear :mod:`indexer.core.errors` exception
instead of a FAISS assertion deep in C++.
"""

from __future__ import annotations

import mmap
import sys
from typing import Any

import numpy as np

from indexer.core.errors import DimensionMismatchError, InputError


def as_vectors(vectors: np.ndarray, d: int | None = None, name: str = "vectors") -> np.ndarray:
    """Return ``vectors`` as a C-contiguous (n, d) float32 array.

    Raises InputError for a wrong rank or non-finite values and
    DimensionMismatchError when ``d`` is given and the column count differs.
    """
    if (
        type(vectors) is np.ndarray
        and vectors.dtype == np.float32
        and vectors.ndim == 2
        and vectors.flags.c_contiguous
        and (d is None or vectors.shape[1] == d)
    ):  # fast path: already what FAISS wants
        return check_finite(vectors, name)
    arr = np.asarray(vectors)
    if arr.ndim == 1 and d is not None and arr.shape[0] == d:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise InputError(f"{name} must be a 2-D (n, d) array; got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise InputError(f"{name} must be numeric; got dtype {arr.dtype}")
    if d is not None and arr.shape[1] != d:
        raise DimensionMismatchError(f"{name} have {arr.shape[1]} dims; the index expects {d} dims")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    if arr.size and not np.isfinite(arr).all():
        raise InputError(f"{name} contain NaN or infinite values")
    return arr


def check_finite(vectors: np.ndarray, name: str = "vectors") -> np.ndarray:
    """``vectors`` unchanged; InputError when any value is NaN or infinite (the API edge's one scan)."""
    if vectors.size and not np.isfinite(vectors).all():
        raise InputError(f"{name} contain NaN or infinite values")
    return vectors


def as_ids(ids: np.ndarray, n: int | None = None, name: str = "ids") -> np.ndarray:
    """Return ``ids`` as a C-contiguous (n,) int64 array of unique non-negative ids."""
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise InputError(f"{name} must be a 1-D array; got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise InputError(f"{name} must be integers; got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.int64)
    if n is not None and arr.shape[0] != n:
        raise InputError(f"{name} has {arr.shape[0]} entries; expected one per vector ({n})")
    if arr.size and arr.min() < 0:
        raise InputError(f"{name} must be non-negative; got {int(arr.min())}")
    if np.unique(arr).size != arr.size:
        raise InputError(f"{name} contains duplicates; each vector needs its own id")
    return arr


def check_k(k: int) -> int:
    """Return ``k`` as an int, raising InputError unless it is a positive integer."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InputError(f"k must be a positive integer; got {k!r}")
    return int(k)


def in_sorted(sorted_ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Which of ``values`` are in the ascending ``sorted_ids`` (a bool array the length of ``values``), by binary
    search: O(n log m), no sort of either side."""
    if not len(sorted_ids):
        return np.zeros(len(values), bool)
    positions = np.minimum(np.searchsorted(sorted_ids, values), len(sorted_ids) - 1)
    return sorted_ids[positions] == values


def sorted_inserted(sorted_ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """A new ascending array: ``sorted_ids`` with those of ``values`` it lacks inserted in place. O(m + n log m)
    for n values (one binary search each and one copy), where ``np.union1d`` sorts all m + n again."""
    values = np.unique(np.asarray(values, np.int64).reshape(-1))
    values = values[~in_sorted(sorted_ids, values)]
    if not len(values):
        return sorted_ids
    return np.insert(sorted_ids, np.searchsorted(sorted_ids, values), values)


class AppendBuffer:
    """Rows appended a few at a time and shared by immutable versions: a version reads only its first ``count``
    rows, and a writer (one at a time) fills rows past every published version's count, so no version ever
    sees a row change. When full it is copied into a larger one (:func:`grown_capacity`: amortised O(rows added)
    per append). While the ids come in ascending order (catalog ids do), an id's row is found by binary search
    over them; only once they stop ascending does the buffer keep a dict of rows (about 160 bytes an id)."""

    def __init__(self, dim: int, capacity: int = 64) -> None:
        self.ids = mapped_zeros((capacity,), np.int64)
        self.vectors = mapped_zeros((capacity, dim), np.float32)
        self.filled = 0  # rows written: a version with fewer rows that appends gets a copy
        self.row_of: dict[int, int] | None = None  # ids out of order: each id's row (the latest, if written twice)

    def extended(self, count: int, ids: np.ndarray, vectors: np.ndarray) -> AppendBuffer:
        """This buffer (or a larger copy of its first ``count`` rows) with ``ids``' rows after the first
        ``count``; a buffer that a later version already extended past ``count`` is copied."""
        need = count + len(ids)
        target = self
        if count != self.filled or need > len(self.ids):
            target = type(self)(self.vectors.shape[1], grown_capacity(need, self.vectors.shape[1]))
            target.ids[:count], target.vectors[:count] = self.ids[:count], self.vectors[:count]
            if self.row_of is not None and not _ascending(self.ids[:count]):
                target.row_of = {int(i): row for row, i in enumerate(self.ids[:count].tolist())}
        ids = np.asarray(ids, np.int64)
        if target.row_of is None and not _ascending(np.concatenate([target.ids[max(count - 1, 0):count], ids])):
            target.row_of = {int(i): row for row, i in enumerate(target.ids[:count].tolist())}
        target.ids[count:need], target.vectors[count:need] = ids, vectors
        if target.row_of is not None:
            target.row_of.update({int(i): count + row for row, i in enumerate(ids.tolist())})
        target.filled = need
        return target

    def vectors_at(self, rows: np.ndarray) -> np.ndarray:
        """(m, dim) vectors of rows ``rows`` (a copy)."""
        return self.vectors[rows]

    def rows(self, ids: np.ndarray, count: int) -> np.ndarray:
        """(m,) row of each of ``ids`` among the first ``count`` rows, -1 where it has none (O(m log count))."""
        ids = np.asarray(ids, np.int64).reshape(-1)
        if self.row_of is not None:
            rows = np.array([self.row_of.get(i, -1) for i in ids.tolist()], np.int64)
            rows[rows >= count] = -1
            return rows
        written = self.ids[:count]
        rows = np.searchsorted(written, ids)
        found = rows < count
        found[found] = written[rows[found]] == ids[found]
        return np.where(found, rows, -1)


MAPPED_BYTES = 1 << 20  # arrays at least this large that grow by copies get pages of their own (mapped_zeros)
MAPPED_GROWTH = 4  # a mapped buffer grows fourfold, and to at least MAPPED_RESERVE bytes: its untouched pages
MAPPED_RESERVE = 256 << 20  # are address space only (never resident, never committed), and each copy (old and new
# rows both resident) is one the service does not make: 50,000 single adds of 128-d rows copied 22 MB at 1.5x


# MAP_NORESERVE (Python's mmap names it from 3.13; 0x4000 on Linux x86 and ARM): a reserve is not committed memory
_NO_RESERVE = getattr(mmap, "MAP_NORESERVE", 0x4000 if sys.platform.startswith("linux") else 0)


def grown_capacity(need: int, dim: int) -> int:
    """Rows an :class:`AppendBuffer` that must hold ``need`` rows of ``dim`` float32 is given: half again as many
    while it lives in the heap; once its vectors fill a map of their own, four times as many and at least
    :data:`MAPPED_RESERVE` bytes of them (virtual until written)."""
    row_bytes = dim * 4
    if need * row_bytes < MAPPED_BYTES:
        return max(64, need + need // 2)
    return max(need * MAPPED_GROWTH, MAPPED_RESERVE // row_bytes)


def mapped_zeros(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """``np.zeros(shape, dtype)``; one of at least :data:`MAPPED_BYTES` lives in an anonymous memory map of its own.

    A buffer that grows by copies (a larger one allocated, the old one freed) would otherwise come from the heap
    once glibc's adaptive threshold has risen past its size, and each freed one leaves a hole there that the
    process keeps resident (measured: 11 MB of holes after 10,000 single adds). A map is returned to the system
    the moment the array goes, and its untouched pages never become resident."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape)) * dtype.itemsize
    if size < MAPPED_BYTES:
        return np.zeros(shape, dtype)
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _NO_RESERVE  # address space, not committed memory
    pages = mmap.mmap(-1, size, flags=flags)  # private: its touched pages count as RssAnon
    return np.frombuffer(pages, dtype).reshape(shape)  # the array keeps the map alive


def _ascending(ids: np.ndarray) -> bool:
    return bool(np.all(ids[1:] > ids[:-1]))
