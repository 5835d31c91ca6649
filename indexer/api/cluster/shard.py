"""One shard of an index, served: its file loaded as segments, searched from any thread, changed by the router.

The durable part of a write (the catalog row, then the embedding store) is the router's, as in
:class:`indexer.api.LiveCatalog`; a shard applies the change to its index in memory at once (a new version of
its segments, published by swapping one reference) and saves its file with the crash-safe journal at most every
``flush_s`` seconds, then records the new count and checksum in the manifest. At start, and whenever another
process replaced its file (a sibling replica's save), a shard makes its index agree with the catalog over its
id range: the ok catalog images it owns that it lacks are added from the embedding store, and the ids it holds
that are no longer ok images go. So a shard killed before a save loses nothing acknowledged.
"""

from __future__ import annotations

import threading
import time

import numpy as np

from indexer.api.cluster.layout import read_manifest, record_save, shard_path
from indexer.api.registry.index_files import file_signature
from indexer.api.workspace import Workspace
from indexer.core.errors import InputError

DEFAULT_FLUSH_S = 5.0
WATCH_S = 1.0


class ShardIndex:
    """Shard ``number`` of index ``index_name``'s layout (:mod:`indexer.api.cluster.layout`), loaded and
    reconciled with the catalog. Thread-safe: searches read one published version; changes are serialised."""

    def __init__(self, workspace: Workspace, index_name: str, number: int, *, flush_s: float = DEFAULT_FLUSH_S,
                 watch_s: float | None = WATCH_S) -> None:
        manifest = read_manifest(workspace, index_name)
        if not 0 <= number < len(manifest.shards):
            raise InputError(f"shard {number!r}: index {index_name!r} has shards 0..{len(manifest.shards) - 1}")
        self.workspace, self.index_name, self.number = workspace, index_name, number
        self.model_name, self.range = manifest.model, manifest.shards[number].ids
        self.path = shard_path(workspace, index_name, number)
        self.flush_s = flush_s
        self._lock = threading.RLock()
        self._unsaved = False
        self._saved_at = time.monotonic()
        self._stop = threading.Event()
        self._load()
        self.reconcile()
        self._watcher = None
        if watch_s is not None:
            self._watcher = threading.Thread(target=self._watch, args=(watch_s,), name=f"shard-{number}", daemon=True)
            self._watcher.start()

    # -- reads (any thread) ------------------------------------------------------------------------------------

    @property
    def ntotal(self) -> int:
        """Live vectors in this shard."""
        return int(self.index.ntotal)

    def search(self, queries: np.ndarray, k: int, nprobe: int | None = None, efSearch: int | None = None,  # noqa: N803
               allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, int]:
        """((q, k) scores, (q, k) ids, live vectors here) for (q, d) float32 ``queries``; ``allowed``: sorted ids
        a filter selected (only those answer)."""
        from indexer.core.search import search

        index = self.index
        if allowed is not None:
            return (*index.search(np.ascontiguousarray(queries, np.float32), k, nprobe=nprobe, efSearch=efSearch,
                                  allowed=np.asarray(allowed, np.int64)), index.ntotal)
        return (*search(index, queries, k, nprobe=nprobe, efSearch=efSearch), index.ntotal)

    def ids(self) -> np.ndarray:
        """Sorted (n,) int64 ids held here."""
        return self.index.ids()

    def holds(self, image_id: int) -> bool:
        """Whether ``image_id`` is live in this shard."""
        return self.index.holds(int(image_id))

    def describe(self) -> dict:
        """shard number, ntotal, unsaved, and vectors per segment."""
        return {"shard": self.number, "ntotal": self.ntotal, "unsaved": self._unsaved, **self.index.describe()}

    # -- changes (serialised) ------------------------------------------------------------------------------------

    def change(self, add: tuple[np.ndarray, np.ndarray] | None = None, remove: np.ndarray | None = None) -> int:
        """Apply ``add`` (ids, (n, d) vectors: ids this shard owns) and ``remove`` (ids) to the index in memory;
        saved now when ``flush_s`` is 0, else by the watcher. Returns the live vectors after."""
        with self._lock:
            index = self.index
            if remove is not None and len(remove):
                index, _ = index.removed(np.asarray(remove, np.int64))
            if add is not None and len(add[0]):
                ids = np.asarray(add[0], np.int64)
                foreign = ids[~self.range.holds(ids)]
                if len(foreign):
                    raise InputError(f"id {int(foreign[0])} is not in shard {self.number}'s range "
                                     f"[{self.range.lo}, {self.range.hi if self.range.hi is not None else 'end'})")
                index = index.added(ids, add[1])
            if index is not self.index:
                self.index = index
                self._unsaved = True
            if self.flush_s <= 0:
                self.flush()
            return int(self.index.ntotal)

    def reconcile(self) -> tuple[int, int]:
        """Make the index agree with the catalog over this shard's id range; (added, removed)."""
        from indexer.api.registry.indexes import catalog_vectors
        from indexer.api.search.served import ServedVectors

        with self._lock:
            served = ServedVectors.from_store(*catalog_vectors(self.workspace, self.model_name, mmap=True))
            ids = served.ids
            mine = ids[self.range.holds(ids)]
            have = self.index.ids()
            add = mine[~np.isin(mine, have)]
            extra = have[~np.isin(have, mine)]
            if len(add) or len(extra):
                self.change(add=(add, served.take(add)[1]) if len(add) else None, remove=extra)
            return len(add), len(extra)

    def flush(self) -> bool:
        """Fold the pending changes into the shard's file (journal, then the manifest entry); False when the
        file was replaced by another process since it was loaded (then it is reloaded and reconciled)."""
        from indexer.core.compaction import fold, rebase
        from indexer.core.index_io import index_lock, save_index
        from indexer.core.membership import indexed_ids

        with self._lock:
            snapshot = self.index
            if not snapshot.pending:
                self._unsaved = False
                return True
            with index_lock(self.path):
                if file_signature(self.path) != self._signature:
                    self._load()
                    self.reconcile()
                    return False
                sealed = fold(snapshot, copy=True, sidecar=self._sidecar)
                written = save_index(sealed, self.path, self._user_sidecar())
                self._signature = file_signature(self.path)
            self.index = rebase(snapshot, self.index, sealed, indexed_ids(sealed))
            self._sidecar = written
            self._unsaved = bool(self.index.pending)
            self._saved_at = time.monotonic()
            record_save(self.workspace, self.index_name, self.number, int(sealed.ntotal), written["sha256"])
            return True

    def close(self) -> None:
        """Stop the watcher and save what is unsaved."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        self.flush()

    # -- internals ---------------------------------------------------------------------------------------------

    def _load(self) -> None:
        from indexer.core.index_io import load_index
        from indexer.core.segments import SegmentedIndex

        index, sidecar = load_index(self.path, verify=True)  # checksum: the file is what its sidecar says
        self._signature = file_signature(self.path)
        self._sidecar = sidecar
        self.index = SegmentedIndex(index)

    def _user_sidecar(self) -> dict:
        from indexer.api.registry.indexes import user_sidecar

        return user_sidecar(self._sidecar)

    def _watch(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            try:
                with self._lock:
                    if file_signature(self.path) != self._signature:
                        self._load()
                        self.reconcile()
                    elif self._unsaved and time.monotonic() - self._saved_at >= self.flush_s:
                        self.flush()
            except Exception:  # noqa: BLE001,S110 - the watcher must outlive one bad moment; the next tick retries
                pass
