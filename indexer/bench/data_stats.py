"""How hard a vector set is for ANN search: local intrinsic dimensionality and relative contrast.

Both are measured on held-out (or sampled) queries against the base set with exact Euclidean
distances, so a synthetic set and real embeddings can be compared number for number.

- LID: the maximum-likelihood estimate of Levina & Bickel (2005) as used by Amsaleg et al.
  (2015) on the k = 20 nearest neighbours, ``-1 / mean_i log(r_i / r_k)``, averaged over queries.
  Higher LID means neighbourhoods fill more dimensions and every index works harder.
- Relative contrast (He, Kumar & Chang, 2012): mean distance to a random base vector over the
  distance to the nearest one, ``E[D_mean] / E[D_min]``. Near 1 nearest neighbours barely stand
  out (hard); large values make every index look good.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from indexer.core.arrays import as_vectors

LID_K = 20
STAT_QUERIES = 1000  # queries sampled from the base set when none are held out
RANDOM_PAIRS = 1000  # random base vectors each query's mean distance is taken over


def _squared_knn(base: np.ndarray, queries: np.ndarray, k: int, exclude_self: bool) -> np.ndarray:
    """(q, k) squared L2 distances to the k nearest base vectors, ascending (self match dropped)."""
    import faiss

    index = faiss.IndexFlatL2(base.shape[1])
    index.add(base)
    distances, _ = index.search(queries, k + 1 if exclude_self else k)
    return distances[:, 1:] if exclude_self else distances


def lid_mle(distances: np.ndarray) -> np.ndarray:
    """Per-query MLE of LID from (q, k) ascending Euclidean kNN distances; (q,) float64.

    Queries whose k-th distance is zero (duplicates) or whose neighbours are all equidistant
    give no estimate and come back as NaN.
    """
    r = np.asarray(distances, dtype=np.float64)
    r_k = r[:, -1:]
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows (duplicates) are expected here
        logs = np.log(np.where(r > 0, r, np.nan) / r_k)
        mean_log = np.nanmean(logs[:, :-1], axis=1)  # log(r_k / r_k) = 0 adds nothing but a count
        return np.where(mean_log < 0, -1.0 / mean_log, np.nan)


def data_stats(
    base: np.ndarray,
    queries: np.ndarray | None = None,
    *,
    k: int = LID_K,
    n_queries: int = STAT_QUERIES,
    seed: int = 0,
) -> dict[str, Any]:
    """``{"n", "dim", "lid", "relative_contrast"}`` of base (n, d) float32.

    ``queries`` (q, d) float32 held out from the base; without them ``n_queries`` base vectors
    are sampled with ``seed`` and each one's own match is left out. LID is the mean of the
    per-query MLE at ``k`` (20); relative contrast is E[mean distance] / E[nearest distance]
    with the mean over ``RANDOM_PAIRS`` random base vectors per query. Fewer than k + 2 base
    vectors have no neighbourhood to measure: ``lid`` and ``relative_contrast`` are then None.
    """
    xb = as_vectors(base, name="base vectors")
    n, d = xb.shape
    if n < k + 2:
        return {"n": int(n), "dim": int(d), "lid": None, "lid_median": None, "relative_contrast": None,
                "stat_k": int(k), "stat_queries": 0}
    rng = np.random.default_rng(seed)
    exclude_self = queries is None
    if exclude_self:
        rows = np.sort(rng.choice(n, size=min(n_queries, n), replace=False))
        xq = xb[rows]
    else:
        xq = as_vectors(queries, d, name="queries")[:n_queries]
    knn = np.sqrt(np.maximum(_squared_knn(xb, xq, k, exclude_self), 0.0))
    lid = lid_mle(knn)
    # Mean distance to random base vectors, in chunks to bound the (q, m) temporaries.
    others = xb[rng.choice(n, size=min(RANDOM_PAIRS, n), replace=False)]
    mean_dist = np.empty(len(xq))
    sq_others = (others.astype(np.float64) ** 2).sum(axis=1)
    for start in range(0, len(xq), 256):
        chunk = xq[start : start + 256].astype(np.float64)
        sq = (chunk**2).sum(axis=1)[:, None] + sq_others[None, :] - 2.0 * chunk @ others.T.astype(np.float64)
        mean_dist[start : start + 256] = np.sqrt(np.maximum(sq, 0.0)).mean(axis=1)
    nearest = knn[:, 0].astype(np.float64)
    return {
        "n": int(n),
        "dim": int(d),
        "lid": float(np.nanmean(lid)),
        "lid_median": float(np.nanmedian(lid)),
        "relative_contrast": float(mean_dist.mean() / max(nearest.mean(), 1e-12)),
        "stat_k": int(k),
        "stat_queries": int(len(xq)),
    }
