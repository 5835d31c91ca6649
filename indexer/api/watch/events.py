"""File-system events from watchdog, as plain ``(kind, path)`` pairs on a queue the watcher thread drains.

Mode ``events``: the platform's notifications (inotify on Linux: creates, writes, ``close_write``, deletes,
renames as one move). Mode ``polling``: watchdog's PollingObserver, a periodic scan of each folder compared
with the last one, for file systems that deliver no events (NFS, SMB, sshfs: a change made on another machine
is never notified). ``auto`` picks polling for a folder on a network file system and events otherwise, and
falls back to polling when the platform's observer cannot start (no inotify, or its watch limit reached).
"""

from __future__ import annotations

import os
import queue
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from indexer.api.watch.settle import is_watched_file
from indexer.core.errors import MissingDependencyError

NETWORK_FILE_SYSTEMS = frozenset({
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "sshfs", "fuse.sshfs", "9p", "afs", "ceph", "glusterfs",
    "fuse.glusterfs", "lustre", "gpfs", "davfs", "fuse.davfs", "fuse.rclone", "fuse.s3fs", "fuse.gcsfuse",
})
# kinds put on the queue
CHANGED, WRITING, CLOSED, GONE, FOLDER, FOLDER_GONE, LOST = (
    "changed", "writing", "closed", "gone", "folder", "folder_gone", "lost")


@dataclass(frozen=True)
class Observing:
    """A started observer: ``mode`` events or polling, and why that mode."""

    observer: Any
    mode: str
    reason: str

    def alive(self) -> bool:
        return bool(self.observer.is_alive())

    def stop(self) -> None:
        self.observer.stop()
        self.observer.join(timeout=5)


def file_system_of(folder: str, mounts: str = "/proc/self/mounts") -> str | None:
    """The file-system type of the mount holding ``folder`` (Linux's mount table), or None when unknown."""
    try:
        with open(mounts, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    best, kind = "", None
    folder = os.path.realpath(folder)
    for line in lines:
        parts = line.split()
        if len(parts) < 3:
            continue
        point = parts[1].encode().decode("unicode_escape")  # \040 for a space
        inside = folder == point or folder.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, parts[2]
    return kind


def start_observing(folders: Sequence[str], mode: str, events: queue.SimpleQueue, poll_s: float) -> Observing:
    """Start watching every folder recursively in ``mode`` (auto, events, polling); events go to ``events``."""
    try:
        from watchdog.observers import Observer
        from watchdog.observers.polling import PollingObserver
    except ImportError as exc:
        raise MissingDependencyError(f"watching folders needs watchdog: pip install watchdog ({exc})") from None
    reason = "asked for"
    if mode == "auto":
        remote = [(folder, file_system_of(folder)) for folder in folders]
        remote = [(folder, kind) for folder, kind in remote if kind in NETWORK_FILE_SYSTEMS]
        mode, reason = ("polling", f"{remote[0][0]} is on {remote[0][1]}, which delivers no events") if remote \
            else ("events", "local file systems")
    handler = _Handler(events, closes=mode == "events" and sys.platform.startswith("linux"))
    if mode == "events":
        observer = Observer()
        if isinstance(observer, PollingObserver):
            mode, reason = "polling", f"no event API on {sys.platform}"
        else:
            try:
                _schedule(observer, handler, folders)
                observer.start()
                return Observing(observer, "events", f"{reason} ({type(observer).__name__})")
            except OSError as exc:  # no inotify, or the watch limit (fs.inotify.max_user_watches) reached
                mode, reason = "polling", f"events could not start: {exc}"
                handler = _Handler(events, closes=False)
    observer = PollingObserver(timeout=poll_s)
    _schedule(observer, handler, folders)
    observer.start()
    return Observing(observer, "polling", f"{reason} (a scan every {poll_s:g} s)")


def _schedule(observer: Any, handler: Any, folders: Sequence[str]) -> None:
    for folder in folders:
        observer.schedule(handler, folder, recursive=True)


class _Handler:
    """watchdog's callbacks turned into queue entries; image names only, temporary names left out."""

    def __init__(self, events: queue.SimpleQueue, *, closes: bool) -> None:
        self.events, self.closes = events, closes

    def dispatch(self, event: Any) -> None:  # watchdog calls dispatch on the observer's thread
        kind = event.event_type
        source = os.fsdecode(event.src_path)
        target = os.fsdecode(getattr(event, "dest_path", "") or "")
        if kind == "events_lost":  # the kernel's queue overflowed: the watcher scans again
            self.events.put((LOST, source))
        elif event.is_directory:
            if kind == "created":
                self.events.put((FOLDER, source))
            elif kind == "deleted":
                self.events.put((FOLDER_GONE, source))
            elif kind == "moved":
                self.events.put((FOLDER_GONE, source))
                self.events.put((FOLDER, target))
        elif kind == "created":  # not "writing": watchdog also reports the files of a folder moved in this way
            if is_watched_file(source):
                self.events.put((CHANGED, source))
        elif kind == "modified":  # a write: where closes are reported, the file is read after its close
            if is_watched_file(source):
                self.events.put((WRITING if self.closes else CHANGED, source))
        elif kind == "closed":
            if is_watched_file(source):
                self.events.put((CLOSED, source))
        elif kind == "deleted":
            if is_watched_file(source):
                self.events.put((GONE, source))
        elif kind == "moved":
            if is_watched_file(source):
                self.events.put((GONE, source))
            if is_watched_file(target):
                self.events.put((CHANGED, target))
