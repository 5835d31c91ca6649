"""The library API: the one place that wires storage, models and the FAISS core together.

``cli.py`` only parses flags, calls these functions and prints what they return.
"""

from indexer.api.catalog import catalog_status, ingest_directory, ingest_flowers102, upgrade_database
from indexer.api.indexes import build as build_index
from indexer.api.indexes import remove as remove_images
from indexer.api.indexes import update as update_index
from indexer.api.models import default_model_name, embed, train
from indexer.api.query import query

__all__ = [
    "build_index",
    "catalog_status",
    "default_model_name",
    "embed",
    "ingest_directory",
    "ingest_flowers102",
    "query",
    "remove_images",
    "train",
    "update_index",
    "upgrade_database",
]
