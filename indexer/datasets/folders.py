"""Image files in a folder tree, with labels from sub-folder names or a CSV file.

Discovery only lists files; the API decodes and catalogues them.
"""

from __future__ import annotations

import csv
import errno
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from indexer.core.errors import InputError

LABEL_SOURCES = ("folders", "none")
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".heic", ".heif", ".avif"}
)


@dataclass(frozen=True)
class ImageItem:
    """A file to catalogue. ``label_id`` is a preferred id for a new label (official codes)."""

    path: Path
    label: str | None = None
    split: str | None = None
    label_id: int | None = None


@dataclass
class Discovery:
    """What a walk found: the image files, the non-image files passed over, and one line per problem."""

    items: list[ImageItem] = field(default_factory=list)
    ignored: int = 0
    problems: list[str] = field(default_factory=list)


def has_image_extension(path: str | os.PathLike[str]) -> bool:
    """True when the file name ends in one of :data:`IMAGE_EXTENSIONS` (any case)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def discover_images(directory: str | os.PathLike[str], labels: str = "folders", split: str | None = None) -> Discovery:
    """Walk ``directory`` recursively and list the image files with their labels.

    ``labels`` is ``folders`` (the sub-folder path is the label), ``none``, or a CSV file
    with a header ``filename,label[,split]`` (filenames relative to ``directory``).
    """
    root = Path(directory).expanduser()
    if not root.is_dir():
        raise InputError(f"{directory}: not a directory")
    root = Path(os.path.abspath(root))
    found = Discovery()
    csv_labels = None
    if labels not in LABEL_SOURCES:
        csv_labels = _read_label_csv(Path(labels))
    for path in _walk(root, found.problems):
        if not has_image_extension(path):
            found.ignored += 1
            continue
        relative = path.relative_to(root).as_posix()
        label, item_split = None, split
        if labels == "folders":
            parent = path.parent.relative_to(root).as_posix()
            label = None if parent == "." else parent
        elif csv_labels is not None and relative in csv_labels:
            label, csv_split = csv_labels.pop(relative)
            item_split = csv_split or split
        found.items.append(ImageItem(path=path, label=label, split=item_split))
    if csv_labels:
        missing = sorted(csv_labels)
        found.problems.append(f"{labels}: {len(missing)} listed file(s) not found under {root}, e.g. {missing[0]}")
    return found


def catalog_path(path: str | os.PathLike[str]) -> str:
    """The absolute, resolved form of ``path`` the catalog stores and looks up (the link itself when it
    cannot resolve: dangling or looping symlinks)."""
    path = Path(path).expanduser()
    try:
        return str(path.resolve(strict=True))
    except (OSError, RuntimeError):
        return os.path.abspath(path)


def os_reason(exc: OSError) -> str:
    """A short reason for a file-system error: missing, symlink loop, permission denied, …"""
    if exc.errno == errno.ENOENT:
        return "file not found (or a dangling symlink)"
    if exc.errno == errno.ELOOP:
        return "symlink loop"
    if exc.errno == errno.EACCES:
        return "permission denied"
    return exc.strerror or str(exc)


def _walk(root: Path, problems: list[str]) -> Iterator[Path]:
    def on_error(exc: OSError) -> None:
        problems.append(f"{exc.filename}: cannot list folder ({os_reason(exc)})")

    seen_folders: set[str] = set()
    for folder, dirnames, filenames in os.walk(root, onerror=on_error, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen_folders:  # a symlinked folder already walked (or a loop): don't walk it twice
            dirnames.clear()
            problems.append(f"{folder}: folder already walked as {real} (symlink), skipped")
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
