"""Images and labels.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "labels",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
    )
    op.create_table(
        "images",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("path", sa.Text(), nullable=False, unique=True),
        sa.Column("sha256", sa.String(64)),
        sa.Column("size_bytes", sa.Integer()),
        sa.Column("width", sa.Integer()),
        sa.Column("height", sa.Integer()),
        sa.Column("format", sa.String(16)),
        sa.Column("label_id", sa.Integer(), sa.ForeignKey("labels.id")),
        sa.Column("split", sa.String(32)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text()),
        sa.Column("duplicate_of", sa.Integer(), sa.ForeignKey("images.id")),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('ok', 'error', 'duplicate')", name="ck_images_status"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_images_sha256", "images", ["sha256"])
    op.create_index("ix_images_label_id", "images", ["label_id"])
    op.create_index("ix_images_split", "images", ["split"])
    op.create_index("ix_images_status", "images", ["status"])


def downgrade() -> None:
    op.drop_table("images")
    op.drop_table("labels")
