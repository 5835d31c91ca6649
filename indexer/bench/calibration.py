"""What a score means: the precision of the exact top k at each score threshold (``min_score`` calibration).

For every query of a labelled bench, each of its exact top-k neighbours is a hit (same label) or a miss; at a
threshold t, the hits among the neighbours scoring at least t over those neighbours is the precision a user of
``min_score=t`` sees, and their count per query is how many results that cutoff leaves.
"""

from __future__ import annotations

from typing import Any

import numpy as np

THRESHOLDS = tuple(round(0.3 + 0.05 * i, 2) for i in range(14))  # 0.30 .. 0.95


def calibration(scores: np.ndarray, ids: np.ndarray, base_ids: np.ndarray, base_labels: np.ndarray,
                query_labels: np.ndarray, k: int, thresholds: tuple[float, ...] = THRESHOLDS) -> list[dict[str, Any]]:
    """Rows of {threshold, precision, results_per_query, queries_with_none} from the exact (q, >= k) results
    (best first, -1 padded), the base ids' labels and the queries' labels."""
    scores, ids = scores[:, :k], ids[:, :k]
    order = np.argsort(base_ids)
    positions = np.clip(np.searchsorted(base_ids[order], ids), 0, len(base_ids) - 1)
    labels = np.asarray(base_labels)[order][positions]
    valid = ids >= 0
    same = (labels == np.asarray(query_labels)[:, None]) & valid
    rows = []
    for threshold in thresholds:
        kept = valid & (scores >= threshold)
        count = int(kept.sum())
        rows.append({"threshold": threshold, "precision": round(float(same[kept].mean()), 4) if count else None,
                     "results_per_query": round(count / len(ids), 2),
                     "queries_with_none": round(float((~kept.any(axis=1)).mean()), 4)})
    return rows


def suggested_cutoff(rows: list[dict[str, Any]], precision: float = 0.9) -> float | None:
    """The lowest threshold whose precision reaches ``precision`` (None when none does)."""
    return next((row["threshold"] for row in rows if row["precision"] is not None and row["precision"] >= precision),
                None)


def calibration_table(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table."""
    lines = ["| min_score | precision of the results kept | results kept per query (of k) | queries left with none |",
             "|---|---|---|---|"]
    for row in rows:
        precision = "-" if row["precision"] is None else f"{row['precision']:.3f}"
        lines.append(f"| {row['threshold']:.2f} | {precision} | {row['results_per_query']:.2f} | "
                     f"{row['queries_with_none']:.1%} |")
    return "\n".join(lines)
