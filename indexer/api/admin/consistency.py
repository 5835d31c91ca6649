"""Consistency between the catalog and the artifacts it registers (index files, model files)."""

from __future__ import annotations

import numpy as np

from indexer.api.registry.indexes import stale_index_message
from indexer.api.workspace import Workspace
from indexer.core.errors import IndexerError


def find_inconsistencies(workspace: Workspace) -> list[str]:
    """One line per problem: missing files, index ids that are not ok catalog images, ok images an index lacks."""
    with workspace.catalog() as catalog:
        index_rows, model_rows = catalog.indexes(), catalog.models()
        ok_ids = np.array([row.id for row in catalog.images()], dtype=np.int64) if index_rows else None
    problems = []
    from models.embedders import ONNX, embedder_file, embedder_kind

    for model in model_rows:
        kind = embedder_kind(model.params)
        files = (("checkpoint", model.path), ("ONNX file", model.params.get("onnx"))) if kind == ONNX else (
            (f"{kind} file", embedder_file(model.params)),)
        for what, stored in files:
            if stored is None or not workspace.resolve(stored).is_file():
                problems.append(f"model {model.name!r}: {what} {stored} is missing; train it again")
    models_by_name = {model.name: model for model in model_rows}
    for row in index_rows:
        stale = stale_index_message(row, models_by_name[row.model_name]) if row.model_name in models_by_name else None
        if stale is not None:
            problems.append(f"{stale} (its vectors are stale)")
        problems += _index_problems(workspace, row, ok_ids)
    return problems


def _index_problems(workspace: Workspace, row, ok_ids: np.ndarray) -> list[str]:
    from indexer.core.index_io import load_index
    from indexer.core.membership import indexed_ids

    if row.model_name is None:
        return [f"index {row.name!r}: its model no longer exists; rebuild it with 'indexer build --index {row.kind}'"]
    try:
        index, _ = load_index(workspace.resolve(row.path))
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
    missing = np.setdiff1d(ok_ids, held)
    if len(missing):
        problems.append(
            f"index {row.name!r} lacks {len(missing)} catalog image(s) (e.g. id {int(missing[0])}); "
            f"run 'indexer build --update {row.name}'"
        )
    if int(index.ntotal) != row.ntotal:
        problems.append(f"index {row.name!r} file holds {index.ntotal} vectors, the catalog says {row.ntotal}")
    return problems
