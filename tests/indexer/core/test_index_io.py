from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from indexer.core import index_io
from indexer.core.build import build_index
from indexer.core.errors import IndexFileError
from indexer.core.factory import IndexParams
from indexer.core.index_io import index_paths, load_index, save_index
from indexer.core.search import search
from indexer.core.settings import default_settings


@pytest.mark.parametrize("kind", ["flat", "ivf", "pca", "hnsw"])
def test_round_trip_gives_identical_results(kind: str, clustered, queries, tmp_path: Path) -> None:
    base, ids, _ = clustered
    index, info = build_index(IndexParams(kind, nlist=16, nprobe=4, efSearch=32, pca_dim=8), base, ids)
    meta = save_index(
        index, tmp_path / kind, {"params": IndexParams(kind).to_dict(), "build": info.to_dict()}
    )
    loaded, sidecar = load_index(tmp_path / kind, verify=True)
    assert sidecar == meta
    assert sidecar["ntotal"] == len(ids) and sidecar["d"] == base.shape[1]
    assert sidecar["build"]["factory"] == info.factory and "faiss_version" in sidecar
    assert default_settings(loaded) == default_settings(index)
    for a, b in zip(search(index, queries, 10), search(loaded, queries, 10), strict=True):
        np.testing.assert_array_equal(a, b)


