import numpy as np
import pytest

from models.embedding_store import EmbeddingStore
from models.errors import ModelError


def _vectors(n, d=4, seed=0):
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def test_append_resume_and_remove(tmp_path):
    store = EmbeddingStore(tmp_path / "emb")
    assert store.dim is None and len(store.ids()) == 0
    first = _vectors(3)
    store.append([10, 11, 12], first)
    store.append([20], _vectors(1, seed=1))
    reopened = EmbeddingStore(tmp_path / "emb")  # what a resumed run sees
    assert reopened.dim == 4
    np.testing.assert_array_equal(reopened.ids(), [10, 11, 12, 20])
    np.testing.assert_array_equal(reopened.missing([12, 13, 20, 21]), [13, 21])
    np.testing.assert_array_equal(reopened.vectors()[:3], first)
    assert reopened.remove([11, 99]) == 1
    np.testing.assert_array_equal(reopened.ids(), [10, 12, 20])
    np.testing.assert_array_equal(reopened.vectors(mmap=False)[1], first[2])
    assert len(list((tmp_path / "emb").glob("*.npy"))) == 2  # one consolidated base: ids + vectors


def test_rejects_wrong_dim_and_duplicates(tmp_path):
    store = EmbeddingStore(tmp_path)
    store.append([1, 2], _vectors(2))
    with pytest.raises(ModelError, match="3 dims"):
        store.append([3], _vectors(1, d=3))
    with pytest.raises(ModelError, match="already stored"):
        store.append([2], _vectors(1))


def test_crash_leftovers_are_ignored(tmp_path):
    store = EmbeddingStore(tmp_path)
    store.append([1], _vectors(1))
    np.save(tmp_path / "chunk-000099.ids.npy", np.array([5]))  # written, never named by the manifest
    assert EmbeddingStore(tmp_path).ids().tolist() == [1]


def test_lookup_reads_rows_across_parts_without_writing(tmp_path):
    store = EmbeddingStore(tmp_path / "s")
    rng = np.random.default_rng(0)
    first, second = rng.standard_normal((5, 4)).astype(np.float32), rng.standard_normal((3, 4)).astype(np.float32)
    store.append([10, 11, 12, 13, 14], first)
    store.append([30, 31, 32], second)
    before = sorted((p.name, p.stat().st_mtime_ns) for p in (tmp_path / "s").iterdir())
    found, vectors = store.lookup([31, 99, 12, 10])
    assert found.tolist() == [True, False, True, True]
    assert np.array_equal(vectors, np.stack([second[1], first[2], first[0]]))
    assert sorted((p.name, p.stat().st_mtime_ns) for p in (tmp_path / "s").iterdir()) == before  # no consolidation
    found, vectors = EmbeddingStore(tmp_path / "empty").lookup([1])
    assert found.tolist() == [False] and vectors.shape == (0, 0)


def test_items_reads_ids_and_vectors_together(tmp_path):
    store = EmbeddingStore(tmp_path / "emb")
    rows = _vectors(5)
    store.append([3, 1, 4], rows[:3])
    other = EmbeddingStore(tmp_path / "emb")  # another writer (another process's view of the same folder)
    other.append([5, 9], rows[3:])
    other.remove([1])
    ids, vectors = store.items()
    np.testing.assert_array_equal(ids, [3, 4, 5, 9])
    np.testing.assert_array_equal(vectors, rows[[0, 2, 3, 4]])


def test_a_removal_records_ids_and_leaves_the_rows_until_consolidation(tmp_path):
    from models import embedding_store

    store = EmbeddingStore(tmp_path / "emb")
    rows = _vectors(100)
    store.append(np.arange(100), rows)
    store.vectors()  # one base part
    base = store._manifest["base"]
    assert store.remove([5, 7, 500]) == 2 and store.remove([5]) == 0
    assert store._manifest["base"] == base, "the base part is not rewritten for a removal"
    assert len(store) == 98 and 5 not in store.ids().tolist()
    found, vectors = store.lookup([4, 5, 7, 8])
    assert found.tolist() == [True, False, False, True]
    np.testing.assert_array_equal(vectors, rows[[4, 8]])
    np.testing.assert_array_equal(store.missing([5, 6]), [5])
    store.append([5], _vectors(1, seed=3))  # a removed id may come back with a new vector
    found, vectors = store.lookup([5])
    np.testing.assert_array_equal(vectors, _vectors(1, seed=3))
    many = np.arange(10, 10 + int(embedding_store.CONSOLIDATE_REMOVED * 100) + 2)
    store.remove(many)
    assert not store._manifest.get("removed"), "past the threshold a removal consolidates"
    ids, vectors = EmbeddingStore(tmp_path / "emb").items()
    assert len(ids) == 99 - len(many) and not np.isin(many, ids).any()  # 5 came back


