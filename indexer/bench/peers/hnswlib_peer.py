"""hnswlib: the reference HNSW library (knob ``ef``); filters through ``knn_query(..., filter=callable)``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import hnswlib
import numpy as np

from indexer.bench.grids import GRAPH_SWEEP
from indexer.bench.peers.base import Peer
from indexer.bench.peers.field_filter import FieldFilter

M = 16
EF_CONSTRUCTION = 100  # between FAISS HNSW's 40 and ann-benchmarks' 200-500; build time on 2 cores


class HnswlibPeer(Peer):
    name = "hnswlib"
    package = "hnswlib"
    knob = "ef"
    sweep = GRAPH_SWEEP
    filters = True
    filter_form = "filter callable"

    def build(self, ids: np.ndarray, vectors: np.ndarray, metadata: Sequence[dict[str, Any]] | None) -> None:
        self.index = hnswlib.Index(space="ip", dim=int(vectors.shape[1]))
        self.index.init_index(max_elements=len(ids), ef_construction=EF_CONSTRUCTION, M=M, random_seed=0)
        self.index.add_items(vectors, ids, num_threads=-1)
        path = self.workdir / "index.bin"
        self.index.save_index(str(path))
        # hnswlib stores no metadata: its users keep the fields beside it and pass a predicate on the label.
        self.ids = np.asarray(ids, dtype=np.int64)
        self.columns = {key: np.array([row[key] for row in metadata]) for key in metadata[0]} if metadata else {}
        self._allowed: tuple[FieldFilter | None, frozenset[int]] = (None, frozenset())

    def set_knob(self, value: int) -> None:
        self.index.set_ef(int(value))

    def query(self, vector: np.ndarray, k: int) -> np.ndarray:
        labels, _ = self.index.knn_query(vector, k=k, num_threads=1)
        return labels[0].astype(np.int64)

    def allowed(self, where: FieldFilter) -> frozenset[int]:
        """The ids passing ``where`` (kept for the last filter, as a user would keep a repeated one's)."""
        if self._allowed[0] != where:
            self._allowed = (where, frozenset(self.ids[where.mask(self.columns[where.field])].tolist()))
        return self._allowed[1]

    def query_filtered(self, vector: np.ndarray, k: int, where: FieldFilter) -> np.ndarray:
        allowed = self.allowed(where)
        try:  # the predicate is called from C++ for every candidate the search meets (one thread, under the GIL)
            labels, _ = self.index.knn_query(vector, k=min(k, len(allowed)), num_threads=1, filter=allowed.__contains__)
        except RuntimeError:  # hnswlib raises when its search found fewer than k passing: none are returned
            return np.empty(0, dtype=np.int64)
        return labels[0].astype(np.int64)
