"""A workspace opened once for a long-running face (the HTTP service): queries, adds and deletes together.

Reads are the engine's (:class:`indexer.api.search.engine.Searcher`), in parallel from any thread; this module
adds only the writes, the reloads and the saves around it. Writes are serialised by one lock. Each held index
is segmented (:mod:`indexer.core.segments`): a write makes a new version with the image in the growing segment
or marked deleted, sharing the sealed index, and publishes it through the engine by swapping one reference,
so a query holds either the old or the new version and never a half-updated one. A save folds the pending
changes into a new sealed index and writes it (:mod:`.live_saves`).

Durability of an acknowledged write, in order: the uploaded file (fsynced, renamed), the catalog row
(committed), the embedding (appended to the model's :class:`EmbeddingStore`, fsynced). The held indexes change
in memory at once and are saved to their files (with the crash-safe journal of :mod:`indexer.core.index_io`)
at most every ``flush_s`` seconds by the watcher thread (or less often for a large index, see
:meth:`LiveCatalog.save_interval`), and at :meth:`LiveCatalog.close`: one save covers many writes, which keeps a
write to a few milliseconds of work. A ``kill -9`` at any point is repaired at the next start:
:meth:`LiveCatalog.reconcile` embeds ok catalog images the store lacks and adds to (or removes from) each held
index whatever the catalog says it should hold, as ``indexer build --update`` does. A delete commits at the
catalog row; the store follows at once and the index files at the next save.

Index files replaced by another process (``indexer build --name NAME``, ``--update NAME``) are noticed by
:meth:`LiveCatalog.refresh` (file identity and times), loaded, reconciled and published the same way.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from indexer.api.registry.images import IMPORTED_FORMAT, imported_sha256, rows_to_embed, served_image
from indexer.api.registry.index_files import file_signature
from indexer.api.search.engine import Searcher, unit_vector
from indexer.api.search.held import AddOutcome, HeldIndex, KnownRows, ServedVectors
from indexer.api.search.live_batch import BatchWrites
from indexer.api.search.live_saves import Saves
from indexer.api.search.results import Answer
from indexer.api.search.served import RowTable
from indexer.api.search.uploads import UPLOADS_DIR, read_upload, store_upload
from indexer.api.workspace import Workspace
from indexer.core.errors import InputError, NotFoundError
from indexer.core.memory import release_free_memory
from indexer.core.rerank import Rerank
from storage.catalog import ImageRow
from storage.errors import NotInCatalogError

MAX_NOTES = 100
DEFAULT_WATCH_S = 1.0
DEFAULT_FLUSH_S = 5.0  # how long an index file may lag the catalog while the service runs


class LiveCatalog(BatchWrites, Saves):
    """The served model (its ONNX embedder), the indexes of that model, and the catalog, opened once.

    ``index_name`` picks the default index (the most recent when None); every other index of the same
    model that is not stale is held too. ``threads``: onnxruntime threads per query while several queries
    run at once (1 suits many concurrent queries); ``solo_threads``: for a query that runs alone (default: up to
    2 cores), so one client is answered faster and many clients do not over-subscribe the cores.
    ``flush_s``: the longest the held indexes' files lag behind the writes (0: every write saves them before
    it returns).
    """

    def __init__(self, workspace: Workspace, index_name: str | None = None, *, threads: int = 1,
                 solo_threads: int | None = None, max_pixels: int | None = None,
                 notify: Callable[[str], None] | None = None, flush_s: float = DEFAULT_FLUSH_S) -> None:
        self.workspace = workspace
        self._write_lock = threading.RLock()
        self._compacting = threading.Lock()  # one compaction at a time (an in-place fold must never run twice)
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self.flush_s = flush_s
        self._unsaved: set[str] = set()  # held indexes changed in memory since their last save
        self._stores: dict[str, Any] = {}  # one EmbeddingStore per model, kept: it remembers its parts' mapped ids
        self._saved_at = time.monotonic()
        self.notes: list[str] = []  # the last events a face may want to show (reloads, dropped indexes)
        self.last_compaction: dict | None = None  # index, at (epoch s), seconds, folded (changes)
        self._notify = notify
        solo_threads = min(2, os.cpu_count() or 1) if solo_threads is None else solo_threads
        try:
            self.engine = self._open_engine(workspace, index_name, threads=threads, solo_threads=solo_threads,
                                            max_pixels=max_pixels)
        except NotInCatalogError as exc:  # the service answers 404 for NotFoundError
            raise NotFoundError(str(exc)) from None
        self.model_name, self.default_index = self.engine.model_name, self.engine.index_name
        self.reconcile()

    def _open_engine(self, workspace: Workspace, index_name: str | None, **options: Any) -> Searcher:
        """The query engine over every index of the model (a sharded router holds its index's shards instead)."""
        return Searcher(workspace, index_name, hold_all=True, **options)

    # -- reads: the engine's (any thread, no lock) -----------------------------------------------------------

    @property
    def embedder(self) -> Any:
        return self.engine.embedder

    def indexes(self) -> list[dict]:
        """``[{"name", "kind", "model", "ntotal", "dim"}]`` of the held indexes, the default first."""
        return self.engine.indexes()

    def held(self, index_name: str | None = None) -> HeldIndex:
        """The published index called ``index_name`` (default: the default index)."""
        return self.engine.held(index_name)

    def search_bytes(self, data: bytes, name: str, *, k: int = 10, index_name: str | None = None,
                     rerank: str | Rerank | None = None, complete: bool = False, **narrow: Any) -> Answer:
        """Top-``k`` catalog images for an encoded image (see :meth:`Searcher.search_bytes`); ``narrow``: where,
        min_score, offset (see :meth:`Searcher.answer`). ``complete`` (every query method): refuse a partial
        answer; one process's answers are always complete (a sharded router's may not be)."""
        return self.engine.search_bytes(data, name, k=k, index_name=index_name, rerank=rerank, **narrow)

    def similar(self, image_id: int, *, k: int = 10, index_name: str | None = None,
                rerank: str | Rerank | None = None, complete: bool = False, **narrow: Any) -> Answer:
        """Top-``k`` catalog images like catalog image ``image_id``, itself excluded (see :meth:`Searcher.similar`)."""
        return self.engine.similar(image_id, k=k, index_name=index_name, rerank=rerank, **narrow)

    def search_examples(self, examples: Any, *, k: int = 10, index_name: str | None = None,
                        rerank: str | Rerank | None = None, complete: bool = False, **narrow: Any) -> Answer:
        """Top-``k`` catalog images for several weighted examples (see :meth:`Searcher.search_examples`)."""
        return self.engine.search_examples(examples, k=k, index_name=index_name, rerank=rerank, **narrow)

    def unsaved(self) -> list[str]:
        """The held indexes changed in memory since their files were last saved."""
        return sorted(self._unsaved)

    def image(self, image_id: int) -> ImageRow:
        """The catalog row of image ``image_id`` whose file a face may serve (NotFoundError otherwise, with the
        reason: no such row, its file is gone, or it is an imported vector)."""
        return served_image(self.workspace, image_id)

    def search_vector(self, vector: Any, *, k: int = 10, index_name: str | None = None,
                      rerank: str | Rerank | None = None, complete: bool = False, **narrow: Any) -> Answer:
        """Top-``k`` catalog images for a query vector (see :meth:`Searcher.search_vector`)."""
        return self.engine.search_vector(vector, k=k, index_name=index_name, rerank=rerank, **narrow)

    # -- writes (serialised) ---------------------------------------------------------------------------------

    def add_image(self, data: bytes, name: str, *, label: str | None = None, split: str | None = None) -> AddOutcome:
        """Store, catalogue, embed and index an uploaded image; durable when this returns.

        A byte-identical copy of an ok catalog image is not stored again: the answer names that image
        (``duplicate_of``)."""

        engine = self.engine
        upload = read_upload(data, name, max_pixels=engine.max_pixels, load=engine.embedder.load_bytes)
        vector = engine.embedder.embed_images([upload.picture])  # outside the lock: queries and uploads overlap
        label = (label or "").strip() or None
        split = (split or "").strip() or None
        with self._write_lock:
            with self.workspace.catalog(write=True) as catalog:
                existing = catalog.image_by_sha256(upload.sha256)
            if existing is not None:
                return AddOutcome(existing.id, existing.path, existing.id, self._holding(existing.id))
            path = str(store_upload(self.workspace.root / UPLOADS_DIR, upload).resolve())
            with self.workspace.catalog(write=True) as catalog:
                image_id = catalog.add_image(
                    path=path, sha256=upload.sha256, size_bytes=len(upload.data),
                    width=upload.width, height=upload.height, format=upload.format,
                    label_id=catalog.label_id(label) if label else None, split=split, status="ok",
                )
            names = self._index_new(image_id, path, label, vector)
        return AddOutcome(image_id, path, None, names)

    def add_point(self, path: str, vector: Any, *, label: str | None = None, split: str | None = None) -> AddOutcome:
        """Catalogue a vector of an external model (``indexer import``'s rows, one at a time) under ``path`` (any
        unique string) and index it; durable when this returns. InputError, and nothing written, for a model
        that embeds images, a wrong length, a value that is not finite, a zero vector or a path already
        catalogued."""

        engine = self.engine
        if engine.vectors_only is None:
            raise InputError(f"model {self.model_name!r} embeds images: add with POST /images (a vector is added "
                             "to a model made by 'indexer import')")
        path = (path or "").strip()
        if not path or "\0" in path:
            raise InputError("path: expected a non-empty string without NUL characters")
        vector = unit_vector(vector, engine.model.dim)
        label = (label or "").strip() or None
        split = (split or "").strip() or None
        with self._write_lock:
            with self.workspace.catalog(write=True) as catalog:
                if catalog.images_by_paths([path]):
                    raise InputError(f"path {path!r} is already in the catalog")
                image_id = catalog.add_image(path=path, sha256=imported_sha256(path), format=IMPORTED_FORMAT,
                                             label_id=catalog.label_id(label) if label else None, split=split,
                                             status="ok")
            names = self._index_new(image_id, path, label, vector)
        return AddOutcome(image_id, path, None, names)

    def _index_new(self, image_id: int, path: str, label: str | None, vector: np.ndarray) -> list[str]:
        """A catalogued image's vector stored, served and indexed (the write lock held); the indexes' names."""

        engine = self.engine
        engine.publish_rows(engine.rows.with_row(image_id, (path, label)))
        ids = np.array([image_id], dtype=np.int64)
        store = self._store(self.model_name)
        store.append(ids, vector)  # the served vectors read it from the store's files: no second copy here
        engine.publish_vectors(engine.served_vectors().changed(add=(ids, vector), stored=store.reader()))
        return self._change_indexes(add=(ids, vector), save=self.flush_s <= 0)

    def set_fields(self, image_id: int, values: dict[str, Any], *, types: dict[str, str] | None = None) -> dict:
        """Set user fields of image ``image_id`` (see :func:`indexer.api.registry.fields.set_image_fields`);
        filters see them at once."""
        from indexer.api.registry.fields import set_image_fields

        with self._write_lock:
            fields = set_image_fields(self.workspace, image_id, values, types=types)
            self.engine.forget_selections()
        return fields

    def _store(self, model_name: str) -> Any:
        """The embedding store of ``model_name``: one object kept per model, used with the write lock held only
        (its lock is reentrant within the object, so two threads must never be inside it at once)."""
        from models.embedding_store import EmbeddingStore

        if model_name not in self._stores:
            self._stores[model_name] = EmbeddingStore(self.workspace.embeddings_dir / model_name)
        return self._stores[model_name]

    def delete_image(self, image_id: int) -> None:
        """Remove image ``image_id`` from the catalog, every embedding store and every index (NotFoundError if
        unknown). The catalog commit decides; the rest follows and is replayed at start-up if interrupted."""
        if not self.delete_images([image_id]):
            raise NotFoundError(f"no image with id {image_id} in the catalog")

    def reconcile(self) -> dict[str, tuple[int, int]]:
        """Make the store and every held index agree with the catalog; ``{name: (added, removed)}``.

        Ok catalog images the model's store lacks are embedded (the served model); each index gets the stored
        vectors of ok images it lacks and loses ids that are no longer ok catalog images."""
        from models.errors import ImageError

        engine = self.engine
        with self._write_lock:
            store = self._store(self.model_name)
            to_embed = []  # the ok rows the store lacks (an external model's vectors are imported: none)

            def pages():  # the catalog page by page: at a million rows, arrays, never a million tuples at once
                with self.workspace.catalog() as catalog:
                    for batch in catalog.image_key_batches():
                        lacking = set(store.missing(np.array([row.id for row in batch], np.int64)).tolist())
                        to_embed.extend(row for row in rows_to_embed(engine.model, batch) if row.id in lacking)
                        yield batch

            table = RowTable.from_sorted_batches([(row.id, row.path, row.label) for row in batch]
                                                 for batch in pages())
            ok_ids = table.ids
            engine.publish_rows(KnownRows(table))
            pictures, new_ids = [], []
            for row in to_embed:
                try:
                    pictures.append(engine.embedder.load(row.path))  # the catalogue's loader
                    new_ids.append(row.id)
                except ImageError as exc:
                    self._note(f"image {row.id} not embedded: {exc}")
            if pictures:
                new_ids, vectors = np.array(new_ids, np.int64), engine.embedder.embed_images(pictures)
                with store.locked():  # another process ('indexer embed', 'build --update') may have stored some
                    still = np.isin(new_ids, store.missing(new_ids))
                    if still.any():
                        store.append(new_ids[still], vectors[still])
            # one read (another process may be appending); the vectors stay a memory map of the store's file
            store_ids, vectors = store.items(mmap=True)
            if np.array_equal(store_ids, ok_ids):
                store_ids = ok_ids  # the same million ids: held once
            served = ServedVectors.from_store(store_ids, vectors, ok_ids)
            engine.publish_vectors(served)
            changes = self._reconcile_indexes(served)
        release_free_memory()  # the catalog pages and the indexes' loading buffers, freed: back to the system
        return changes

    def _reconcile_indexes(self, served: ServedVectors) -> dict[str, tuple[int, int]]:
        """Each held index made to hold exactly the ``served`` ids (the write lock held); {name: (added,
        removed)}."""
        from indexer.core.arrays import in_sorted
        from indexer.core.membership import indexed_ids
        from indexer.core.segments import SegmentedIndex

        served_ids = served.ids  # sorted, like every id list below: compared by binary search, nothing sorted again
        changes = {}
        for name in self.engine.held_names():
            have = indexed_ids(self.engine.held(name).index)
            add_ids = served_ids[~in_sorted(have, served_ids)]
            extra = have[~in_sorted(served_ids, have)]
            if len(add_ids) or len(extra):
                self._change_indexes(add=(add_ids, served.take(add_ids)[1]), remove=extra, only=[name])
            held = self.engine.held(name)
            if isinstance(held.index, SegmentedIndex):
                shared = held.index.sharing_ids(served_ids)
                if shared is not held.index:
                    self.engine.publish(replace(held, index=shared))
            changes[name] = (len(add_ids), len(extra))
        return changes

    def refresh(self) -> list[str]:
        """Reload every held index whose files another process replaced; returns their names."""
        engine = self.engine
        reloaded = []
        with self._write_lock:
            for name in engine.held_names():
                held = engine.held(name)
                if file_signature(held.path) == held.signature:
                    continue
                try:
                    with self.workspace.catalog() as catalog:
                        row = catalog.index(name)
                    if row.model_name != self.model_name:
                        engine.unpublish(name)
                        self._unsaved.discard(name)
                        self._note(f"index {name!r} was rebuilt with model {row.model_name!r}; "
                                   f"no longer served (this service embeds with {self.model_name!r})")
                        continue
                    engine.publish(engine.load_held(row))
                except Exception as exc:  # noqa: BLE001 - a half-written file from another process; retry later
                    self._note(f"index {name!r} changed on disk but could not be loaded yet: {exc}")
                    continue
                self._unsaved.discard(name)  # what it lacked is re-applied from the catalog by reconcile
                reloaded.append(name)
                self._note(f"index {name!r} reloaded ({engine.held(name).ntotal} vectors)")
            if reloaded:
                self.reconcile()
        return reloaded

    def start_watching(self, interval_s: float = DEFAULT_WATCH_S) -> None:
        """Every ``interval_s`` seconds on a daemon thread until :meth:`close`: :meth:`refresh`, and
        :meth:`flush` once :meth:`save_interval` has passed since the last save."""
        if self._watcher is not None:
            return

        def watch() -> None:
            while not self._stop.wait(interval_s):
                try:
                    self.refresh()
                    if self._unsaved and time.monotonic() - self._saved_at >= self.save_interval():
                        self.flush()
                except Exception as exc:  # noqa: BLE001 - the watcher must outlive one bad moment
                    self._note(f"watching the index files failed once: {exc}")

        self._watcher = threading.Thread(target=watch, name="index-watcher", daemon=True)
        self._watcher.start()

    def close(self) -> None:
        """Stop watching (the watcher thread ends within a second), take in index files another process
        replaced, and save what is unsaved."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
            self._watcher = None
        self.refresh()
        self.flush()

    # -- internals -------------------------------------------------------------------------------------------

    def _note(self, line: str) -> None:
        self.notes = [*self.notes[-(MAX_NOTES - 1):], line]
        if self._notify is not None:
            self._notify(line)

    def _holding(self, image_id: int) -> list[str]:
        return [name for name in self.engine.held_names() if self.engine.held(name).index.holds(image_id)]

    def _change_indexes(self, *, add=None, remove=None, only: list[str] | None = None,
                        save: bool = True) -> list[str]:
        """Apply the change to each held index as a new version of its segments (the sealed index is shared,
        never copied: a write costs what it changes) and publish it; ``save``: fold the changes into the index
        file now (see :meth:`_save`), otherwise the next :meth:`flush` does."""
        names = []
        for name in self.engine.held_names():
            if only is not None and name not in only:
                continue
            held = self.engine.held(name)
            index = held.index
            if remove is not None and len(remove):
                index, _ = index.removed(np.asarray(remove, np.int64))
            if add is not None and len(add[0]):
                index = index.added(add[0], add[1])
            changed = replace(held, index=index)
            self.engine.publish(changed)
            if save and self._save(changed):
                self._unsaved.discard(name)
            else:
                self._unsaved.add(name)
            names.append(name)
        return names
