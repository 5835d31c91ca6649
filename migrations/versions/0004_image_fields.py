"""User fields: typed metadata on images (text, number or date), declared once per name and filterable.

``fields`` declares each name's type; ``image_fields`` holds one value per (image, field) in the column of that
type, indexed by (name, value) so a filter on one field reads only its matching rows. Values go with their
image (ON DELETE CASCADE).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fields",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("type", sa.String(16), nullable=False),
        sa.CheckConstraint("type IN ('text', 'number', 'date')", name="ck_fields_type"),
    )
    op.create_table(
        "image_fields",
        sa.Column("image_id", sa.Integer(), sa.ForeignKey("images.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("name", sa.String(64), sa.ForeignKey("fields.name", ondelete="CASCADE"), primary_key=True),
        sa.Column("text_value", sa.Text()),
        sa.Column("number_value", sa.Float()),
        sa.Column("date_value", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_image_fields_text", "image_fields", ["name", "text_value"])
    op.create_index("ix_image_fields_number", "image_fields", ["name", "number_value"])
    op.create_index("ix_image_fields_date", "image_fields", ["name", "date_value"])


def downgrade() -> None:
    op.drop_index("ix_image_fields_date", table_name="image_fields")
    op.drop_index("ix_image_fields_number", table_name="image_fields")
    op.drop_index("ix_image_fields_text", table_name="image_fields")
    op.drop_table("image_fields")
    op.drop_table("fields")
