"""The rows the catalog hands out: small frozen dataclasses, built from ORM objects inside a session."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import NamedTuple

from storage.schema import Image, Index, Model


@dataclass(frozen=True)
class ImageRow:
    id: int
    path: str
    label_id: int | None
    label: str | None
    split: str | None
    status: str
    error: str | None = None
    sha256: str | None = None
    duplicate_of: int | None = None
    width: int | None = None  # the file's own size (EXIF orientation applied), not a reduced decode's
    height: int | None = None
    format: str | None = None


class ImageKey(NamedTuple):
    """What a search needs of an image, read without building ORM objects (a million in seconds)."""

    id: int
    path: str
    label: str | None
    format: str | None
    sha256: str | None


class FileKey(NamedTuple):
    """What a folder watcher compares with the file on disk: the row's path, status, content, size, label and
    when the row was last written (Unix seconds, UTC)."""

    id: int
    path: str
    status: str
    sha256: str | None
    size_bytes: int | None
    label: str | None
    updated_at: float


@dataclass(frozen=True)
class ArtifactRow:
    """A registered model or index. ``path`` is relative to the workspace."""

    id: int
    name: str
    kind: str
    params: dict
    path: str
    dim: int
    created_at: datetime
    metrics: dict = field(default_factory=dict)
    ntotal: int | None = None
    model_name: str | None = None


@dataclass(frozen=True)
class CatalogSummary:
    images_total: int
    images_ok: int
    images_error: int
    duplicates: int
    labels: int
    splits: dict[str, int]
    errors_by_split: dict[str, int]
    models: list[str]
    indexes: list[str]


def json_safe(value):
    """``value`` with NaN and infinities replaced by None: PostgreSQL's JSON (like the standard) has no NaN,
    and one catalog should read back the same from every database."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def image_row(image: Image) -> ImageRow:
    return ImageRow(
        id=image.id,
        path=image.path,
        label_id=image.label_id,
        label=image.label.name if image.label is not None else None,
        split=image.split,
        status=image.status,
        error=image.error,
        sha256=image.sha256,
        duplicate_of=image.duplicate_of,
        width=image.width,
        height=image.height,
        format=image.format,
    )


def aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes for timezone-aware columns; they were written in UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def model_row(model: Model) -> ArtifactRow:
    return ArtifactRow(
        id=model.id,
        name=model.name,
        kind=model.kind,
        params=dict(model.params or {}),
        path=model.path,
        dim=model.dim,
        created_at=aware(model.created_at),
        metrics=dict(model.metrics or {}),
    )


def index_row(index: Index) -> ArtifactRow:
    return ArtifactRow(
        id=index.id,
        name=index.name,
        kind=index.kind,
        params=dict(index.params or {}),
        path=index.path,
        dim=index.dim,
        created_at=aware(index.created_at),
        ntotal=index.ntotal,
        model_name=index.model.name if index.model is not None else None,
    )
