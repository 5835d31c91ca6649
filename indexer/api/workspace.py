"""The workspace: one folder holding the catalog database, models, embeddings and indexes.

Artifact paths are stored relative to the workspace root, so a workspace can be moved or
copied (``cp -r``) and keeps working. The database URL is derived from the root at open time
unless one is given explicitly. A workspace object opens one database engine and checks (or
migrates) the schema once, however many calls a command makes; it is safe to share between
threads.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from indexer.core.errors import InputError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from storage.catalog import Catalog

DEFAULT_WORKSPACE = "indexer-data"
DATABASE_FILE = "catalog.db"


def check_artifact_name(what: str, name: str) -> str:
    """``name`` if it is safe as a file or folder name inside the workspace, else InputError."""
    if not name or name in (".", "..") or name.startswith(".") or any(c in name for c in "/\\") or "\0" in name:
        raise InputError(f"{what} name {name!r} is invalid; use letters, digits, '-', '_' or '.' (no path separators)")
    return name


@dataclass
class _Connection:
    """The lazily opened engine and what is known of its schema (guarded by ``lock``)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    engine: Any = None
    at_head: bool = False


@dataclass(frozen=True)
class Workspace:
    """The folder holding the catalog (``db_url``), models, embeddings and indexes; open one with :meth:`at`."""

    root: Path
    db_url: str
    _connection: _Connection = field(default_factory=_Connection, compare=False, repr=False)

    @classmethod
    def at(cls, root: str | os.PathLike[str] | None = None, db_url: str | None = None) -> Workspace:
        """The workspace at ``root`` (default ``./indexer-data``); ``db_url`` overrides its SQLite file."""
        root_path = Path(root if root is not None else DEFAULT_WORKSPACE).expanduser().resolve()
        if root_path.exists() and not root_path.is_dir():
            raise InputError(f"workspace {root_path} exists and is not a directory")
        url = db_url or f"sqlite:///{root_path / DATABASE_FILE}"
        return cls(root=root_path, db_url=url)

    @property
    def models_dir(self) -> Path:
        """Trained models, one folder each (checkpoint, ONNX export, config)."""
        return self.root / "models"

    @property
    def embeddings_dir(self) -> Path:
        """Embedding stores, one folder per model."""
        return self.root / "embeddings"

    @property
    def indexes_dir(self) -> Path:
        """FAISS index files with their JSON sidecars."""
        return self.root / "indexes"

    @property
    def datasets_dir(self) -> Path:
        """Downloaded data sets (Flowers-102 when no local copy is given)."""
        return self.root / "datasets"

    def relative(self, path: str | os.PathLike[str]) -> str:
        """``path`` relative to the root (POSIX form), for storing in the catalog."""
        return Path(path).resolve().relative_to(self.root).as_posix()

    def resolve(self, stored: str) -> Path:
        """A stored artifact path back to an absolute one."""
        return self.root / stored

    def engine(self, *, write: bool = False) -> Engine:
        """The workspace's one engine, its schema at head.

        ``write``: create the folders and migrate the schema (serialised across processes, see
        :func:`storage.database.upgrade`); otherwise the catalog must exist at head (one plain
        SELECT, no Alembic). Either check runs once per workspace object.
        """
        from storage.database import check_revision, make_engine, upgrade

        state = self._connection
        with state.lock:
            if write:
                for folder in (self.root, self.models_dir, self.embeddings_dir, self.indexes_dir):
                    folder.mkdir(parents=True, exist_ok=True)
            elif not state.at_head:
                sqlite_file = self._sqlite_file()
                if sqlite_file is not None and not sqlite_file.is_file():
                    raise InputError(
                        f"no catalog at {sqlite_file}: run 'indexer ingest DIR' "
                        "(or pass --workspace / set INDEXER_HOME)"
                    )
            if state.engine is None:
                state.engine = make_engine(self.db_url)
            if not state.at_head:
                if write:
                    upgrade(state.engine)
                else:
                    check_revision(state.engine)
                state.at_head = True
            return state.engine

    def close(self) -> None:
        """Close the engine's pooled connections (the next call opens new ones).

        A process that copies the SQLite file itself must close first: POSIX drops every lock a process
        holds on a file when any descriptor of it closes, and SQLite's readers rely on those locks."""
        state = self._connection
        with state.lock:
            if state.engine is not None:
                state.engine.dispose()
                state.engine, state.at_head = None, False

    def catalog(self, *, write: bool = False) -> Catalog:
        """A :class:`storage.catalog.Catalog` unit of work on :meth:`engine` (use as a context manager)."""
        from storage.catalog import Catalog

        return Catalog(self.engine(write=write))

    def _sqlite_file(self) -> Path | None:
        prefix = "sqlite:///"
        if self.db_url.startswith(prefix) and self.db_url != "sqlite:///:memory:":
            return Path(self.db_url[len(prefix):])
        return None
