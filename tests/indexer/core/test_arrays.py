"""AppendBuffer: rows shared by versions, found by binary search while the ids ascend, by a dict once not."""

from __future__ import annotations

import numpy as np

from indexer.core.arrays import AppendBuffer


def _rows(n: int, start: float = 0.0) -> np.ndarray:
    return np.arange(n * 3, dtype=np.float32).reshape(n, 3) + start


def test_ascending_ids_are_found_without_a_dict_and_each_version_sees_its_own_rows():
    first = AppendBuffer(3).extended(0, np.array([5, 9]), _rows(2))
    second = first.extended(2, np.array([12]), _rows(1, 100))
    assert second is first and first.row_of is None, "appended in place, no dict kept"
    assert first.rows(np.array([9, 12, 7, 5, 99]), 2).tolist() == [1, -1, -1, 0, -1], "a version sees its count"
    assert second.rows(np.array([12, 5]), 3).tolist() == [2, 0]
    grown = second.extended(3, np.arange(20, 120), _rows(100))  # past the capacity: a larger copy
    assert grown is not second and grown.row_of is None and grown.rows(np.array([119, 9]), 103).tolist() == [102, 1]
    np.testing.assert_array_equal(grown.vectors_at(np.array([2])), _rows(1, 100))


def test_ids_out_of_order_fall_back_to_a_dict_with_the_same_answers():
    buffer = AppendBuffer(3).extended(0, np.array([5, 9]), _rows(2))
    mixed = buffer.extended(2, np.array([7, 30, 1]), _rows(3, 10))
    assert mixed.row_of is not None
    assert mixed.rows(np.array([1, 5, 7, 9, 30, 8]), 5).tolist() == [4, 0, 2, 1, 3, -1]
    assert mixed.rows(np.array([1, 7]), 2).tolist() == [-1, -1], "rows past a version's count are not its own"
    # a version that diverges from a later one gets a copy of its own rows (ascending again: no dict)
    other = mixed.extended(2, np.array([40]), _rows(1))
    assert other is not mixed and other.row_of is None and other.rows(np.array([40, 7]), 3).tolist() == [2, -1]


def test_a_buffer_in_a_map_of_its_own_reserves_room_instead_of_copying_itself_as_it_grows():
    """50,000 single adds of 128-d rows: once past 1 MiB the buffer reserves (never commits) room for 256 MiB of
    rows, so none of those adds copies it (each copy held old and new rows resident at once)."""
    from indexer.core.arrays import MAPPED_BYTES, MAPPED_RESERVE, grown_capacity

    assert grown_capacity(100, 128) == 150  # in the heap: half again
    first_mapped = MAPPED_BYTES // 512
    assert grown_capacity(first_mapped, 128) == MAPPED_RESERVE // 512
    assert grown_capacity(10 * MAPPED_RESERVE // 512, 128) == 40 * MAPPED_RESERVE // 512
    rows = np.ones((1, 128), np.float32)
    buffer, copied_at = AppendBuffer(128), []
    for count in range(50_000):
        grown = buffer.extended(count, np.array([count + 1]), rows * count)
        if grown is not buffer:
            copied_at.append(count)
        buffer = grown
    # the last copy is the one from the heap into its map, about 1 MiB of rows; none after it
    assert max(copied_at) < 2 * first_mapped and np.array_equal(buffer.vectors[[0, 49_999], 0], [0, 49_999])
    assert buffer.rows(np.array([1, 50_000, 50_001]), 50_000).tolist() == [0, 49_999, -1]
