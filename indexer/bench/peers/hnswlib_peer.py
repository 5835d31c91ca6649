"""hnswlib: the reference HNSW library (knob ``ef``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import hnswlib
import numpy as np

from indexer.bench.grids import GRAPH_SWEEP
from indexer.bench.peers.base import Peer

M = 16
EF_CONSTRUCTION = 100  # between FAISS HNSW's 40 and ann-benchmarks' 200-500; build time on 2 cores


class HnswlibPeer(Peer):
    name = "hnswlib"
    package = "hnswlib"
    knob = "ef"
    sweep = GRAPH_SWEEP

    def build(self, ids: np.ndarray, vectors: np.ndarray, metadata: Sequence[dict[str, Any]] | None) -> None:
        self.index = hnswlib.Index(space="ip", dim=int(vectors.shape[1]))
        self.index.init_index(max_elements=len(ids), ef_construction=EF_CONSTRUCTION, M=M, random_seed=0)
        self.index.add_items(vectors, ids, num_threads=-1)
        path = self.workdir / "index.bin"
        self.index.save_index(str(path))

    def set_knob(self, value: int) -> None:
        self.index.set_ef(int(value))

    def query(self, vector: np.ndarray, k: int) -> np.ndarray:
        labels, _ = self.index.knn_query(vector, k=k, num_threads=1)
        return labels[0].astype(np.int64)
