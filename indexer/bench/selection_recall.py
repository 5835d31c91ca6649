"""Recall within a filter's selection, for our plans and the peers' filters alike (``indexer bench --filters``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def padded(found: Sequence[np.ndarray], k: int) -> np.ndarray:
    """(q, k) int64 ids, each row's missing places -1 (a filtered search may return fewer than k)."""
    out = np.full((len(found), k), -1, dtype=np.int64)
    for row, ids in zip(out, found):
        row[: min(k, len(ids))] = ids[:k]
    return out


def recall_within(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean recall of (q, k) found ids against (q, k) exact ids within the selection (-1: none)."""
    hits = [len(set(a[a >= 0].tolist()) & set(b[b >= 0].tolist())) / max(1, int((b >= 0).sum()))
            for a, b in zip(found, truth)]
    return float(np.mean(hits))
