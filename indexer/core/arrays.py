"""Validation of the numpy arrays that enter the FAISS core.

Every public function of the core funnels its inputs through here so that a bad
shape, dtype or dimension fails with one clear :mod:`indexer.core.errors` exception
instead of a FAISS assertion deep in C++.
"""

from __future__ import annotations

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
    sees a row change. The capacity grows by half when full (amortised O(rows added) per append, at most a third
    of it unused)."""

    def __init__(self, dim: int, capacity: int = 64) -> None:
        self.ids = np.zeros(capacity, np.int64)
        self.vectors = np.zeros((capacity, dim), np.float32)
        self.filled = 0  # rows written: a version with fewer rows that appends gets a copy
        self.row_of: dict[int, int] = {}  # each id's row (the latest, should an id be written twice)

    def extended(self, count: int, ids: np.ndarray, vectors: np.ndarray) -> AppendBuffer:
        """This buffer (or a larger copy of its first ``count`` rows) with ``ids``' rows after the first
        ``count``; a buffer that a later version already extended past ``count`` is copied."""
        need = count + len(ids)
        target = self
        if count != self.filled or need > len(self.ids):
            target = type(self)(self.vectors.shape[1], max(64, need + need // 2))
            target.ids[:count], target.vectors[:count] = self.ids[:count], self.vectors[:count]
            target.row_of = {int(i): row for row, i in enumerate(self.ids[:count].tolist())}
        target.ids[count:need], target.vectors[count:need] = ids, vectors
        target.row_of.update({int(i): count + row for row, i in enumerate(np.asarray(ids).tolist())})
        target.filled = need
        return target

    def vectors_at(self, rows: np.ndarray) -> np.ndarray:
        """(m, dim) vectors of rows ``rows`` (a copy)."""
        return self.vectors[rows]

    def rows(self, ids: np.ndarray, count: int) -> np.ndarray:
        """(m,) row of each of ``ids`` among the first ``count`` rows, -1 where it has none (O(m))."""
        rows = np.array([self.row_of.get(i, -1) for i in np.asarray(ids).tolist()], np.int64)
        rows[rows >= count] = -1
        return rows
