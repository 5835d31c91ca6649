"""Catalog operations: ingest folders and Flowers-102, report status, migrate."""

from __future__ import annotations

import os
from dataclasses import asdict

from indexer.ingest import IngestReport, discover_images, ingest_items
from indexer.workspace import Workspace
from storage.catalog import Catalog


def ingest_directory(
    workspace: Workspace,
    directory: str | os.PathLike[str],
    *,
    labels: str = "folders",
    split: str | None = None,
    progress: bool = True,
) -> IngestReport:
    """Catalogue every image under ``directory`` (see :func:`indexer.ingest.discover_images`)."""
    items, report = discover_images(directory, labels=labels, split=split)
    engine = workspace.open_for_writing()
    with Catalog(engine) as catalog:
        return ingest_items(catalog, items, report=report, progress=progress)


def ingest_flowers102(
    workspace: Workspace, root: str | os.PathLike[str] | None = None, *, progress: bool = True
) -> IngestReport:
    """Obtain Oxford Flowers-102 (local copy or download) and catalogue all 8,189 images."""
    from indexer.flowers import flowers102_items

    items = flowers102_items(root, workspace.datasets_dir)
    engine = workspace.open_for_writing()
    with Catalog(engine) as catalog:
        return ingest_items(catalog, items, keep_duplicates=True, progress=progress)


def catalog_status(workspace: Workspace, *, check: bool = True) -> dict:
    """Counts of images by split and status, labels, models and indexes, as a JSON-ready dict.

    With ``check``, ``inconsistencies`` lists every disagreement between the catalog and the
    index and model files it registers (empty when all is well)."""
    engine = workspace.open_read_only()
    with Catalog(engine) as catalog:
        summary = asdict(catalog.summary())
    summary.update(workspace=str(workspace.root), database=_display_url(workspace.db_url))
    if check:
        from indexer.api.consistency import find_inconsistencies

        summary["inconsistencies"] = find_inconsistencies(workspace)
    return summary


def upgrade_database(workspace: Workspace) -> str:
    """Migrate the catalog to the newest schema; returns the revision."""
    from storage.database import current_revision

    engine = workspace.open_for_writing()
    return current_revision(engine) or ""


def _display_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
