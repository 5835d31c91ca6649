"""One batch of settled paths applied through the live catalog's batch writes.

In order: files whose content is unchanged are left alone; catalog rows whose file vanished or changed are
removed, except that a vanished row whose bytes (SHA-256) reappear at a new path is moved there (the row keeps
its id, its vector and its index entries: nothing is embedded again); the new and changed files are then
catalogued by ingest (:func:`indexer.api.pipeline.ingest.ingest_items`: decoded whole, refused with a recorded
reason, byte-identical copies recorded as duplicates; a changed file's new row keeps its old row's user fields)
and the new ok images embedded in one batch and added to every held index with one change
(:meth:`LiveCatalog.index_catalogued`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from indexer.api.pipeline.ingest import ingest_items
from indexer.api.search.live import LiveCatalog
from indexer.api.watch.labels import Labeller
from indexer.core.files import file_sha256
from indexer.datasets.folders import ImageItem, catalog_path
from storage.catalog import ImageRow

MOVABLE = ("ok", "duplicate")  # rows a move keeps (an error row is read again instead)


@dataclass
class BatchOutcome:
    """Counts of one batch; ``problems``: one line per refused file or failed embedding."""

    added: int = 0
    changed: int = 0
    removed: int = 0
    moved: int = 0
    duplicates: int = 0
    refused: int = 0
    unchanged: int = 0
    embedded: int = 0
    problems: list[str] = field(default_factory=list)


def _readable_sha256(path: str) -> str | None:
    """Hex SHA-256 of the file's bytes, or None when it cannot be read (gone or unreadable meanwhile)."""
    try:
        return file_sha256(path)
    except OSError:
        return None


def apply_batch(live: LiveCatalog, present: Sequence[str], gone: Sequence[str], labels: Labeller) -> BatchOutcome:
    """Make the catalog, the store and the held indexes agree with ``present`` files and ``gone`` paths."""
    outcome = BatchOutcome()
    hashes = {}
    for path in sorted({catalog_path(p) for p in present}):
        digest = _readable_sha256(path)
        if digest is not None:
            hashes[path] = digest
    gone_paths = sorted({catalog_path(p) for p in gone} - set(hashes))
    with live.workspace.catalog() as catalog:
        rows = catalog.images_by_paths([*hashes, *gone_paths])
        stale = _stale_originals(catalog, [h for p, h in hashes.items() if _is_new_content(rows.get(p), h)])
        kept_fields = catalog.image_fields([row.id for path, row in rows.items() if path in hashes])
    to_read = [path for path, digest in hashes.items() if _is_new_content(rows.get(path), digest)]
    outcome.unchanged = len(hashes) - len(to_read)
    vanished = {path: rows[path] for path in gone_paths if path in rows and not os.path.isfile(path)}
    by_hash: dict[str, ImageRow] = {}
    for row in [*stale, *vanished.values()]:
        if row.status in MOVABLE and row.sha256:
            by_hash.setdefault(row.sha256, row)
    replaced = [rows[path] for path in to_read if path in rows]  # changed files: their old rows go
    moves: dict[int, tuple[str, str | None]] = {}
    for path in to_read:
        row = by_hash.pop(hashes[path], None)
        if row is not None:
            moves[row.id] = (path, labels.moved_label(path, row.label))
    live.delete_images([row.id for row in [*vanished.values(), *replaced] if row.id not in moves])
    outcome.removed = len([row for row in vanished.values() if row.id not in moves])
    changed_paths = {row.path for row in replaced if row.id not in moves}
    outcome.moved = live.rename_images(moves)
    moved_to = {path for path, _ in moves.values()}
    items = [ImageItem(path=Path(path), label=labels.label(path)) for path in to_read if path not in moved_to]
    if items:
        with live.workspace.catalog(write=True) as catalog:
            report = ingest_items(catalog, items, progress=False)
            status = catalog.path_status([str(item.path) for item in items])
            for row in replaced:  # a changed file's new row keeps the user fields its old row had
                image_id, _state = status.get(row.path, (None, None))
                if image_id is not None and kept_fields.get(row.id):
                    catalog.set_fields(image_id, kept_fields[row.id])
        for path, (_image_id, state) in status.items():
            if state == "ok":
                outcome.changed += path in changed_paths
                outcome.added += path not in changed_paths
        outcome.duplicates, outcome.refused = report.duplicates, report.errors
        outcome.problems += report.problems
        indexed = live.index_catalogued([image_id for image_id, state in status.values() if state == "ok"])
        outcome.embedded = len(indexed.embedded)
        outcome.problems += [f"image {image_id} not embedded: {reason}" for image_id, reason in indexed.failed.items()]
    return outcome


def _is_new_content(row: ImageRow | None, digest: str) -> bool:
    """A file to catalogue again: no row, an error row, or a row with other bytes."""
    return row is None or row.status == "error" or row.sha256 != digest


def _stale_originals(catalog, hashes: list[str]) -> list[ImageRow]:
    """Ok rows with one of ``hashes`` whose file no longer exists (moved while nobody watched, or in a batch
    before this one): a new file with those bytes takes their place."""
    if not hashes:
        return []
    first = catalog.first_images_with_hashes(hashes)
    rows = catalog.images_by_ids(first.values())
    return [row for row in rows.values() if not os.path.isfile(row.path)]
