"""The project's one exception family.

The library raises these; it never logs-and-returns-None and never exits. The CLI
turns every one of them into a one-line ``click.ClickException``.

``storage`` and ``models`` are leaves that must not import ``indexer``; they raise
their own base classes (:class:`storage.errors.CatalogError`,
:class:`models.errors.ModelError`), which :data:`LIBRARY_ERRORS` lists beside ours.
"""

from __future__ import annotations

from models.errors import ModelError
from storage.errors import CatalogError


class IndexerError(Exception):
    """Base class for errors raised by the ``indexer`` package."""


class InputError(IndexerError):
    """A file, path or argument given by the user is unusable."""


class NotFoundError(IndexerError):
    """A named model, index or catalog row does not exist."""


class IndexFileError(IndexerError):
    """An index file is missing, corrupt or inconsistent with its sidecar."""


class DimensionMismatchError(IndexerError):
    """Query vectors and index have different dimensions."""


LIBRARY_ERRORS: tuple[type[Exception], ...] = (IndexerError, CatalogError, ModelError)
