"""Ingestion: image files → validated catalog rows.

Every file is fully decoded before it is catalogued. A bad file never stops the run:
it is recorded with status ``error`` and a one-line reason, and the report counts it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from indexer.api.registry.fields import tag_from_csv
from indexer.api.workspace import Workspace
from indexer.core.errors import InputError
from indexer.datasets.folders import LABEL_SOURCES, ImageItem, catalog_path, discover_images, os_reason
from models.errors import ImageError
from models.images import decode_rgb
from storage.catalog import Catalog

COMMIT_EVERY = 256
VALIDATION_SIDE = 64  # ingest proves a file decodes; JPEGs do it at up to 1/8 of their size
WRITE_ATTEMPTS = 5  # a chunk whose transaction lost a deadlock to another writer is run again


@dataclass
class IngestReport:
    seen: int = 0
    ingested: int = 0
    duplicates: int = 0
    errors: int = 0
    already_catalogued: int = 0
    unlabeled: int = 0
    ignored: int = 0
    problems: list[str] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)  # user fields a labels CSV declared (name -> type)

    def merge(self, other: IngestReport) -> None:
        """Add another report's counts and problems to this one."""
        for name in ("seen", "ingested", "duplicates", "errors", "already_catalogued", "unlabeled", "ignored"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.problems.extend(other.problems)

    def summary_line(self) -> str:
        return (
            f"{self.ingested} ingested, {self.duplicates} duplicates, {self.errors} errors, "
            f"{self.already_catalogued} already catalogued ({self.seen} image files seen, "
            f"{self.ignored} non-image files ignored)"
            + (f"; fields: {', '.join(f'{name} ({kind})' for name, kind in self.fields.items())}" if self.fields else "")
        )


def ingest_items(
    catalog: Catalog,
    items: Iterable[ImageItem],
    *,
    keep_duplicates: bool = False,
    report: IngestReport | None = None,
    progress: bool = True,
) -> IngestReport:
    """Validate and catalogue ``items``; idempotent (known paths are skipped, errors retried).

    A file whose content equals an ok image's is a duplicate: stored with status
    ``duplicate`` (not a second usable image), or, with ``keep_duplicates``, as an ok
    image that records ``duplicate_of`` (official data sets whose copies are real samples).

    Any number of processes may ingest into one catalog at once, over the same files or not:
    files are read and decoded outside any write, then each chunk of :data:`COMMIT_EVERY` is
    written in one short transaction whose inserts yield to rows another process committed
    first (the path's unique index decides, no lock is held while decoding).
    """
    from tqdm import tqdm

    report = report or IngestReport()
    items = list(items)
    bar = tqdm(total=len(items), desc="ingest", unit="img", disable=not progress or len(items) < 200)
    for start in range(0, len(items), COMMIT_EVERY):
        chunk = items[start : start + COMMIT_EVERY]
        report.merge(_ingest_chunk_retrying(catalog, chunk, keep_duplicates))
        bar.update(len(chunk))
    bar.close()
    return report


def _ingest_chunk_retrying(catalog: Catalog, chunk: list[ImageItem], keep_duplicates: bool) -> IngestReport:
    """One chunk in one transaction, run again (up to :data:`WRITE_ATTEMPTS`) when it lost a deadlock."""
    from storage.database import is_transient

    attempt = 1
    while True:
        chunk_report = IngestReport()
        try:
            _ingest_chunk(catalog, chunk, keep_duplicates, chunk_report)
            catalog.commit()
            return chunk_report
        except Exception as exc:
            catalog.rollback()
            if attempt == WRITE_ATTEMPTS or not is_transient(exc):
                raise
            attempt += 1


def _ingest_chunk(catalog: Catalog, chunk: list[ImageItem], keep_duplicates: bool, report: IngestReport) -> None:
    """Validate the chunk's new files (no write yet), then catalogue them in the open transaction."""
    paths = [catalog_path(item.path) for item in chunk]
    known = catalog.path_status(paths)
    validated: list[tuple[ImageItem, str, tuple[int, str] | None, dict]] = []
    for item, path in zip(chunk, paths):
        report.seen += 1
        previous = known.get(path)
        if previous is not None and previous[1] != "error":
            report.already_catalogued += 1
            continue
        validated.append((item, path, previous, _validate(item.path)))
    hashes = [fields["sha256"] for *_, fields in validated if fields["status"] == "ok"]
    first_by_hash = catalog.first_images_with_hashes(hashes)
    paths_by_id = {image_id: path for path, (image_id, _status) in known.items()}
    originals_elsewhere = set(first_by_hash.values()) - set(paths_by_id)
    paths_by_id.update({image_id: row.path for image_id, row in catalog.images_by_ids(originals_elsewhere).items()})
    for item, path, previous, fields in validated:
        fields["label_id"] = catalog.label_id(item.label, item.label_id) if item.label is not None else None
        fields["split"] = item.split
        if fields["status"] == "ok":
            original = first_by_hash.get(fields["sha256"])
            if original is not None:
                fields["duplicate_of"] = original
                fields["status"] = "ok" if keep_duplicates else "duplicate"
        if previous is not None:
            catalog.update_image(previous[0], **fields)
            image_id = previous[0]
        else:
            image_id = catalog.add_image_if_new(path, **fields)
            if image_id is None:  # another process catalogued this file a moment ago
                report.already_catalogued += 1
                continue
        _count(report, path, fields, keep_duplicates, paths_by_id)
        if fields["status"] == "ok" and fields.get("duplicate_of") is None:
            first_by_hash[fields["sha256"]] = image_id
        paths_by_id[image_id] = path


def _count(report: IngestReport, path: str, fields: dict, keep_duplicates: bool, paths_by_id: dict) -> None:
    """Add one catalogued file to the report."""
    original = fields.get("duplicate_of")
    if original is not None:
        report.duplicates += 1
        kept = "kept" if keep_duplicates else "not stored twice"
        report.problems.append(f"{path}: duplicate of {paths_by_id.get(original, original)} ({kept})")
    if fields["status"] == "error":
        report.errors += 1
        report.problems.append(f"{path}: {fields['error']}")
    if fields["status"] == "ok":
        report.ingested += original is None or keep_duplicates
        report.unlabeled += fields["label_id"] is None


def _validate(path: Path) -> dict:
    """Catalog fields for ``path``: status ok with size and hash, or status error with a reason."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return {"status": "error", "error": os_reason(exc)}
    fields: dict = {"sha256": hashlib.sha256(data).hexdigest(), "size_bytes": len(data)}
    try:  # the bytes just hashed, decoded whole (a truncated file is caught) at a reduced size where possible
        image = decode_rgb(data, str(path), min_side=VALIDATION_SIDE)
    except ImageError as exc:
        reason = str(exc)
        prefix = f"{path}: "
        fields.update(status="error", error=reason[len(prefix):] if reason.startswith(prefix) else reason)
        return fields
    width, height = image.info["original_size"]
    fields.update(status="ok", error=None, width=width, height=height, format=image.info.get("format"))
    return fields


def ingest_directory(
    workspace: Workspace,
    directory: str | os.PathLike[str],
    *,
    labels: str = "folders",
    split: str | None = None,
    progress: bool = True,
    field_types: Mapping[str, str] | None = None,
) -> IngestReport:
    """Catalogue every image under ``directory`` (see :func:`indexer.datasets.folders.discover_images`).

    With ``labels`` a CSV file, its columns after ``filename,label[,split]`` become user fields of the images
    (:func:`indexer.api.registry.fields.tag_from_csv`: typed by inference, or by ``field_types``)."""
    found = discover_images(directory, labels=labels, split=split)
    report = IngestReport(ignored=found.ignored, problems=list(found.problems))
    with workspace.catalog(write=True) as catalog:
        report = ingest_items(catalog, found.items, report=report, progress=progress)
    if labels not in LABEL_SOURCES:
        tagged = tag_from_csv(workspace, labels, types=field_types, root=directory, exclude=("label", "split"))
        report.fields = dict(tagged.declared) if tagged.declared or tagged.tagged else {}
    return report


def ingest_flowers102(
    workspace: Workspace,
    root: str | os.PathLike[str] | None = None,
    *,
    classes: int | None = None,
    progress: bool = True,
) -> IngestReport:
    """Obtain Oxford Flowers-102 (local copy or download) and catalogue all 8,189 images.

    ``classes``: only the images of labels 1..``classes`` (official ids), with their official
    split, for a small subset (8 classes: 431 images).
    """
    from indexer.datasets.flowers102 import flowers102_items

    if classes is not None and not 1 <= classes <= 102:
        raise InputError(f"classes must be between 1 and 102; got {classes}")
    items = flowers102_items(root, workspace.datasets_dir)
    if classes is not None:
        items = [item for item in items if item.label_id is not None and item.label_id <= classes]
    with workspace.catalog(write=True) as catalog:
        return ingest_items(catalog, items, keep_duplicates=True, progress=progress)
