"""``indexer build --shards N``: shard files by id range with one manifest, and the router's view of them in one
process (shards reached through :class:`indexer.api.LocalShards`): the merged top k equals the whole index's,
writes land in the owning shard and survive a reload, and a shard that does not answer makes a partial answer.

The same router over Ray Serve, on a real two-node Ray cluster, is tests/indexer/service/test_cluster.py."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import copy_workspace
from tests.indexer.api.conftest import run

DIM = 16
N = 900
SHARDS = 3
NPROBE = 3


def clustered(n: int, dim: int = DIM, seed: int = 0) -> np.ndarray:
    """(n, dim) float32 unit vectors around 12 seeded centres."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(12, dim))
    vectors = centres[rng.integers(0, 12, size=n)] + 0.3 * rng.normal(size=(n, dim))
    return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def imported_workspace(root: Path, n: int = N, shards: int = SHARDS) -> Path:
    """A workspace of ``n`` imported vectors (model 'vecs') with an ivf index laid out as ``shards`` shards."""
    source = root / "source"
    source.mkdir(parents=True)
    np.save(source / "vectors.npy", clustered(n))
    (source / "meta.csv").write_text("path,label\n" + "".join(f"item/{i}.vec,c{i % 5}\n" for i in range(n)))
    workspace = root / "ws"
    run(workspace, "import", str(source), "--model", "vecs")
    run(workspace, "build", "--index", "ivf", "--nprobe", str(NPROBE), "--shards", str(shards))
    return workspace


@pytest.fixture(scope="module")
def sharded(tmp_path_factory) -> Path:
    return imported_workspace(tmp_path_factory.mktemp("sharded"))


@pytest.fixture
def ws(sharded, tmp_path) -> Path:
    copy_workspace(sharded, tmp_path / "ws")
    return tmp_path / "ws"


def open_router(ws: Path, flush_s: float = 0.0, broken: int | None = None):
    """(ClusterCatalog over LocalShards, the ShardIndex objects); shard ``broken`` raises on every call."""
    from indexer.api import ClusterCatalog, LocalShards, ShardIndex, Workspace

    workspace = Workspace.at(ws)
    shards = [ShardIndex(workspace, "ivf", number, flush_s=flush_s, watch_s=None) for number in range(SHARDS)]
    transport = LocalShards([Broken() if number == broken else shard for number, shard in enumerate(shards)])
    return ClusterCatalog(workspace, "ivf", transport, flush_s=flush_s), shards


class Broken:
    """A shard whose process is gone: every call fails as a remote call to a dead replica would."""

    def __getattr__(self, name):
        def fail(*args, **kwargs):
            raise ConnectionError("shard replica died")

        return fail


def test_the_layout_has_a_manifest_of_complete_shards_by_id_range(sharded):
    from indexer.api import Workspace, read_manifest
    from indexer.core.index_io import load_index
    from indexer.core.membership import indexed_ids

    manifest = read_manifest(Workspace.at(sharded), "ivf")
    assert [entry.number for entry in manifest.shards] == list(range(SHARDS))
    assert manifest.count == N and manifest.shards[0].id_lo == 0 and manifest.shards[-1].id_hi is None
    whole, _ = load_index(sharded / "indexes" / "ivf.faiss")
    folder = sharded / "indexes" / "ivf.shards"
    assert json.loads((folder / "manifest.json").read_text())["format"] == 1
    seen = []
    for entry in manifest.shards:
        index, sidecar = load_index(folder / entry.file, verify=True)  # any shard loads on its own
        ids = indexed_ids(index)
        assert len(ids) == entry.count and entry.ids.holds(ids).all()
        assert sidecar["sha256"] == entry.sha256 and index.nlist == manifest.nlist
        seen.append(ids)
        assert 0.8 * N / SHARDS <= entry.count <= 1.2 * N / SHARDS
    assert np.array_equal(np.sort(np.concatenate(seen)), indexed_ids(whole))


