import numpy as np
import pytest

from indexer.api.search.held import ServedVectors
from indexer.core.errors import InputError, NotFoundError


def _unit(rows: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(rows, 4)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_served_vectors_stay_sorted_by_id_through_changes() -> None:
    x = _unit(3, 0)
    served = ServedVectors.by_id(np.array([7, 2, 5]), x)
    assert served.ids.tolist() == [2, 5, 7]
    np.testing.assert_array_equal(served.of(7, "m"), x[:1])

    new = _unit(1, 1)
    changed = served.changed(add=(np.array([3]), new), remove=np.array([5]))
    assert changed.ids.tolist() == [2, 3, 7]
    np.testing.assert_array_equal(changed.of(3, "m"), new)
    assert served.ids.tolist() == [2, 5, 7]  # the published snapshot is not touched
    with pytest.raises(NotFoundError, match="image 5 has no embedding for model 'm'"):
        changed.of(5, "m")


def test_served_vectors_make_their_lookup_once() -> None:
    served = ServedVectors.by_id(np.array([1, 2]), _unit(2, 2))
    assert served.lookup() is served.lookup()
    assert ServedVectors.empty(4).ids.shape == (0,)


def test_served_vectors_change_in_segments_and_consolidate() -> None:
    from indexer.api.search import held

    base = _unit(6, 3)
    served = ServedVectors.by_id(np.arange(6) * 10, base)
    new = _unit(2, 4)
    changed = served.changed(add=(np.array([5, 15]), new), remove=np.array([20, 99]))  # removes, then adds
    assert changed.base_ids is served.base_ids, "a small change shares the base"
    assert changed.ids.tolist() == [0, 5, 10, 15, 30, 40, 50]
    found, vectors = changed.take(np.array([15, 20, 0, 99]))
    assert found == [15, 0]
    np.testing.assert_array_equal(vectors, np.stack([new[1], base[0]]))
    with pytest.raises(InputError, match="no stored vector for id 20"):
        changed.lookup()(np.array([20]))
    np.testing.assert_array_equal(changed.lookup()(np.array([-1, 10])), np.stack([np.zeros(4, np.float32), base[1]]))
    many = changed.changed(add=(np.arange(100, 100 + held.CONSOLIDATE_AT), _unit(held.CONSOLIDATE_AT, 5)))
    assert len(many.recent_ids) == 0 and many.ids[:7].tolist() == [0, 5, 10, 15, 30, 40, 50], "a new base"


def test_known_rows_change_without_copying_the_base() -> None:
    from indexer.api.search import held
    from indexer.api.search.held import KnownRows

    base = {1: ("a", None), 2: ("b", "x"), 3: ("c", None)}
    rows = KnownRows(base)
    changed = rows.with_row(9, ("z", "y")).without(2).without(9)
    assert changed.base is base and dict(changed) == {1: ("a", None), 3: ("c", None)}
    assert 2 in rows and 2 not in changed and changed.get(2) is None and changed[3] == ("c", None)
    back = changed.with_row(2, ("b2", None))
    assert back[2] == ("b2", None) and len(back) == 3
    many = rows
    for i in range(100, 101 + held.CONSOLIDATE_AT):
        many = many.with_row(i, (str(i), None))
    assert many.base is not base and not many.recent and len(many) == 3 + held.CONSOLIDATE_AT + 1
