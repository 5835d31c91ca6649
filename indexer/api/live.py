"""A workspace opened once for a long-running face (the HTTP service): queries, adds and deletes together.

Reads run in parallel from any thread; writes are serialised by one lock. Indexes are copy-on-write: a write
copies each index, changes the copy, saves it and then publishes it by swapping one reference, so a query
holds either the old or the new index and never a half-updated one.

Durability of an acknowledged write, in order: the uploaded file (fsynced, renamed), the catalog row
(committed), the embedding (appended to the model's :class:`EmbeddingStore`, fsynced). The held indexes change
in memory at once and are saved to their files (with the crash-safe journal of :mod:`indexer.core.index_io`)
at most every ``flush_s`` seconds by the watcher thread, and at :meth:`LiveCatalog.close`: one save covers
many writes, which keeps a write to a few milliseconds of work. A ``kill -9`` at any point is repaired at the
next start: :meth:`LiveCatalog.reconcile` embeds ok catalog images the store lacks and adds to (or removes
from) each held index whatever the catalog says it should hold, as ``indexer build --update`` does. A delete
commits at the catalog row; the store follows at once and the index files at the next save.

Index files replaced by another process (``indexer build --name NAME``, ``--update NAME``) are noticed by
:meth:`LiveCatalog.refresh` (file identity and times), loaded, reconciled and published the same way.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from indexer.api.indexes import register, served_index, stale_index_message, user_sidecar
from indexer.api.live_search import check_k, search_held
from indexer.api.live_types import AddOutcome, HeldIndex, LiveAnswer, ServedVectors, file_signature
from indexer.api.uploads import UPLOADS_DIR, decode_query, read_upload, store_upload
from indexer.api.workspace import Workspace
from indexer.core.errors import NotFoundError
from indexer.core.rerank import Rerank, check_query_rerank
from storage.catalog import ImageRow
from storage.errors import NotInCatalogError

MAX_NOTES = 100
DEFAULT_WATCH_S = 1.0
DEFAULT_FLUSH_S = 5.0  # how long an index file may lag the catalog while the service runs


class LiveCatalog:
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
        from models.onnx_embedder import OnnxEmbedder
        from models.preprocess import PreprocessSpec

        self.workspace = workspace
        self.max_pixels = max_pixels
        self._write_lock = threading.RLock()
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self.flush_s = flush_s
        self._unsaved: set[str] = set()  # held indexes changed in memory since their last save
        self._saved_at = time.monotonic()
        self.notes: list[str] = []  # the last events a face may want to show (reloads, dropped indexes)
        self._notify = notify
        with workspace.catalog() as catalog:
            try:
                default = served_index(catalog, index_name)
            except NotInCatalogError as exc:  # the service answers 404 for NotFoundError
                raise NotFoundError(str(exc)) from None
            model = catalog.model(default.model_name)
            rows = [row for row in catalog.indexes() if row.model_name == model.name
                    and (row.name == default.name or stale_index_message(row, model) is None)]
        onnx_path = workspace.resolve(model.params["onnx"])
        if not onnx_path.is_file():
            raise NotFoundError(f"model {model.name!r} has no ONNX file at {onnx_path}; train it again")
        self.model_name, self.default_index = model.name, default.name
        spec = PreprocessSpec.from_dict(model.params["preprocess"])
        self.embedder = OnnxEmbedder(onnx_path, spec, threads=threads)
        solo_threads = min(2, os.cpu_count() or 1) if solo_threads is None else solo_threads
        self._solo = OnnxEmbedder(onnx_path, spec, threads=solo_threads) if solo_threads > threads else None
        self._in_flight, self._flight_lock = 0, threading.Lock()
        self._held: dict[str, HeldIndex] = {row.name: self._load(row) for row in rows}
        self._vectors = ServedVectors.empty(model.dim)
        self._rows: dict[int, tuple[str, str | None]] = {}  # ok catalog images: id -> (path, label)
        self.reconcile()

    # -- reads (any thread, no lock) -------------------------------------------------------------------------

    def indexes(self) -> list[dict]:
        """``[{"name", "kind", "model", "ntotal", "dim"}]`` of the held indexes, the default first."""
        held = self._held
        return [held[name].describe() for name in sorted(held, key=lambda n: (n != self.default_index, n))]

    def held(self, index_name: str | None = None) -> HeldIndex:
        """The published index called ``index_name`` (default: the default index)."""
        held = self._held
        name = index_name or self.default_index
        if name not in held:
            known = ", ".join(sorted(held)) or "none"
            raise NotFoundError(f"index {name!r} is not served (served: {known})")
        return held[name]

    def search_bytes(self, data: bytes, name: str, *, k: int = 10, index_name: str | None = None,
                     rerank: str | Rerank | None = None) -> LiveAnswer:
        """Top-``k`` catalog images for an encoded image (an upload); InputError when it does not decode.
        ``rerank``: as for :meth:`indexer.api.Searcher.answer` ("qe" expands the query with its nearest stored
        vectors and searches again; "dba" needs an index built with it)."""
        held = self.held(index_name)
        check_k(k)
        rerank = check_query_rerank(rerank, Rerank.from_dict(held.sidecar.get("rerank")), held.name, held.kind)
        started = time.perf_counter()
        if self.max_pixels is None:
            name, picture = decode_query(data, name, self.embedder.load_bytes)
        else:  # a pixel limit of its own: checked on the whole file, as for an upload
            upload = read_upload(data, name, max_pixels=self.max_pixels, load=self.embedder.load_bytes)
            name, picture = upload.name, upload.picture
        decoded = time.perf_counter()
        vector = self.embed_query(picture)
        embedded = time.perf_counter()
        answer = self._search(held, vector, k, name, exclude=None, rerank=rerank)
        timings = {"decode": (decoded - started) * 1e3, "embed": (embedded - decoded) * 1e3, **answer.timings_ms}
        return replace(answer, timings_ms=timings)

    def embed_query(self, picture: Any) -> np.ndarray:
        """(1, dim) vector of a decoded query picture: with the ``solo_threads`` session when no other query is
        being embedded at this moment, else with the one-thread session."""
        with self._flight_lock:
            self._in_flight += 1
            alone = self._in_flight == 1
        try:
            return (self._solo if alone and self._solo is not None else self.embedder).embed_images([picture])
        finally:
            with self._flight_lock:
                self._in_flight -= 1

    def similar(self, image_id: int, *, k: int = 10, index_name: str | None = None,
                rerank: str | Rerank | None = None) -> LiveAnswer:
        """Top-``k`` catalog images like catalog image ``image_id`` (its stored vector), itself excluded (also
        from the neighbours a "qe" re-ranking expands it with)."""
        held = self.held(index_name)
        check_k(k)
        rerank = check_query_rerank(rerank, Rerank.from_dict(held.sidecar.get("rerank")), held.name, held.kind)
        with self.workspace.catalog() as catalog:
            row = catalog.images_by_ids([image_id]).get(int(image_id))
        if row is None:
            raise NotFoundError(f"no image with id {image_id} in the catalog")
        vector = self._vectors.of(int(image_id), self.model_name)
        return self._search(held, vector, k, row.path, exclude=int(image_id), rerank=rerank)

    def image(self, image_id: int) -> ImageRow:
        """The catalog row of image ``image_id`` whose file exists (NotFoundError otherwise)."""
        with self.workspace.catalog() as catalog:
            row = catalog.images_by_ids([image_id]).get(int(image_id))
        if row is None:
            raise NotFoundError(f"no image with id {image_id} in the catalog")
        if not Path(row.path).is_file():
            raise NotFoundError(f"image {image_id}: its file {row.path} is gone")
        return row

    def _search(self, held: HeldIndex, vector: np.ndarray, k: int, name: str, exclude: int | None,
                rerank: Rerank) -> LiveAnswer:
        return search_held(held, vector, k, name, exclude, rerank, rows=self._rows, workspace=self.workspace,
                           vector_lookup=self._vectors.lookup)

    # -- writes (serialised) ---------------------------------------------------------------------------------

    def add_image(self, data: bytes, name: str, *, label: str | None = None, split: str | None = None) -> AddOutcome:
        """Store, catalogue, embed and index an uploaded image; durable when this returns.

        A byte-identical copy of an ok catalog image is not stored again: the answer names that image
        (``duplicate_of``)."""
        from models.embedding_store import EmbeddingStore

        upload = read_upload(data, name, max_pixels=self.max_pixels, load=self.embedder.load_bytes)
        vector = self.embedder.embed_images([upload.picture])  # outside the lock: queries and uploads overlap
        label = (label or "").strip() or None
        split = (split or "").strip() or None
        with self._write_lock:
            with self.workspace.catalog(write=True) as catalog:
                existing = catalog.image_by_sha256(upload.sha256)
            if existing is not None:
                return AddOutcome(existing.id, existing.path, existing.id, self._holding(existing.id))
            path = store_upload(self.workspace.root / UPLOADS_DIR, upload)
            with self.workspace.catalog(write=True) as catalog:
                image_id = catalog.add_image(
                    path=str(path.resolve()), sha256=upload.sha256, size_bytes=len(upload.data),
                    width=upload.width, height=upload.height, format=upload.format,
                    label_id=catalog.label_id(label) if label else None, split=split, status="ok",
                )
            self._rows = {**self._rows, image_id: (str(path.resolve()), label)}
            ids = np.array([image_id], dtype=np.int64)
            EmbeddingStore(self.workspace.embeddings_dir / self.model_name).append(ids, vector)
            self._vectors = self._vectors.changed(add=(ids, vector))
            names = self._change_indexes(add=(ids, vector), save=self.flush_s <= 0)
        return AddOutcome(image_id, str(path.resolve()), None, names)

    def delete_image(self, image_id: int) -> None:
        """Remove image ``image_id`` from the catalog, every embedding store and every index (NotFoundError if
        unknown). The catalog commit decides; the rest follows and is replayed at start-up if interrupted."""
        from indexer.api.remove import remove_from_index_file
        from models.embedding_store import EmbeddingStore

        ids = np.array([int(image_id)], dtype=np.int64)
        with self._write_lock:
            with self.workspace.catalog(write=True) as catalog:
                row = catalog.images_by_ids(ids.tolist()).get(int(image_id))
                if row is None:
                    raise NotFoundError(f"no image with id {image_id} in the catalog")
                catalog.remove_images(ids.tolist())
                models, index_rows = catalog.models(), catalog.indexes()
                self._rows = {i: row for i, row in self._rows.items() if i != int(image_id)}
            for model in models:
                store_dir = self.workspace.embeddings_dir / model.name
                if store_dir.is_dir():
                    EmbeddingStore(store_dir).remove(ids)
            self._vectors = self._vectors.changed(remove=ids)
            self._change_indexes(remove=ids, save=self.flush_s <= 0)
            for index_row in index_rows:  # indexes this service does not hold (other models) are files only
                if index_row.name not in self._held:
                    remove_from_index_file(self.workspace, index_row, ids)
            uploads = (self.workspace.root / UPLOADS_DIR).resolve()
            if Path(row.path).parent == uploads:
                Path(row.path).unlink(missing_ok=True)

    def reconcile(self) -> dict[str, tuple[int, int]]:
        """Make the store and every held index agree with the catalog; ``{name: (added, removed)}``.

        Ok catalog images the model's store lacks are embedded (ONNX, the served model); each index gets
        the stored vectors of ok images it lacks and loses ids that are no longer ok catalog images."""
        from indexer.core.membership import indexed_ids
        from models.embedding_store import EmbeddingStore
        from models.errors import ImageError

        with self._write_lock:
            with self.workspace.catalog() as catalog:
                ok_rows = catalog.images()
            ok_ids = np.array([row.id for row in ok_rows], dtype=np.int64)
            self._rows = {row.id: (row.path, row.label) for row in ok_rows}
            store = EmbeddingStore(self.workspace.embeddings_dir / self.model_name)
            lacking = set(store.missing(ok_ids).tolist())
            pictures, new_ids = [], []
            for row in ok_rows:
                if row.id in lacking:
                    try:
                        pictures.append(self.embedder.load(row.path))  # the catalogue's loader
                        new_ids.append(row.id)
                    except ImageError as exc:
                        self._note(f"image {row.id} not embedded: {exc}")
            if pictures:
                store.append(np.array(new_ids, np.int64), self.embedder.embed_images(pictures))
            store_ids = store.ids()
            vectors = np.asarray(store.vectors(mmap=False), dtype=np.float32)
            keep = np.isin(store_ids, ok_ids)
            self._vectors = ServedVectors.by_id(store_ids[keep], vectors[keep])
            ids, vectors = self._vectors.ids, self._vectors.vectors
            changes = {}
            for held in list(self._held.values()):
                have = indexed_ids(held.index)
                add = ~np.isin(ids, have)
                extra = have[~np.isin(have, ids)]
                if add.any() or len(extra):
                    self._change_indexes(add=(ids[add], vectors[add]), remove=extra, only=[held.name])
                changes[held.name] = (int(add.sum()), len(extra))
            return changes

    def refresh(self) -> list[str]:
        """Reload every held index whose files another process replaced; returns their names."""
        reloaded = []
        with self._write_lock:
            for name, held in list(self._held.items()):
                if file_signature(held.path) == held.signature:
                    continue
                try:
                    with self.workspace.catalog() as catalog:
                        row = catalog.index(name)
                    if row.model_name != self.model_name:
                        self._held = {n: h for n, h in self._held.items() if n != name}
                        self._note(f"index {name!r} was rebuilt with model {row.model_name!r}; "
                                          f"no longer served (this service embeds with {self.model_name!r})")
                        continue
                    self._held = {**self._held, name: self._load(row)}
                except Exception as exc:  # noqa: BLE001 - a half-written file from another process; retry later
                    self._note(f"index {name!r} changed on disk but could not be loaded yet: {exc}")
                    continue
                reloaded.append(name)
                self._note(f"index {name!r} reloaded ({self._held[name].ntotal} vectors)")
            if reloaded:
                self.reconcile()
        return reloaded

    def flush(self) -> list[str]:
        """Save every held index changed in memory since its last save; returns their names.

        An index whose file another process replaced meanwhile is not overwritten: :meth:`refresh` loads
        that file and reconciles it with the catalog (which re-applies this service's writes)."""
        saved = []
        with self._write_lock:
            for name in sorted(self._unsaved):
                held = self._held.get(name)
                if held is not None and file_signature(held.path) == held.signature:
                    self._save(held)
                    saved.append(name)
            self._unsaved.clear()
            self._saved_at = time.monotonic()
        return saved

    def start_watching(self, interval_s: float = DEFAULT_WATCH_S) -> None:
        """Every ``interval_s`` seconds on a daemon thread until :meth:`close`: :meth:`refresh`, and
        :meth:`flush` once ``flush_s`` has passed since the last save."""
        if self._watcher is not None:
            return

        def watch() -> None:
            while not self._stop.wait(interval_s):
                try:
                    self.refresh()
                    if self._unsaved and time.monotonic() - self._saved_at >= self.flush_s:
                        self.flush()
                except Exception as exc:  # noqa: BLE001 - the watcher must outlive one bad moment
                    self._note(f"watching the index files failed once: {exc}")

        self._watcher = threading.Thread(target=watch, name="index-watcher", daemon=True)
        self._watcher.start()

    def close(self) -> None:
        """Stop watching the index files (the watcher thread ends within a second) and save what is unsaved."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
            self._watcher = None
        self.flush()

    # -- internals -------------------------------------------------------------------------------------------

    def _note(self, line: str) -> None:
        self.notes = [*self.notes[-(MAX_NOTES - 1):], line]
        if self._notify is not None:
            self._notify(line)

    def _load(self, row) -> HeldIndex:
        from indexer.core.index_io import index_paths, load_index

        path = index_paths(self.workspace.resolve(row.path))[0]
        signature = file_signature(path)
        index, sidecar = load_index(path)
        return HeldIndex(row.name, row.kind, row.model_name, path, index, sidecar, row.params, signature)

    def _holding(self, image_id: int) -> list[str]:
        from indexer.core.membership import indexed_ids

        return [name for name, held in self._held.items() if image_id in set(indexed_ids(held.index).tolist())]

    def _change_indexes(self, *, add=None, remove=None, only: list[str] | None = None,
                        save: bool = True) -> list[str]:
        """Copy each held index, apply the change and publish the copy; ``save``: save it (journal) and
        register it first, otherwise it is saved by the next :meth:`flush`."""
        from indexer.api.remove import remove_from_index
        from indexer.core.build import add_vectors, copy_index

        names = []
        for name, held in list(self._held.items()):
            if only is not None and name not in only:
                continue
            index = copy_index(held.index)
            if remove is not None and len(remove):
                index, _ = remove_from_index(index, held.sidecar, np.asarray(remove, np.int64))
            if add is not None and len(add[0]):
                add_vectors(index, add[1], add[0])
            changed = replace(held, index=index)
            if save:
                self._save(changed)
                self._unsaved.discard(name)
            else:
                self._held = {**self._held, name: changed}
                self._unsaved.add(name)
            names.append(name)
        return names

    def _save(self, held: HeldIndex) -> None:
        """Save ``held``'s index with the journal, register it, and publish it with the file's new identity."""
        from indexer.core.index_io import save_index

        sidecar = save_index(held.index, held.path, user_sidecar(held.sidecar))
        register(self.workspace, held.name, held.kind, held.params, sidecar, held.path, held.model)
        self._held = {**self._held, held.name: replace(held, sidecar=sidecar, signature=file_signature(held.path))}


