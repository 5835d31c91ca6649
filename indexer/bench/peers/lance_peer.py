"""LanceDB: an embedded columnar vector database; IVF (flat) index, knob ``nprobes``; filters through
``search(...).where(expr, prefilter=True)`` with a scalar index on each filtered column."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import lancedb
import numpy as np
import pyarrow as pa
from lancedb.expr import col, lit

from indexer.bench.grids import IVF_SWEEP
from indexer.bench.peers.base import Peer
from indexer.bench.peers.field_filter import FieldFilter

MIN_ROWS_FOR_INDEX = 5_000  # below this LanceDB searches brute force (and refuses to train many lists)


class LancePeer(Peer):
    name = "lancedb"
    package = "lancedb"
    knob = "nprobes"
    sweep = IVF_SWEEP
    database = True
    filters = True
    filter_form = "where, prefilter"

    def build(self, ids: np.ndarray, vectors: np.ndarray, metadata: Sequence[dict[str, Any]] | None) -> None:
        n, d = vectors.shape
        columns: dict[str, Any] = {
            "id": pa.array(np.asarray(ids, dtype=np.int64)),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), d),
        }
        if metadata is not None:
            for key in metadata[0]:
                columns[key] = pa.array([row.get(key) for row in metadata])
        self.db = lancedb.connect(str(self.workdir / "lance"))
        self.table = self.db.create_table("bench", data=pa.table(columns))
        self.indexed = n >= MIN_ROWS_FOR_INDEX
        if self.indexed:
            partitions = max(1, int(round(4 * math.sqrt(n))))
            self.table.create_index(metric="dot", vector_column_name="vector", index_type="IVF_FLAT",
                                    num_partitions=partitions)
        for field in self.filter_fields:  # as LanceDB advises for filtered search: a scalar index per column
            few = pa.types.is_string(columns[field].type) or pa.types.is_integer(columns[field].type)
            self.table.create_scalar_index(field, index_type="BITMAP" if few else "BTREE")
        self.nprobes = 1
        self.columns = [name for name in columns if name != "vector"]

    def set_knob(self, value: int) -> None:
        self.nprobes = int(value)

    def _search(self, vector: np.ndarray, k: int, columns: list[str], where: FieldFilter | None = None):
        search = self.table.search(vector).metric("dot").limit(k).select([*columns, "_distance"])
        if where is not None:
            # A typed Expr, not SQL text: the values are bound as literals, nothing is interpolated.
            expr = col(where.field).isin(list(where.values)) if where.values else col(where.field).lt(lit(where.below))
            search = search.where(expr, prefilter=True)
        if self.indexed:
            search = search.nprobes(self.nprobes)
        return search.to_arrow()

    def query(self, vector: np.ndarray, k: int) -> np.ndarray:
        return self._search(vector, k, ["id"]).column("id").to_numpy().astype(np.int64)

    def query_rows(self, vector: np.ndarray, k: int) -> list[dict[str, Any]]:
        return self._search(vector, k, self.columns).drop_columns(["_distance"]).to_pylist()

    def query_filtered(self, vector: np.ndarray, k: int, where: FieldFilter) -> np.ndarray:
        return self._search(vector, k, ["id"], where).column("id").to_numpy().astype(np.int64)
