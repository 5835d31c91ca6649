"""Segments: a sealed index, a growing segment and deletion marks answer as one index over the live set."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.core.build import build_index
from indexer.core.compaction import fold
from indexer.core.errors import InputError
from indexer.core.factory import IndexParams
from indexer.core.search import exact_search, search
from indexer.core.segments import SegmentedIndex

KINDS = ["flat", "pca", "ivf", "pca-ivf", "hnsw", "ivfsq"]


def _unit(n: int, d: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _live_set(seed: int = 0):
    sealed_x, new_x = _unit(1500, 24, seed), _unit(60, 24, seed + 1)
    sealed_ids = np.arange(1500, dtype=np.int64) * 2 + 5
    new_ids = np.arange(60, dtype=np.int64) * 2 + 4000
    rng = np.random.default_rng(seed)
    gone = np.concatenate([rng.choice(sealed_ids, 200, replace=False), new_ids[:10]])
    return sealed_x, sealed_ids, new_x, new_ids, gone


@pytest.mark.parametrize("kind", KINDS)
def test_segments_answer_as_one_index_over_the_live_set(kind):
    sealed_x, sealed_ids, new_x, new_ids, gone = _live_set()
    index, _ = build_index(IndexParams(kind=kind, nlist=8, pca_dim=16, seed=0), sealed_x, sealed_ids)
    segmented = SegmentedIndex(index).added(new_ids, new_x)
    segmented, removed = segmented.removed(np.concatenate([gone, [999_999]]))
    assert removed == len(gone) and segmented.describe() == {"sealed": 1500, "tail": 0, "growing": 50, "deleted": 200}
    live_ids = np.concatenate([sealed_ids, new_ids])
    live_x = np.concatenate([sealed_x, new_x])
    keep = ~np.isin(live_ids, gone)
    assert segmented.ntotal == keep.sum() and np.array_equal(segmented.ids(), np.sort(live_ids[keep]))
    queries = np.concatenate([new_x[10:15], sealed_x[:5]])
    knobs = {"nprobe": 8} if "ivf" in kind else {"efSearch": 400} if kind == "hnsw" else {}
    scores, ids = search(segmented, queries, 10, **knobs)
    assert not np.isin(ids, gone).any(), "a deleted id came back"
    # the same answers as one sealed index of the live set (exact kinds: the same ids)
    folded = fold(segmented, sidecar={"params": IndexParams(kind=kind, nlist=8, pca_dim=16).to_dict()})
    _, truth = search(folded, queries, 10, **knobs)
    overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, truth)])
    assert overlap >= (1.0 if kind in ("flat", "pca") else 0.95), (kind, overlap)
    _, exact = exact_search(live_x[keep], live_ids[keep], queries, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, exact)])
    assert recall >= (0.4 if kind.startswith("pca") else 0.9), (kind, recall)  # 24 -> 16 dims of noise
    assert np.all(np.diff(scores, axis=1) <= 1e-6), "best first"


def test_versions_are_immutable_and_share_the_sealed_index():
    sealed_x, sealed_ids, new_x, new_ids, _ = _live_set()
    index, _ = build_index(IndexParams(kind="flat"), sealed_x, sealed_ids)
    first = SegmentedIndex(index)
    second = first.added(new_ids[:3], new_x[:3])
    third, _ = second.removed(sealed_ids[:1])
    assert first.ntotal == 1500 and second.ntotal == 1503 and third.ntotal == 1502
    assert second.sealed is first.sealed is third.sealed and index.ntotal == 1500
    assert search(first, new_x[:1], 1)[1][0, 0] != new_ids[0]
    assert search(second, new_x[:1], 1)[1][0, 0] == new_ids[0]
    assert search(second, sealed_x[:1], 1)[1][0, 0] == sealed_ids[0]
    assert search(third, sealed_x[:1], 1)[1][0, 0] != sealed_ids[0]
    with pytest.raises(InputError, match="already indexed"):
        second.added(new_ids[:1], new_x[:1])
    again = third.added(sealed_ids[:1], sealed_x[:1])  # a deleted id may come back as a new vector
    assert search(again, sealed_x[:1], 1)[1][0, 0] == sealed_ids[0]


def test_fewer_live_vectors_than_k_are_padded():
    x = _unit(4, 8, 3)
    index, _ = build_index(IndexParams(kind="flat"), x, np.arange(4, dtype=np.int64))
    segmented, _ = SegmentedIndex(index).removed(np.array([0, 1, 2]))
    segmented = segmented.added(np.array([9]), _unit(1, 8, 4))
    scores, ids = search(segmented, x[:1], 5)
    assert ids[0].tolist()[2:] == [-1, -1, -1] and sorted(ids[0, :2].tolist()) == [3, 9]
    assert np.isinf(scores[0, 2:]).all()


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_fold_gives_a_sealed_index_of_the_live_set(kind):
    sealed_x, sealed_ids, new_x, new_ids, gone = _live_set(1)
    params = IndexParams(kind=kind, nlist=8, seed=0)
    index, _ = build_index(params, sealed_x, sealed_ids)
    segmented, _ = SegmentedIndex(index).added(new_ids, new_x).removed(gone)
    folded = fold(segmented, sidecar={"params": params.to_dict(), "search_params": {}})
    assert index.ntotal == 1500, "the sealed index is left as it was"
    from indexer.core.membership import indexed_ids

    assert np.array_equal(indexed_ids(folded), segmented.ids())


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_rebase_keeps_the_changes_made_while_a_fold_ran(kind):
    from indexer.core.compaction import rebase
    from indexer.core.membership import indexed_ids

    sealed_x, sealed_ids, new_x, new_ids, _ = _live_set(2)
    params = IndexParams(kind=kind, nlist=8, seed=0)
    index, _ = build_index(params, sealed_x, sealed_ids)
    snapshot, _ = SegmentedIndex(index).added(new_ids[:30], new_x[:30]).removed(sealed_ids[:20])
    folded = fold(snapshot, sidecar={"params": params.to_dict(), "search_params": {}})
    # meanwhile: more adds, a delete of a sealed id, of an id the fold took in, of a later growing one
    current = snapshot.added(new_ids[30:], new_x[30:])
    current, _ = current.removed(np.array([sealed_ids[100], new_ids[3], new_ids[40]]))
    rebased = rebase(snapshot, current, folded, indexed_ids(folded))
    assert np.array_equal(rebased.ids(), current.ids())
    assert rebased.describe() == {"sealed": 1510, "tail": 0, "growing": 29, "deleted": 2}
    _, ids = search(rebased, np.concatenate([new_x[3:4], new_x[41:42], sealed_x[100:101]]), 1,
                    **({"efSearch": 200} if kind == "hnsw" else {"nprobe": 8} if kind == "ivf" else {}))
    assert ids[:, 0].tolist()[1] == new_ids[41] and new_ids[3] not in ids and sealed_ids[100] not in ids


@pytest.mark.parametrize("kind", ["ivf", "ivfsq"])
def test_an_ivf_index_folds_in_place_into_the_same_answers_as_a_copy(kind):
    from indexer.core.compaction import can_fold_in_place, fold_in_place, rebase
    from indexer.core.membership import indexed_ids

    sealed_x, sealed_ids, new_x, new_ids, gone = _live_set(3)
    params = IndexParams(kind=kind, nlist=8, seed=0)
    copy_source, _ = build_index(params, sealed_x, sealed_ids)
    in_place, _ = build_index(params, sealed_x, sealed_ids)
    snapshot, _ = SegmentedIndex(in_place).added(new_ids, new_x).removed(gone)
    assert can_fold_in_place(snapshot)
    copied = fold(SegmentedIndex(copy_source).added(new_ids, new_x).removed(gone)[0])
    # a version made before the fold, and a delete of a growing id while it runs (marked: it is sealed now)
    before = snapshot
    sealed_after = fold_in_place(snapshot)
    assert snapshot.sealed is in_place and np.array_equal(indexed_ids(in_place), indexed_ids(copied))
    assert np.array_equal(sealed_after, indexed_ids(copied)) and in_place.ntotal == copied.ntotal
    queries = _unit(40, 24, 9)
    expected = search(copied, queries, 10, nprobe=8)
    folded = search(SegmentedIndex(in_place), queries, 10, nprobe=8)
    np.testing.assert_allclose(folded[0], expected[0], rtol=1e-6)  # SQ codes tie: scores, then ids as sets
    assert [set(row) for row in folded[1].tolist()] == [set(row) for row in expected[1].tolist()]
    got = search(before, queries, 10, nprobe=8)  # growing vectors now also sealed: each answered once
    for row in got[1]:
        assert len(set(row.tolist())) == 10
    if kind == "ivf":  # exact codes: the same answers, in the same order
        np.testing.assert_array_equal(got[1], expected[1])
    late = new_ids[30]
    meanwhile, went = before.removed(np.array([late]))
    assert went == 1 and late not in search(meanwhile, new_x[30:31], 5, nprobe=8)[1]
    rebased = rebase(snapshot, meanwhile, in_place, sealed_after)
    assert rebased.gate is snapshot.gate and rebased.describe()["growing"] == 0
    assert np.array_equal(rebased.ids(), meanwhile.ids())


def test_in_place_fold_steps_wait_for_the_queries_and_queries_never_see_a_deleted_id(monkeypatch):
    import threading

    from indexer.core import compaction

    monkeypatch.setattr(compaction, "FOLD_STEP_LISTS", 1)
    monkeypatch.setattr(compaction, "FOLD_STEP_ROWS", 7)
    sealed_x, sealed_ids, new_x, new_ids, gone = _live_set(4)
    index, _ = build_index(IndexParams(kind="ivf", nlist=8, seed=0), sealed_x, sealed_ids)
    version, _ = SegmentedIndex(index).added(new_ids, new_x).removed(gone)
    queries = np.concatenate([sealed_x[np.isin(sealed_ids, gone)][:20], new_x])
    seen, stop = [], threading.Event()

    def query() -> None:
        while not stop.is_set():
            seen.append(search(version, queries, 10, nprobe=8)[1])

    threads = [threading.Thread(target=query) for _ in range(2)]
    for thread in threads:
        thread.start()
    compaction.fold_in_place(version)
    stop.set()
    for thread in threads:
        thread.join()
    assert seen, "the queries ran during the fold"
    for ids in seen:
        assert not np.isin(ids, gone).any()
        for row in ids:
            real = row[row >= 0]
            assert len(np.unique(real)) == len(real)


@pytest.mark.parametrize("kind", ["hnsw", "hnsw-fp16", "ivf"])
def test_deletion_marks_search_with_the_index_own_setting(kind):
    """No nprobe / efSearch given: the selector's parameters take the stored one (an HNSW index used to fail
    here, reading efSearch off the index instead of its graph)."""
    x = _unit(600, 16, 3)
    index, _ = build_index(IndexParams(kind=kind, nlist=4, seed=0), x, np.arange(600, dtype=np.int64))
    segmented, removed = SegmentedIndex(index).removed(np.array([0, 1], np.int64))
    _, ids = segmented.search(x[:3], 5)
    assert removed == 2 and not np.isin(ids, [0, 1]).any() and ids[2, 0] == 2


@pytest.mark.parametrize("kind", ["ivf", "ivfsq", "ivfpq"])
def test_an_in_place_fold_leaves_the_index_faiss_own_add_and_remove_would(kind):
    import faiss

    from indexer.core.build import add_vectors, remove_ids
    from indexer.core.compaction import fold_in_place

    x = _unit(5000, 32, 4)
    ids = np.arange(5000, dtype=np.int64) * 2
    index, _ = build_index(IndexParams(kind=kind, nlist=32, nprobe=32, seed=0), x[:4000], ids[:4000])
    reference = faiss.clone_index(index)
    remove_ids(reference, ids[:500])
    add_vectors(reference, x[4000:], ids[4000:])
    segmented, _ = SegmentedIndex(index).added(ids[4000:], x[4000:]).removed(ids[:500])
    held = fold_in_place(segmented)
    assert index.ntotal == reference.ntotal == 4500 and (held == np.sort(ids[500:])).all()
    ours, theirs = search(index, x[:100], 10), search(reference, x[:100], 10)
    assert (ours[1] == theirs[1]).all() and np.allclose(ours[0], theirs[0], atol=0)


def test_the_ids_after_a_fold_are_merged_not_sorted_again():
    from indexer.core.compaction import _merged_ids

    rng = np.random.default_rng(3)
    sealed = np.sort(rng.choice(100_000, 20_000, replace=False)).astype(np.int64)
    deleted = np.sort(rng.choice(sealed, 2_000, replace=False))
    growing = np.concatenate([rng.choice(np.arange(100_000, 110_000), 500, replace=False), deleted[:7]])
    expected = np.union1d(sealed[~np.isin(sealed, deleted)], growing)  # a deleted id added again is back
    assert np.array_equal(_merged_ids(sealed, deleted, growing), expected)
    assert np.array_equal(_merged_ids(sealed, deleted[:0], growing[:0]), sealed)
    assert np.array_equal(_merged_ids(sealed, np.array([10**9], np.int64), growing[:0]), sealed), "unknown marks"


def test_a_write_shares_the_growing_rows_and_marks_instead_of_copying_them():
    sealed_x, sealed_ids, new_x, new_ids, _ = _live_set()
    index, _ = build_index(IndexParams(kind="flat"), sealed_x, sealed_ids)
    versions = [SegmentedIndex(index)]
    for i in range(len(new_ids)):  # one add at a time, as the service writes
        versions.append(versions[-1].added(new_ids[i:i + 1], new_x[i:i + 1]))
    buffers = {id(version._rows) for version in versions[1:]}
    assert len(buffers) <= 2, "the growing rows were copied on a write (only a doubling may copy)"
    assert all(version.describe()["growing"] == i for i, version in enumerate(versions))
    latest = versions[-1]
    after, removed = latest.removed(np.array([new_ids[3], sealed_ids[7]]))
    assert removed == 2 and after._rows is latest._rows, "a removed growing row is marked, not copied out"
    assert latest.holds(int(new_ids[3])) and not after.holds(int(new_ids[3]))
    assert latest.holds(int(sealed_ids[7])) and not after.holds(int(sealed_ids[7])), "marks copy on write"
    _, ids = search(after, np.concatenate([new_x[3:4], sealed_x[7:8]]), 5)
    assert not np.isin(ids, [new_ids[3], sealed_ids[7]]).any()
    _, before = search(latest, np.concatenate([new_x[3:4], sealed_x[7:8]]), 1)
    assert before[:, 0].tolist() == [new_ids[3], sealed_ids[7]], "an older version still answers what it held"
    again = after.added(new_ids[3:4], new_x[3:4])  # an id whose growing row went, added again: one answer
    _, ids = search(again, new_x[3:4], 3)
    assert ids[0, 0] == new_ids[3] and (ids[0] == new_ids[3]).sum() == 1 and again.holds(int(new_ids[3]))


def test_a_filtered_search_skips_the_deletion_marks_through_their_bitmap(monkeypatch):
    from indexer.core import filtered
    from indexer.core.filtered import Selection

    monkeypatch.setattr(filtered, "BITMAP_FROM", 100)  # this small selection takes the bitmap path

    sealed_x, sealed_ids, new_x, new_ids, gone = _live_set(3)
    index, _ = build_index(IndexParams(kind="flat"), sealed_x, sealed_ids)
    segmented, _ = SegmentedIndex(index).added(new_ids, new_x).removed(gone)
    allowed = np.sort(np.concatenate([sealed_ids[::2], new_ids[::2]]))  # large enough for the bitmap path
    _, ids = segmented.search(sealed_x[:20], 10, allowed=Selection(allowed))
    live = ~np.isin(allowed, gone)
    all_ids, all_x = np.concatenate([sealed_ids, new_ids]), np.concatenate([sealed_x, new_x])
    chosen = np.isin(all_ids, allowed[live])
    _, truth = exact_search(all_x[chosen], all_ids[chosen], sealed_x[:20], 10)
    assert np.array_equal(ids, truth)


@pytest.mark.parametrize("kind", ["hnsw", "hnsw-fp16"])
def test_a_graph_folds_its_adds_into_a_tail_and_keeps_its_marks(kind):
    """fold_tail never touches the main graph: adds become a small graph beside it, deletions stay marks;
    the changes made meanwhile survive the rebase, and a second round drops the tail's deleted rows."""
    from indexer.core.compaction import can_fold_tail, fold_tail, rebase

    sealed_x, sealed_ids, new_x, new_ids, _ = _live_set(3)
    params = IndexParams(kind=kind, seed=0)
    index, _ = build_index(params, sealed_x, sealed_ids)
    snapshot, _ = SegmentedIndex(index).added(new_ids[:40], new_x[:40]).removed(sealed_ids[:20])
    assert can_fold_tail(snapshot)
    tail, marks = fold_tail(snapshot, params.to_dict())
    assert tail.ntotal == 40 and np.array_equal(marks, np.sort(sealed_ids[:20]))
    current = snapshot.added(new_ids[40:], new_x[40:])  # meanwhile: adds, and deletes of each kind of id
    current, _ = current.removed(np.array([sealed_ids[100], new_ids[3], new_ids[45]]))
    rebased = rebase(snapshot, current, index, tail=tail, marks=marks)
    assert rebased.sealed is index and index.ntotal == 1500, "the main graph is left as it was"
    assert np.array_equal(rebased.ids(), current.ids())
    assert rebased.describe() == {"sealed": 1540, "tail": 40, "growing": 19, "deleted": 22}
    assert rebased.pending == 19 + 2, "the kept marks are saved ones; what came after is pending"
    queries = np.concatenate([new_x[:10], sealed_x[95:105], new_x[40:50]])
    _, ids = search(rebased, queries, 10, efSearch=200)
    gone = np.concatenate([sealed_ids[:20], [sealed_ids[100], new_ids[3], new_ids[45]]])
    assert not np.isin(ids, gone).any(), "a deleted id came back"
    live = np.isin(np.concatenate([sealed_ids, new_ids]), rebased.ids())
    _, exact = exact_search(np.concatenate([sealed_x, new_x])[live], np.concatenate([sealed_ids, new_ids])[live],
                            queries, 10)
    assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, exact)]) >= 0.95
    # a second round: the tail's deleted row (new_ids[3]) goes with it, the main graph's marks stay
    tail2, marks2 = fold_tail(rebased, params.to_dict())
    again = rebase(rebased, rebased, index, tail=tail2, marks=marks2)
    assert tail2.ntotal == 40 + 20 - 2 and np.array_equal(marks2, np.sort(np.append(sealed_ids[:20], sealed_ids[100])))
    assert np.array_equal(again.ids(), current.ids()) and again.pending == 0
    # filters name ids whatever segment holds them
    wanted = np.sort(np.array([new_ids[5], new_ids[50], sealed_ids[200], sealed_ids[0]]))
    _, ids = again.search(new_x[5:6], 10, efSearch=200, allowed=wanted)
    assert set(ids[0][ids[0] >= 0].tolist()) == {int(new_ids[5]), int(new_ids[50]), int(sealed_ids[200])}
    # a full fold holds the tail's rows, not its deleted ones
    whole = fold(again, sidecar={"params": params.to_dict(), "search_params": {}})
    from indexer.core.membership import indexed_ids

    assert np.array_equal(indexed_ids(whole), again.ids())


