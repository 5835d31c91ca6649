"""Label-quality metrics of retrieved neighbours (embedding quality).

One place for them, used by the benchmark and by model evaluation. Inputs:
query_labels (q,), neighbour_labels (q, k') in rank order with the query itself
already excluded, and relevant_counts (q,): how many references share the query's
label, not counting the query itself. Labels may be ints or strings; pad missing
neighbours with a label no query has.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from indexer.core.arrays import check_k
from indexer.core.errors import InputError


def _matches(query_labels: np.ndarray, neighbour_labels: np.ndarray, k: int | None = None) -> np.ndarray:
    ql = np.asarray(query_labels)
    nl = np.asarray(neighbour_labels)
    if ql.ndim != 1 or nl.ndim != 2 or nl.shape[0] != ql.shape[0]:
        raise InputError(f"need query_labels (q,) and neighbour_labels (q, k); got {ql.shape} and {nl.shape}")
    if ql.shape[0] == 0:
        raise InputError("no queries given")
    if k is not None:
        k = check_k(k)
        if nl.shape[1] < k:
            raise InputError(f"neighbour_labels has {nl.shape[1]} columns; k={k} needs at least k")
        nl = nl[:, :k]
    return nl == ql[:, None]


def precision_at_1(query_labels: np.ndarray, neighbour_labels: np.ndarray) -> float:
    """Share of queries whose nearest neighbour has the query's label."""
    return float(_matches(query_labels, neighbour_labels, 1)[:, 0].mean())


def precision_at_k(query_labels: np.ndarray, neighbour_labels: np.ndarray, k: int) -> float:
    """Mean share of the top k with the query's label (a class smaller than k caps it below 1)."""
    return float(_matches(query_labels, neighbour_labels, k).mean())


def recall_at_k(query_labels: np.ndarray, neighbour_labels: np.ndarray, k: int) -> float:
    """Metric-learning Recall@K: share of queries with at least one same-label item in the top k."""
    return float(_matches(query_labels, neighbour_labels, k).any(axis=1).mean())


def map_at_r(query_labels: np.ndarray, neighbour_labels: np.ndarray, relevant_counts: np.ndarray) -> float:
    """MAP@R (Musgrave et al., "A Metric Learning Reality Check").

    R = relevant_counts[i]; AP@R = (1/R) · Σ_{j ≤ R} P(j)·rel(j). Queries with
    R = 0 are excluded; neighbour_labels needs at least max(R) columns. NaN if every
    query has R = 0.
    """
    match = _matches(query_labels, neighbour_labels)
    r = np.asarray(relevant_counts, dtype=np.int64)
    if r.shape != (match.shape[0],) or (r < 0).any():
        raise InputError(
            f"relevant_counts must be (q,) = ({match.shape[0]},) non-negative ints; got shape {r.shape}"
        )
    keep = r > 0
    if not keep.any():
        return float("nan")
    if r.max() > match.shape[1]:
        raise InputError(
            f"MAP@R needs R neighbours per query; max R is {int(r.max())} but only {match.shape[1]} given"
        )
    match, r = match[keep], r[keep]
    ranks = np.arange(1, match.shape[1] + 1)
    within_r = ranks[None, :] <= r[:, None]
    hits = match & within_r
    precision = np.cumsum(hits, axis=1) / ranks[None, :]
    return float(((precision * hits).sum(axis=1) / r).mean())


def majority_labels(neighbour_labels: np.ndarray, k: int) -> np.ndarray:
    """(q,) majority label of each row's top k; ties go to the tied label ranked best."""
    nl = np.asarray(neighbour_labels)[:, : check_k(k)]
    out = []
    for row in nl:
        values, first, counts = np.unique(row, return_index=True, return_counts=True)
        tied = counts == counts.max()
        out.append(values[tied][np.argmin(first[tied])])
    return np.asarray(out, dtype=nl.dtype)


def f1_at_k(query_labels: np.ndarray, neighbour_labels: np.ndarray, k: int) -> float:
    """Macro F1 over the true classes of a top-k majority-vote classifier.

    Same as sklearn ``f1_score(y, pred, labels=unique(y), average="macro")``.
    """
    _matches(query_labels, neighbour_labels, k)  # validates shapes
    truth = np.asarray(query_labels)
    pred = majority_labels(neighbour_labels, k)
    scores = []
    for label in np.unique(truth):
        tp = np.sum((pred == label) & (truth == label))
        fp = np.sum((pred == label) & (truth != label))
        fn = np.sum((pred != label) & (truth == label))
        scores.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


def relevant_counts(
    query_labels: np.ndarray, reference_labels: np.ndarray, queries_in_reference: bool = True
) -> np.ndarray:
    """(q,) int64 count of references sharing each query's label, minus the query itself if it is one."""
    values, counts = np.unique(np.asarray(reference_labels), return_counts=True)
    lookup = dict(zip(values.tolist(), counts.tolist(), strict=True))
    out = np.array([lookup.get(label, 0) for label in np.asarray(query_labels).tolist()], dtype=np.int64)
    return np.maximum(out - 1, 0) if queries_in_reference else out


def label_metrics(
    query_labels: np.ndarray, neighbour_labels: np.ndarray, relevant: np.ndarray, k: int
) -> dict[str, Any]:
    """All label metrics at k in one dict; MAP@R is NaN when fewer than max(R) neighbours are given."""
    try:
        mapr = map_at_r(query_labels, neighbour_labels, relevant)
    except InputError:
        if np.asarray(relevant).max(initial=0) <= np.asarray(neighbour_labels).shape[1]:
            raise
        mapr = float("nan")
    return {
        "k": int(k),
        "n_queries": int(np.asarray(query_labels).shape[0]),
        "precision_at_1": precision_at_1(query_labels, neighbour_labels),
        "precision_at_k": precision_at_k(query_labels, neighbour_labels, k),
        "recall_at_k": recall_at_k(query_labels, neighbour_labels, k),
        "map_at_r": mapr,
        "f1_at_k": f1_at_k(query_labels, neighbour_labels, k),
    }


def per_label_metrics(
    query_labels: np.ndarray, neighbour_labels: np.ndarray, relevant: np.ndarray
) -> dict[Any, dict[str, Any]]:
    """{label: {"queries", "precision_at_1", "map_at_r"}} over each label's queries, labels in sorted order.

    Same inputs as :func:`map_at_r` (neighbour_labels needs max(R) columns): a label's figures are those of
    :func:`precision_at_1` and :func:`map_at_r` over its queries alone (MAP@R NaN when all have R = 0).
    """
    _matches(query_labels, neighbour_labels)  # validates shapes
    ql, nl, r = np.asarray(query_labels), np.asarray(neighbour_labels), np.asarray(relevant)
    out: dict[Any, dict[str, Any]] = {}
    for label in np.unique(ql).tolist():
        mine = ql == label
        out[label] = {"queries": int(mine.sum()), "precision_at_1": precision_at_1(ql[mine], nl[mine]),
                      "map_at_r": map_at_r(ql[mine], nl[mine], r[mine])}
    return out
