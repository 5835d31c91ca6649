"""What the catalog records of models: the default one."""

from __future__ import annotations

from indexer.api.workspace import Workspace
from indexer.core.errors import InputError


def default_model_name(workspace: Workspace) -> str:
    """The most recently trained model's name."""
    with workspace.catalog() as catalog:
        models = catalog.models()
    if not models:
        raise InputError("no trained model in the catalog: run 'indexer train --network NAME' first")
    return models[-1].name
