"""Re-ranking: α-weighted query expansion and database-side augmentation, on a case where each provably helps.

The case (3-D, cosine): query q; class A = a1 (close to q) and a2 (beyond a1, farther from q than the
distractor b); class B = b, b2. Plain search ranks a1, b, a2, b2 (class-A average precision 0.83).
Expanding q with a1, or augmenting a2 with its neighbour a1, moves a2 above b (AP 1.0).
"""

from __future__ import annotations

import numpy as np
import pytest

from indexer.core.errors import InputError
from indexer.core.rerank import (
    Rerank,
    augment_database,
    lookup_vectors,
    search_expanded,
    weighted_sum,
)
from indexer.core.search import search


def _unit(*rows):
    x = np.array(rows, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


QUERY = _unit([1, 0, 0])
BASE = _unit([1, 0.6, 0], [0.5, 1, 0], [0.6, -0.2, 1], [0.3, -0.5, 1])  # a1, a2, b, b2
IDS = np.array([10, 11, 20, 21], dtype=np.int64)
A1, A2, B = 10, 11, 20


def _flat(vectors):
    import faiss

    index = faiss.IndexIDMap2(faiss.IndexFlatIP(vectors.shape[1]))
    index.add_with_ids(vectors, IDS)
    return index


def test_plain_search_ranks_the_distractor_above_the_second_match():
    _, ids = search(_flat(BASE), QUERY, 3)
    assert ids[0].tolist() == [A1, B, A2]


@pytest.mark.parametrize("alpha", [1.0, 3.0])
def test_query_expansion_lifts_the_second_match_above_the_distractor(alpha):
    index = _flat(BASE)
    scores, ids = search_expanded(index, QUERY, 3, lookup_vectors(IDS, BASE), Rerank("qe", n=1, alpha=alpha))
    assert ids[0].tolist() == [A1, A2, B]
    assert np.all(np.diff(scores[0]) <= 0)


def test_query_expansion_leaves_out_the_query_own_stored_vector():
    # The query is a1 itself: expanded with a1 again it would stay where it is; excluding it,
    # it is expanded with its true neighbour a2 and drifts towards it.
    index = _flat(BASE)
    lookup = lookup_vectors(IDS, BASE)
    rerank = Rerank("qe", n=1, alpha=1.0)
    with_self, _ = search_expanded(index, BASE[:1], 4, lookup, rerank)
    without_self, ids = search_expanded(index, BASE[:1], 4, lookup, rerank, exclude_ids=np.array([A1]))
    plain, plain_ids = search(index, BASE[:1], 4)
    assert np.allclose(with_self, plain, atol=1e-6) and ids[0].tolist() == plain_ids[0].tolist()
    assert without_self[0][ids[0].tolist().index(A2)] > plain[0][plain_ids[0].tolist().index(A2)]


def test_database_augmentation_lifts_the_second_match_above_the_distractor():
    augmented = augment_database(BASE, n=1, alpha=3.0)
    _, ids = search(_flat(augmented), QUERY, 3)
    assert ids[0].tolist() == [A1, A2, B]
    assert augmented.dtype == np.float32 and augmented.shape == BASE.shape
    assert np.allclose(np.linalg.norm(augmented, axis=1), 1.0, atol=1e-6)


def test_database_augmentation_uses_neighbours_not_itself():
    augmented = augment_database(BASE, n=1, alpha=1.0)
    # a2's nearest other vector is a1: a2' = normalise(a2 + <a1, a2> a1).
    expected = BASE[1] + float(BASE[0] @ BASE[1]) * BASE[0]
    assert np.allclose(augmented[1], expected / np.linalg.norm(expected), atol=1e-6)


def test_weighted_sum_ignores_padding_and_negative_similarities():
    v = _unit([1, 0])
    neighbours = np.array([[[0, 1], [5, 5]]], dtype=np.float32)
    out = weighted_sum(v, neighbours, np.array([[-0.5, -np.inf]], dtype=np.float32), alpha=2.0)
    assert np.allclose(out, v)


def test_lookup_refuses_unknown_ids_and_zeroes_padding():
    lookup = lookup_vectors(IDS, BASE)
    assert np.allclose(lookup(np.array([21, -1])), np.vstack([BASE[3], np.zeros(3)]))
    with pytest.raises(InputError, match="99"):
        lookup(np.array([99]))


@pytest.mark.parametrize(
    ("fields", "message"),
    [({"mode": "rrf"}, "rerank mode"), ({"mode": "qe", "n": 0}, "Rerank.n"), ({"mode": "qe", "alpha": -1.0}, "alpha")],
)
def test_rerank_rejects_bad_settings(fields, message):
    with pytest.raises(InputError, match=message):
        Rerank(**fields)


def test_rerank_fills_in_the_measured_defaults_and_round_trips():
    # the defaults chosen on Flowers train + val (docs/BENCHMARKS.md, "Re-ranking")
    assert Rerank("qe").to_dict() == {"mode": "qe", "n": 2, "alpha": 0.0}
    assert Rerank("dba").to_dict() == {"mode": "dba", "n": 8, "alpha": 12.0}
    assert Rerank("qe", n=5).to_dict() == {"mode": "qe", "n": 5, "alpha": 0.0}  # each unset field on its own
    assert Rerank("dba", alpha=1).to_dict() == {"mode": "dba", "n": 8, "alpha": 1.0}
    assert Rerank().to_dict() == {"mode": "none", "n": None, "alpha": None}
    assert Rerank("qe").label() == "qe(n=2, alpha=0)"
    rerank = Rerank("qe")
    assert Rerank.from_dict(rerank.to_dict()) == rerank
    assert Rerank.from_dict(None) == Rerank()
