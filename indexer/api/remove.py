"""Removing images from every index, every embedding store and the catalog."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from indexer.api.indexes import register, user_sidecar
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
    from indexer.core.index_io import index_lock

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
    with contextlib.ExitStack() as locks:  # every index locked (in name order) until the catalog is done
        for row in sorted(index_rows, key=lambda r: r.name):
            locks.enter_context(index_lock(workspace.resolve(row.path)))
        return _remove_locked(workspace, wanted, not_found, index_rows, model_rows)


def _remove_locked(workspace, wanted, not_found, index_rows, model_rows) -> RemoveOutcome:
    from indexer.core.index_io import load_index, save_index
    from models.embedding_store import EmbeddingStore

    per_index: dict[str, int] = {}
    # load every index first: a missing or corrupt one stops the removal before anything changed
    loaded = [(row, workspace.resolve(row.path), *load_index(workspace.resolve(row.path))) for row in index_rows]
    for row, path, index, sidecar in loaded:
        index, per_index[row.name] = remove_from_index(index, sidecar, wanted)
        if per_index[row.name]:
            sidecar = save_index(index, path, user_sidecar(sidecar))
            register(workspace, row.name, row.kind, row.params, sidecar, path, row.model_name)
    for model in model_rows:
        EmbeddingStore(workspace.embeddings_dir / model.name).remove(wanted)
    with workspace.catalog(write=True) as catalog:
        removed = catalog.remove_images(wanted.tolist())
    return RemoveOutcome(removed_images=removed, not_found=not_found, per_index=per_index)


def remove_from_index(index, sidecar: dict, ids: np.ndarray):
    """(index without ``ids``, how many went). Modifies ``index`` in place, except an HNSW graph (it cannot
    delete), which is rebuilt from its own vectors into a new object."""
    from indexer.core.build import remove_ids, stored_vectors
    from indexer.core.factory import find_hnsw

    if find_hnsw(index) is None:
        return index, remove_ids(index, ids)
    held_ids, held_vectors = stored_vectors(index)
    keep = ~np.isin(held_ids, ids)
    removed = int((~keep).sum())
    return (_rebuild(sidecar, held_vectors[keep], held_ids[keep]) if removed else index), removed


def _rebuild(sidecar: dict, vectors: np.ndarray, ids: np.ndarray):
    """The index the sidecar describes, built again over these vectors, with its search settings."""
    from indexer.core.build import build_index
    from indexer.core.factory import IndexParams
    from indexer.core.settings import set_default_settings

    index, _ = build_index(IndexParams.from_dict(sidecar["params"]), vectors, ids)
    settings = sidecar.get("search_params") or {}
    set_default_settings(index, nprobe=settings.get("nprobe"), efSearch=settings.get("efSearch"))
    return index


def remove_from_index_file(workspace: Workspace, row, ids: np.ndarray) -> int:
    """Remove ``ids`` from the saved index of catalog row ``row`` (load, remove, save, register); how many went."""
    from indexer.core.index_io import load_index, save_index

    path = workspace.resolve(row.path)
    index, sidecar = load_index(path)
    index, removed = remove_from_index(index, sidecar, ids)
    if removed:
        sidecar = save_index(index, path, user_sidecar(sidecar))
        register(workspace, row.name, row.kind, row.params, sidecar, path, row.model_name)
    return removed