def test_mmap_load_gives_identical_results(clustered, queries, tmp_path: Path) -> None:
    base, ids, _ = clustered
    index, _ = build_index(IndexParams("flat"), base, ids)
    save_index(index, tmp_path / "flat.faiss", {})
    loaded, _ = load_index(tmp_path / "flat", mmap=True)
    np.testing.assert_array_equal(search(index, queries, 5)[1], search(loaded, queries, 5)[1])


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(IndexFileError, match="nothing.faiss"):
        load_index(tmp_path / "nothing")


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_file_raises(damage: str, clustered, tmp_path: Path) -> None:
    base, ids, _ = clustered
    index, _ = build_index(IndexParams("flat"), base[:100], ids[:100])
    save_index(index, tmp_path / "x", {})
    faiss_path, _ = index_paths(tmp_path / "x")
    data = faiss_path.read_bytes()
    faiss_path.write_bytes(data[: len(data) // 2] if damage == "truncate" else os.urandom(len(data)))
    with pytest.raises(IndexFileError, match="corrupt or not a FAISS index"):
        load_index(tmp_path / "x")
    with pytest.raises(IndexFileError, match="checksum"):
        load_index(tmp_path / "x", verify=True)


def test_sidecar_mismatch_is_detected(clustered, tmp_path: Path) -> None:
    base, ids, _ = clustered
    index, _ = build_index(IndexParams("flat"), base[:100], ids[:100])
    save_index(index, tmp_path / "x", {})
    _, json_path = index_paths(tmp_path / "x")
    meta = json.loads(json_path.read_text())
    json_path.write_text(json.dumps({**meta, "ntotal": 99}))
    with pytest.raises(IndexFileError, match="ntotal=100"):
        load_index(tmp_path / "x")


def _old_and_new(clustered):
    base, ids, _ = clustered
    old, _ = build_index(IndexParams("flat"), base[:100], ids[:100])
    new, _ = build_index(IndexParams("flat"), base[:200], ids[:200])
    return old, new


def _die_at_rename(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    """The ``n``-th rename of a save raises, as a kill there would stop it (0: none does)."""
    real_replace = os.replace
    calls = {"n": 0}

    def dying_replace(src, dst):
        calls["n"] += 1
        if calls["n"] == n:
            raise OSError("killed")
        return real_replace(src, dst)

    monkeypatch.setattr(index_io.os, "replace", dying_replace)


@pytest.mark.parametrize("fail_at_replace", [1, 2, 3])
def test_killed_save_leaves_a_consistent_loadable_pair(
    fail_at_replace: int, clustered, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Simulate a kill before the n-th rename of a save: the pair on disk stays consistent."""
    old, new = _old_and_new(clustered)
    save_index(old, tmp_path / "x", {"version": "old"})
    _die_at_rename(monkeypatch, fail_at_replace)
    with pytest.raises(IndexFileError):
        save_index(new, tmp_path / "x", {"version": "new"})
    monkeypatch.undo()
    index, sidecar = load_index(tmp_path / "x")
    # Killed before the index moved: the old pair; after: the new index with its own sidecar.
    expected = ("old", 100) if fail_at_replace <= 2 else ("new", 200)
    assert (sidecar["version"], index.ntotal) == expected
    assert sidecar["ntotal"] == index.ntotal
    save_index(new, tmp_path / "x", {"version": "newer"})  # the next save recovers and succeeds
    index, sidecar = load_index(tmp_path / "x", verify=True)
    assert (sidecar["version"], index.ntotal) == ("newer", 200)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.faiss", "x.json"]


def test_killed_before_any_rename_keeps_old_pair(clustered, tmp_path: Path, monkeypatch) -> None:
    old, new = _old_and_new(clustered)
    save_index(old, tmp_path / "x", {"version": "old"})

    def no_replace(src, dst):
        raise OSError("killed after temp files were written")

    monkeypatch.setattr(index_io.os, "replace", no_replace)
    with pytest.raises(IndexFileError):
        save_index(new, tmp_path / "x", {"version": "new"})
    monkeypatch.undo()
    index, sidecar = load_index(tmp_path / "x", verify=True)
    assert sidecar["version"] == "old" and index.ntotal == 100


@pytest.mark.parametrize("fail_at_replace", [0, 1, 2])
def test_a_graph_saves_its_segments_beside_its_unchanged_main_file(
    fail_at_replace: int, clustered, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """save_segments writes the tail and the marks, then the sidecar through the journal; killed before either
    rename the old sidecar stands, after the first the pending one is adopted; a full save drops them."""
    from indexer.core.index_io import load_segments, save_segments

    base, ids, _ = clustered
    main, _ = build_index(IndexParams("hnsw"), base[:150], ids[:150])
    tail, _ = build_index(IndexParams("hnsw"), base[150:170], ids[150:170])
    save_index(main, tmp_path / "g", {"version": "main"})
    before = (tmp_path / "g.faiss").stat()
    marks = np.sort(ids[:7])
    _die_at_rename(monkeypatch, fail_at_replace)
    if fail_at_replace:
        with pytest.raises(IndexFileError):
            save_segments(tmp_path / "g", tail, marks)
    else:
        save_segments(tmp_path / "g", tail, marks)
    monkeypatch.undo()
    after = (tmp_path / "g.faiss").stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns), "the main file is untouched"
    index, sidecar = load_index(tmp_path / "g", verify=True)
    saved = load_segments(tmp_path / "g", sidecar)
    if fail_at_replace == 1:  # killed before the pending sidecar: the old one, no segments
        assert saved is None
    else:
        loaded_tail, loaded_marks = saved
        assert np.array_equal(loaded_marks, marks) and loaded_tail.ntotal == 20
        assert np.array_equal(search(loaded_tail, base[150:151], 1)[1], [[ids[150]]])
    assert sidecar["version"] == "main" and index.ntotal == 150
    save_index(main, tmp_path / "g", sidecar)  # a full save: the index is whole again, the segment files go
    _, sidecar = load_index(tmp_path / "g")
    assert "segments" not in sidecar and sorted(p.name for p in tmp_path.iterdir()) == ["g.faiss", "g.json"]


def test_missing_segments_are_named(clustered, tmp_path: Path) -> None:
    from indexer.core.index_io import load_segments, save_segments

    base, ids, _ = clustered
    main, _ = build_index(IndexParams("hnsw"), base[:50], ids[:50])
    save_index(main, tmp_path / "g")
    sidecar = save_segments(tmp_path / "g", None, np.sort(ids[:3]))
    (tmp_path / sidecar["segments"]["marks"]).unlink()
    with pytest.raises(IndexFileError, match="segments of index .*g.faiss"):
        load_segments(tmp_path / "g", load_index(tmp_path / "g")[1])
