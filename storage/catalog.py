"""Every query on the catalog lives here, behind :class:`Catalog`.

Rows leave this module as the small frozen dataclasses of :mod:`storage.rows`, never as live ORM
objects, so callers cannot trigger lazy loads or accidental writes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence

from sqlalchemy import Engine, delete, func, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.catalog_fields import FieldQueries
from storage.errors import CatalogError, NotInCatalogError
from storage.rows import (
    ArtifactRow,
    CatalogSummary,
    FileKey,
    ImageKey,
    ImageRow,
    image_row,
    index_row,
    json_safe,
    model_row,
)
from storage.schema import Image, Index, Label, Model, utcnow

__all__ = ["ArtifactRow", "Catalog", "CatalogSummary", "ImageRow"]  # the rows are re-exported for callers

SEQUENCE_RETRIES = 1000


class Catalog(FieldQueries):
    """A unit of work on the catalog database. Use as a context manager."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.session = Session(engine, expire_on_commit=False)
        self._label_ids: dict[str, int] | None = None

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.session.commit()
        else:
            self.session.rollback()
        self.session.close()

    def commit(self) -> None:
        self.session.commit()

    def rollback(self) -> None:
        """Undo the open transaction (and forget label ids it may have created)."""
        self.session.rollback()
        self._label_ids = None

    # ----------------------------------------------------------------- labels
    def label_id(self, name: str, preferred_id: int | None = None) -> int:
        """The id of label ``name``, created on first use (with ``preferred_id`` when free).

        Safe with other processes creating the same labels at once: the insert yields to any row
        that appeared meanwhile (the database's ON CONFLICT DO NOTHING), and the name is read back.
        """
        if self._label_ids is None:
            self._label_ids = dict(self.session.execute(select(Label.name, Label.id)).all())
        if name in self._label_ids:
            return self._label_ids[name]
        label_id = self._find_label(name)
        if label_id is None and preferred_id is not None:
            self._insert_ignoring_conflicts(Label, {"id": preferred_id, "name": name})
            if self.session.bind.dialect.name == "postgresql":  # explicit ids do not advance the sequence
                self.session.execute(text(
                    "SELECT setval(pg_get_serial_sequence('labels', 'id'), "
                    "GREATEST((SELECT max(id) FROM labels), 1))"
                ))
            label_id = self._find_label(name)
        for _attempt in range(SEQUENCE_RETRIES):
            if label_id is not None:
                break
            # the preferred id was taken by another name (or none was given); a sequence that lags
            # behind explicit ids makes the insert collide on the id, so retry with the next value
            self._insert_ignoring_conflicts(Label, {"name": name})
            label_id = self._find_label(name)
        if label_id is None:
            raise CatalogError(f"could not create label {name!r} after {SEQUENCE_RETRIES} attempts")
        self._label_ids[name] = label_id
        return label_id

    def _find_label(self, name: str) -> int | None:
        return self.session.scalar(select(Label.id).where(Label.name == name))

    def _insert_ignoring_conflicts(self, table, values: dict):
        """INSERT ... ON CONFLICT DO NOTHING (SQLite and PostgreSQL); the result's rows are the inserted ids."""
        dialect = self.session.bind.dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        elif dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:
            raise CatalogError(f"the catalog supports SQLite and PostgreSQL, not {dialect!r}")
        statement = insert(table).values(**values).on_conflict_do_nothing().returning(table.id)
        return self.session.execute(statement)

    def label_names(self) -> dict[int, str]:
        return dict(self.session.execute(select(Label.id, Label.name)).all())

    # ----------------------------------------------------------------- images
    def known_paths(self) -> dict[str, tuple[int, str]]:
        """Every catalogued path mapped to ``(id, status)``."""
        rows = self.session.execute(select(Image.path, Image.id, Image.status))
        return {path: (image_id, status) for path, image_id, status in rows}

    def first_image_by_sha256(self) -> dict[str, int]:
        """Content hash → id of the first usable image with that content."""
        rows = self.session.execute(
            select(Image.sha256, func.min(Image.id))
            .where(Image.status == "ok", Image.sha256.is_not(None))
            .group_by(Image.sha256)
        )
        return dict(rows.all())

    def image_by_sha256(self, sha256: str) -> ImageRow | None:
        """The first usable (status ok) image with this content hash, or None."""
        image = self.session.scalars(
            select(Image).where(Image.sha256 == sha256, Image.status == "ok").order_by(Image.id).limit(1)
        ).first()
        return image_row(image) if image is not None else None

    def add_image(self, **fields) -> int:
        image = Image(**fields)
        self.session.add(image)
        self.session.flush()
        return image.id

    def add_image_if_new(self, path: str, **fields) -> int | None:
        """Insert the image at ``path`` and return its id, or None when that path is already catalogued
        (by this or another process: the database's unique index decides, no lock is taken)."""
        now = utcnow()
        values = {"created_at": now, "updated_at": now, **fields, "path": path}
        return self._insert_ignoring_conflicts(Image, values).scalar()

    def add_images(self, rows: Sequence[dict]) -> list[int]:
        """Insert many images in the open transaction (one statement per few hundred rows); their ids, in the
        order of ``rows``. Every row needs ``path`` and ``status``; a path already catalogued fails the whole
        statement (the unique index), so the caller's transaction rolls back."""
        if not rows:
            return []
        now = utcnow()
        values = [{"created_at": now, "updated_at": now, **row} for row in rows]
        statement = insert(Image).returning(Image.id, sort_by_parameter_order=True)
        try:
            return [int(image_id) for image_id in self.session.scalars(statement, values)]
        except IntegrityError:
            raise CatalogError(f"one of {len(rows)} new images' paths is already in the catalog "
                               f"(first: {rows[0]['path']!r})") from None

    def path_status(self, paths: Iterable[str]) -> dict[str, tuple[int, str]]:
        """``path -> (id, status)`` for those of ``paths`` in the catalog (as committed now)."""
        wanted = list(paths)
        found: dict[str, tuple[int, str]] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            rows = self.session.execute(select(Image.path, Image.id, Image.status).where(Image.path.in_(chunk)))
            found.update({path: (image_id, status) for path, image_id, status in rows})
        return found

    def first_images_with_hashes(self, hashes: Iterable[str]) -> dict[str, int]:
        """Content hash → id of the first usable image with that content, for the given hashes."""
        wanted = sorted(set(hashes))
        found: dict[str, int] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            rows = self.session.execute(
                select(Image.sha256, func.min(Image.id))
                .where(Image.status == "ok", Image.sha256.in_(chunk))
                .group_by(Image.sha256)
            )
            found.update(dict(rows.all()))
        return found

    def update_image(self, image_id: int, **fields) -> None:
        image = self.session.get(Image, image_id)
        if image is None:
            raise NotInCatalogError(f"no image with id {image_id}")
        for key, value in fields.items():
            setattr(image, key, value)
        self.session.flush()

    def images(
        self, *, status: str | None = "ok", splits: Sequence[str] | None = None
    ) -> list[ImageRow]:
        """Images ordered by id, filtered by status and split (None = any)."""
        query = select(Image).order_by(Image.id)
        if status is not None:
            query = query.where(Image.status == status)
        if splits is not None:
            query = query.where(Image.split.in_(list(splits)))
        return [image_row(image) for image in self.session.scalars(query).unique()]

    def image_keys(self, *, status: str = "ok") -> list[ImageKey]:
        """(id, path, label, format, sha256) of every image with ``status``, in id order: plain tuples from one
        query, no ORM objects (:meth:`images` builds one per row: 85 s against seconds at a million)."""
        query = (select(Image.id, Image.path, Label.name, Image.format, Image.sha256)
                 .outerjoin(Label, Image.label_id == Label.id).where(Image.status == status).order_by(Image.id))
        return [ImageKey(*row) for row in self.session.execute(query)]

    def image_key_batches(self, *, status: str = "ok", size: int = 50_000) -> Iterator[list[ImageKey]]:
        """:meth:`image_keys` in lists of at most ``size`` rows, in id order (keyset pages: ``id > last``), so
        a caller that keeps arrays, not tuples, never holds a million rows of Python objects at once."""
        if size < 1:
            raise CatalogError(f"batch size must be at least 1; got {size}")
        last = 0
        while True:
            query = (select(Image.id, Image.path, Label.name, Image.format, Image.sha256)
                     .outerjoin(Label, Image.label_id == Label.id)
                     .where(Image.status == status, Image.id > last).order_by(Image.id).limit(size))
            batch = [ImageKey(*row) for row in self.session.execute(query)]
            if not batch:
                return
            yield batch
            last = batch[-1].id

    def files_under(self, folder: str) -> list[FileKey]:
        """Every image row (any status) whose path lies under ``folder`` (an absolute path, no trailing
        separator), in id order: what a folder watcher compares with the files on disk."""
        prefix = folder.rstrip(os.sep) + os.sep
        query = (select(Image.id, Image.path, Image.status, Image.sha256, Image.size_bytes, Label.name,
                        Image.updated_at)
                 .outerjoin(Label, Image.label_id == Label.id)
                 .where(Image.path.startswith(prefix, autoescape=True)).order_by(Image.id))
        return [FileKey(image_id, path, status, sha256, size, label, _epoch(updated))
                for image_id, path, status, sha256, size, label, updated in self.session.execute(query)]

    def count_images(self, *, status: str | None = "ok", format: str | None = None) -> int:  # noqa: A002
        """How many images have ``status`` and ``format`` (None = any)."""
        query = select(func.count()).select_from(Image)
        if status is not None:
            query = query.where(Image.status == status)
        if format is not None:
            query = query.where(Image.format == format)
        return int(self.session.scalar(query) or 0)

    def images_by_ids(self, ids: Iterable[int]) -> dict[int, ImageRow]:
        wanted = [int(i) for i in ids]
        found: dict[int, ImageRow] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            for image in self.session.scalars(select(Image).where(Image.id.in_(chunk))).unique():
                found[image.id] = image_row(image)
        return found

    def images_by_paths(self, paths: Iterable[str]) -> dict[str, ImageRow]:
        wanted = list(paths)
        found: dict[str, ImageRow] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            for image in self.session.scalars(select(Image).where(Image.path.in_(chunk))).unique():
                found[image.path] = image_row(image)
        return found

    def copies_of(self, ids: Iterable[int]) -> list[int]:
        """Ids of the images recorded as byte-identical copies (``duplicate_of``) of ``ids``, ascending: the
        ones :meth:`remove_images` promotes when their original goes."""
        wanted = [int(i) for i in ids]
        found: list[int] = []
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            found += self.session.scalars(select(Image.id).where(Image.duplicate_of.in_(chunk)))
        return sorted(found)

    def remove_images(self, ids: Iterable[int]) -> int:
        """Delete images by id. Copies of a removed image take its place: the first copy becomes the
        usable image (status ok, unless it already was) and the other copies point at it."""
        wanted = sorted({int(i) for i in ids})
        removed = 0
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            copies = self.session.scalars(
                select(Image).where(Image.duplicate_of.in_(chunk), Image.id.not_in(chunk)).order_by(Image.id)
            )
            by_original: dict[int, list[Image]] = {}
            for copy in copies:
                by_original.setdefault(copy.duplicate_of, []).append(copy)
            for group in by_original.values():
                heir = next((c for c in group if c.status == "ok"), group[0])
                heir.status, heir.duplicate_of = "ok", None
                for other in group:
                    if other is not heir:
                        other.duplicate_of = heir.id
            self.session.flush()
            result = self.session.execute(delete(Image).where(Image.id.in_(chunk)))
            removed += result.rowcount or 0
        self.session.flush()
        return removed

    # ----------------------------------------------------------------- summary
    def summary(self) -> CatalogSummary:
        by_status = dict(
            self.session.execute(select(Image.status, func.count()).group_by(Image.status)).all()
        )
        splits = self._count_by_split("ok")
        errors_by_split = self._count_by_split("error")
        duplicates = self.session.scalar(
            select(func.count()).select_from(Image).where(Image.duplicate_of.is_not(None))
        )
        return CatalogSummary(
            images_total=sum(by_status.values()),
            images_ok=by_status.get("ok", 0),
            images_error=by_status.get("error", 0),
            duplicates=duplicates or 0,
            labels=self.session.scalar(select(func.count()).select_from(Label)) or 0,
            splits=splits,
            errors_by_split=errors_by_split,
            models=[row.name for row in self.models()],
            indexes=[row.name for row in self.indexes()],
        )

    def _count_by_split(self, status: str) -> dict[str, int]:
        rows = self.session.execute(
            select(Image.split, func.count()).where(Image.status == status).group_by(Image.split)
        )
        return {(split if split is not None else "(none)"): count for split, count in rows}

    # ----------------------------------------------------------------- models
    def register_model(
        self, *, name: str, kind: str, params: dict, metrics: dict, path: str, dim: int
    ) -> ArtifactRow:
        """Register (or replace) the model called ``name``."""
        model = self.session.scalar(select(Model).where(Model.name == name)) or Model(name=name)
        model.kind, model.path, model.dim = kind, path, dim
        model.params, model.metrics = json_safe(params), json_safe(metrics)
        model.created_at = utcnow()  # a retrained model is a new model
        self.session.add(model)
        self.session.flush()
        return model_row(model)

    def model(self, name: str) -> ArtifactRow:
        model = self.session.scalar(select(Model).where(Model.name == name))
        if model is None:
            known = ", ".join(row.name for row in self.models()) or "none"
            raise NotInCatalogError(f"no model named {name!r} in the catalog (models: {known})")
        return model_row(model)

    def models(self) -> list[ArtifactRow]:
        return [model_row(m) for m in self.session.scalars(select(Model).order_by(Model.created_at))]

    # ----------------------------------------------------------------- indexes
    def register_index(
        self,
        *,
        name: str,
        kind: str,
        params: dict,
        path: str,
        dim: int,
        ntotal: int,
        model_name: str | None,
        replace: bool = True,
    ) -> ArtifactRow:
        """Register (or, with ``replace``, rebuild) the index called ``name``; ``replace=False``
        updates it in place and keeps its creation time."""
        model_id = None
        if model_name is not None:
            model_id = self.session.scalar(select(Model.id).where(Model.name == model_name))
        index = self.session.scalar(select(Index).where(Index.name == name)) or Index(name=name)
        index.kind, index.params, index.path, index.dim = kind, json_safe(params), path, dim
        index.ntotal, index.model_id = ntotal, model_id
        if index.id is None or replace:
            index.created_at = utcnow()  # a rebuilt index is a new index
        self.session.add(index)
        self.session.flush()
        self.session.refresh(index)
        return index_row(index)

    def index(self, name: str) -> ArtifactRow:
        index = self.session.scalar(select(Index).where(Index.name == name))
        if index is None:
            known = ", ".join(row.name for row in self.indexes()) or "none"
            raise NotInCatalogError(f"no index named {name!r} in the catalog (indexes: {known})")
        return index_row(index)

    def indexes(self) -> list[ArtifactRow]:
        rows = self.session.scalars(select(Index).order_by(Index.created_at)).unique()
        return [index_row(i) for i in rows]


def _epoch(moment) -> float:
    """Unix seconds of a stored time (SQLite hands back naive datetimes, which are UTC)."""
    from datetime import timezone

    if moment is None:
        return 0.0
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()
