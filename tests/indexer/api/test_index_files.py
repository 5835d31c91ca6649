"""registry.index_files: the one sequence every index writer uses (lock, load, change, save, register)."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.api.registry.index_files import IndexTarget, change_index, file_signature, writing
from indexer.api.workspace import Workspace
from indexer.core.errors import IndexerError


def _target(ws: Workspace, name: str = "flat") -> IndexTarget:
    with ws.catalog() as catalog:
        return IndexTarget.of_row(ws, catalog.index(name))


def test_a_handle_saves_and_registers_only_under_its_lock(ws):
    workspace = Workspace.at(ws)
    target = _target(workspace)
    with writing(workspace, target) as (file,):
        index, sidecar = file.load()
        before = file.signature()
        written = file.save(index, {**sidecar, "note": "saved"})
        assert file.signature() != before and written["note"] == "saved"
    with workspace.catalog() as catalog:
        assert catalog.index("flat").ntotal == index.ntotal
    with pytest.raises(IndexerError, match="after its lock was released"):
        file.save(index, sidecar)


def test_change_index_saves_what_the_change_returns_and_nothing_for_none(ws):
    from indexer.core.build import remove_from_index

    workspace = Workspace.at(ws)
    target = _target(workspace)
    unchanged = file_signature(target.path)
    change_index(workspace, target, lambda index, sidecar: None)
    assert file_signature(target.path) == unchanged

    def drop_first(index, sidecar):
        return remove_from_index(index, sidecar, np.array([1], np.int64))[0], sidecar

    index, sidecar = change_index(workspace, target, drop_first)
    assert sidecar["ntotal"] == index.ntotal == 23
    with workspace.catalog() as catalog:
        assert catalog.index("flat").ntotal == 23


def test_the_lock_is_held_until_the_block_ends(ws):
    import fcntl

    workspace = Workspace.at(ws)
    target = _target(workspace)
    lock_file = target.path.with_suffix(".lock")
    with writing(workspace, target), open(lock_file, "a+b") as other:  # another open file: another process's view
        with pytest.raises(BlockingIOError):
            fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    with open(lock_file, "a+b") as other:
        fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
