"""What the search engine holds: loaded indexes and the served vectors, each never modified once published."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from indexer.api.registry.index_files import file_signature
from indexer.core.errors import InputError, NotFoundError

__all__ = ["AddOutcome", "HeldIndex", "KnownRows", "ServedVectors", "file_signature"]

CONSOLIDATE_AT = 4096  # recent rows + removals a ServedVectors version carries before it makes a new base


@dataclass(frozen=True)
class HeldIndex:
    """A loaded index as published to readers; never modified after publication. ``index`` is a
    :class:`indexer.core.segments.SegmentedIndex`: the file's index, sealed, plus the changes since."""

    name: str
    kind: str
    model: str
    path: Path  # the .faiss file
    index: Any
    sidecar: dict
    params: dict
    signature: tuple

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def describe(self) -> dict:
        """name, kind, model, ntotal (live vectors), dim, and the vectors per ``segments``."""
        return {"name": self.name, "kind": self.kind, "model": self.model, "ntotal": self.ntotal,
                "dim": int(self.index.d), "segments": self.index.describe()}


@dataclass(frozen=True)
class AddOutcome:
    id: int
    path: str
    duplicate_of: int | None
    indexes: list[str]

    @property
    def created(self) -> bool:
        return self.duplicate_of is None

@dataclass(frozen=True)
class ServedVectors:
    """The served model's vectors of the ok catalog images; never modified once published (a change makes a
    new one).

    Segmented like the indexes, so a change costs what it changes: a sorted ``base`` shared by every version,
    a few ``recent`` rows and the ``removed`` base ids. Once the recent rows and removals pass
    :data:`CONSOLIDATE_AT` (or 1% of the base), a change folds them into a new base.
    """

    base_ids: np.ndarray  # (n,) int64, sorted
    base_vectors: np.ndarray  # (n, d) float32, rows of base_ids
    recent_ids: np.ndarray  # (r,) int64
    recent_vectors: np.ndarray  # (r, d) float32
    removed: np.ndarray  # sorted base ids no longer served
    _lookup: list = field(default_factory=list, repr=False, compare=False)  # the lookup, made on first use

    @classmethod
    def empty(cls, dim: int) -> ServedVectors:
        return cls.by_id(np.zeros(0, np.int64), np.zeros((0, dim), np.float32))

    @classmethod
    def by_id(cls, ids: np.ndarray, vectors: np.ndarray) -> ServedVectors:
        order = np.argsort(ids, kind="stable")
        vectors = np.ascontiguousarray(np.asarray(vectors)[order], np.float32)
        return cls(np.asarray(ids, np.int64)[order], vectors, np.zeros(0, np.int64),
                   np.zeros((0, vectors.shape[1]), np.float32), np.zeros(0, np.int64))

    @property
    def ids(self) -> np.ndarray:
        """(n,) int64 served ids, sorted (O(n): for reconciling, not for a query)."""
        return self._whole()[0]

    @property
    def vectors(self) -> np.ndarray:
        """(n, d) float32 rows of :attr:`ids` (O(n))."""
        return self._whole()[1]

    def changed(self, *, add: tuple[np.ndarray, np.ndarray] | None = None,
                remove: np.ndarray | None = None) -> ServedVectors:
        """A new snapshot with ``remove`` (ids) taken out and ``add`` (ids, vectors) put in."""
        recent_ids, recent_vectors, removed = self.recent_ids, self.recent_vectors, self.removed
        if remove is not None and len(remove):
            remove = np.asarray(remove, np.int64)
            keep = ~np.isin(recent_ids, remove)
            recent_ids, recent_vectors = recent_ids[keep], recent_vectors[keep]
            removed = np.union1d(removed, remove[_in_sorted(self.base_ids, remove)])
        if add is not None and len(add[0]):
            recent_ids = np.concatenate([recent_ids, np.asarray(add[0], np.int64)])
            recent_vectors = np.concatenate([recent_vectors, np.asarray(add[1], np.float32)])
        version = ServedVectors(self.base_ids, self.base_vectors, recent_ids, recent_vectors, removed)
        if len(recent_ids) + len(removed) > max(CONSOLIDATE_AT, len(self.base_ids) // 100):
            return ServedVectors.by_id(*version._whole())
        return version

    def take(self, ids: np.ndarray) -> tuple[list[int], np.ndarray]:
        """(the ``ids`` that have a vector, in the order given; their (n, dim) vectors)."""
        ids = np.asarray(ids, np.int64).reshape(-1)
        out = np.zeros((len(ids), self.base_vectors.shape[1]), np.float32)
        found = np.zeros(len(ids), bool)
        in_base = _in_sorted(self.base_ids, ids) & ~_in_sorted(self.removed, ids)
        if in_base.any():
            out[in_base] = self.base_vectors[np.searchsorted(self.base_ids, ids[in_base])]
            found |= in_base
        if len(self.recent_ids):
            position = {int(i): row for row, i in enumerate(self.recent_ids)}
            for slot, image_id in enumerate(ids.tolist()):
                row = position.get(image_id)
                if row is not None:
                    out[slot], found[slot] = self.recent_vectors[row], True
        return ids[found].tolist(), out[found]

    def of(self, image_id: int, model_name: str) -> np.ndarray:
        """(1, dim) vector of ``image_id``; NotFoundError when it has none."""
        found, vectors = self.take(np.array([image_id]))
        if not found:
            raise NotFoundError(f"image {image_id} has no embedding for model {model_name!r}")
        return vectors

    def lookup(self) -> Any:
        """The vectors by id for query expansion: (m,) ids -> (m, d) rows (padding id -1 -> zeros; an id without
        a vector raises InputError), made once per snapshot."""
        if not self._lookup:
            self._lookup.append(self._rows_of)
        return self._lookup[0]

    def _rows_of(self, wanted: np.ndarray) -> np.ndarray:
        wanted = np.asarray(wanted, np.int64).reshape(-1)
        real = wanted >= 0
        found, vectors = self.take(wanted[real])
        if len(found) != int(real.sum()):
            missing = sorted(set(wanted[real].tolist()) - set(found))
            raise InputError(f"no stored vector for id {missing[0]}")
        out = np.zeros((len(wanted), self.base_vectors.shape[1]), np.float32)
        out[real] = vectors
        return out

    def _whole(self) -> tuple[np.ndarray, np.ndarray]:
        if not len(self.recent_ids) and not len(self.removed):
            return self.base_ids, self.base_vectors
        keep = ~_in_sorted(self.removed, self.base_ids) if len(self.removed) else slice(None)
        ids = np.concatenate([self.base_ids[keep], self.recent_ids])
        vectors = np.concatenate([self.base_vectors[keep], self.recent_vectors])
        order = np.argsort(ids, kind="stable")
        return ids[order], vectors[order]


def _in_sorted(sorted_ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Whether each of ``values`` is in ``sorted_ids``."""
    values = np.asarray(values, np.int64)
    if not len(sorted_ids):
        return np.zeros(len(values), bool)
    positions = np.minimum(np.searchsorted(sorted_ids, values), len(sorted_ids) - 1)
    return sorted_ids[positions] == values


class KnownRows(Mapping):
    """The ok catalog images a search knows without asking the catalog: id -> (path, label); never modified
    once published. A change makes a version that shares the ``base`` dict and carries the few ``recent`` rows
    and ``removed`` ids, so a write costs what it changes; past :data:`CONSOLIDATE_AT` of them a version
    makes a new base."""

    def __init__(self, base: dict[int, tuple[str, str | None]] | None = None,
                 recent: dict[int, tuple[str, str | None]] | None = None, removed: frozenset = frozenset()) -> None:
        self.base, self.recent, self.removed = base or {}, recent or {}, removed

    def __getitem__(self, image_id: int) -> tuple[str, str | None]:
        if image_id in self.recent:
            return self.recent[image_id]
        if image_id in self.removed:
            raise KeyError(image_id)
        return self.base[image_id]

    def __contains__(self, image_id: object) -> bool:
        return image_id in self.recent or (image_id not in self.removed and image_id in self.base)

    def __iter__(self):
        yield from self.recent
        yield from (i for i in self.base if i not in self.removed and i not in self.recent)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def with_row(self, image_id: int, row: tuple[str, str | None]) -> KnownRows:
        return self._settled(KnownRows(self.base, {**self.recent, image_id: row}, self.removed - {image_id}))

    def without(self, image_id: int) -> KnownRows:
        recent = {i: row for i, row in self.recent.items() if i != image_id}
        removed = self.removed | {image_id} if image_id in self.base else self.removed
        return self._settled(KnownRows(self.base, recent, removed))

    @staticmethod
    def _settled(version: KnownRows) -> KnownRows:
        if len(version.recent) + len(version.removed) <= CONSOLIDATE_AT:
            return version
        return KnownRows(dict(version.items()))
