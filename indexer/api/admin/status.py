"""Catalog status and schema migration."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from indexer.api.tables import to_dataframe
from indexer.api.workspace import Workspace
from storage.catalog import ImageRow

SPLIT_COLUMNS = ("split", "ok", "errors")


class CatalogStatus(dict):
    """The JSON-ready dict :func:`catalog_status` returns, plus :meth:`to_pandas`.

    Keys: ``images_total``, ``images_ok``, ``images_error``, ``duplicates``, ``labels`` (ints);
    ``splits`` and ``errors_by_split`` ({split: count}); ``models`` and ``indexes`` (names);
    ``workspace``, ``database`` (str); ``inconsistencies`` (list of str, with ``check``).
    """

    def split_rows(self) -> list[dict[str, Any]]:
        """One row per split: ``{"split", "ok", "errors"}``, splits sorted by name."""
        splits = sorted(set(self["splits"]) | set(self["errors_by_split"]))
        return [{"split": split, "ok": self["splits"].get(split, 0), "errors": self["errors_by_split"].get(split, 0)}
                for split in splits]

    def to_pandas(self) -> Any:
        """Images by split as a DataFrame with columns split, ok, errors (needs pandas)."""
        return to_dataframe(self.split_rows(), SPLIT_COLUMNS)


def catalog_status(workspace: Workspace, *, check: bool = True) -> CatalogStatus:
    """Counts of images by split and status, labels, models and indexes (see :class:`CatalogStatus`).

    With ``check``, ``inconsistencies`` lists every disagreement between the catalog and the
    index and model files it registers (empty when all is well)."""
    with workspace.catalog() as catalog:
        summary = CatalogStatus(asdict(catalog.summary()))
    summary.update(workspace=str(workspace.root), database=_display_url(workspace.db_url))
    if check:
        from indexer.api.admin.consistency import find_inconsistencies

        summary["inconsistencies"] = find_inconsistencies(workspace)
    return summary


def catalog_images(workspace: Workspace, *, splits: list[str] | None = None, status: str | None = "ok") -> list[ImageRow]:
    """The catalog's images in id order (frozen ``ImageRow``: id, path, label_id, label, split, status, ...).

    ``splits``: only these splits; ``status``: "ok" (default), "error", or None for every image.
    """
    with workspace.catalog() as catalog:
        return catalog.images(status=status, splits=splits)


def upgrade_database(workspace: Workspace) -> str:
    """Migrate the catalog to the newest schema; returns the revision."""
    from storage.database import current_revision

    return current_revision(workspace.engine(write=True)) or ""


def _display_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
