"""Retrieval quality of embeddings: each query against the others (itself excluded)."""

from __future__ import annotations

import numpy as np


def retrieval_metrics(embeddings: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """(n, D) float32 embeddings, (n,) int labels → {"precision_at_1", "map_at_r"} via AccuracyCalculator."""
    import warnings

    import torch
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

    if len(embeddings) < 2:
        return {"precision_at_1": float("nan"), "map_at_r": float("nan")}
    calculator = AccuracyCalculator(include=("precision_at_1", "mean_average_precision_at_r"),
                                    k="max_bin_count", device=torch.device("cpu"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # singleton classes: "no positives" warnings
        result = calculator.get_accuracy(torch.as_tensor(np.asarray(embeddings, np.float32)),
                                         torch.as_tensor(np.asarray(labels)))
    return {"precision_at_1": float(result["precision_at_1"]),
            "map_at_r": float(result["mean_average_precision_at_r"])}
