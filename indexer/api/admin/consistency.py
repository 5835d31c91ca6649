"""Consistency between the catalog and the artifacts it registers (index files, model files)."""

from __future__ import annotations

import numpy as np

from indexer.api.registry.images import is_imported
from indexer.api.registry.indexes import stale_index_message
from indexer.api.workspace import Workspace
from indexer.core.errors import IndexerError


def find_inconsistencies(workspace: Workspace) -> list[str]:
    """One line per problem: missing files, index ids that are not ok catalog images, ok images an index lacks.

    What an index should hold depends on its model: an image model, every ok image that is not an imported
    vector; an external model (``indexer import``), the ok rows its store holds.
    """
    with workspace.catalog() as catalog:
        index_rows, model_rows = catalog.indexes(), catalog.models()
        rows = catalog.images() if index_rows else []
    ok_ids = np.array([row.id for row in rows], dtype=np.int64)
    image_ids = np.array([row.id for row in rows if not is_imported(row)], dtype=np.int64)
    problems = []
    from models.embedders import EXTERNAL, ONNX, embedder_file, embedder_kind

    for model in model_rows:
        kind = embedder_kind(model.params)
        if kind == EXTERNAL:
            if not (workspace.embeddings_dir / model.name).is_dir():
                problems.append(f"model {model.name!r}: its imported vectors (embeddings/{model.name}) are missing; "
                                f"import them again with 'indexer import FILE --model {model.name}'")
            continue
        files = (("checkpoint", model.path), ("ONNX file", model.params.get("onnx"))) if kind == ONNX else (
            (f"{kind} file", embedder_file(model.params)),)
        for what, stored in files:
            if stored is None or not workspace.resolve(stored).is_file():
                problems.append(f"model {model.name!r}: {what} {stored} is missing; train it again")
    models_by_name = {model.name: model for model in model_rows}
    for row in index_rows:
        model = models_by_name.get(row.model_name)
        stale = stale_index_message(row, model) if model is not None else None
        if stale is not None:
            problems.append(f"{stale} (its vectors are stale)")
        expected = image_ids
        if model is not None and embedder_kind(model.params) == EXTERNAL:
            expected = _stored_ids(workspace, model.name, ok_ids)
        problems += _index_problems(workspace, row, ok_ids, expected)
    return problems


def _stored_ids(workspace: Workspace, model_name: str, ok_ids: np.ndarray) -> np.ndarray:
    """The ok catalog ids an (external) model's store holds."""
    from models.embedding_store import EmbeddingStore

    directory = workspace.embeddings_dir / model_name
    stored = EmbeddingStore(directory).ids() if directory.is_dir() else np.zeros(0, np.int64)
    return stored[np.isin(stored, ok_ids)]


def _index_problems(workspace: Workspace, row, ok_ids: np.ndarray, expected: np.ndarray) -> list[str]:
    from indexer.api.registry.index_files import load_segmented
    from indexer.core.index_io import index_paths, load_index
    from indexer.core.membership import indexed_ids

    if row.model_name is None:
        return [f"index {row.name!r}: its model no longer exists; rebuild it with 'indexer build --index {row.kind}'"]
    path = workspace.resolve(row.path)
    try:
        index, sidecar = load_index(path)
        index = load_segmented(index_paths(path)[0], index, sidecar)  # a graph's saved tail and marks count
    except IndexerError as exc:
        return [f"index {row.name!r}: {exc}"]
    held = indexed_ids(index)
    problems = []
    stale = np.setdiff1d(held, ok_ids)
    if len(stale):
        problems.append(
            f"index {row.name!r} holds {len(stale)} id(s) that are not ok catalog images (e.g. {int(stale[0])}); "
            f"rebuild it with 'indexer build --index {row.kind} --name {row.name}'"
        )
    missing = np.setdiff1d(expected, held)
    if len(missing):
        problems.append(
            f"index {row.name!r} lacks {len(missing)} catalog image(s) (e.g. id {int(missing[0])}); "
            f"run 'indexer build --update {row.name}'"
        )
    if int(index.ntotal) != row.ntotal:
        problems.append(f"index {row.name!r} file holds {index.ntotal} vectors, the catalog says {row.ntotal}")
    return problems