def test_a_tail_is_not_used_where_it_would_be_wrong_or_large():
    from indexer.core.compaction import TAIL_SHARE, can_fold_tail

    sealed_x, sealed_ids, new_x, new_ids, _ = _live_set(4)
    ivf, _ = build_index(IndexParams(kind="ivf", nlist=8, seed=0), sealed_x, sealed_ids)
    assert not can_fold_tail(SegmentedIndex(ivf).added(new_ids[:5], new_x[:5])), "an IVF index folds in place"
    graph, _ = build_index(IndexParams(kind="hnsw", seed=0), sealed_x, sealed_ids)
    back, _ = SegmentedIndex(graph).removed(sealed_ids[:1])
    back = back.added(sealed_ids[:1], new_x[:1])  # deleted from the main graph, then added again
    assert not can_fold_tail(back), "its mark would hide the new vector in the tail too"
    many = int(TAIL_SHARE * 1500) + 1
    big = SegmentedIndex(graph).added(np.arange(many, dtype=np.int64) + 10**6, _unit(many, 24, 9))
    assert not can_fold_tail(big), "a tail past its share: the main graph is rebuilt"


def test_the_live_ids_are_the_sealed_array_itself_until_something_is_pending_and_can_be_shared():
    sealed_x, sealed_ids, new_x, new_ids, gone = _live_set()
    index, _ = build_index(IndexParams(kind="ivf", nlist=8), sealed_x, sealed_ids)
    base = SegmentedIndex(index)
    assert base.ids() is base.sealed_ids  # nothing pending: no copy, no sort
    changed, _ = base.added(new_ids, new_x).removed(gone)
    assert np.array_equal(changed.ids(), np.union1d(sealed_ids[~np.isin(sealed_ids, gone)], new_ids[~np.isin(new_ids, gone)]))
    same = sealed_ids.copy()  # the service's row table lists the same ids: one array serves both
    shared = base.sharing_ids(same)
    assert shared is not base and shared.sealed_ids is same and base.sealed_ids is not same
    assert np.array_equal(search(shared, sealed_x[:5], 3)[1], search(base, sealed_x[:5], 3)[1])
    assert base.sharing_ids(same[1:]) is base and base.sharing_ids(base.sealed_ids) is base  # not equal: kept
