from __future__ import annotations

import numpy as np
import pytest

from indexer.core.errors import InputError
from indexer.core.fidelity import ann_recall_at_k


def test_plain_intersection() -> None:
    exact = np.array([[1, 2, 3], [4, 5, 6]])
    approx = np.array([[3, 2, 9], [7, 8, 9]])
    assert ann_recall_at_k(approx, exact, 3) == pytest.approx((2 / 3 + 0) / 2)
    assert ann_recall_at_k(approx, exact, 1) == 0.0


def test_ties_at_the_kth_score_count_as_hits() -> None:
    # exact top-2 is {1, 2}, but 2 and 3 tie at the 2nd score: returning 3 is as good
    exact_ids = np.array([[1, 2, 3, 4]])
    exact_scores = np.array([[0.9, 0.5, 0.5, 0.1]], np.float32)
    assert ann_recall_at_k(np.array([[1, 3]]), exact_ids, 2, exact_scores=exact_scores) == 1.0
    assert ann_recall_at_k(np.array([[1, 3]]), exact_ids, 2) == 0.5
    assert ann_recall_at_k(np.array([[1, 4]]), exact_ids, 2, exact_scores=exact_scores) == 0.5
    # a tie never pushes recall above 1, and padding never hits
    assert ann_recall_at_k(np.array([[2, 3]]), exact_ids, 2, exact_scores=exact_scores) == 1.0
    assert ann_recall_at_k(np.array([[1, -1]]), exact_ids, 2, exact_scores=exact_scores) == 0.5


def test_l2_ties() -> None:
    exact_ids = np.array([[1, 2, 3]])
    exact_scores = np.array([[0.1, 0.4, 0.4]], np.float32)
    assert ann_recall_at_k(np.array([[1, 3]]), exact_ids, 2, exact_scores=exact_scores, metric="l2") == 1.0


def test_shape_errors() -> None:
    with pytest.raises(InputError, match="k=3"):
        ann_recall_at_k(np.zeros((1, 2)), np.zeros((1, 3)), 3)
