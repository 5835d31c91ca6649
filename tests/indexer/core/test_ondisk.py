"""On-disk IVF: built shard by shard into one lists file, same answers as the in-memory IVF, saved, loaded
mapped, changed by rewriting (remove, add), copied for copy-on-write."""

from __future__ import annotations

import os

import numpy as np
import pytest

from indexer.core.build import add_vectors, build_index, copy_index, remove_ids
from indexer.core.errors import InputError
from indexer.core.factory import IndexParams
from indexer.core.index_io import load_index, save_index
from indexer.core.ondisk import build_on_disk, exact_search_in_shards, shard_bounds
from indexer.core.ondisk_lists import data_file, is_on_disk
from indexer.core.search import exact_search, search
from indexer.core.tuning import tune_search_param


def _data(n=20_000, d=16, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return np.arange(n, dtype=np.int64) * 3 + 7, x


def _reader(ids, x, reads):
    def read(start, stop):
        reads.append(stop - start)
        return ids[start:stop], x[start:stop]
    return read


@pytest.mark.parametrize("kind", ["ivf", "ivfsq"])
def test_built_in_shards_it_answers_exactly_as_the_in_memory_index(tmp_path, kind):
    ids, x = _data()
    params = IndexParams(kind, nprobe=8)
    reads = []
    index, info = build_on_disk(params, _reader(ids, x, reads), len(ids), x.shape[1], tmp_path / "i.faiss", shards=5)
    assert is_on_disk(index) and index.ntotal == len(ids) and info.n == len(ids)
    assert max(reads) <= 4_000, "never more than one shard read at once"
    reference, _ = build_index(params, x, ids)  # the same seeded sample and quantizer
    queries = x[:50] + 0.05
    assert np.array_equal(search(index, queries, 10, nprobe=8)[1], search(reference, queries, 10, nprobe=8)[1])
    assert data_file(index).stat().st_size == len(ids) * (index.code_size + 8), "lists laid out back to back"


def test_saved_loaded_mapped_and_old_data_files_swept(tmp_path):
    ids, x = _data(5_000)
    params = IndexParams("ivf", nprobe=4)
    index, _ = build_on_disk(params, _reader(ids, x, []), len(ids), x.shape[1], tmp_path / "i.faiss", shards=2)
    first = data_file(index)
    sidecar = save_index(index, tmp_path / "i", {"kind": "ivf"})
    assert sidecar["on_disk"] == {"data_file": first.name, "data_bytes": first.stat().st_size}
    cwd = os.getcwd()
    try:
        os.chdir("/")  # the data file is found beside the .faiss file, not from the working directory
        loaded, _ = load_index(tmp_path / "i.faiss")
    finally:
        os.chdir(cwd)
    assert np.array_equal(search(loaded, x[:20], 5)[1], search(index, x[:20], 5)[1])
    again, _ = build_on_disk(params, _reader(ids, x, []), len(ids), x.shape[1], tmp_path / "i.faiss", shards=3)
    save_index(again, tmp_path / "i", {"kind": "ivf"})
    assert sorted(p.name for p in tmp_path.glob("i.*.ivfdata")) == [data_file(again).name]
    assert search(loaded, x[:1], 1)[1][0, 0] == ids[0], "a reader of the old file keeps its mapping"


def test_remove_and_add_rewrite_the_lists_and_leave_a_copy_source_alone(tmp_path):
    ids, x = _data(6_000)
    index, _ = build_on_disk(IndexParams("ivf"), _reader(ids, x, []), len(ids), x.shape[1], tmp_path / "i.faiss")
    save_index(index, tmp_path / "i", {})
    original, _ = load_index(tmp_path / "i.faiss")
    changed = copy_index(original)
    assert remove_ids(changed, ids[:10]) == 10 and changed.ntotal == len(ids) - 10
    assert remove_ids(changed, np.array([123456789])) == 0
    nlist = int(changed.nlist)
    found = search(changed, x[:10], 1, nprobe=nlist)[1][:, 0]
    assert not np.isin(found, ids[:10]).any()
    add_vectors(changed, x[:3], ids[:3])
    assert list(search(changed, x[:3], 1, nprobe=nlist)[1][:, 0]) == list(ids[:3])
    assert original.ntotal == len(ids) and search(original, x[5:6], 1, nprobe=nlist)[1][0, 0] == ids[5]


def test_exact_search_in_shards_equals_the_whole_and_drives_tuning(tmp_path):
    ids, x = _data(8_000)
    queries, query_ids = x[:40], ids[:40]
    whole = exact_search(x, ids, queries, 20, exclude_self_ids=query_ids)
    parts = exact_search_in_shards(_reader(ids, x, []), len(ids), queries, 20, shards=7, exclude_self_ids=query_ids)
    assert np.array_equal(whole[1], parts[1])
    index, _ = build_on_disk(IndexParams("ivf"), _reader(ids, x, []), len(ids), x.shape[1], tmp_path / "i.faiss")
    tuned = tune_search_param(index, None, k=10, target_recall=0.9, exact=(queries, query_ids, parts))
    assert tuned.reached and tuned.recall >= 0.9


def test_refuses_kinds_that_are_not_plain_ivf_and_bad_shards(tmp_path):
    ids, x = _data(2_000)
    with pytest.raises(InputError, match="--on-disk needs an IVF kind"):
        build_on_disk(IndexParams("hnsw"), _reader(ids, x, []), len(ids), x.shape[1], tmp_path / "h.faiss")
    with pytest.raises(InputError, match="--shards"):
        shard_bounds(10, 0)
    assert shard_bounds(10, 3) == [(0, 3), (3, 7), (7, 10)]


def test_lists_writer_puts_entries_where_faiss_reads_them(tmp_path):
    import faiss

    from indexer.core.ondisk_lists import ListsWriter

    sizes = np.array([3, 0, 5, 2], dtype=np.uint64)
    code_size = 6
    path = tmp_path / "x.ivfdata"
    lists = faiss.OnDiskInvertedLists(len(sizes), code_size, str(path))
    lists.update_totsize(int(sizes.sum()) * (code_size + 8))
    lists.set_all_lists_sizes(faiss.swig_ptr(sizes))
    rng = np.random.default_rng(0)
    expected = {n: (rng.integers(0, 10**9, int(s)), rng.integers(0, 255, (int(s), code_size), dtype=np.uint8))
                for n, s in enumerate(sizes)}
    writer = ListsWriter(path, sizes, code_size)
    for number, (ids, codes) in expected.items():  # in two runs, as shards write them
        half = len(ids) // 2
        writer.write(number, 0, ids[:half], codes[:half])
        writer.write(number, half, ids[half:], codes[half:])
    writer.close()
    for number, (ids, codes) in expected.items():
        size = int(sizes[number])
        if size:
            assert np.array_equal(faiss.rev_swig_ptr(lists.get_ids(number), size), ids)
            assert np.array_equal(faiss.rev_swig_ptr(lists.get_codes(number), size * code_size).reshape(size, -1),
                                  codes)
