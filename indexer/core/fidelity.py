"""Index fidelity: does the approximate index return what exact search returns?

Kept apart from :mod:`indexer.core.metrics` (are the neighbours the same class?).
"""

from __future__ import annotations

import numpy as np

from indexer.core.arrays import check_k
from indexer.core.errors import InputError


def ann_recall_at_k(
    approx_ids: np.ndarray,
    exact_ids: np.ndarray,
    k: int,
    exact_scores: np.ndarray | None = None,
    metric: str = "ip",
    rtol: float = 1e-5,
) -> float:
    """Mean over queries of |approx top-k ∩ exact top-k| / k.

    approx_ids: (q, >= k) int64; exact_ids: (q, >= k) int64, exact order.
    Ties: with ``exact_scores`` (q, >= k) float32, every exact neighbour whose score
    equals the exact k-th score (within ``rtol``) counts as a hit, so an index that
    returns a different member of a tie is not penalised. Pass exact results with
    more than k columns for ties that extend past rank k. Padding ids (-1) never hit.
    """
    k = check_k(k)
    approx_ids = np.asarray(approx_ids)
    exact_ids = np.asarray(exact_ids)
    if approx_ids.ndim != 2 or exact_ids.ndim != 2 or approx_ids.shape[0] != exact_ids.shape[0]:
        raise InputError(
            f"approx_ids and exact_ids must be (q, k) arrays with equal q; got {approx_ids.shape} and {exact_ids.shape}"
        )
    if approx_ids.shape[1] < k or exact_ids.shape[1] < k:
        raise InputError(
            f"need at least k={k} columns; got approx {approx_ids.shape[1]}, exact {exact_ids.shape[1]}"
        )
    if exact_scores is not None and np.shape(exact_scores) != exact_ids.shape:
        raise InputError(
            f"exact_scores must match exact_ids' shape {exact_ids.shape}; got {np.shape(exact_scores)}"
        )
    hits = 0
    for row in range(approx_ids.shape[0]):
        allowed = exact_ids[row, :k]
        if exact_scores is not None:
            s = np.asarray(exact_scores[row], dtype=np.float64)
            kth = s[k - 1]
            tol = rtol * max(1.0, abs(kth)) if np.isfinite(kth) else 0.0
            tied = (s >= kth - tol) if metric == "ip" else (s <= kth + tol)
            allowed = np.union1d(allowed, exact_ids[row][tied])
        found = np.unique(approx_ids[row, :k])
        found = found[found >= 0]
        hits += min(k, np.isin(found, allowed[allowed >= 0]).sum())
    return float(hits / (k * approx_ids.shape[0]))
