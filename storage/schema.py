"""The catalog's SQLAlchemy 2.x ORM schema.

``images.id`` is also the FAISS id of the image in every index, so it is an explicit
integer primary key that is never reused (SQLite AUTOINCREMENT).
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import JSON, CheckConstraint, DateTime, Float, ForeignKey, Integer, String, Text
from sqlalchemy import Index as TableIndex
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

IMAGE_STATUSES = ("ok", "error", "duplicate")
FIELD_TYPES = ("text", "number", "date")


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class Label(Base):
    __tablename__ = "labels"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)


class Image(Base):
    """One file found by ingestion: a usable image (``ok``), a bad file (``error``,
    with the reason), or a byte-identical copy of another image (``duplicate``)."""

    __tablename__ = "images"
    __table_args__ = (
        CheckConstraint(f"status IN ({', '.join(repr(s) for s in IMAGE_STATUSES)})", name="ck_images_status"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(Text, unique=True, nullable=False)
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int | None] = mapped_column(Integer)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    format: Mapped[str | None] = mapped_column(String(16))
    label_id: Mapped[int | None] = mapped_column(ForeignKey("labels.id"), index=True)
    split: Mapped[str | None] = mapped_column(String(32), index=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    error: Mapped[str | None] = mapped_column(Text)
    duplicate_of: Mapped[int | None] = mapped_column(ForeignKey("images.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow, nullable=False
    )

    label: Mapped[Label | None] = relationship(lazy="joined")


class Model(Base):
    """A trained embedding network; ``path`` is relative to the workspace."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    kind: Mapped[str] = mapped_column(String(64), nullable=False)
    params: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    metrics: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    path: Mapped[str] = mapped_column(Text, nullable=False)
    dim: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)


class Index(Base):
    """A FAISS index built from one model's embeddings; ``path`` is relative to the workspace."""

    __tablename__ = "indexes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    kind: Mapped[str] = mapped_column(String(64), nullable=False)
    params: Mapped[dict] = mapped_column(JSON, nullable=False, default=dict)
    path: Mapped[str] = mapped_column(Text, nullable=False)
    dim: Mapped[int] = mapped_column(Integer, nullable=False)
    ntotal: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)

    model: Mapped[Model | None] = relationship(lazy="joined")


class Field(Base):
    """A user field's declared type: text, number or date (one per name, for every image)."""

    __tablename__ = "fields"
    __table_args__ = (CheckConstraint(f"type IN ({', '.join(repr(t) for t in FIELD_TYPES)})", name="ck_fields_type"),)

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    type: Mapped[str] = mapped_column(String(16), nullable=False)


class ImageField(Base):
    """One image's value of one user field, in the column of the field's type."""

    __tablename__ = "image_fields"
    __table_args__ = (
        TableIndex("ix_image_fields_text", "name", "text_value"),
        TableIndex("ix_image_fields_number", "name", "number_value"),
        TableIndex("ix_image_fields_date", "name", "date_value"),
    )

    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), ForeignKey("fields.name", ondelete="CASCADE"), primary_key=True)
    text_value: Mapped[str | None] = mapped_column(Text)
    number_value: Mapped[float | None] = mapped_column(Float)
    date_value: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
