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