def test_single_removals_write_small_parts_that_merge(tmp_path, monkeypatch):
    from models import embedding_store

    monkeypatch.setattr(embedding_store, "CONSOLIDATE_REMOVED", 1.0)  # keep every removal as a removed part
    store = EmbeddingStore(tmp_path / "emb")
    store.append(np.arange(1000), _vectors(1000))
    store.vectors()
    written = []
    real = EmbeddingStore._write_array

    def counting(path, array):
        written.append(len(array))
        real(path, array)

    monkeypatch.setattr(EmbeddingStore, "_write_array", staticmethod(counting))
    for i in range(300, 0, -1):  # descending ids: each part's ids still come out sorted
        assert store.remove([i * 3]) == 1
    parts = store._removed_parts()
    assert len(parts) <= 9, parts  # a binary counter: popcount(300) = 4 parts
    assert sum(store._removed_rows()) == 300
    assert sum(written) < 300 * 12, "each removed id is rewritten O(log r) times, not once per later removal"
    assert store.remove([3, 999]) == 1  # 3 is already removed
    fresh = EmbeddingStore(tmp_path / "emb")
    found, _ = fresh.lookup([3, 4, 900, 999])
    assert found.tolist() == [False, True, False, False]
    assert len(fresh) == 699 and not np.isin(np.arange(3, 901, 3), fresh.ids()).any()


def test_a_store_with_one_removed_part_by_name_still_reads(tmp_path, monkeypatch):
    import json

    from models import embedding_store

    monkeypatch.setattr(embedding_store, "CONSOLIDATE_REMOVED", 1.0)

    store = EmbeddingStore(tmp_path)
    store.append(np.arange(10), _vectors(10))
    store.remove([4])
    manifest = json.loads((tmp_path / "store.json").read_text())
    manifest["removed"] = manifest["removed"][0]  # as written before the removed ids were a list of parts
    del manifest["removed_rows"]
    (tmp_path / "store.json").write_text(json.dumps(manifest))
    old = EmbeddingStore(tmp_path)
    assert old.remove([5]) == 1 and old.remove([4]) == 0
    assert sorted(old.ids().tolist()) == [0, 1, 2, 3, 6, 7, 8, 9]


def test_single_appends_merge_into_few_chunks(tmp_path):
    store = EmbeddingStore(tmp_path / "emb")
    rows = _vectors(200)
    for i in range(200):
        store.append([i], rows[i:i + 1])
    assert len(store._manifest["chunks"]) <= 8, store._manifest["chunk_rows"]  # binary counter: popcount(200) = 3
    assert sum(store._manifest["chunk_rows"]) == 200
    ids, vectors = EmbeddingStore(tmp_path / "emb").items()
    np.testing.assert_array_equal(vectors[np.argsort(ids)], rows)
    assert len(list((tmp_path / "emb").glob("*.npy"))) == 2


def test_presence_uses_each_parts_recorded_id_range_sorted_or_not(tmp_path):
    store = EmbeddingStore(tmp_path)
    store.append(np.arange(0, 2000, 2), _vectors(1000))  # sorted, even ids: bisection
    store.append([5001, 3001, 4001], _vectors(3, seed=1))  # unsorted: compared
    spans = EmbeddingStore(tmp_path)._manifest["spans"]
    assert sorted(spans.values()) == [[0, 1998, True], [3001, 5001, False]]
    for stored in (0, 2, 1998, 3001, 4001, 5001):
        with pytest.raises(ModelError, match="already stored"):
            store.append([stored], _vectors(1))
    store.append([1, 1999, 4000, 6000], _vectors(4, seed=2))  # inside the ranges, not held: new
    np.testing.assert_array_equal(store.missing([1, 3, 4000, 4002]), [3, 4002])
    assert store.remove([2, 3, 4001, 7]) == 2  # only held ids count
    store.append([2], _vectors(1, seed=3))  # a removed id comes back
    found, _ = store.lookup([2, 4001])
    assert found.tolist() == [True, False]


def test_a_store_written_before_spans_were_recorded_still_checks_ids(tmp_path):
    import json

    store = EmbeddingStore(tmp_path)
    store.append([3, 1, 2], _vectors(3))
    manifest = json.loads((tmp_path / "store.json").read_text())
    del manifest["spans"]
    (tmp_path / "store.json").write_text(json.dumps(manifest))
    old = EmbeddingStore(tmp_path)
    with pytest.raises(ModelError, match="already stored"):
        old.append([2], _vectors(1))
    old.append([4], _vectors(1, seed=1))
    assert len(EmbeddingStore(tmp_path)._manifest["spans"]) == len(EmbeddingStore(tmp_path)._parts())
