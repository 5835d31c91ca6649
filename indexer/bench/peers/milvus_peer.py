"""Milvus Lite: Milvus's embedded build (a local file through pymilvus); IVF_FLAT, knob ``nprobe``."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from pymilvus import DataType, MilvusClient

from indexer.bench.grids import IVF_SWEEP
from indexer.bench.peers.base import Peer

BATCH = 10_000
INDEX_WAIT_S = 3600  # the longest wait for Milvus's background index build


class MilvusLitePeer(Peer):
    name = "milvus-lite"
    package = "milvus-lite"
    knob = "nprobe"
    sweep = IVF_SWEEP
    database = True

    def build(self, ids: np.ndarray, vectors: np.ndarray, metadata: Sequence[dict[str, Any]] | None) -> None:
        n, d = vectors.shape
        self.client = MilvusClient(str(self.workdir / "milvus.db"))
        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=True)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=int(d))
        index_params = self.client.prepare_index_params()
        self.nlist = max(1, min(65_536, int(round(4 * math.sqrt(n)))))
        index_params.add_index("vector", index_type="IVF_FLAT", metric_type="IP", params={"nlist": self.nlist})
        self.client.create_collection("bench", schema=schema, index_params=index_params)
        for start in range(0, n, BATCH):
            stop = min(start + BATCH, n)
            rows = [{"id": int(ids[i]), "vector": vectors[i].tolist(), **(metadata[i] if metadata else {})}
                    for i in range(start, stop)]
            self.client.insert("bench", rows)
        self.client.flush("bench")  # seal the segments so the IVF index serves them (growing ones are scanned)
        self._wait_for_index(n)
        self.client.load_collection("bench")
        self.fields = sorted(metadata[0]) if metadata else []
        self.nprobe = 1

    def _wait_for_index(self, n: int) -> None:
        """Block until Milvus reports its IVF index complete: it builds the index in the background after the
        flush and scans what is not indexed yet. (At 1M a query still takes about 1.3 s after this wait:
        docs/BENCHMARKS.md.)"""
        deadline = time.monotonic() + INDEX_WAIT_S
        while True:
            info = self.client.describe_index("bench", "vector") or {}
            if int(info.get("indexed_rows", 0)) >= n or info.get("state") == "Finished":
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"Milvus Lite indexed {info.get('indexed_rows', 0):,} of {n:,} rows in "
                                   f"{INDEX_WAIT_S:,} s (state {info.get('state')!r})")
            time.sleep(1.0)

    def set_knob(self, value: int) -> None:
        self.nprobe = min(int(value), self.nlist)

    def _search(self, vector: np.ndarray, k: int, fields: list[str]):
        return self.client.search("bench", data=[vector.tolist()], limit=k, output_fields=fields,
                                  search_params={"metric_type": "IP", "params": {"nprobe": self.nprobe}})[0]

    def query(self, vector: np.ndarray, k: int) -> np.ndarray:
        return np.array([hit["id"] for hit in self._search(vector, k, [])], dtype=np.int64)

    def query_rows(self, vector: np.ndarray, k: int) -> list[dict[str, Any]]:
        return [{"id": hit["id"], **hit.get("entity", {})} for hit in self._search(vector, k, self.fields)]

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            super().close()
