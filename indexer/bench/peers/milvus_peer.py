"""Milvus Lite: Milvus's embedded build (a local file through pymilvus); IVF_FLAT, knob ``nprobe``; filters through a
boolean expression (``category in [...]``, ``value < f``) on declared scalar fields."""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
from pymilvus import DataType, MilvusClient

from indexer.bench.grids import IVF_SWEEP
from indexer.bench.peers.base import Peer
from indexer.bench.peers.field_filter import FieldFilter

BATCH = 10_000
VARCHAR_MAX = 4096
INDEX_WAIT_S = 3600  # the longest wait for Milvus's background index build
_REPLACED: list[tuple[type, str, object, object]] | None = None  # (class, method, torch_utils's, FAISS's own)


@contextmanager
def faiss_own_methods() -> Iterator[None]:
    """FAISS's own numpy methods on its index classes for the duration of the block.

    Milvus Lite searches with FAISS in this process and passes ``params=`` to ``Index.search``;
    ``faiss.contrib.torch_utils`` (pytorch-metric-learning imports it) replaces those methods with versions that
    take no ``params`` and keeps the originals as ``<name>_numpy``. Without this, a Milvus search fails in any
    process that imported pytorch-metric-learning first (the test run did)."""
    global _REPLACED
    if "faiss.contrib.torch_utils" not in sys.modules:
        yield
        return
    if _REPLACED is None:  # found once: torch_utils replaces the methods once, when it is imported
        import faiss

        classes = {id(value): value for value in vars(faiss).values() if isinstance(value, type)}
        _REPLACED = [(cls, name[:-len("_numpy")], vars(cls)[name[:-len("_numpy")]], vars(cls)[name])
                     for cls in classes.values() for name in list(vars(cls))
                     if name.endswith("_numpy") and name[:-len("_numpy")] in vars(cls)]
    for cls, method, _, own in _REPLACED:
        setattr(cls, method, own)
    try:
        yield
    finally:
        for cls, method, replacement, _ in _REPLACED:
            setattr(cls, method, replacement)


class MilvusLitePeer(Peer):
    name = "milvus-lite"
    package = "milvus-lite"
    knob = "nprobe"
    sweep = IVF_SWEEP
    database = True
    filters = True
    filter_form = "filter expression"

    def build(self, ids: np.ndarray, vectors: np.ndarray, metadata: Sequence[dict[str, Any]] | None) -> None:
        n, d = vectors.shape
        self.client = MilvusClient(str(self.workdir / "milvus.db"))
        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=True)
        schema.add_field("id", DataType.INT64, is_primary=True)
        schema.add_field("vector", DataType.FLOAT_VECTOR, dim=int(d))
        for field in self.filter_fields:  # declared with their type, as filtered fields are (others stay dynamic)
            sample = metadata[0][field]
            if isinstance(sample, str):
                schema.add_field(field, DataType.VARCHAR, max_length=VARCHAR_MAX)
            else:
                schema.add_field(field, DataType.DOUBLE if isinstance(sample, float) else DataType.INT64)
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

    def _search(self, vector: np.ndarray, k: int, fields: list[str], where: FieldFilter | None = None):
        with faiss_own_methods():
            return self.client.search("bench", data=[vector.tolist()], limit=k, output_fields=fields,
                                      filter=_expression(where) if where is not None else "",
                                      search_params={"metric_type": "IP", "params": {"nprobe": self.nprobe}})[0]

    def query(self, vector: np.ndarray, k: int) -> np.ndarray:
        return np.array([hit["id"] for hit in self._search(vector, k, [])], dtype=np.int64)

    def query_rows(self, vector: np.ndarray, k: int) -> list[dict[str, Any]]:
        return [{"id": hit["id"], **hit.get("entity", {})} for hit in self._search(vector, k, self.fields)]

    def query_filtered(self, vector: np.ndarray, k: int, where: FieldFilter) -> np.ndarray:
        return np.array([hit["id"] for hit in self._search(vector, k, [], where)], dtype=np.int64)

    def close(self) -> None:
        try:
            self.client.close()
        finally:
            super().close()


def _expression(where: FieldFilter) -> str:
    """Milvus's expression text for ``where``. Milvus Lite rejects expression templates (``filter_params``), so
    the text is written here; that is safe because a FieldFilter only holds an identifier, finite numbers and
    tokens of letters, digits, ``_ . -`` (checked when it is made), and JSON quotes each token."""
    if where.values:
        return f"{where.field} in {json.dumps(list(where.values))}"
    return f"{where.field} < {where.below!r}"
