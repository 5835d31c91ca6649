"""A read-only snapshot of an embedding store's rows, read through memory maps of its part files.

A service that appends to the store one row at a time would otherwise keep a second copy of every recent vector
in its own memory. The snapshot holds only the parts' memory maps (page cache, not the process's heap); a part
file that a later write deletes stays readable while it is mapped (POSIX), so a snapshot never changes and any
number of threads may read it at once. numpy-only, like the store.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["StorePart", "StoreReader"]

SMALL_SCAN = 32  # up to this many ids are looked up in an unsorted part by comparison, without sorting it


@dataclass(frozen=True)
class StorePart:
    """One part file's ids (memory-mapped), their range and order, and its vectors (memory-mapped)."""

    ids: np.ndarray
    vectors: np.ndarray
    low: int
    high: int
    ordered: bool

    def rows(self, wanted: np.ndarray) -> np.ndarray:
        """(m,) row of each of ``wanted`` in this part, -1 where it has none (O(m log n) when the ids are sorted,
        the usual case: the catalog hands out increasing ids)."""
        rows = np.full(len(wanted), -1, np.int64)
        inside = (wanted >= self.low) & (wanted <= self.high)
        if not inside.any() or not len(self.ids):
            return rows
        values = wanted[inside]
        if self.ordered:
            at = np.minimum(np.searchsorted(self.ids, values), len(self.ids) - 1)
            rows[inside] = np.where(np.asarray(self.ids[at]) == values, at, -1)
        elif len(values) <= SMALL_SCAN:
            rows[inside] = [int(hit[0]) if len(hit := np.flatnonzero(self.ids == value)) else -1
                            for value in values.tolist()]
        else:
            order = np.argsort(self.ids, kind="stable")
            at = np.minimum(np.searchsorted(self.ids, values, sorter=order), len(order) - 1)
            rows[inside] = np.where(np.asarray(self.ids)[order[at]] == values, order[at], -1)
        return rows


class StoreReader:
    """The rows of a store's parts at one moment, by id: removed ids are not known here (the caller keeps its
    own removals), and an id is looked up newest part first."""

    def __init__(self, parts: tuple[StorePart, ...], dim: int) -> None:
        self.parts = parts
        self.dim = dim

    def lookup(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(found (m,) bool, (found.sum(), dim) float32 vectors)`` for ``ids``, the vectors in the order of the
        found ids."""
        ids = np.asarray(ids, np.int64).reshape(-1)
        found = np.zeros(len(ids), bool)
        out = np.zeros((len(ids), self.dim), np.float32)
        for part in reversed(self.parts):
            if found.all():
                break
            open_ = np.flatnonzero(~found)
            rows = part.rows(ids[open_])
            hit = rows >= 0
            if hit.any():
                at, picked = open_[hit], rows[hit]
                order = np.argsort(picked)  # ascending offsets read a memory map in one pass
                out[at[order]] = part.vectors[picked[order]]
                found[at] = True
        return found, out[found]
