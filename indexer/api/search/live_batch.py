"""The live catalog's writes of many images at once (the folder watcher's): one embed batch, one catalog
transaction and one change per held index for a whole batch, where a loop of single writes would make a new
version of every index per image.

A mixin of :class:`indexer.api.search.live.LiveCatalog`: it uses the live catalog's write lock, engine and
index change, and keeps its durability order (catalog row committed, then the embedding appended and fsynced,
then the held indexes changed in memory and saved by the next compaction; a kill in between is replayed by
:meth:`LiveCatalog.reconcile` at the next start).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from indexer.api.search.uploads import UPLOADS_DIR
from storage.catalog import ImageRow


@dataclass
class IndexedBatch:
    """What :meth:`BatchWrites.index_catalogued` did: the ids embedded and indexed, and ``{id: reason}`` of ok
    rows the model's loader could not read (left in the catalog, out of the indexes)."""

    embedded: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)


class BatchWrites:
    """Batch writes for the live catalog (see the module's docstring)."""

    workspace: Any
    engine: Any
    model_name: str
    flush_s: float
    _write_lock: Any

    def index_catalogued(self, ids: Iterable[int]) -> IndexedBatch:
        """Embed, in one batch, the ok catalog images ``ids`` that the served model's store lacks, and add them
        to every held index with one change each; durable (store fsynced) when this returns. Ids that are not
        ok rows (gone, errors, duplicates) or already stored are passed over."""
        from models.errors import ImageError

        engine, outcome = self.engine, IndexedBatch()
        wanted = np.unique(np.asarray(list(ids), np.int64))
        if not len(wanted):
            return outcome
        with self._write_lock:  # the kept store object is used by one thread at a time (its lock is reentrant)
            store = self._store(self.model_name)
            lacking = store.missing(wanted)
        with self.workspace.catalog() as catalog:
            rows = catalog.images_by_ids(lacking.tolist())
        pictures, loaded = [], []
        for image_id in lacking.tolist():
            row = rows.get(image_id)
            if row is None or row.status != "ok":
                continue
            try:
                pictures.append(engine.embedder.load(row.path))  # the catalogue's loader, as reconcile
                loaded.append(row)
            except ImageError as exc:
                outcome.failed[row.id] = str(exc)
        if not loaded:
            return outcome
        vectors = engine.embedder.embed_images(pictures)  # outside the lock: queries and uploads go on
        with self._write_lock:
            with self.workspace.catalog() as catalog:  # a row deleted while it was embedded stays out
                still = catalog.images_by_ids([row.id for row in loaded])
            keep = np.array([still.get(row.id) is not None and still[row.id].status == "ok" for row in loaded])
            new_ids = np.array([row.id for row in loaded], np.int64)[keep]
            vectors = np.asarray(vectors, np.float32)[keep]
            with store.locked():  # another process ('indexer embed') may have stored some meanwhile
                fresh = np.isin(new_ids, store.missing(new_ids))
                if fresh.any():
                    store.append(new_ids[fresh], vectors[fresh])
            rows_now = engine.rows
            for row in (still[i] for i in new_ids.tolist()):
                rows_now = rows_now.with_row(row.id, (row.path, row.label))
            engine.publish_rows(rows_now)
            engine.publish_vectors(engine.served_vectors().changed(add=(new_ids, vectors), stored=store.reader()))
            self._change_indexes(add=(new_ids, vectors), save=self.flush_s <= 0)
        outcome.embedded = new_ids.tolist()
        return outcome

    def delete_images(self, ids: Iterable[int]) -> list[ImageRow]:
        """Remove images ``ids`` (unknown ones are passed over) from the catalog in one transaction, then from
        every embedding store and every index with one change each; the rows removed. A copy promoted to ok by
        its original's removal (see :meth:`storage.catalog.Catalog.remove_images`) is embedded and indexed."""
        from indexer.api.registry.index_files import remove_from_index_file

        engine = self.engine
        wanted = sorted({int(i) for i in ids})
        with self._write_lock:
            with self.workspace.catalog(write=True) as catalog:
                rows = catalog.images_by_ids(wanted)
                if not rows:
                    return []
                copies = [i for i in catalog.copies_of(rows) if i not in rows]
                catalog.remove_images(list(rows))
                models, index_rows = catalog.models(), catalog.indexes()
            gone = np.array(sorted(rows), np.int64)
            known = engine.rows
            for image_id in gone.tolist():
                known = known.without(image_id)
            engine.publish_rows(known)
            for model in models:
                store_dir = self.workspace.embeddings_dir / model.name
                if store_dir.is_dir():
                    self._store(model.name).remove(gone, consolidate=False)  # O(changed), not O(N)
            engine.publish_vectors(engine.served_vectors().changed(remove=gone))
            self._change_indexes(remove=gone, save=self.flush_s <= 0)
            held = engine.held_names()
            for index_row in index_rows:  # indexes this service does not hold (other models) are files only
                if index_row.name not in held:
                    remove_from_index_file(self.workspace, index_row, gone)
            uploads = (self.workspace.root / UPLOADS_DIR).resolve()
            for row in rows.values():
                if Path(row.path).parent == uploads:
                    Path(row.path).unlink(missing_ok=True)
        if copies:
            self.index_catalogued(copies)
        return [rows[i] for i in sorted(rows)]

    def rename_images(self, moves: Mapping[int, tuple[str, str | None]]) -> int:
        """Give catalog images new paths and labels, ``{id: (path, label or None)}``, keeping their ids, stored
        vectors and index entries (a moved file is not embedded again); how many rows changed. InputError
        (nothing written) when a new path is already catalogued."""
        from indexer.core.errors import InputError

        if not moves:
            return 0
        engine = self.engine
        with self._write_lock:
            with self.workspace.catalog(write=True) as catalog:
                taken = catalog.images_by_paths([path for path, _ in moves.values()])
                clash = [path for path, row in taken.items() if moves.get(row.id, ("",))[0] != path]
                if clash:
                    raise InputError(f"cannot move an image to {clash[0]!r}: that path is already catalogued")
                for image_id, (path, label) in moves.items():
                    catalog.update_image(int(image_id), path=path,
                                         label_id=catalog.label_id(label) if label else None)
            engine.publish_rows(engine.rows.renamed(dict(moves)))
        return len(moves)
