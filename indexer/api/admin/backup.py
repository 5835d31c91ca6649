"""Backups: a consistent copy of a workspace (catalog, models, embeddings, indexes) while other commands run.

The catalog and the index files are copied at one point: every index's lock is held (builds, updates and
removals wait a moment) while SQLite's online backup API snapshots the catalog and the index files it
registers are copied, so each copied index matches its copied row. Embedding stores are copied after,
lock-free: their parts never change once written, so a manifest and the parts it names are a consistent
store (retried if a concurrent write swept a part meanwhile); vectors embedded after the snapshot are
harmless extras. Model files are written by atomic renames, so each copied file is whole.
The copy is made in ``DEST.partial`` and renamed to ``DEST`` at the end: a killed backup leaves no DEST.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from indexer.api.workspace import DATABASE_FILE, Workspace
from indexer.core.errors import InputError
from indexer.core.files import commit_folder

STORE_COPY_ATTEMPTS = 20


@dataclass(frozen=True)
class BackupOutcome:
    destination: Path
    catalog: str  # how the catalog was saved ("sqlite online backup" or what to do instead)
    files: int
    bytes: int
    notes: list[str] = field(default_factory=list)


def backup(workspace: Workspace, destination: str | os.PathLike[str]) -> BackupOutcome:
    """Write a consistent copy of ``workspace`` to the new folder ``destination``.

    A SQLite catalog is copied into it; a PostgreSQL catalog is not (use ``pg_dump``; the
    outcome's notes say so) but the files are. Image files outside the workspace and its
    ``datasets/`` download cache are not copied: the catalog refers to them where they are.
    """
    from indexer.core.index_io import index_lock

    target = Path(destination).expanduser().resolve()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InputError(f"backup destination {target} already exists and is not an empty folder")
    if target == workspace.root or workspace.root in target.parents:
        raise InputError(f"backup destination {target} is inside the workspace {workspace.root}")
    engine = workspace.engine()  # the catalog must exist (and be at head)
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)  # what a killed backup left
    partial.mkdir(parents=True)
    copied = _Copied()
    notes: list[str] = []
    with workspace.catalog() as catalog:
        index_rows, model_rows = catalog.indexes(), catalog.models()
    with contextlib.ExitStack() as locks:
        for row in sorted(index_rows, key=lambda r: r.name):
            locks.enter_context(index_lock(workspace.resolve(row.path)))
        if engine.dialect.name == "sqlite":
            from storage.database import backup_sqlite

            backup_sqlite(engine, partial / DATABASE_FILE)
            copied.add(partial / DATABASE_FILE)
            how = "sqlite online backup"
        else:
            how = f"not copied: the catalog is in {engine.dialect.name}"
            notes.append(
                f"the catalog lives in a {engine.dialect.name} database: back it up with "
                f"pg_dump (e.g. pg_dump --format=custom --file=catalog.dump '{_plain_url(engine.url)}') "
                "at this moment; the files were copied"
            )
        with workspace.catalog() as catalog:  # the rows the copied catalog holds, under the same locks
            index_rows = catalog.indexes()
        for row in index_rows:
            _copy_index(workspace, row.path, partial, copied)
    for model in model_rows:
        _copy_tree(workspace.resolve(model.path).parent, workspace, partial, copied)
        _copy_store(workspace.embeddings_dir / model.name, workspace, partial, copied)
    for folder in ("models", "embeddings", "indexes"):
        (partial / folder).mkdir(exist_ok=True)
    if target.exists():
        target.rmdir()  # checked empty above
    commit_folder(partial, target)  # every copied file fsynced, then the rename
    return BackupOutcome(destination=target, catalog=how, files=copied.files, bytes=copied.bytes, notes=notes)


@dataclass
class _Copied:
    files: int = 0
    bytes: int = 0

    def add(self, path: Path) -> None:
        self.files += 1
        self.bytes += path.stat().st_size


def _copy_index(workspace: Workspace, stored: str, partial: Path, copied: _Copied) -> None:
    """The index file and the sidecar that describes it (a half-finished save's pending sidecar if that one does)."""
    from indexer.core.index_io import index_paths, read_sidecar

    faiss_path, json_path = index_paths(workspace.resolve(stored))
    if not faiss_path.exists():
        return  # the catalog row's file is missing: 'indexer status' on the copy says so, as on the original
    out_faiss = partial / workspace.relative(faiss_path)
    out_faiss.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):  # an on-disk index's lists file can be swept by a save that lands meanwhile: copy again
        sidecar = read_sidecar(faiss_path)  # after a killed save, the one that matches the file
        shutil.copy2(faiss_path, out_faiss)
        data = (sidecar.get("on_disk") or {}).get("data_file")
        if data is None:
            break
        try:
            shutil.copy2(faiss_path.with_name(data), out_faiss.with_name(data))
        except FileNotFoundError:
            continue
        copied.add(out_faiss.with_name(data))
        break
    out_json = out_faiss.with_name(json_path.name)
    out_json.write_text(json.dumps(sidecar, indent=2, sort_keys=True, default=str))
    copied.add(out_faiss)
    copied.add(out_json)


def _copy_tree(folder: Path, workspace: Workspace, partial: Path, copied: _Copied) -> None:
    """Every finished file of a model folder (temporary files of a running save are skipped)."""
    if not folder.is_dir():
        return
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.name.endswith(".tmp"):
            out = partial / workspace.relative(path)
            out.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):  # replaced by a rename a moment ago
                shutil.copy2(path, out)
                copied.add(out)


def _copy_store(folder: Path, workspace: Workspace, partial: Path, copied: _Copied) -> None:
    """An embedding store's manifest and the parts it names, all from one manifest."""
    manifest_path = folder / "store.json"
    if not manifest_path.exists():
        return
    out_dir = partial / workspace.relative(folder)
    for _attempt in range(STORE_COPY_ATTEMPTS):
        manifest_text = manifest_path.read_text(encoding="utf-8")
        manifest = json.loads(manifest_text)
        parts = ([manifest["base"]] if manifest.get("base") else []) + list(manifest.get("chunks", []))
        shutil.rmtree(out_dir, ignore_errors=True)
        out_dir.mkdir(parents=True)
        try:
            for part in parts:
                for what in ("ids", "vectors"):
                    shutil.copy2(folder / f"{part}.{what}.npy", out_dir / f"{part}.{what}.npy")
        except FileNotFoundError:  # a concurrent consolidation swept a part: read the new manifest
            continue
        (out_dir / "store.json").write_text(manifest_text, encoding="utf-8")
        for path in out_dir.iterdir():
            copied.add(path)
        return
    raise InputError(f"embedding store {folder} kept changing during {STORE_COPY_ATTEMPTS} copy attempts")


def _plain_url(url) -> str:
    """The libpq form of a SQLAlchemy URL (no driver suffix, no password) for pg_dump."""
    plain = url.set(drivername=url.get_backend_name())
    return plain.render_as_string(hide_password=True).replace("***", "PASSWORD")
