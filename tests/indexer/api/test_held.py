import numpy as np
import pytest

from indexer.api.search.held import KnownRows, ServedVectors
from indexer.api.search.served import RowTable
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
    assert changed.ids.tolist() == [2, 3, 7] and len(changed) == 3
    np.testing.assert_array_equal(changed.of(3, "m"), new)
    assert served.ids.tolist() == [2, 5, 7]  # the published snapshot is not touched
    with pytest.raises(NotFoundError, match="image 5 has no embedding for model 'm'"):
        changed.of(5, "m")


def test_served_vectors_make_their_lookup_once() -> None:
    served = ServedVectors.by_id(np.array([1, 2]), _unit(2, 2))
    assert served.lookup() is served.lookup()
    assert ServedVectors.empty(4).ids.shape == (0,)


def test_served_vectors_change_in_segments_and_never_copy_the_base() -> None:
    base = _unit(6, 3)
    served = ServedVectors.by_id(np.arange(6) * 10, base)
    new = _unit(2, 4)
    changed = served.changed(add=(np.array([5, 15]), new), remove=np.array([20, 99]))  # removes, then adds
    assert changed.base_vectors is base, "a change shares the base"
    assert changed.ids.tolist() == [0, 5, 10, 15, 30, 40, 50]
    found, vectors = changed.take(np.array([15, 20, 0, 99]))
    assert found == [15, 0]
    np.testing.assert_array_equal(vectors, np.stack([new[1], base[0]]))
    with pytest.raises(InputError, match="no stored vector for id 20"):
        changed.lookup()(np.array([20]))
    np.testing.assert_array_equal(changed.lookup()(np.array([-1, 10])), np.stack([np.zeros(4, np.float32), base[1]]))
    many = changed
    for i in range(5000):  # thousands of single writes: still the same base, each version sees its own rows
        many = many.changed(add=(np.array([1000 + i]), _unit(1, i)))
    assert many.base_vectors is base and len(many) == 7 + 5000
    np.testing.assert_array_equal(many.of(5999, "m"), _unit(1, 4999))
    assert changed.take(np.array([1000]))[0] == [], "an older version does not see later rows"


def test_an_older_version_changed_again_does_not_disturb_the_newer_one() -> None:
    served = ServedVectors.by_id(np.array([1]), _unit(1, 0))
    first = served.changed(add=(np.array([2]), _unit(1, 1)))
    branch = served.changed(add=(np.array([3]), _unit(1, 2)))  # from the same older version
    assert first.ids.tolist() == [1, 2] and branch.ids.tolist() == [1, 3]
    np.testing.assert_array_equal(first.of(2, "m"), _unit(1, 1))
    gone = first.changed(remove=np.array([2]))
    back = gone.changed(add=(np.array([2]), _unit(1, 5)))  # an id comes back: a new base
    np.testing.assert_array_equal(back.of(2, "m"), _unit(1, 5))
    assert back.ids.tolist() == [1, 2]


def test_served_vectors_from_a_memory_mapped_store_stay_mapped(tmp_path) -> None:
    from models.embedding_store import EmbeddingStore

    store = EmbeddingStore(tmp_path)
    rows = _unit(5, 6)
    store.append([9, 3, 7, 1, 5], rows)
    ids, vectors = store.items(mmap=True)
    served = ServedVectors.from_store(ids, vectors, np.array([1, 3, 9]))  # 5 and 7 are not ok catalog images
    assert isinstance(served.base_vectors, np.memmap)
    assert served.ids.tolist() == [1, 3, 9] and len(served) == 3
    found, got = served.take(np.array([9, 7, 1]))
    assert found == [9, 1]
    np.testing.assert_array_equal(got, rows[[0, 3]])


def test_row_table_answers_like_the_dict_it_was_made_from() -> None:
    rows = {5: ("b/é.jpg", "x"), 2: ("a.jpg", None), 9: ("c.jpg", "y")}
    table = RowTable(rows)
    assert dict(table) == rows and len(table) == 3 and list(table) == [2, 5, 9]
    assert 4 not in table and "5" not in table and table.get(4) is None and table[5] == ("b/é.jpg", "x")
    assert dict(RowTable(iter([(1, "p", None)]))) == {1: ("p", None)} and len(RowTable({})) == 0


