"""Writing a file whole or not at all, durably: every file the project writes goes through here.

A write goes to a temporary file in the target's folder, which is flushed and fsynced, then replaces the target
with :func:`os.replace` (atomic within one file system), and the folder is fsynced so the rename itself survives a
power cut. A kill or a power cut therefore leaves the target's old content or the new one, whole, and a write
that returned is on disk. If the block raises, the temporary file is removed and the target is untouched.

- :func:`atomic_write` yields an open file; :func:`write_bytes`, :func:`write_text`, :func:`write_json` and
  :func:`copy_file` are its one-call forms.
- :func:`atomic_path` yields a temporary path, for libraries that write to a path themselves (``torch.save``,
  ``torch.onnx.export``, PIL, matplotlib, pyarrow). They cannot infer a format from its ``.tmp`` name: pass one.
- :func:`commit_folder` renames a finished folder (a backup's ``DEST.partial``) into place the same way.

Temporary names are ``.NAME.<pid>-<random>.tmp``: hidden, ending in ``.tmp`` (copies such as backups skip them),
and unique, so two processes writing one target never write into each other's file. A kill in mid-write can
leave one behind; nothing reads it.

Standard library only: the leaves (``models``, ``storage``) may import this module and nothing else of indexer.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

TEMPORARY_SUFFIX = ".tmp"


def fsync_file(path: str | os.PathLike[str]) -> None:
    """Flush a written file's content and metadata to the disk (the file must exist)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(directory: str | os.PathLike[str]) -> None:
    """Flush a folder's entries (the names created, renamed or removed in it) to the disk.

    Skipped where a folder cannot be opened (not every platform allows it); the rename is atomic all the same.
    """
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read into one reused 1 MiB buffer (OSError when it cannot be read): a service that
    saves a 500 MB index while it answers queries holds 1 MiB for it, not a new 8 MiB block per read."""
    digest = hashlib.sha256()
    buffer = bytearray(1 << 20)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as f:
        while size := f.readinto(buffer):
            digest.update(view[:size])
    return digest.hexdigest()


def temporary_path(path: str | os.PathLike[str]) -> Path:
    """A new name beside ``path`` for its temporary file: ``.NAME.<pid>-<random>.tmp``."""
    target = Path(path)
    return target.with_name(f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}{TEMPORARY_SUFFIX}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for the block to write; then fsync it, rename it to ``path`` and
    fsync the folder. If the block raises (or leaves no file), the temporary file goes and ``path`` is untouched.

    The folder must exist.
    """
    target = Path(path)
    temporary = temporary_path(target)
    try:
        yield temporary
        fsync_file(temporary)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike[str], mode: str = "wb", *, encoding: str | None = None, newline: str | None = None
) -> Iterator[IO[Any]]:
    """Yield a file open for writing (``mode`` "wb" or "w"; text is UTF-8 unless ``encoding`` says otherwise)
    whose content replaces ``path`` whole when the block succeeds (see :func:`atomic_path`)."""
    if mode not in ("w", "wb", "wt"):
        raise ValueError(f"atomic_write: mode {mode!r} is invalid; expected 'wb' or 'w'")
    if "b" not in mode and encoding is None:
        encoding = "utf-8"
    with atomic_path(path) as temporary, open(temporary, mode, encoding=encoding, newline=newline) as handle:
        yield handle


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Replace ``path``'s content with ``data``, atomically and durably; returns ``path`` as a Path."""
    with atomic_write(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Replace ``path``'s content with ``text``, atomically and durably; returns ``path`` as a Path."""
    with atomic_write(path, "w", encoding=encoding) as handle:
        handle.write(text)
    return Path(path)


def write_json(
    path: str | os.PathLike[str],
    obj: Any,
    *,
    indent: int | None = 2,
    sort_keys: bool = False,
    default: Callable[[Any], Any] | None = None,
) -> Path:
    """Replace ``path``'s content with ``json.dumps(obj, ...)`` (no trailing newline), atomically and durably."""
    return write_text(path, json.dumps(obj, indent=indent, sort_keys=sort_keys, default=default))


def copy_file(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Copy ``source``'s content to ``target``, atomically and durably (permissions and times are not copied)."""
    with atomic_path(target) as temporary:
        shutil.copyfile(source, temporary)
    return Path(target)


def commit_folder(partial: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Rename the finished folder ``partial`` to ``target`` (absent or an empty folder) durably: every file and
    folder inside ``partial`` is fsynced first, then the rename, then the folder holding ``target``."""
    partial, target = Path(partial), Path(target)
    for folder, _, names in os.walk(partial, topdown=False):
        for name in names:
            fsync_file(Path(folder) / name)
        fsync_dir(folder)
    os.replace(partial, target)
    fsync_dir(target.parent)
    if partial.parent != target.parent:
        fsync_dir(partial.parent)
    return target
