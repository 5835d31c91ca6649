"""Searching an index, and exact brute-force search as ground truth.

Padding convention: FAISS returns id -1 where it has fewer than k results (k above
ntotal, or an IVF search whose probed lists hold too few vectors). ``search`` keeps
the (q, k) shape and pads those slots consistently: id -1 and score -inf for inner
product (+inf for L2), i.e. "worse than any real neighbour", always after the real
ones.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from indexer.arrays import as_ids, as_vectors, check_k
from indexer.errors import IndexerError
from indexer.factory import get_search_params, set_search_params

PAD_ID = -1


def _is_inner_product(index: Any) -> bool:
    import faiss

    return index.metric_type == faiss.METRIC_INNER_PRODUCT


def search(
    index: Any,
    queries: np.ndarray,
    k: int,
    *,
    nprobe: int | None = None,
    ef_search: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k search: queries (q, d) float32 -> ((q, k) float32 scores, (q, k) int64 ids).

    Best first (highest inner product / lowest L2). ``nprobe`` / ``ef_search``
    apply to this call only. Missing results are padded (module docstring).
    """
    x = as_vectors(queries, index.d, name="query vectors")
    k = check_k(k)
    if index.ntotal == 0:
        raise IndexerError("the index is empty; add vectors before searching")
    if nprobe is None and ef_search is None:  # the hot path: nothing to set or restore
        scores, ids = index.search(x, k)
    else:
        previous = get_search_params(index)
        try:
            set_search_params(index, nprobe=nprobe, ef_search=ef_search)
            scores, ids = index.search(x, k)
        finally:
            set_search_params(index, nprobe=previous.get("nprobe"), ef_search=previous.get("efSearch"))
    if ids.size and ids[:, -1].min() < 0:  # FAISS fills each row from the front: padding sits at the end
        missing = ids < 0
        scores[missing] = -np.inf if _is_inner_product(index) else np.inf
        ids[missing] = PAD_ID
    return scores, ids


def drop_self(
    scores: np.ndarray, ids: np.ndarray, query_ids: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """From (q, k+1) results drop each query's own id, keeping k columns.

    If a query's own id is not among its results, the last column is dropped.
    """
    q_ids = np.asarray(query_ids, dtype=np.int64).reshape(-1, 1)
    if ids.shape[0] != q_ids.shape[0] or ids.shape[1] < k + 1:
        raise IndexerError(
            f"drop_self needs (q, >= k+1) results for {q_ids.shape[0]} queries; got {ids.shape}"
        )
    ids = ids[:, : k + 1]
    scores = scores[:, : k + 1]
    is_self = ids == q_ids
    # Drop the first occurrence of the own id, or the last column when it is absent.
    drop_col = np.where(is_self.any(axis=1), is_self.argmax(axis=1), k)
    keep = np.ones(ids.shape, dtype=bool)
    keep[np.arange(ids.shape[0]), drop_col] = False
    return scores[keep].reshape(-1, k), ids[keep].reshape(-1, k)


def exact_search(
    base: np.ndarray,
    base_ids: np.ndarray,
    queries: np.ndarray,
    k: int,
    exclude_self_ids: np.ndarray | None = None,
    metric: str = "ip",
) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force ground truth over base (n, d) float32 with ids (n,) int64.

    Returns ((q, k) float32 scores, (q, k) int64 ids), padded like ``search`` when
    k > n. With ``exclude_self_ids`` (q,), each query's own id is left out.
    """
    import faiss

    xb = as_vectors(base, name="base vectors")
    ids = as_ids(base_ids, xb.shape[0], name="base ids")
    xq = as_vectors(queries, xb.shape[1], name="query vectors")
    k = check_k(k)
    k_search = k + 1 if exclude_self_ids is not None else k
    index = faiss.IndexFlatIP(xb.shape[1]) if metric == "ip" else faiss.IndexFlatL2(xb.shape[1])
    index.add(xb)
    scores, rows = index.search(xq, k_search)
    missing = rows < 0
    out_ids = np.where(missing, PAD_ID, ids[np.maximum(rows, 0)])
    scores[missing] = -np.inf if metric == "ip" else np.inf
    if exclude_self_ids is not None:
        return drop_self(scores, out_ids, exclude_self_ids, k)
    return scores, out_ids
