import numpy as np

from models.embedding_store import EmbeddingStore


def _rows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 3)).astype(np.float32)


def test_a_reader_finds_rows_across_parts_and_ignores_later_writes(tmp_path):
    store = EmbeddingStore(tmp_path)
    first, second = _rows(4, 0), _rows(2, 1)
    store.append([10, 11, 12, 13], first)
    store.append([20, 21], second)
    reader = store.reader()
    assert all(isinstance(part.vectors, np.memmap) for part in reader.parts), "the rows stay memory maps"
    found, vectors = reader.lookup(np.array([21, 99, 10, 13]))
    assert found.tolist() == [True, False, True, True]
    np.testing.assert_array_equal(vectors, np.stack([second[1], first[0], first[3]]))

    for i in range(8):  # later appends merge chunks and delete their files: the reader still reads its own
        store.append([30 + i], _rows(1, 2 + i))
    store.remove([10], consolidate=True)
    assert store.reader().lookup(np.array([37]))[0].tolist() == [True]
    found, vectors = reader.lookup(np.array([20, 37]))
    assert found.tolist() == [True, False]
    np.testing.assert_array_equal(vectors, second[:1])


def test_a_reader_finds_rows_of_a_part_whose_ids_are_not_sorted(tmp_path):
    store = EmbeddingStore(tmp_path)
    rows = _rows(40, 3)
    ids = np.random.default_rng(4).permutation(np.arange(100, 140))
    store.append(ids, rows)
    reader = store.reader()
    assert not reader.parts[0].ordered
    wanted = ids[::-1]  # more ids than are scanned one by one: the sorted lookup
    found, vectors = reader.lookup(wanted)
    assert found.all()
    np.testing.assert_array_equal(vectors, rows[::-1])
    found, vectors = reader.lookup(np.array([ids[5], 7]))  # few ids: scanned
    assert found.tolist() == [True, False]
    np.testing.assert_array_equal(vectors, rows[5:6])
