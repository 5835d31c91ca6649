"""The workspace: one folder holding the catalog database, models, embeddings and indexes.

Artifact paths are stored relative to the workspace root, so a workspace can be moved
or copied (``cp -r``) and keeps working. The database URL is derived from the root at
open time unless one is given explicitly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from indexer.errors import InputError

DEFAULT_WORKSPACE = "indexer-data"
DATABASE_FILE = "catalog.db"


def check_artifact_name(what: str, name: str) -> str:
    """``name`` if it is safe as a file or folder name inside the workspace, else InputError."""
    if not name or name in (".", "..") or name.startswith(".") or any(c in name for c in "/\\") or "\0" in name:
        raise InputError(f"{what} name {name!r} is invalid; use letters, digits, '-', '_' or '.' (no path separators)")
    return name


@dataclass(frozen=True)
class Workspace:
    root: Path
    db_url: str

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
        return self.root / "models"

    @property
    def embeddings_dir(self) -> Path:
        return self.root / "embeddings"

    @property
    def indexes_dir(self) -> Path:
        return self.root / "indexes"

    @property
    def datasets_dir(self) -> Path:
        return self.root / "datasets"

    def relative(self, path: str | os.PathLike[str]) -> str:
        """``path`` relative to the root (POSIX form), for storing in the catalog."""
        return Path(path).resolve().relative_to(self.root).as_posix()

    def resolve(self, stored: str) -> Path:
        """A stored artifact path back to an absolute one."""
        return self.root / stored

    def open_for_writing(self):
        """Create the folders, migrate the database to head and return an engine."""
        from storage.database import make_engine, upgrade

        for folder in (self.root, self.models_dir, self.embeddings_dir, self.indexes_dir):
            folder.mkdir(parents=True, exist_ok=True)
        engine = make_engine(self.db_url)
        upgrade(engine)
        return engine

    def open_read_only(self):
        """An engine on an existing catalog whose schema is at head (plain SELECT, no Alembic)."""
        from storage.database import check_revision, make_engine

        sqlite_file = self._sqlite_file()
        if sqlite_file is not None and not sqlite_file.is_file():
            raise InputError(
                f"no catalog at {sqlite_file}: run 'indexer ingest DIR' "
                "(or pass --workspace / set INDEXER_HOME)"
            )
        engine = make_engine(self.db_url)
        check_revision(engine)
        return engine

    def _sqlite_file(self) -> Path | None:
        prefix = "sqlite:///"
        if self.db_url.startswith(prefix) and self.db_url != "sqlite:///:memory:":
            return Path(self.db_url[len(prefix):])
        return None
