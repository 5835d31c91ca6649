"""Catalog status and schema migration."""

from __future__ import annotations

from dataclasses import asdict

from indexer.api.workspace import Workspace


def catalog_status(workspace: Workspace, *, check: bool = True) -> dict:
    """Counts of images by split and status, labels, models and indexes, as a JSON-ready dict.

    With ``check``, ``inconsistencies`` lists every disagreement between the catalog and the
    index and model files it registers (empty when all is well)."""
    with workspace.catalog() as catalog:
        summary = asdict(catalog.summary())
    summary.update(workspace=str(workspace.root), database=_display_url(workspace.db_url))
    if check:
        from indexer.api.consistency import find_inconsistencies

        summary["inconsistencies"] = find_inconsistencies(workspace)
    return summary


def upgrade_database(workspace: Workspace) -> str:
    """Migrate the catalog to the newest schema; returns the revision."""
    from storage.database import current_revision

    return current_revision(workspace.engine(write=True)) or ""


def _display_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
