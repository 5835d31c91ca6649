"""Removing images from every index, every embedding store and the catalog."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from indexer.api.registry.index_files import IndexFile, IndexTarget, writing
from indexer.api.workspace import Workspace
from indexer.datasets.folders import catalog_path


@dataclass(frozen=True)
class RemoveOutcome:
    removed_images: int
    not_found: list[str]
    per_index: dict[str, int]


def remove(workspace: Workspace, paths: Sequence[str] = (), ids: Sequence[int] = ()) -> RemoveOutcome:
    """Remove images (by path, resolved to absolute, or by id) from every index, embedding store and the catalog.

    Indexes are updated first, the catalog last: an interrupted removal leaves the images in the
    catalog (``indexer status`` reports the indexes that lack them), and running the same removal
    again finishes it.
    """
    with workspace.catalog(write=True) as catalog:
        resolved = {catalog_path(p): p for p in paths}
        by_path = catalog.images_by_paths(resolved)
        by_id = catalog.images_by_ids(ids)
        not_found = [given for path, given in resolved.items() if path not in by_path]
        not_found += [str(i) for i in ids if int(i) not in by_id]
        wanted = np.array(sorted({row.id for row in [*by_path.values(), *by_id.values()]}), dtype=np.int64)
        index_rows, model_rows = catalog.indexes(), catalog.models()
    if not len(wanted):
        return RemoveOutcome(removed_images=0, not_found=not_found, per_index={})
    targets = [IndexTarget.of_row(workspace, row) for row in index_rows]
    with writing(workspace, *targets) as files:  # every index locked until the catalog is done
        return _remove_locked(workspace, wanted, not_found, files, model_rows)


def _remove_locked(workspace, wanted, not_found, files: list[IndexFile], model_rows) -> RemoveOutcome:
    from indexer.core.build import remove_from_index
    from models.embedding_store import EmbeddingStore

    per_index: dict[str, int] = {}
    # load every index first: a missing or corrupt one stops the removal before anything changed
    loaded = [(file, *file.load()) for file in files]
    for file, index, sidecar in loaded:
        index, per_index[file.target.name] = remove_from_index(index, sidecar, wanted)
        if per_index[file.target.name]:
            file.save(index, sidecar)
        else:  # already without them: a rerun after a kill between this file's save and its catalog row
            file.register_unchanged(index, sidecar)
    for model in model_rows:
        EmbeddingStore(workspace.embeddings_dir / model.name).remove(wanted)
    with workspace.catalog(write=True) as catalog:
        removed = catalog.remove_images(wanted.tolist())
    return RemoveOutcome(removed_images=removed, not_found=not_found, per_index=per_index)

