"""The HTTP face: a FastAPI app over :mod:`indexer.api` (``indexer serve``), with a web page.

Imports ``indexer.api`` only from the project (an import-linter contract keeps it so): opening the
model and indexes, answering, adding and deleting all live in :class:`indexer.api.LiveCatalog`.
"""

from indexer.service.app import ServiceConfig, create_app
from indexer.service.cluster import ClusterOptions, serve_on_ray
from indexer.service.server import serve

__all__ = ["ClusterOptions", "ServiceConfig", "create_app", "serve", "serve_on_ray"]
