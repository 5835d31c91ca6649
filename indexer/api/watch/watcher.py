"""The folder watcher: a background thread from file-system events to the live catalog.

Events (:mod:`indexer.api.watch.events`) land on a queue; the thread moves them into the settle wait
(:mod:`indexer.api.watch.settle`), gathers the settled paths into batches (up to ``batch_max`` files, the
first waiting ``batch_s`` for others) and applies each batch with :func:`indexer.api.watch.apply.apply_batch`:
one embed batch and one index change for many files, on this one thread, so a burst of copies is worked
through at the pace of one embedding thread and queries keep the other cores. A reconciling scan of every
folder (:func:`indexer.api.watch.scan.scan_folder`) runs first, when events were lost or the observer died,
after a failed batch, and every ``rescan_s`` in events mode; its findings settle like events.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from indexer.api.search.live import LiveCatalog
from indexer.api.watch import events as kinds
from indexer.api.watch.apply import apply_batch
from indexer.api.watch.events import Observing, start_observing
from indexer.api.watch.labels import Labeller, label_mode
from indexer.api.watch.scan import scan_folder
from indexer.api.watch.settings import WatchConfig
from indexer.api.watch.settle import Settler, is_watched_file
from indexer.api.watch.status import WatchStatus

RETRY_SCAN_S = 5.0  # after a failed batch, the folders are scanned again this much later
MAX_PROBLEMS = 100


class Watcher:
    """Keeps ``live`` (its catalog, embedding store and held indexes) following ``config.folders``.

    :meth:`start` resolves the label modes, starts the observer and the thread (which scans first);
    :meth:`stop` ends both (the batch under way finishes). :meth:`status` is a snapshot for the faces;
    :meth:`wait_idle` waits until nothing is pending (tests, benchmarks)."""

    def __init__(self, live: LiveCatalog, config: WatchConfig, *, notify: Callable[[str], None] | None = None) -> None:
        self.live, self.config, self._notify = live, config, notify
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._status = WatchStatus(folders=list(config.folders))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._observing: Observing | None = None
        self._settler = Settler(config.quiet_s, config.open_quiet_s)
        self._batch: dict[str, bool] = {}  # settled path -> present (False: gone), in arrival order
        self._batch_since = 0.0
        self._scan_due: float | None = 0.0  # monotonic time of the next reconciling scan (None: none due)
        self._busy = False
        self.problems: list[str] = []  # the last refused files and failures, one line each
        self.labeller = Labeller({})

    # -- the faces' side -------------------------------------------------------------------------------------

    def start(self) -> None:
        """Resolve each folder's label mode, start the observer and the thread; returns at once."""
        if self._thread is not None:
            return
        modes = {folder: label_mode(self.live.workspace, folder, self.config.labels) for folder in self.config.folders}
        self.labeller = Labeller(modes)
        self._observing = start_observing(self.config.folders, self.config.mode, self._events, self.config.poll_s)
        with self._lock:
            self._status.labels = dict(modes)
            self._status.mode, self._status.mode_reason = self._observing.mode, self._observing.reason
            self._status.running = True
        self._thread = threading.Thread(target=self._run, name="folder-watcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the observer and the thread (the batch under way is finished first)."""
        self._stop.set()
        if self._observing is not None:
            self._observing.stop()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None
        with self._lock:
            self._status.running = False

    def status(self) -> WatchStatus:
        """A copy of the watcher's figures (see :class:`WatchStatus`)."""
        with self._lock:
            return replace(self._status, folders=list(self._status.folders), labels=dict(self._status.labels))

    def wait_idle(self, timeout: float) -> bool:
        """True once no event, settling file, batch or scan is waiting (within ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and (self._thread is not None and self._thread.is_alive()):
            with self._lock:
                idle = (not self._busy and self._events.empty() and not len(self._settler) and not self._batch
                        and (self._scan_due is None or self._scan_due > time.monotonic()))
            if idle:
                return True
            time.sleep(0.02)
        return False

    # -- the thread ------------------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._step()
            except Exception as exc:  # noqa: BLE001 - the watcher outlives one bad batch; a scan repairs it
                self._problem(f"watching failed once: {type(exc).__name__}: {exc}")
                with self._lock:
                    self._busy, self._batch = False, {}
                    self._scan_due = time.monotonic() + RETRY_SCAN_S
            self._stop.wait(self.config.tick_s)

    def _step(self) -> None:
        now = time.monotonic()
        with self._lock:
            self._busy = True
        if self._scan_due is not None and now >= self._scan_due:
            self._scan()
        self._drain()
        present, gone = self._settler.ready()
        if (present or gone) and not self._batch:
            self._batch_since = now
        self._batch.update({path: True for path in present})
        self._batch.update({path: False for path in gone})
        full = len(self._batch) >= self.config.batch_max
        if self._batch and (full or now - self._batch_since >= self.config.batch_s):
            self._apply()
        if self._observing is not None and not self._observing.alive() and not self._stop.is_set():
            self._problem("the file-system observer stopped; restarting it and scanning the folders")
            self._observing = start_observing(self.config.folders, self.config.mode, self._events,
                                              self.config.poll_s)
            self._scan_due = now
        with self._lock:
            self._busy = False
            self._status.pending = len(self._settler) + len(self._batch) + self._events.qsize()

    def _drain(self) -> None:
        seen = 0
        while True:
            try:
                kind, path = self._events.get_nowait()
            except queue.Empty:
                break
            seen += 1
            if kind in (kinds.CHANGED, kinds.WRITING, kinds.GONE):
                self._settler.touch(path, writing=kind == kinds.WRITING)
            elif kind == kinds.CLOSED:
                self._settler.closed(path)
            elif kind == kinds.FOLDER:
                self._touch_folder(path)
            elif kind == kinds.FOLDER_GONE:
                with self.live.workspace.catalog() as catalog:
                    for row in catalog.files_under(path):
                        self._settler.touch(row.path)
            elif kind == kinds.LOST:
                self._problem("file-system events were lost (the kernel's queue overflowed); scanning again")
                self._scan_due = time.monotonic()
        if seen:
            with self._lock:
                self._status.events_seen += seen

    def _touch_folder(self, folder: str) -> None:
        """A folder created or moved in: its files may predate the watch on it."""
        import os

        for parent, _dirs, files in os.walk(folder):
            for name in files:
                path = os.path.join(parent, name)
                if is_watched_file(path):
                    self._settler.touch(path)

    def _scan(self) -> None:
        for folder in self.config.folders:
            found = scan_folder(self.live.workspace, folder)
            for path in found.present + found.gone:
                self._settler.touch(path)
            for line in found.problems:
                self._problem(line)
        with self._lock:
            self._status.scans += 1
        self._scan_due = time.monotonic() + self.config.rescan_s if self._status.mode == "events" and \
            self.config.rescan_s else None

    def _apply(self) -> None:
        paths = list(self._batch.items())[: self.config.batch_max]
        for path, _ in paths:
            del self._batch[path]
        if self._batch:
            self._batch_since = time.monotonic() - self.config.batch_s  # the rest is due at once
        started = time.monotonic()
        outcome = apply_batch(self.live, [p for p, here in paths if here], [p for p, here in paths if not here],
                              self.labeller)
        for line in outcome.problems:
            self._problem(line)
        with self._lock:
            self._status.count(outcome)
            self._status.last_batch_at = time.time()
        waiting = self._batch or len(self._settler) or not self._events.empty()
        if waiting and self.config.rest:  # more to do: a pause for the queries first (ended early by stop)
            self._stop.wait(self.config.rest * (time.monotonic() - started))

    def _problem(self, line: str) -> None:
        self.problems = [*self.problems[-(MAX_PROBLEMS - 1):], line]
        with self._lock:
            self._status.last_error = line
        if self._notify is not None:
            self._notify(line)
