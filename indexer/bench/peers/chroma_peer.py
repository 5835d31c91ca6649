"""Chroma: an embedded vector database (HNSW underneath; knob ``ef_search``), rows with metadata; filters through
``query(where={...})`` on that metadata (``$in``, ``$lt``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import chromadb
import numpy as np

from indexer.bench.grids import GRAPH_SWEEP
from indexer.bench.peers.base import Peer
from indexer.bench.peers.field_filter import FieldFilter

M = 16
EF_CONSTRUCTION = 100  # as the hnswlib peer and our FAISS HNSW: one construction effort for every graph


class ChromaPeer(Peer):
    name = "chromadb"
    package = "chromadb"
    knob = "ef_search"
    sweep = GRAPH_SWEEP
    database = True
    filters = True
    filter_form = "where ($in / $lt)"

    def build(self, ids: np.ndarray, vectors: np.ndarray, metadata: Sequence[dict[str, Any]] | None) -> None:
        self.client = chromadb.PersistentClient(path=str(self.workdir / "chroma"))
        self.collection = self.client.create_collection(
            "bench", metadata={"hnsw:space": "ip", "hnsw:M": M, "hnsw:construction_ef": EF_CONSTRUCTION},
        )
        batch = max(1, min(5000, self.client.get_max_batch_size()))
        keys = [str(int(i)) for i in ids]
        for start in range(0, len(keys), batch):
            stop = start + batch
            self.collection.add(
                ids=keys[start:stop], embeddings=vectors[start:stop],
                metadatas=list(metadata[start:stop]) if metadata is not None else None,
            )

    def set_knob(self, value: int) -> None:
        self.collection.modify(configuration={"hnsw": {"ef_search": int(value)}})
        # A loaded HNSW segment keeps the ef_search it was opened with: reopen so the new one serves.
        self.client.clear_system_cache()
        self.client = chromadb.PersistentClient(path=str(self.workdir / "chroma"))
        self.collection = self.client.get_collection("bench")

    def query(self, vector: np.ndarray, k: int) -> np.ndarray:
        found = self.collection.query(query_embeddings=[vector], n_results=k, include=[])
        return np.array([int(i) for i in found["ids"][0]], dtype=np.int64)

    def query_rows(self, vector: np.ndarray, k: int) -> list[dict[str, Any]]:
        found = self.collection.query(query_embeddings=[vector], n_results=k, include=["metadatas"])
        return [{"id": int(i), **(meta or {})} for i, meta in zip(found["ids"][0], found["metadatas"][0])]

    def query_filtered(self, vector: np.ndarray, k: int, where: FieldFilter) -> np.ndarray:
        # A dict, not a string: Chroma's where is data, so nothing is interpolated.
        clause = {where.field: {"$in": list(where.values)} if where.values else {"$lt": where.below}}
        found = self.collection.query(query_embeddings=[vector], n_results=k, where=clause, include=[])
        return np.array([int(i) for i in found["ids"][0]], dtype=np.int64)
