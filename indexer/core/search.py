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

from indexer.core.arrays import as_ids, as_vectors, check_k
from indexer.core.errors import IndexerError, InputError
from indexer.core.settings import search_parameters

PAD_ID = -1


def _is_inner_product(index: Any) -> bool:
    import faiss

    return index.metric_type == faiss.METRIC_INNER_PRODUCT


_FAISS: Any = None  # the faiss module, imported on the first search (import statements cost per call)


def _faiss() -> Any:
    global _FAISS
    if _FAISS is None:
        import faiss

        _FAISS = faiss
    return _FAISS


def _faiss_search(index: Any, x: np.ndarray, k: int, params: Any) -> tuple[np.ndarray, np.ndarray]:
    """FAISS's own C++ search on (n, d) float32 C-contiguous ``x``, with optional SearchParameters.

    Calls ``search_c`` directly: the Python-level ``index.search`` may have been replaced by
    ``faiss.contrib.torch_utils`` (pytorch-metric-learning imports it), whose version takes no
    ``params``. FAISS releases the GIL inside, so threads search in parallel.
    """
    faiss = _FAISS or _faiss()
    n = x.shape[0]
    scores = np.empty((n, k), dtype=np.float32)
    ids = np.empty((n, k), dtype=np.int64)
    index.search_c(n, faiss.swig_ptr(x), k, faiss.swig_ptr(scores), faiss.swig_ptr(ids), params)
    return scores, ids


def _dims(index: Any) -> int:
    """``index.d``, remembered on the Python object: a SWIG attribute read costs about 1 µs a call,
    and an index's dimension never changes."""
    cached = index.__dict__.get("_indexer_d")
    if cached is None:
        cached = index.__dict__["_indexer_d"] = int(index.d)
    return cached


def search(
    index: Any,
    queries: np.ndarray,
    k: int,
    *,
    nprobe: int | None = None,
    efSearch: int | None = None,  # noqa: N803 - FAISS's name for the setting
    params: Any | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k search: queries (q, d) float32 -> ((q, k) float32 scores, (q, k) int64 ids).

    Best first (highest inner product / lowest L2). ``nprobe`` / ``efSearch`` apply to this
    call only, as does ``params`` (a prepared :func:`indexer.core.settings.search_parameters`
    object, for loops); without them the index's stored default is used. Nothing on the index
    changes, so threads may search one index at once. Missing results are padded (module
    docstring).

    This is the per-call path, kept to the FAISS call: queries already (q, d) float32 and
    C-contiguous go straight through (their values are checked once, where they enter the
    library: :func:`indexer.core.arrays.check_finite` at the API's edge); anything else is
    converted and checked by :func:`indexer.core.arrays.as_vectors`. An empty index is noticed
    from FAISS's padding rather than asked for on every call.
    """
    if getattr(type(index), "segmented", False):  # a SegmentedIndex (indexer.core.segments): it merges its parts
        if params is not None:
            raise InputError("a segmented index takes nprobe / efSearch, not prepared parameters")
        return index.search(as_vectors(queries, index.d, name="query vectors"), check_k(k), nprobe=nprobe,
                            efSearch=efSearch)
    d = _dims(index)
    if not (
        type(queries) is np.ndarray
        and queries.dtype == np.float32
        and queries.ndim == 2
        and queries.shape[1] == d
        and queries.flags.c_contiguous
    ):
        queries = as_vectors(queries, d, name="query vectors")
    if type(k) is not int or k < 1:
        k = check_k(k)
    if params is None and (nprobe is not None or efSearch is not None):
        params = search_parameters(index, nprobe=nprobe, efSearch=efSearch)
    scores, ids = _faiss_search(index, queries, k, params)
    # FAISS fills each row from the front, so padding shows in the last column; one query (the
    # latency-bound case) reads one element instead of paying for a numpy reduction.
    n = ids.shape[0]
    if n and (ids.item(k - 1) < 0 if n == 1 else ids[:, -1].min() < 0):
        if index.ntotal == 0:
            raise IndexerError("the index is empty; add vectors before searching")
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
