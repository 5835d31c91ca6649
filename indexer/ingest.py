"""Ingestion: image files → validated catalog rows.

Every file is fully decoded before it is catalogued. A bad file never stops the run:
it is recorded with status ``error`` and a one-line reason, and the report counts it.
"""

from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from indexer.errors import InputError
from models.errors import ImageError
from models.images import has_image_extension, open_rgb
from storage.catalog import Catalog

LABEL_SOURCES = ("folders", "none")
COMMIT_EVERY = 256


@dataclass(frozen=True)
class ImageItem:
    """A file to catalogue. ``label_id`` is a preferred id for a new label (official codes)."""

    path: Path
    label: str | None = None
    split: str | None = None
    label_id: int | None = None


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

    def summary_line(self) -> str:
        return (
            f"{self.ingested} ingested, {self.duplicates} duplicates, {self.errors} errors, "
            f"{self.already_catalogued} already catalogued ({self.seen} image files seen, "
            f"{self.ignored} non-image files ignored)"
        )


def discover_images(
    directory: str | os.PathLike[str], labels: str = "folders", split: str | None = None
) -> tuple[list[ImageItem], IngestReport]:
    """Walk ``directory`` recursively and list the image files with their labels.

    ``labels`` is ``folders`` (the sub-folder path is the label), ``none``, or a CSV file
    with a header ``filename,label[,split]`` (filenames relative to ``directory``).
    Returns the items and a report holding the walk's problems and ignored files.
    """
    root = Path(directory).expanduser()
    if not root.is_dir():
        raise InputError(f"{directory}: not a directory")
    root = Path(os.path.abspath(root))
    report = IngestReport()
    csv_labels = None
    if labels not in LABEL_SOURCES:
        csv_labels = _read_label_csv(Path(labels))
    items: list[ImageItem] = []
    for path in _walk(root, report):
        if not has_image_extension(path):
            report.ignored += 1
            continue
        relative = path.relative_to(root).as_posix()
        label, item_split = None, split
        if labels == "folders":
            parent = path.parent.relative_to(root).as_posix()
            label = None if parent == "." else parent
        elif csv_labels is not None and relative in csv_labels:
            label, csv_split = csv_labels.pop(relative)
            item_split = csv_split or split
        items.append(ImageItem(path=path, label=label, split=item_split))
    if csv_labels:
        missing = sorted(csv_labels)
        report.problems.append(
            f"{labels}: {len(missing)} listed file(s) not found under {root}, e.g. {missing[0]}"
        )
    return items, report


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
    """
    from tqdm import tqdm

    report = report or IngestReport()
    items = list(items)
    known = catalog.known_paths()
    first_by_hash = catalog.first_image_by_sha256()
    paths_by_id = {image_id: path for path, (image_id, _status) in known.items()}
    bar = tqdm(items, desc="ingest", unit="img", disable=not progress or len(items) < 200)
    for done, item in enumerate(bar, 1):
        report.seen += 1
        path = catalog_path(item.path)
        previous = known.get(path)
        if previous is not None and previous[1] != "error":
            report.already_catalogued += 1
            continue
        fields = _validate(item.path)
        if item.label is not None:
            fields["label_id"] = catalog.label_id(item.label, item.label_id)
        else:
            fields["label_id"] = None
            report.unlabeled += fields["status"] == "ok"
        fields["split"] = item.split
        if fields["status"] == "ok":
            original = first_by_hash.get(fields["sha256"])
            if original is not None:
                report.duplicates += 1
                fields["duplicate_of"] = original
                fields["status"] = "ok" if keep_duplicates else "duplicate"
                kept = "kept" if keep_duplicates else "not stored twice"
                report.problems.append(
                    f"{path}: duplicate of {paths_by_id.get(original, original)} ({kept})"
                )
        if fields["status"] == "error":
            report.errors += 1
            report.problems.append(f"{path}: {fields['error']}")
        if previous is not None:
            catalog.update_image(previous[0], **fields)
            image_id = previous[0]
        else:
            image_id = catalog.add_image(path=path, **fields)
        if fields["status"] == "ok":
            report.ingested += fields.get("duplicate_of") is None or keep_duplicates
            if fields.get("duplicate_of") is None:
                first_by_hash[fields["sha256"]] = image_id
        paths_by_id[image_id] = path
        known[path] = (image_id, fields["status"])
        if done % COMMIT_EVERY == 0:
            catalog.commit()
    catalog.commit()
    return report


def _validate(path: Path) -> dict:
    """Catalog fields for ``path``: status ok with size and hash, or status error with a reason."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return {"status": "error", "error": _os_reason(exc)}
    fields: dict = {"sha256": hashlib.sha256(data).hexdigest(), "size_bytes": len(data)}
    try:
        image = open_rgb(path)
    except ImageError as exc:
        reason = str(exc)
        prefix = f"{path}: "
        fields.update(status="error", error=reason[len(prefix):] if reason.startswith(prefix) else reason)
        return fields
    fields.update(
        status="ok", error=None, width=image.width, height=image.height, format=_format_of(path)
    )
    return fields


def _format_of(path: Path) -> str | None:
    from PIL import Image

    try:
        with Image.open(path) as img:
            return img.format
    except Exception:  # noqa: BLE001 - the file decoded a moment ago; the format is cosmetic
        return None


def _os_reason(exc: OSError) -> str:
    import errno

    if exc.errno == errno.ENOENT:
        return "file not found (or a dangling symlink)"
    if exc.errno == errno.ELOOP:
        return "symlink loop"
    if exc.errno == errno.EACCES:
        return "permission denied"
    return exc.strerror or str(exc)


def catalog_path(path: str | os.PathLike[str]) -> str:
    """The absolute, resolved form of ``path`` the catalog stores and looks up (the link itself when it
    cannot resolve: dangling or looping symlinks)."""
    path = Path(path).expanduser()
    try:
        return str(path.resolve(strict=True))
    except (OSError, RuntimeError):
        return os.path.abspath(path)


def _walk(root: Path, report: IngestReport) -> Iterator[Path]:
    def on_error(exc: OSError) -> None:
        report.problems.append(f"{exc.filename}: cannot list folder ({_os_reason(exc)})")

    seen_folders: set[str] = set()
    for folder, dirnames, filenames in os.walk(root, onerror=on_error, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen_folders:  # a symlinked folder already walked (or a loop): don't walk it twice
            dirnames.clear()
            report.problems.append(f"{folder}: folder already walked as {real} (symlink), skipped")
            continue
        seen_folders.add(real)
        dirnames.sort()
        for name in sorted(filenames):
            yield Path(folder) / name


def _read_label_csv(path: Path) -> dict[str, tuple[str, str | None]]:
    """``filename → (label, split or None)`` from a CSV with a ``filename,label[,split]`` header."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [name.strip() for name in reader.fieldnames or []]
            reader.fieldnames = header
            if header[:2] != ["filename", "label"]:
                raise InputError(
                    f"{path}: expected a header 'filename,label[,split]', found {','.join(header) or 'nothing'}"
                )
            rows: dict[str, tuple[str, str | None]] = {}
            for line, row in enumerate(reader, 2):
                filename, label = (row.get("filename") or "").strip(), (row.get("label") or "").strip()
                if not filename or not label:
                    raise InputError(f"{path}:{line}: empty filename or label")
                rows[Path(filename).as_posix()] = (label, (row.get("split") or "").strip() or None)
            return rows
    except FileNotFoundError:
        raise InputError(
            f"--labels {path}: no such file (expected 'folders', 'none' or a CSV file)"
        ) from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: cannot read label CSV ({exc})") from None
