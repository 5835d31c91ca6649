"""Which names the watcher reads, and when: temporary names never, other files once they stopped changing.

A file is read when its size and mtime have not changed for ``quiet_s`` (``open_quiet_s`` while it is still
open for writing, where the platform reports closes: inotify's ``IN_CLOSE_WRITE``), or at once after a close
that left it unchanged. A path that disappeared is reported gone after the same wait, so a delete followed by
a new file under the same name (an editor's save) is seen as one change.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from indexer.datasets.folders import has_image_extension

TEMPORARY_SUFFIXES = (".part", ".partial", ".tmp", ".temp", ".crdownload", ".download", ".swp", "~")
CLOSED_QUIET_S = 0.05  # after a close: just long enough to see that nothing reopened it

Signature = tuple[int, int] | None  # (size, mtime_ns); None: no such file


def is_temporary(path: str | os.PathLike[str]) -> bool:
    """True for names a writer uses before the file is whole: dotfiles, ``*.part``, ``*.tmp``, ``*~``, …"""
    name = os.path.basename(os.fspath(path))
    return not name or name.startswith(".") or name.lower().endswith(TEMPORARY_SUFFIXES)


def is_watched_file(path: str | os.PathLike[str]) -> bool:
    """An image name (by extension) that is not a temporary name."""
    return has_image_extension(path) and not is_temporary(path)


def signature(path: str) -> Signature:
    """(size, mtime_ns) of a regular file, or None when there is none."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return (stat.st_size, stat.st_mtime_ns) if os.path.isfile(path) else None


@dataclass
class _Pending:
    seen: Signature
    since: float  # when ``seen`` was last found different
    writing: bool = False  # opened or changed since the last close (only where closes are reported)
    closed: bool = False


class Settler:
    """Paths waiting for their file to settle. Not thread-safe: one thread owns it (the watcher's)."""

    def __init__(self, quiet_s: float, open_quiet_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.quiet_s, self.open_quiet_s, self.clock = quiet_s, open_quiet_s, clock
        self._pending: dict[str, _Pending] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def touch(self, path: str, *, writing: bool = False) -> None:
        """Something happened to ``path`` (created, modified, moved here or away, found by a scan)."""
        entry = self._pending.get(path)
        now, seen = self.clock(), signature(path)
        if entry is None:
            self._pending[path] = _Pending(seen, now, writing=writing)
            return
        entry.seen, entry.since, entry.closed = seen, now, False
        entry.writing = entry.writing or writing

    def closed(self, path: str) -> None:
        """The platform reported that a writer closed ``path``."""
        entry = self._pending.get(path)
        if entry is None:
            self._pending[path] = entry = _Pending(signature(path), self.clock())
        entry.seen, entry.since, entry.writing, entry.closed = signature(path), self.clock(), False, True

    def ready(self) -> tuple[list[str], list[str]]:
        """(settled files, settled gone paths), taken out of the waiting set; only due entries are stat'ed."""
        now = self.clock()
        present, gone = [], []
        for path, entry in list(self._pending.items()):
            wait = CLOSED_QUIET_S if entry.closed else self.open_quiet_s if entry.writing else self.quiet_s
            if now - entry.since < wait:
                continue
            seen = signature(path)
            if seen != entry.seen:
                entry.seen, entry.since, entry.closed = seen, now, False
                continue
            del self._pending[path]
            (gone if seen is None else present).append(path)
        return present, gone
