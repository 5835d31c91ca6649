"""Uploaded image files: validated in memory, then stored durably under ``WORKSPACE/uploads/``.

A file is named by its content (``<sha256>.<ext>``), written to a temporary name, fsynced and renamed, so a
crash leaves either the whole file or none (a stray hidden ``.tmp`` file at worst).
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from indexer.core.errors import InputError
from indexer.core.files import write_bytes
from models.errors import ImageError
from models.images import decode_rgb

UPLOADS_DIR = "uploads"
EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "GIF": ".gif", "BMP": ".bmp", "WEBP": ".webp", "TIFF": ".tif",
              "HEIF": ".heic", "AVIF": ".avif"}


VALIDATION_SIDE = 64  # as ingest: the whole file is decoded, at up to 1/8 of its size where the format allows


@dataclass(frozen=True)
class Upload:
    """An upload that decoded whole: its bytes, content hash, format, the original's size and the RGB picture
    the model sees (a ``PIL.Image``, decoded by the model's own loader)."""

    name: str
    data: bytes
    sha256: str
    format: str | None
    picture: object
    width: int
    height: int

    @property
    def suffix(self) -> str:
        return EXTENSIONS.get(self.format or "", ".img")


def read_upload(
    data: bytes, name: str, *, max_pixels: int | None = None, load: Callable[[bytes, str], Any] | None = None
) -> Upload:
    """Decode ``data`` whole (as ingestion does), then as ``load`` decodes it for the model (the embedder's
    ``load_bytes``: the same pixels the catalogue path sees); InputError with a one-line reason when it is
    not an image."""
    name = Path(name or "upload").name or "upload"
    if not data:
        raise InputError(f"{name}: empty upload (0 bytes)")
    try:
        whole = decode_rgb(data, name, max_pixels, min_side=VALIDATION_SIDE)
        picture = load(data, name) if load is not None else whole
    except ImageError as exc:
        raise InputError(str(exc)) from None
    width, height = whole.info["original_size"]
    return Upload(name=name, data=data, sha256=hashlib.sha256(data).hexdigest(), format=whole.info.get("format"),
                  picture=picture, width=width, height=height)


def decode_query(data: bytes, name: str, load: Callable[[bytes, str], Any]) -> tuple[str, Any]:
    """(name, picture) of a query upload, decoded once by ``load`` (the embedder's own loader, with its pixel
    guards): a query is not stored, so it needs no whole-file validation, hash or original size. InputError
    with a one-line reason when it is not an image."""
    name = Path(name or "upload").name or "upload"
    if not data:
        raise InputError(f"{name}: empty upload (0 bytes)")
    try:
        return name, load(data, name)
    except ImageError as exc:
        raise InputError(str(exc)) from None


def store_upload(uploads_dir: Path, upload: Upload) -> Path:
    """Write the upload to ``uploads_dir/<sha256><suffix>`` durably (temp file, fsync, rename, fsync dir)."""
    uploads_dir.mkdir(parents=True, exist_ok=True)
    target = uploads_dir / f"{upload.sha256}{upload.suffix}"
    if target.is_file() and target.stat().st_size == len(upload.data):
        return target  # content-named: the same bytes are already there
    return write_bytes(target, upload.data)


def content_type(path: str | os.PathLike[str]) -> str:
    """The MIME type to serve a catalogued image file with."""
    guessed, _ = mimetypes.guess_type(str(path))
    return guessed or "application/octet-stream"
