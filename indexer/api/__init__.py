"""The library API: the one place that wires storage, models and the FAISS core together.

The faces (``cli.py``, the HTTP service) call these functions and print or serve what they
return. Names are loaded on first use, so ``import indexer.api`` stays light (``indexer --help``
answers at once and the query path never imports torch).
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

_EXPORTS = {
    # workspace and errors
    "Workspace": "indexer.api.workspace",
    "DEFAULT_WORKSPACE": "indexer.api.workspace",
    "LIBRARY_ERRORS": "indexer.api.errors",
    "IndexerError": "indexer.api.errors",
    "InputError": "indexer.api.errors",
    "NotFoundError": "indexer.api.errors",
    "MissingDependencyError": "indexer.api.errors",
    # catalog
    "ingest_directory": "indexer.api.ingest",
    "ingest_flowers102": "indexer.api.ingest",
    "LABEL_SOURCES": "indexer.datasets.folders",
    "catalog_status": "indexer.api.catalog",
    "CatalogStatus": "indexer.api.catalog",
    "catalog_images": "indexer.api.catalog",
    "upgrade_database": "indexer.api.catalog",
    "backup_workspace": "indexer.api.backup:backup",
    # models
    "train": "indexer.api.models",
    "train_config": "indexer.api.models",
    "train_recipe": "indexer.api.recipes",
    "Recipe": "indexer.api.recipes",
    "RECIPES": "indexer.api.recipes",
    "RECIPE_OVERRIDES": "indexer.api.recipes",
    "KEPT_STAGE": "indexer.api.recipes",
    "TrainOutcome": "indexer.api.models",
    "cached_imagenet_file": "models.weights",
    "embed": "indexer.api.models",
    "EMBED_ENGINES": "indexer.api.models",
    "train_sift_vlad": "indexer.api.classical",
    "default_model_name": "indexer.api.models",
    "derive_model": "indexer.api.models",
    "TTA_MODES": "models.preprocess",
    "LOSSES": "models.config",
    "LABEL_MODES": "models.config",
    "MINERS": "models.config",
    # a folder of photos to an index in one call
    "index_folder": "indexer.api.photos",
    "IndexFolderOutcome": "indexer.api.photos",
    "PHOTOS_MODEL": "indexer.api.photos:DEFAULT_MODEL",
    "PHOTOS_INDEX": "indexer.api.photos:DEFAULT_INDEX",
    "PHOTOS_NETWORK": "indexer.api.photos:DEFAULT_NETWORK",
    # indexes
    "build_index": "indexer.api.indexes:build",
    "update_index": "indexer.api.indexes:update",
    "catalog_vectors": "indexer.api.indexes",
    "BuildOutcome": "indexer.api.indexes",
    "INDEX_KINDS": "indexer.core.kinds",
    "BUILD_CHOICES": "indexer.core.kinds",
    "BENCH_CHOICES": "indexer.core.kinds",
    "PEERS": "indexer.bench.peers",
    "BENCH_KINDS": "indexer.core.kinds",
    "DEFAULT_KIND": "indexer.core.kinds",
    "DEFAULT_PCA_DIM": "indexer.core.kinds",
    "DEFAULT_TARGET_RECALL": "indexer.core.kinds",
    "remove_images": "indexer.api.remove:remove",
    # query
    "query": "indexer.api.query",
    "Searcher": "indexer.api.query",
    "draw_answer": "indexer.api.query",
    "QueryOutcome": "indexer.api.query",
    "Answer": "indexer.api.query",
    "Hit": "indexer.api.query",
    # re-ranking
    "Rerank": "indexer.core.rerank",
    "RERANK_MODES": "indexer.core.rerank",
    # near-duplicates
    "find_duplicates": "indexer.api.dupes",
    "draw_duplicates": "indexer.api.dupes",
    "DEFAULT_DUPLICATE_THRESHOLD": "indexer.api.dupes:DEFAULT_THRESHOLD",
    # a long-running face (the HTTP service): queries, adds and deletes on one opened workspace
    "LiveCatalog": "indexer.api.live",
    "MAX_K": "indexer.api.live_search",
    "content_type": "indexer.api.uploads",
    # bench
    "bench_catalog": "indexer.api.bench",
    "bench_synthetic": "indexer.api.bench",
    "report_table": "indexer.api.bench",
    "write_outputs": "indexer.api.bench",
    "prepare_output_paths": "indexer.api.bench",
    "DEFAULT_BENCH_KINDS": "indexer.core.kinds",
    "BenchReport": "indexer.api.bench",
    # vectors out
    "export_vectors": "indexer.api.export",
    "ExportOutcome": "indexer.api.export",
    "EXPORT_FORMATS": "indexer.api.export:FORMATS",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import the module behind ``name`` on first use ("module" or "module:attribute")."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'indexer.api' has no attribute {name!r}")
    module, _, attribute = _EXPORTS[name].partition(":")
    value = getattr(importlib.import_module(module), attribute or name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


class _PublicNamesFirst(types.ModuleType):
    """Keeps an exported name from being shadowed by the submodule of the same name.

    Importing ``indexer.api.query`` (for ``Searcher``, say) makes Python bind the submodule as
    the package attribute ``query``, hiding the exported function; this refuses that binding.
    The submodule stays importable by its full name (``from indexer.api.query import ...``).
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _EXPORTS and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _PublicNamesFirst
