"""USearch: a single-file HNSW engine with SIMD kernels (knob ``expansion_search``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from usearch.index import Index

from indexer.bench.grids import GRAPH_SWEEP
from indexer.bench.peers.base import Peer

CONNECTIVITY = 16
EXPANSION_ADD = 128


class UsearchPeer(Peer):
    name = "usearch"
    package = "usearch"
    knob = "expansion_search"
    sweep = GRAPH_SWEEP
    # usearch's C++ core has a filtered search, but its Python Index.search (2.26) takes no predicate.
    no_filter = "no filter predicate in its Python API (Index.search takes none)"

    def build(self, ids: np.ndarray, vectors: np.ndarray, metadata: Sequence[dict[str, Any]] | None) -> None:
        self.index = Index(ndim=int(vectors.shape[1]), metric="ip", dtype="f32", connectivity=CONNECTIVITY,
                           expansion_add=EXPANSION_ADD)
        self.index.add(np.asarray(ids, dtype=np.uint64), vectors, threads=0)
        self.index.save(str(self.workdir / "index.usearch"))

    def set_knob(self, value: int) -> None:
        self.index.expansion_search = int(value)

    def query(self, vector: np.ndarray, k: int) -> np.ndarray:
        return np.asarray(self.index.search(vector, k, threads=1).keys, dtype=np.int64)
