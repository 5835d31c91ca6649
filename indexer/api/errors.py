"""The error family the faces (CLI, service) catch and show as one line.

The FAISS core and the API raise :class:`~indexer.core.errors.IndexerError` and its subclasses;
the leaves raise their own base classes, so this tuple is the whole family.
"""

from __future__ import annotations

from indexer.core.errors import (
    DimensionMismatchError,
    IndexerError,
    IndexFileError,
    InputError,
    MissingDependencyError,
    NotFoundError,
    UnavailableError,
)
from models.errors import ModelError
from storage.errors import CatalogError

LIBRARY_ERRORS: tuple[type[Exception], ...] = (IndexerError, CatalogError, ModelError)

__all__ = [
    "LIBRARY_ERRORS",
    "CatalogError",
    "DimensionMismatchError",
    "IndexFileError",
    "IndexerError",
    "InputError",
    "MissingDependencyError",
    "ModelError",
    "NotFoundError",
    "UnavailableError",
]
