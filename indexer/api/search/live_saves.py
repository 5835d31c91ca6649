"""The live catalog's saves: folding the held indexes' pending changes into their files (compaction), while
queries and writes go on.

A mixin of :class:`indexer.api.search.live.LiveCatalog`: it uses the live catalog's write lock, engine and
unsaved set. Every save goes through :func:`indexer.api.registry.index_files.writing` (the index's lock, the
journal, the catalog row), so a save never interleaves with ``indexer build --update`` or ``indexer remove`` in
another process; an index whose file another process replaced is never overwritten.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from typing import Any

from indexer.api.registry.index_files import IndexTarget, writing
from indexer.api.search.held import HeldIndex
from indexer.core.memory import release_free_memory

SAVE_DUTY = 20  # saves wait at least this many times the last one's duration: at most 1/20 of the time saving


class Saves:
    """Compaction for the live catalog (see the module's docstring)."""

    workspace: Any
    engine: Any
    flush_s: float
    last_compaction: dict | None
    _write_lock: Any
    _compacting: threading.Lock
    _unsaved: set[str]
    _saved_at: float

    def flush(self) -> list[str]:
        """Fold every held index's pending changes into its file (compaction); returns the names saved.

        Queries and writes go on meanwhile: the fold works on a snapshot and a copy of the sealed index, and
        the new sealed index is published with the changes made since (:func:`indexer.core.compaction.rebase`).
        An index whose file another process replaced meanwhile is not overwritten: :meth:`refresh` loads that
        file and reconciles it with the catalog (which re-applies this service's writes)."""
        with self._write_lock:
            names = sorted(self._unsaved)
            self._saved_at = time.monotonic()
        return [name for name in names if self._compact(name)]

    def save_interval(self) -> float:
        """Seconds between two saves by the watcher: ``flush_s``, or :data:`SAVE_DUTY` times the last
        compaction's duration when that is longer. A save rewrites the whole index file (O(N): about 2 s at a
        million vectors), so a trickle of writes to a large index costs at most 1/SAVE_DUTY of a core; the
        writes themselves are durable before they are acknowledged (catalog row and embedding store, replayed
        by :meth:`reconcile` at start-up), so only the file, not the data, lags."""
        last = self.last_compaction["seconds"] if self.last_compaction else 0.0
        return max(self.flush_s, SAVE_DUTY * last)

    def _save(self, held: HeldIndex) -> bool:
        """Compact ``held`` now, with the write lock held (``--save-every 0``: the write returns once saved)."""
        return self._compact(held.name)

    def _compact(self, name: str) -> bool:
        """Fold index ``name``'s pending changes into its sealed index, save it under its lock (journal, catalog
        row) and publish it rebased on the changes made meanwhile; False, and nothing written, when another
        process replaced the files since they were loaded (or a refresh did meanwhile), or when a compaction
        is already running (the changes stay pending for the next one).

        An IVF index in memory is folded in place, a few lists at a time (:func:`fold_in_place`): no second
        copy of it, ever. A graph keeps its main graph and folds its adds into a small tail graph, its deletions
        staying marks (:func:`fold_tail`), until they outgrow their share of it. Other kinds (and a graph then)
        fold into a copy that readers never see until it is published."""
        from indexer.core.compaction import (
            can_fold_in_place,
            can_fold_tail,
            fold,
            fold_in_place,
            fold_tail,
            rebase,
        )
        from indexer.core.membership import indexed_ids

        if not self._compacting.acquire(blocking=False):
            return False
        try:
            with self._write_lock:
                if name not in self.engine.held_names():
                    return False
                snapshot = self.engine.held(name)
                if not snapshot.index.pending:
                    self._unsaved.discard(name)
                    return True
            started = time.perf_counter()
            in_place = can_fold_in_place(snapshot.index)
            as_tail = not in_place and can_fold_tail(snapshot.index)
            target = IndexTarget(snapshot.name, snapshot.kind, snapshot.params, snapshot.model, snapshot.path)
            tail = marks = None
            with writing(self.workspace, target) as (file,):
                if file.signature() != snapshot.signature:
                    return False
                if as_tail:  # the main graph stays as it is, in memory and on disk
                    tail, marks = fold_tail(snapshot.index, snapshot.sidecar["params"])
                    sealed, sealed_ids = snapshot.index.sealed, None
                    live = snapshot.index.ntotal
                    sidecar = file.save_segments(tail, marks, live)
                elif in_place:
                    sealed_ids, sealed = fold_in_place(snapshot.index), snapshot.index.sealed
                    with snapshot.index.gate.reading():  # serialised while no fold step changes it
                        sidecar = file.save(sealed, snapshot.sidecar)
                else:
                    sealed = fold(snapshot.index, copy=True, sidecar=snapshot.sidecar)  # readers keep the old one
                    sealed_ids = indexed_ids(sealed)
                    sidecar = file.save(sealed, snapshot.sidecar)
                signature = file.signature()
            with self._write_lock:
                current = self.engine.held(name) if name in self.engine.held_names() else None
                if current is None or current.index.sealed is not snapshot.index.sealed:
                    return False  # refreshed from another process's file meanwhile: that version stands
                version = rebase(snapshot.index, current.index, sealed, sealed_ids, tail=tail, marks=marks)
                self.engine.publish(replace(current, index=version, sidecar=sidecar, signature=signature))
                if not version.pending:
                    self._unsaved.discard(name)
                self.last_compaction = {"index": name, "at": time.time(), "seconds": time.perf_counter() - started,
                                        "folded": snapshot.index.pending, "in_place": in_place or as_tail,
                                        "tail": as_tail}
            release_free_memory()  # the file writer's buffers and the folded segments, freed: back to the system
            return True
        finally:
            self._compacting.release()
