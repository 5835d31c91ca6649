"""Training's model selection (pytorch-metric-learning's AccuracyCalculator) and the bench's metrics agree."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.core.metrics import map_at_r, precision_at_1, relevant_counts
from indexer.core.search import exact_search
from models.evaluation import retrieval_metrics


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_accuracy_calculator_and_core_metrics_give_the_same_p_at_1_and_map_at_r(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 12, 300)
    centres = rng.standard_normal((12, 16)).astype(np.float32)
    embeddings = centres[labels] + rng.standard_normal((300, 16)).astype(np.float32) * 0.9
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)

    ids = np.arange(300)
    relevant = relevant_counts(labels, labels)
    _, found = exact_search(embeddings, ids, embeddings, int(relevant.max()), exclude_self_ids=ids)
    neighbour_labels = labels[found]
    ours = {"precision_at_1": precision_at_1(labels, neighbour_labels),
            "map_at_r": map_at_r(labels, neighbour_labels, relevant)}
    theirs = retrieval_metrics(embeddings, labels)
    assert 0.2 < ours["precision_at_1"] < 0.95, "a case where the metrics are not trivially 0 or 1"
    assert theirs["precision_at_1"] == pytest.approx(ours["precision_at_1"], abs=1e-6)
    assert theirs["map_at_r"] == pytest.approx(ours["map_at_r"], abs=1e-6)


@pytest.mark.parametrize("normalised", [True, False])
def test_the_torch_knn_gives_the_figures_pml_faiss_default_gave(normalised, monkeypatch):
    """Training's evaluation runs without faiss (the GPU machine has none) and keeps the figures of PML's
    default FaissKNN, blocks of queries included."""
    import torch
    from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
    from pytorch_metric_learning.utils.inference import FaissKNN

    from models import evaluation

    rng = np.random.default_rng(7)
    labels = rng.integers(0, 20, 700)
    embeddings = (rng.standard_normal((20, 24))[labels] + rng.standard_normal((700, 24))).astype(np.float32)
    if normalised:
        embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    monkeypatch.setattr(evaluation, "KNN_BATCH", 256)  # several blocks
    ours = evaluation.retrieval_metrics(embeddings, labels)
    calculator = AccuracyCalculator(include=("precision_at_1", "mean_average_precision_at_r"),
                                    k="max_bin_count", device=torch.device("cpu"), knn_func=FaissKNN())
    before = calculator.get_accuracy(torch.as_tensor(embeddings), torch.as_tensor(labels))
    assert 0.1 < ours["precision_at_1"] < 0.95
    assert ours["precision_at_1"] == pytest.approx(before["precision_at_1"], abs=1e-6)
    assert ours["map_at_r"] == pytest.approx(before["mean_average_precision_at_r"], abs=1e-6)


def test_the_evaluation_never_imports_faiss():
    import subprocess
    import sys

    code = ("import sys, numpy as np; sys.modules['faiss'] = None\n"  # any import of faiss now fails
            "from models.evaluation import retrieval_metrics\n"
            "r = retrieval_metrics(np.eye(6, dtype=np.float32), np.array([0, 0, 1, 1, 2, 2]))\n"
            "print(r['precision_at_1'])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
