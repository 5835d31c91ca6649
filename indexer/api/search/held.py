"""What the search engine holds: loaded indexes and the served vectors, each never modified once published."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from indexer.api.registry.index_files import file_signature
from indexer.core.errors import NotFoundError

__all__ = ["AddOutcome", "HeldIndex", "ServedVectors", "file_signature"]


@dataclass(frozen=True)
class HeldIndex:
    """A loaded index as published to readers; never modified after publication."""

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
        return {"name": self.name, "kind": self.kind, "model": self.model, "ntotal": self.ntotal,
                "dim": int(self.index.d)}


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
    """The served model's vectors of the ok catalog images, sorted by id; never modified once published (a
    change makes a new one)."""

    ids: np.ndarray
    vectors: np.ndarray
    _lookup: list = field(default_factory=list, repr=False, compare=False)  # the lookup, made on first use

    @classmethod
    def empty(cls, dim: int) -> ServedVectors:
        return cls(np.zeros(0, np.int64), np.zeros((0, dim), np.float32))

    @classmethod
    def by_id(cls, ids: np.ndarray, vectors: np.ndarray) -> ServedVectors:
        order = np.argsort(ids, kind="stable")
        return cls(np.asarray(ids, np.int64)[order], np.ascontiguousarray(np.asarray(vectors)[order], np.float32))

    def changed(self, *, add: tuple[np.ndarray, np.ndarray] | None = None,
                remove: np.ndarray | None = None) -> ServedVectors:
        """A new snapshot with ``remove`` (ids) taken out and ``add`` (ids, vectors) put in."""
        ids, vectors = self.ids, self.vectors
        if remove is not None:
            keep = ~np.isin(ids, remove)
            ids, vectors = ids[keep], vectors[keep]
        if add is not None:
            ids, vectors = np.concatenate([ids, add[0]]), np.concatenate([vectors, add[1]])
        return ServedVectors.by_id(ids, vectors)

    def of(self, image_id: int, model_name: str) -> np.ndarray:
        """(1, dim) vector of ``image_id``; NotFoundError when it has none."""
        position = int(np.searchsorted(self.ids, image_id))
        if position < len(self.ids) and self.ids[position] == image_id:
            return self.vectors[position:position + 1]
        raise NotFoundError(f"image {image_id} has no embedding for model {model_name!r}")

    def take(self, ids: np.ndarray) -> tuple[list[int], np.ndarray]:
        """(the ``ids`` that have a vector, in the order given; their (n, dim) vectors)."""
        ids = np.asarray(ids, np.int64)
        positions = np.clip(np.searchsorted(self.ids, ids), 0, max(len(self.ids) - 1, 0))
        found = (positions < len(self.ids)) & (self.ids[positions] == ids) if len(self.ids) else np.zeros(len(ids), bool)
        return ids[found].tolist(), self.vectors[positions[found]]

    def lookup(self) -> Any:
        """The vectors by id for query expansion (:func:`indexer.core.rerank.lookup_vectors`), made once per
        snapshot (two threads racing the first call may each make one; both are the same)."""
        if not self._lookup:
            from indexer.core.rerank import lookup_vectors

            self._lookup.append(lookup_vectors(self.ids, self.vectors))
        return self._lookup[0]

