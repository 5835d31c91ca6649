"""Labels of watched files, the way their folder was ingested: ``folders`` (the sub-folder path below the
watched folder, as ``indexer ingest --labels folders``) or ``none``.

``auto`` reads the catalog: a folder whose catalogued images in sub-folders carry their sub-folder's name was
ingested with folder labels; one whose images there carry none, or other labels (a CSV), was not. A folder
with no catalogued image in a sub-folder gets ``folders``, ingest's default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from indexer.api.workspace import Workspace


def folder_label(folder: str, path: str) -> str | None:
    """The ``--labels folders`` label of ``path`` under ``folder``: its sub-folder path, None at the top."""
    parent = os.path.relpath(os.path.dirname(path), folder)
    return None if parent in (".", "") or parent.startswith("..") else parent.replace(os.sep, "/")


def label_mode(workspace: Workspace, folder: str, asked: str) -> str:
    """``asked`` when it is folders or none; for auto, what the catalog's rows under ``folder`` show."""
    if asked != "auto":
        return asked
    with workspace.catalog() as catalog:
        rows = catalog.files_under(folder)
    nested = [row for row in rows if row.status != "error" and folder_label(folder, row.path) is not None]
    if not nested:
        return "folders"
    agreeing = sum(row.label == folder_label(folder, row.path) for row in nested)
    return "folders" if agreeing * 2 > len(nested) else "none"


@dataclass(frozen=True)
class Labeller:
    """Each watched folder's label mode (``{folder: "folders" | "none"}``)."""

    modes: Mapping[str, str]

    def folder_of(self, path: str) -> str | None:
        return next((f for f in self.modes if path.startswith(f.rstrip(os.sep) + os.sep)), None)

    def _labelling_folder(self, path: str) -> str | None:
        """The watched folder holding ``path`` when that folder gives folder labels, else None."""
        folder = self.folder_of(path)
        return folder if folder is not None and self.modes[folder] == "folders" else None

    def label(self, path: str) -> str | None:
        """The label a new file at ``path`` gets."""
        folder = self._labelling_folder(path)
        return None if folder is None else folder_label(folder, path)

    def moved_label(self, path: str, old: str | None) -> str | None:
        """The label of a moved image now at ``path``: its new sub-folder's under folder labels, else its own."""
        folder = self._labelling_folder(path)
        return old if folder is None else folder_label(folder, path)
