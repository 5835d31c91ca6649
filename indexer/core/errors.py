"""The errors of the FAISS core (and of the layers built on it).

The library raises these; it never logs-and-returns-None and never exits. The API adds the
leaves' own base classes (:class:`storage.errors.CatalogError`, :class:`models.errors.ModelError`)
to the family the faces catch (:data:`indexer.api.errors.LIBRARY_ERRORS`).
"""

from __future__ import annotations


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


class UnavailableError(IndexerError):
    """A part the answer needs (a shard of a served index) is not answering now; retrying later may succeed."""


class MissingDependencyError(IndexerError):
    """An optional package a call needs is not installed (the message says how to install it)."""
