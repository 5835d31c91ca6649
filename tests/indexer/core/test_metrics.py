from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import f1_score

from indexer.core.errors import InputError
from indexer.core.metrics import (
    f1_at_k,
    label_metrics,
    majority_labels,
    map_at_r,
    per_label_metrics,
    precision_at_1,
    precision_at_k,
    recall_at_k,
    relevant_counts,
)

# Three queries, self already excluded. R = same-label references (not counting self).
QUERY = np.array([0, 1, 2])
NEIGHBOURS = np.array(
    [
        [0, 1, 0, 0],  # R=2
        [0, 0, 1, 2],  # R=1 (class 1 is smaller than k=3)
        [1, 1, 0, 0],  # R=0 (the only member of class 2)
    ]
)
R = np.array([2, 1, 0])


def test_precision() -> None:
    assert precision_at_1(QUERY, NEIGHBOURS) == pytest.approx(1 / 3)
    assert precision_at_k(QUERY, NEIGHBOURS, 3) == pytest.approx((2 / 3 + 1 / 3 + 0) / 3)


def test_recall_is_any_hit_in_top_k() -> None:
    assert recall_at_k(QUERY, NEIGHBOURS, 1) == pytest.approx(1 / 3)
    assert recall_at_k(QUERY, NEIGHBOURS, 3) == pytest.approx(2 / 3)


def test_map_at_r_by_hand() -> None:
    # q0: top R=2 is [0, 1] -> (1/1) / 2 = 0.5; q1: top R=1 is [0] -> 0; q2 excluded (R=0)
    assert map_at_r(QUERY, NEIGHBOURS, R) == pytest.approx(0.25)
    # R=3, hits at ranks 1 and 3: (1 + 2/3) / 3
    assert map_at_r(np.array([1]), np.array([[1, 0, 1, 1]]), np.array([3])) == pytest.approx(5 / 9)
    assert map_at_r(np.array([1]), np.array([[1, 1, 0]]), np.array([2])) == 1.0
    assert math.isnan(map_at_r(np.array([1]), np.array([[0, 0]]), np.array([0])))


def test_map_at_r_needs_r_neighbours() -> None:
    with pytest.raises(InputError, match="max R is 5"):
        map_at_r(QUERY, NEIGHBOURS, np.array([5, 1, 0]))


def test_class_smaller_than_k() -> None:
    # class 9 has a single other member: P@3 is capped at 1/3, MAP@R is perfect
    q, n = np.array([9]), np.array([[9, 0, 0]])
    assert precision_at_k(q, n, 3) == pytest.approx(1 / 3)
    assert map_at_r(q, n, np.array([1])) == 1.0
    assert recall_at_k(q, n, 3) == 1.0


def test_majority_vote_ties_go_to_the_best_ranked_label() -> None:
    np.testing.assert_array_equal(majority_labels(np.array([[5, 7, 9, 7]]), 3), [5])  # 3-way tie
    votes = np.array([[7, 5, 5, 7], [3, 4, 4, 3], [2, 8, 8, 1]])
    np.testing.assert_array_equal(majority_labels(votes, 4), [7, 3, 8])


def test_f1_by_hand_and_against_sklearn() -> None:
    # majority of top 3: q0 [0,1,0]->0, q1 [0,0,1]->0, q2 [1,1,0]->1; truth [0,1,2]
    # class 0: tp1 fp1 fn0 -> 2/3; class 1: tp0 -> 0; class 2: tp0 -> 0; macro = 2/9
    assert f1_at_k(QUERY, NEIGHBOURS, 3) == pytest.approx(2 / 9)
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 6, 200)
    neighbours = np.where(rng.random((200, 5)) < 0.6, truth[:, None], rng.integers(0, 8, (200, 5)))
    pred = majority_labels(neighbours, 5)
    expected = f1_score(truth, pred, labels=np.unique(truth), average="macro")
    assert f1_at_k(truth, neighbours, 5) == pytest.approx(expected)


def test_string_labels_work() -> None:
    q = np.array(["rose", "tulip"])
    n = np.array([["rose", "tulip"], ["rose", "rose"]])
    assert precision_at_1(q, n) == 0.5
    assert f1_at_k(q, n, 2) == pytest.approx(((2 / 3) + 0) / 2)


def test_relevant_counts_excludes_self() -> None:
    np.testing.assert_array_equal(relevant_counts([0, 1, 2], [0, 0, 0, 1, 2, 2]), [2, 0, 1])
    np.testing.assert_array_equal(relevant_counts([0, 3], [0, 0], queries_in_reference=False), [2, 0])


def test_label_metrics_dict() -> None:
    out = label_metrics(QUERY, NEIGHBOURS, R, 3)
    assert out == pytest.approx(
        {
            "k": 3,
            "n_queries": 3,
            "precision_at_1": 1 / 3,
            "precision_at_k": 1 / 3,
            "recall_at_k": 2 / 3,
            "map_at_r": 0.25,
            "f1_at_k": 2 / 9,
        }
    )
    assert math.isnan(label_metrics(QUERY, NEIGHBOURS, np.array([9, 1, 0]), 3)["map_at_r"])


def test_shape_errors() -> None:
    with pytest.raises(InputError, match="k=5"):
        precision_at_k(QUERY, NEIGHBOURS, 5)
    with pytest.raises(InputError):
        precision_at_1(QUERY, NEIGHBOURS[:2])




def test_per_label_metrics_are_each_labels_own_queries():
    queries = np.array(["a", "a", "b", "c"])
    neighbours = np.array([["a", "b"], ["b", "a"], ["b", "x"], ["a", "b"]])
    relevant = np.array([1, 1, 1, 0])
    out = per_label_metrics(queries, neighbours, relevant)
    assert list(out) == ["a", "b", "c"]
    assert out["a"] == {"queries": 2, "precision_at_1": 0.5, "map_at_r": 0.5}
    assert out["b"] == {"queries": 1, "precision_at_1": 1.0, "map_at_r": 1.0}
    assert out["c"]["precision_at_1"] == 0.0 and math.isnan(out["c"]["map_at_r"])
    weighted = sum(entry["precision_at_1"] * entry["queries"] for entry in out.values()) / len(queries)
    assert weighted == precision_at_1(queries, neighbours)
    with pytest.raises(InputError):
        per_label_metrics(queries, neighbours[:3], relevant)
