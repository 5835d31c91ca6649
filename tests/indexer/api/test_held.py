import numpy as np
import pytest

from indexer.api.search.held import ServedVectors
from indexer.core.errors import NotFoundError


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
