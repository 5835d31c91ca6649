"""Errors raised by the storage layer (a leaf: it imports nothing of ``indexer``)."""

from __future__ import annotations


class CatalogError(Exception):
    """Base class for errors raised by ``storage``."""


class SchemaError(CatalogError):
    """The database schema is missing or not at the revision this code expects."""


class NotInCatalogError(CatalogError):
    """A named row (model, index, image) is not in the catalog."""