def test_row_table_from_sorted_batches_equals_the_table_of_all_rows_at_once() -> None:
    rows = [(2, "a.jpg", None), (5, "b/é.jpg", "zeta"), (9, "c.jpg", "alpha"), (11, "d.jpg", "zeta"), (12, "e", None)]
    batched = RowTable.from_sorted_batches(iter([rows[:2], rows[2:4], [], rows[4:]]))
    whole = RowTable(iter(rows))
    assert dict(batched) == dict(whole) and batched.labels == whole.labels == ["alpha", "zeta"]
    assert batched.codes.tolist() == whole.codes.tolist() and batched.offsets.tolist() == whole.offsets.tolist()
    assert len(RowTable.from_sorted_batches(iter([]))) == 0 and RowTable.from_sorted_batches(iter([])).get(1) is None
    with pytest.raises(InputError, match="ascend"):
        RowTable.from_sorted_batches(iter([rows[2:4], rows[:2]]))
    assert batched.offsets.dtype == np.uint32  # 4 bytes a row while the paths fit in 4 GiB


def test_stored_vectors_serving_the_same_ids_share_them_and_others_are_removed_by_binary_search() -> None:
    rows = np.eye(5, dtype=np.float32)
    ids = np.array([1, 3, 5, 7, 9], np.int64)
    assert ServedVectors.from_store(ids, rows, ids).removed.tolist() == []
    assert ServedVectors.from_store(ids, rows, ids).base_ids is ids
    assert ServedVectors.from_store(ids, rows, np.array([1, 5, 9, 11])).removed.tolist() == [3, 7]
    assert ServedVectors.from_store(ids, rows, np.array([9, 1, 5])).removed.tolist() == [3, 7]  # unsorted too


def test_known_rows_change_without_copying_the_base() -> None:
    base = {1: ("a", None), 2: ("b", "x"), 3: ("c", None)}
    rows = KnownRows(base)
    changed = rows.with_row(9, ("z", "y")).without(2).without(9)
    assert changed.base is base and dict(changed) == {1: ("a", None), 3: ("c", None)} and len(changed) == 2
    assert 2 in rows and 2 not in changed and changed.get(2) is None and changed[3] == ("c", None)
    back = changed.with_row(2, ("b2", None))
    assert back[2] == ("b2", None) and len(back) == 3
    many = rows
    for i in range(100, 5100):
        many = many.with_row(i, (str(i), None))
    assert many.base is base and len(many) == 3 + 5000 and many[5099] == ("5099", None)
    assert 5099 not in rows.with_row(7, ("q", None)), "a version sees only its own rows"
    assert many.without(12345) is many


def test_rows_of_looks_up_many_ids_at_once_as_one_at_a_time_would() -> None:
    table = RowTable(iter((i, f"p/{i}é.jpg", None if i % 3 else f"l{i % 5}") for i in range(0, 400, 2)))
    versions = [KnownRows(table), KnownRows({i: table[i] for i in table})]  # a RowTable base and a plain dict
    for rows in list(versions):
        versions.append(rows.with_row(1001, ("new", "n")).without(4).without(1001).with_row(1003, ("w", None)))
    asked = np.array([-1, 0, 1, 2, 4, 6, 199, 398, 400, 1001, 1003, 5000], np.int64)
    for rows in versions:
        assert rows.rows_of(asked) == {int(i): rows[int(i)] for i in asked if int(i) in rows}
    assert versions[2].rows_of(asked).keys() == {0, 2, 6, 398, 1003}  # 4 and 1001 removed, odd ids never there
    assert table.rows_of(np.array([2, 3, 500], np.int64)) == {2: ("p/2é.jpg", None)}
    assert RowTable({}).rows_of(np.array([1], np.int64)) == {} and table.rows_of(np.zeros(0, np.int64)) == {}


def test_served_vectors_read_added_rows_from_the_store_without_holding_them(tmp_path) -> None:
    from indexer.api.search.served import StoredRows
    from models.embedding_store import EmbeddingStore

    store = EmbeddingStore(tmp_path)
    base = _unit(3, 7)
    store.append([1, 2, 3], base)
    served = ServedVectors.from_store(*store.items(mmap=True), None)
    in_memory = served.changed(add=(np.array([4]), _unit(1, 8)))  # a change before the store-backed ones
    store.append([4], _unit(1, 8))
    version = in_memory
    for i in range(5, 40):  # one row at a time, as the service writes
        store.append([i], _unit(1, i))
        version = version.changed(add=(np.array([i]), _unit(1, i)), stored=store.reader())
    assert isinstance(version._appended, StoredRows) and version._appended.ids.dtype == np.int64
    assert not hasattr(version._appended, "vectors"), "no vectors kept in the process"
    version = version.changed(remove=np.array([2, 7]))
    assert version.ids.tolist() == [1, 3, 4] + [i for i in range(5, 40) if i != 7]
    found, got = version.take(np.array([39, 7, 4, 1]))
    assert found == [39, 4, 1]
    np.testing.assert_array_equal(got, np.concatenate([_unit(1, 39), _unit(1, 8), base[:1]]))
    assert in_memory.take(np.array([5]))[0] == [], "an older version does not see later rows"
    np.testing.assert_array_equal(in_memory.of(4, "m"), _unit(1, 8))
