"""What the catalog records of indexes: which one a face serves, whether it is stale, its vectors, its row."""

from __future__ import annotations

import numpy as np

from indexer.api.workspace import Workspace
from indexer.core.errors import NotFoundError
from storage.catalog import ArtifactRow


def served_index(catalog, name: str | None) -> ArtifactRow:
    """The index row a query face serves: ``name``, or the most recent index when None. NotInCatalogError (from
    the catalog) when there is none by that name; NotFoundError when there is no index at all, or when the
    model it was built with has been deleted."""
    if name is not None:
        row = catalog.index(name)
    else:
        rows = catalog.indexes()
        if not rows:
            raise NotFoundError("the catalog has no index yet: run 'indexer build --index ivf' first")
        row = rows[-1]
    if row.model_name is None:
        raise NotFoundError(f"index {row.name!r} was built with a model that no longer exists; rebuild it")
    return row


def stale_index_message(index_row: ArtifactRow, model_row: ArtifactRow) -> str | None:
    """Why index ``index_row`` no longer matches its model (retrained after the build), or None."""
    if model_row.created_at <= index_row.created_at:
        return None
    return (
        f"index {index_row.name!r} was built before model {model_row.name!r} was retrained; rebuild it with "
        f"'indexer build --index {index_row.kind} --name {index_row.name} --model {model_row.name}'"
    )


def catalog_vectors(workspace: Workspace, model_name: str, *, mmap: bool = False) -> tuple:
    """(ids (n,) int64, vectors (n, d) float32) of the model's embeddings of ok catalog images; with ``mmap``,
    (every stored id, the store's vectors as a read-only memory map, the ok catalog ids) instead, so that the
    caller serves the ok ones without copying the vectors (:meth:`ServedVectors.from_store`)."""
    from models.embedding_store import EmbeddingStore

    with workspace.catalog() as catalog:
        ok_ids = np.array([row.id for row in catalog.image_keys()], dtype=np.int64)
    store = EmbeddingStore(workspace.embeddings_dir / model_name)
    store_ids, vectors = store.items(mmap=mmap)  # one read: another process may be appending
    if mmap:
        return store_ids, vectors, ok_ids
    keep = np.isin(store_ids, ok_ids)
    return store_ids[keep], np.ascontiguousarray(vectors[keep], dtype=np.float32)


def register(workspace, name, kind, params, sidecar, path, model_name, *, replace: bool = False) -> None:
    """Record index ``name`` (its params, search settings, FAISS version, size) in the catalog."""
    with workspace.catalog(write=True) as catalog:
        catalog.register_index(
            replace=replace,
            name=name, kind=kind,
            params={**params, "search_params": sidecar["search_params"], "faiss_version": sidecar["faiss_version"],
                    "factory": sidecar.get("build", {}).get("factory")},
            path=workspace.relative(path), dim=int(sidecar["d"]), ntotal=int(sidecar["ntotal"]), model_name=model_name,
        )


def user_sidecar(sidecar: dict) -> dict:
    """The caller-given part of a sidecar (save_index recomputes sizes, checksums and search params)."""
    computed = {"format", "d", "ntotal", "faiss_version", "search_params", "created", "index_file", "index_bytes",
                "sha256", "on_disk"}
    return {key: value for key, value in sidecar.items() if key not in computed}


def model_of(row: ArtifactRow) -> str:
    if row.model_name is None:
        raise NotFoundError(f"index {row.name!r} was built with a model that no longer exists; rebuild it")
    return row.model_name