def test_the_merged_top_k_equals_the_whole_index(ws):
    from indexer.api import LiveCatalog, Workspace

    router, _ = open_router(ws)
    whole = LiveCatalog(Workspace.at(ws), "ivf", flush_s=0)
    try:
        for vector in clustered(25, seed=7):
            ours, theirs = router.search_vector(vector, k=10), whole.search_vector(vector, k=10)
            assert [(h.id, h.score) for h in ours.results] == [(h.id, h.score) for h in theirs.results]
            assert len(ours.results) == 10 and not ours.missing_shards
        paged = router.search_vector(clustered(1, seed=3)[0], k=5, offset=5)
        assert [h.id for h in paged.results] == [h.id for h in whole.search_vector(clustered(1, seed=3)[0], k=5,
                                                                                  offset=5).results]
        filtered = router.search_vector(clustered(1, seed=4)[0], k=5, where='label = "c1"')
        assert filtered.results and all(h.label == "c1" for h in filtered.results)
    finally:
        router.close()
        whole.close()


def test_writes_land_in_the_owning_shard_and_survive_a_reload(ws):
    from indexer.api import ShardIndex, Workspace, read_manifest

    router, shards = open_router(ws)
    vector = clustered(1, seed=11)[0]
    added = router.add_point("late/one.vec", vector.tolist(), label="late")
    assert shards[-1].holds(added.id) and not any(shard.holds(added.id) for shard in shards[:-1])
    assert router.search_vector(vector, k=1).results[0].id == added.id
    victim = int(shards[0].ids()[0])
    router.delete_image(victim)
    assert not shards[0].holds(victim)
    router.close()
    workspace = Workspace.at(ws)
    reloaded = [ShardIndex(workspace, "ivf", number, watch_s=None) for number in range(SHARDS)]
    assert reloaded[-1].holds(added.id) and not reloaded[0].holds(victim)
    manifest = read_manifest(workspace, "ivf")
    assert manifest.count == N and manifest.shards[-1].count == reloaded[-1].ntotal


def test_a_shard_killed_before_its_save_gets_the_write_back_from_the_catalog(ws):
    from indexer.api import ShardIndex, Workspace

    router, shards = open_router(ws, flush_s=3600)  # nothing saved by the shards
    added = router.add_point("late/two.vec", clustered(1, seed=12)[0].tolist())
    restarted = ShardIndex(Workspace.at(ws), "ivf", SHARDS - 1, watch_s=None)  # its file lacks the write
    assert restarted.holds(added.id)


def test_a_dead_shard_gives_a_partial_answer_or_503_when_complete_is_asked(ws):
    from indexer.api import ShardsUnavailableError

    router, _ = open_router(ws, broken=1)
    answer = router.search_vector(clustered(1, seed=5)[0], k=10)
    assert answer.missing_shards == (1,) and answer.to_dict()["partial"] is True
    assert len(answer.results) == 10
    with pytest.raises(ShardsUnavailableError, match="shards 1 of index 'ivf' did not answer"):
        router.search_vector(clustered(1, seed=5)[0], k=10, complete=True)


def test_bad_shard_options_are_one_line_errors(tmp_path, sharded):
    from indexer.api import ShardIndex, Workspace

    result = run(sharded, "build", "--index", "hnsw", "--shards", "2", "--name", "h", ok=False)
    assert result.exit_code != 0 and "--shards lays out IVF kinds" in result.output
    with pytest.raises(Exception, match="shard 7: index 'ivf' has shards 0..2"):
        ShardIndex(Workspace.at(sharded), "ivf", 7, watch_s=None)


def test_serving_on_ray_without_ray_is_a_one_line_hint(sharded, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    result = run(sharded, "serve", "--ray", ok=False)
    assert result.exit_code != 0
    assert result.output.strip().splitlines() == ['Error: serving on Ray needs Ray Serve: pip install "indexer[scale]"']
    result = run(sharded, "serve", "--replicas", "2", ok=False)
    assert result.exit_code != 0 and "--address and --replicas apply with --ray" in result.output
