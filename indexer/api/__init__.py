"""The library API: the one place that wires storage, models and the FAISS core together.

``cli.py`` only parses flags, calls these functions and prints what they return.
"""

from indexer.api.catalog import catalog_status, ingest_directory, ingest_flowers102, upgrade_database

__all__ = ["catalog_status", "ingest_directory", "ingest_flowers102", "upgrade_database"]
