"""Retrieval quality of embeddings: each query against the others (itself excluded)."""

from __future__ import annotations

import numpy as np

KNN_BATCH = 4_096  # query rows per distance block: 4,096 x n floats at a time, never n x n


def torch_knn():
    """PML's k-NN in torch over L2 distances, in blocks of :data:`KNN_BATCH` queries: the ranking of PML's
    default (``FaissKNN``, an exact L2 index) without faiss, which the GPU machine does not have (issue 29)."""
    from pytorch_metric_learning.distances import LpDistance
    from pytorch_metric_learning.utils.inference import CustomKNN

    return CustomKNN(LpDistance(normalize_embeddings=False, p=2, power=1), batch_size=KNN_BATCH)


def retrieval_metrics(embeddings: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """(n, D) float32 embeddings, (n,) int labels → {"precision_at_1", "map_at_r"} via AccuracyCalculator."""
    import warnings

    import torch
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

    if len(embeddings) < 2:
        return {"precision_at_1": float("nan"), "map_at_r": float("nan")}
    calculator = AccuracyCalculator(include=("precision_at_1", "mean_average_precision_at_r"),
                                    k="max_bin_count", device=torch.device("cpu"), knn_func=torch_knn())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # singleton classes: "no positives" warnings
        result = calculator.get_accuracy(torch.as_tensor(np.asarray(embeddings, np.float32)),
                                         torch.as_tensor(np.asarray(labels)))
    return {"precision_at_1": float(result["precision_at_1"]),
            "map_at_r": float(result["mean_average_precision_at_r"])}
