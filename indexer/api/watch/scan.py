"""A watched folder compared with the catalog: what appeared, changed or vanished while nobody watched.

Cheap first: a file is a candidate when the catalog has no row for its path, when its size differs from the
row's, or when it was modified after the row was written (an error row only then: a bad file is not retried
at every start). The batch that applies the candidates reads and hashes them, and one whose SHA-256 equals
its row's is left alone.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from indexer.api.watch.settle import is_watched_file
from indexer.api.workspace import Workspace
from indexer.datasets.folders import catalog_path, discover_images


@dataclass
class FolderScan:
    """``present``: files to read (new or maybe changed); ``gone``: catalogued paths whose file is missing;
    ``unchanged``: files that match their rows; ``problems``: folders that could not be listed."""

    present: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)
    unchanged: int = 0
    problems: list[str] = field(default_factory=list)


def scan_folder(workspace: Workspace, folder: str) -> FolderScan:
    """Compare the image files under ``folder`` (recursively) with the catalog rows under it."""
    found = discover_images(folder, labels="none")
    scan = FolderScan(problems=list(found.problems))
    with workspace.catalog() as catalog:
        rows = {row.path: row for row in catalog.files_under(folder)}
    on_disk = set()
    for item in found.items:
        if not is_watched_file(item.path):
            continue
        path = catalog_path(item.path)
        on_disk.add(path)
        row = rows.get(path)
        try:
            stat = os.stat(path)
        except OSError:
            continue  # gone since the walk: the events say so
        if row is None:
            scan.present.append(path)
        elif stat.st_mtime > row.updated_at or (row.status != "error" and row.size_bytes != stat.st_size):
            scan.present.append(path)
        else:
            scan.unchanged += 1
    scan.gone = [path for path in rows if path not in on_disk and not os.path.isfile(path)]
    return scan
