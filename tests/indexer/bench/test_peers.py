"""Each peer adapter builds, answers with the right ids and, for databases, its stored rows.

Skipped with the reason when the ``peers`` extra is missing (failed under CI=true: tests/requirements.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from indexer.bench.peer_bench import bench_peer, bench_peers, check_peers
from indexer.bench.peers import PEERS, PeerUnavailable, peer_class
from indexer.bench.realistic import make_realistic, make_realistic_queries
from indexer.core.errors import InputError
from indexer.core.search import exact_search
from tests.requirements import extra, missing

N, D = 6000, 32  # LanceDB indexes from 5,000 rows


@pytest.fixture(scope="module")
def data():
    base, _ = make_realistic(N, D, n_clusters=20, seed=0)
    queries, _ = make_realistic_queries(60, D, n_clusters=20, seed=0)
    ids = np.arange(N, dtype=np.int64) * 3 + 7  # not row numbers: adapters must keep our ids
    metadata = [{"path": f"img/{i}.jpg", "label": int(i % 5)} for i in ids]
    return base, ids, queries, metadata


def _available(name: str):
    try:
        return peer_class(name)
    except PeerUnavailable as exc:
        missing(f"peer {name} ({exc})", extra("peers"))


@pytest.mark.parametrize("name", list(PEERS))
def test_peer_finds_the_exact_neighbours_under_our_ids(name, data) -> None:
    cls = _available(name)
    base, ids, queries, metadata = data
    peer = cls()
    try:
        peer.build(ids, base, metadata if cls.database else None)
        peer.set_knob(cls.sweep[-1])  # its most thorough setting
        _, exact = exact_search(base, ids, queries[:20], 10)
        hits = [len(set(peer.query(q, 10).tolist()) & set(row.tolist())) for q, row in zip(queries[:20], exact)]
        assert np.mean(hits) / 10 >= 0.9
        assert peer.index_bytes() > N * D  # it keeps at least the vectors somewhere we can measure
        if cls.database:
            rows = peer.query_rows(queries[0], 5)
            assert len(rows) == 5 and rows[0]["id"] == exact[0, 0]
            assert rows[0]["path"] == f"img/{rows[0]['id']}.jpg" and rows[0]["label"] == rows[0]["id"] % 5
    finally:
        peer.close()
    assert not peer.workdir.exists(), "its temporary folder is removed"


@pytest.mark.parametrize("name", ["hnswlib", "usearch"])
def test_bench_peer_row_has_our_fields_and_a_sweep(name, data) -> None:
    _available(name)
    base, ids, queries, _ = data
    exact = exact_search(base, ids, queries[:40], 20)
    row, curve = bench_peer(name, base, ids, queries[:40], exact, 10, 0.9, tune_queries=queries[40:],
                            n_sweep_queries=40)
    assert row["system"] == "peer" and row["kind"] == name and row["version"]
    for key in ("ann_recall_at_k", "search_ms_p50", "search_ms_p95", "search_ms_p99", "qps", "build_s",
                "bytes_per_vector"):
        assert row[key] is not None and row[key] >= 0, key
    assert row["knob_value"] == next(p["value"] for p in curve if p["tune_recall"] >= 0.9)
    assert [p["value"] for p in curve] == sorted(p["value"] for p in curve)


def test_unknown_and_missing_peers(monkeypatch, data) -> None:
    with pytest.raises(InputError, match="unknown peer"):
        check_peers(["annoy"])
    import indexer.bench.peer_bench as peer_bench

    def missing(name):
        raise PeerUnavailable(f"{name}: not installed")

    monkeypatch.setattr(peer_bench, "peer_class", missing)
    base, ids, queries, _ = data
    rows, sweeps, notes = bench_peers(["hnswlib"], base=base, base_ids=ids, queries=queries,
                                      exact=exact_search(base, ids, queries, 20), k=10, target_recall=0.9)
    assert rows == [] and sweeps == {} and notes == ["peer hnswlib skipped: hnswlib: not installed"]


def test_a_failing_peer_is_a_note_and_the_others_are_still_measured(monkeypatch, data) -> None:
    import indexer.bench.peer_bench as peer_bench

    real = peer_bench.bench_peer

    def flaky(name, **kwargs):
        if name == "usearch":
            raise RuntimeError("collection too large\nsecond line")
        return real(name, **kwargs)

    monkeypatch.setattr(peer_bench, "bench_peer", flaky)
    base, ids, queries, _ = data
    rows, sweeps, notes = bench_peers(["usearch", "hnswlib"], base=base, base_ids=ids, queries=queries,
                                      exact=exact_search(base, ids, queries, 20), k=10, target_recall=0.9)
    assert [row["kind"] for row in rows] == ["hnswlib"] and list(sweeps) == ["hnswlib"]
    assert notes == ["peer usearch failed: RuntimeError: collection too large"]


@pytest.mark.parametrize("name", ["hnswlib", "usearch", "chromadb"])
def test_graph_peers_sweep_our_graph_grid(name) -> None:
    """A peer on a coarser grid than ours would overshoot the target where we do not (or the reverse)."""
    from indexer.bench.grids import GRAPH_SWEEP

    assert tuple(_available(name).sweep) == GRAPH_SWEEP


def test_a_kept_peer_stays_open_for_the_interleaved_rounds(data) -> None:
    _available("hnswlib")
    base, ids, queries, _ = data
    exact = exact_search(base, ids, queries[:40], 20)
    keep = {}
    row, _ = bench_peer("hnswlib", base, ids, queries[:40], exact, 10, 0.9, n_sweep_queries=40, keep=keep)
    timer = keep["hnswlib"]
    seconds = timer(row["knob_value"])
    assert seconds.shape == (40,) and seconds.min() > 0
    folder = timer.peer.workdir
    assert folder.exists()
    timer.close()
    assert not folder.exists()


def test_milvus_searches_with_faiss_own_methods_after_torch_utils_replaced_them() -> None:
    """pytorch-metric-learning imports faiss.contrib.torch_utils, whose Index.search takes no ``params``; Milvus
    Lite (in this process) passes them. The peer's calls get FAISS's own methods back, and only for the call."""
    _available("milvus-lite")
    import faiss
    import faiss.contrib.torch_utils  # noqa: F401 - the replacement under test

    from indexer.bench.peers.milvus_peer import faiss_own_methods

    index = faiss.IndexFlatIP(4)
    index.add(np.eye(4, dtype=np.float32))
    replaced = faiss.IndexFlatIP.search
    with pytest.raises(TypeError, match="params"):
        index.search(np.eye(4, dtype=np.float32)[:1], 1, params=faiss.SearchParameters())
    with faiss_own_methods():
        _, ids = index.search(np.eye(4, dtype=np.float32)[:1], 1, params=faiss.SearchParameters())
    assert ids.tolist() == [[0]] and faiss.IndexFlatIP.search is replaced
