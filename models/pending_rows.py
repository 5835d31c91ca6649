"""Embedded rows held in memory until they are appended to an :class:`~models.embedding_store.EmbeddingStore` in
one durable write: an embedding run writes a chunk every few thousand rows, not one per batch."""

from __future__ import annotations

import numpy as np

from models.embedding_store import EmbeddingStore


class PendingRows:
    """Embedded rows held until they are appended to ``store`` in one durable write (:meth:`flush`)."""

    def __init__(self, store: EmbeddingStore) -> None:
        self.store = store
        self._ids: list[np.ndarray] = []
        self._vectors: list[np.ndarray] = []
        self.rows = 0  # held now
        self.added = 0  # held or written since creation

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self._ids.append(ids)
        self._vectors.append(vectors)
        self.rows += len(ids)
        self.added += len(ids)

    def flush(self) -> None:
        if self._ids:
            self.store.append(np.concatenate(self._ids), np.concatenate(self._vectors))
            self._ids.clear()
            self._vectors.clear()
            self.rows = 0
