"""The one sequence that changes an index file: lock, load, change, save (journal), register.

Every writer (build, update, remove, the service's saves and deletes) goes through :func:`writing`, which
takes the indexes' advisory locks (:func:`indexer.core.index_io.index_lock`, in name order) and hands out
:class:`IndexFile` handles; a handle saves and registers only while its lock is held, so no caller can save
without the lock or forget to register what it saved.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from indexer.api.registry.indexes import register, user_sidecar
from indexer.api.workspace import Workspace
from indexer.core.errors import IndexerError
from storage.catalog import ArtifactRow


@dataclass(frozen=True)
class IndexTarget:
    """An index as the catalog records it: ``name``, ``kind``, build ``params``, ``model`` name and ``.faiss`` path."""

    name: str
    kind: str
    params: dict
    model: str
    path: Path

    @classmethod
    def of_row(cls, workspace: Workspace, row: ArtifactRow) -> IndexTarget:
        return cls(row.name, row.kind, row.params, row.model_name, workspace.resolve(row.path))


class IndexFile:
    """A locked index file: :meth:`load` it, :meth:`save` a new version (journal + catalog row)."""

    def __init__(self, workspace: Workspace, target: IndexTarget) -> None:
        self.workspace, self.target = workspace, target
        self._locked = True

    def load(self) -> tuple[Any, dict]:
        """(index, sidecar) as saved now, whole: a graph's saved segments (tail, deletion marks) folded into
        its main index, for a writer that changes and saves it whole."""
        from indexer.core.compaction import fold
        from indexer.core.index_io import load_index

        index, sidecar = load_index(self.target.path)
        if not sidecar.get("segments"):  # whole already (no need to list its ids)
            return index, sidecar
        return fold(load_segmented(self.target.path, index, sidecar), copy=False, sidecar=sidecar), sidecar

    def signature(self) -> tuple:
        """Identity of the files now (:func:`file_signature`)."""
        return file_signature(self.target.path)

    def register_unchanged(self, index: Any, sidecar: dict) -> None:
        """Record the file as it is now (``index`` and ``sidecar`` as :meth:`load` gave them) without saving it.
        A writer that finds nothing to change in a file calls it: a run killed after saving the file and before
        its catalog row said so is then set right by running it again."""
        self._check_locked("registered")
        self._register({**sidecar, "ntotal": int(index.ntotal)})

    def save(self, index: Any, sidecar: dict, *, replace: bool = False) -> dict:
        """Save ``index`` with the caller-given part of ``sidecar`` and register it; the sidecar written.
        ``replace``: the catalog row is replaced whole (a new build), not updated."""
        from indexer.core.index_io import save_index

        self._check_locked("saved")
        written = save_index(index, self.target.path, user_sidecar(sidecar))
        self._register(written, replace=replace)
        return written

    def save_segments(self, tail: Any | None, marks: Any, live: int) -> dict:
        """Save a graph's ``tail`` and deletion ``marks`` beside its unchanged main file (``live``: the vectors
        it now answers, for the catalog row) and register it; the sidecar written."""
        from indexer.core.index_io import save_segments

        self._check_locked("saved")
        written = save_segments(self.target.path, tail, marks)
        self._register({**written, "ntotal": live})
        return written

    def _check_locked(self, done: str) -> None:
        if not self._locked:
            raise IndexerError(f"index {self.target.name!r}: {done} after its lock was released")

    def _register(self, sidecar: dict, *, replace: bool = False) -> None:
        """The catalog row of this index, from ``sidecar`` (what its files hold now)."""
        target = self.target
        register(self.workspace, target.name, target.kind, target.params, sidecar, target.path, target.model,
                 replace=replace)


@contextlib.contextmanager
def writing(workspace: Workspace, *targets: IndexTarget) -> Iterator[list[IndexFile]]:
    """Hold the locks of ``targets`` (taken in name order, so two writers never deadlock) and yield one
    :class:`IndexFile` per target, in the order given."""
    from indexer.core.index_io import index_lock

    files = [IndexFile(workspace, target) for target in targets]
    with contextlib.ExitStack() as locks:
        for target in sorted(targets, key=lambda t: t.name):
            locks.enter_context(index_lock(target.path))
        try:
            yield files
        finally:
            for file in files:
                file._locked = False


def change_index(workspace: Workspace, target: IndexTarget,
                 change: Callable[[Any, dict], tuple[Any, dict] | None]) -> tuple[Any, dict]:
    """Lock, load, ``change(index, sidecar)`` -> (new index, sidecar) or None for no change, save, register.
    Returns the (index, sidecar) now on disk."""
    with writing(workspace, target) as (file,):
        index, sidecar = file.load()
        changed = change(index, sidecar)
        if changed is None:
            return index, sidecar
        index, sidecar = changed
        return index, file.save(index, sidecar)


def remove_from_index_file(workspace: Workspace, row: ArtifactRow, ids: Any) -> int:
    """Remove ``ids`` from the saved index of catalog row ``row`` (lock, load, remove, save, register); how many
    went."""
    from indexer.core.build import remove_from_index

    removed = 0

    def without(index, sidecar):
        nonlocal removed
        index, removed = remove_from_index(index, sidecar, ids)
        return (index, sidecar) if removed else None

    change_index(workspace, IndexTarget.of_row(workspace, row), without)
    return removed


def load_segmented(path: Path, index: Any, sidecar: dict) -> Any:
    """``index`` (as loaded from ``path``) with the segments its ``sidecar`` names, as a
    :class:`indexer.core.segments.SegmentedIndex` (nothing pending: the marks are saved ones)."""
    from indexer.core.index_io import load_segments
    from indexer.core.segments import SegmentedIndex

    saved = load_segments(path, sidecar)
    if saved is None:
        return SegmentedIndex(index)
    tail, marks = saved
    return SegmentedIndex(index, deleted=marks, tail=tail, kept_marks=len(marks))


def file_signature(faiss_path: Path) -> tuple:
    """What identifies the index files' current version: (inode, size, mtime) of the index and its sidecar."""
    out = []
    for path in (faiss_path, faiss_path.with_suffix(".json")):
        try:
            stat = path.stat()
            out.append((stat.st_ino, stat.st_size, stat.st_mtime_ns))
        except OSError:
            out.append(None)
    return tuple(out)
