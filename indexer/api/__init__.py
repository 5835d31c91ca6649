"""The library API: the one place that wires storage, models and the FAISS core together.

The faces (``cli.py``, the HTTP service) call these functions and print or serve what they return.
Its rooms: :mod:`indexer.api.registry` (what the catalog records of models and indexes, and the one
sequence that changes an index file), :mod:`indexer.api.search` (the query engine, one-shot and live),
:mod:`indexer.api.pipeline` (ingest, train, embed, build, remove, export, import, dupes, bench) and
:mod:`indexer.api.admin` (status, consistency, backup), and :mod:`indexer.api.watch` over them all (folders that
stay indexed). Importing it loads neither torch nor faiss:
every module imports those inside the functions that need them.
"""

from __future__ import annotations

from indexer.api.admin.backup import backup as backup_workspace
from indexer.api.admin.status import CatalogStatus, catalog_images, catalog_status, upgrade_database
from indexer.api.cluster.fanout import LocalShards, ShardedIndex, ShardsUnavailableError, Transport
from indexer.api.cluster.layout import Manifest, read_manifest, served_manifest
from indexer.api.cluster.router import ClusterCatalog
from indexer.api.cluster.shard import ShardIndex
from indexer.api.errors import (
    LIBRARY_ERRORS,
    IndexerError,
    InputError,
    MissingDependencyError,
    NotFoundError,
    UnavailableError,
)
from indexer.api.pipeline.bench import (
    BenchReport,
    bench_catalog,
    bench_filtered,
    bench_synthetic,
    prepare_output_paths,
    report_table,
    write_outputs,
)
from indexer.api.pipeline.build import BuildOutcome
from indexer.api.pipeline.build import build as build_index
from indexer.api.pipeline.build import update as update_index
from indexer.api.pipeline.classical import train_sift_vlad
from indexer.api.pipeline.dupes import DEFAULT_THRESHOLD as DEFAULT_DUPLICATE_THRESHOLD
from indexer.api.pipeline.dupes import draw_duplicates, find_duplicates
from indexer.api.pipeline.export import FORMATS as EXPORT_FORMATS
from indexer.api.pipeline.export import ExportOutcome, export_vectors
from indexer.api.pipeline.filtered_quality import bench_label_filters, label_filter_table
from indexer.api.pipeline.import_vectors import ImportOutcome, import_vectors
from indexer.api.pipeline.ingest import ingest_directory, ingest_flowers102
from indexer.api.pipeline.photos import DEFAULT_INDEX as PHOTOS_INDEX
from indexer.api.pipeline.photos import DEFAULT_MODEL as PHOTOS_MODEL
from indexer.api.pipeline.photos import DEFAULT_NETWORK as PHOTOS_NETWORK
from indexer.api.pipeline.photos import IndexFolderOutcome, index_folder
from indexer.api.pipeline.recipes import KEPT_STAGE, RECIPE_OVERRIDES, RECIPES, Recipe, train_recipe
from indexer.api.pipeline.remove import remove as remove_images
from indexer.api.pipeline.training import (
    EMBED_DECODES,
    EMBED_ENGINES,
    TrainOutcome,
    derive_model,
    embed,
    train,
    train_config,
)
from indexer.api.pipeline.vector_sources import FORMATS as IMPORT_FORMATS
from indexer.api.registry.fields import (
    TagOutcome,
    catalog_fields,
    image_fields,
    image_id_of,
    parse_types,
    set_image_fields,
    tag_from_csv,
)
from indexer.api.registry.indexes import catalog_vectors
from indexer.api.registry.models import default_model_name
from indexer.api.search.engine import MAX_K, Searcher
from indexer.api.search.examples import MAX_EXAMPLES, Example
from indexer.api.search.live import LiveCatalog
from indexer.api.search.narrowing import MAX_OFFSET, offset_of, page_token
from indexer.api.search.process import freeze_loaded_objects, limit_blas_threads
from indexer.api.search.query import draw_answer, query
from indexer.api.search.results import Answer, Hit, QueryOutcome
from indexer.api.search.uploads import content_type
from indexer.api.watch.settings import WATCH_LABELS, WATCH_MODES, WatchConfig
from indexer.api.watch.status import COUNTS as WATCH_COUNTS
from indexer.api.watch.status import WatchStatus
from indexer.api.watch.watcher import Watcher
from indexer.api.workspace import DEFAULT_WORKSPACE, Workspace
from indexer.bench.peers import PEERS
from indexer.core.kinds import (
    BENCH_CHOICES,
    BENCH_KINDS,
    BUILD_CHOICES,
    DEFAULT_BENCH_KINDS,
    DEFAULT_KIND,
    DEFAULT_PCA_DIM,
    DEFAULT_TARGET_RECALL,
    INDEX_KINDS,
)
from indexer.core.rerank import RERANK_MODES, Rerank
from indexer.datasets.folders import LABEL_SOURCES
from models.config import LABEL_MODES, LOSSES, MINERS
from models.preprocess import TTA_MODES
from models.weights import cached_imagenet_file

__all__ = [
    "BENCH_CHOICES", "BENCH_KINDS", "BUILD_CHOICES", "DEFAULT_BENCH_KINDS", "DEFAULT_DUPLICATE_THRESHOLD",
    "DEFAULT_KIND", "DEFAULT_PCA_DIM", "DEFAULT_TARGET_RECALL", "DEFAULT_WORKSPACE", "EMBED_DECODES", "EMBED_ENGINES",
    "EXPORT_FORMATS", "IMPORT_FORMATS", "INDEX_KINDS", "KEPT_STAGE", "LABEL_MODES", "LABEL_SOURCES",
    "LIBRARY_ERRORS", "LOSSES", "MAX_EXAMPLES", "MAX_K", "MAX_OFFSET", "MINERS", "PEERS", "PHOTOS_INDEX", "PHOTOS_MODEL", "PHOTOS_NETWORK",
    "RECIPES", "RECIPE_OVERRIDES", "RERANK_MODES", "TTA_MODES", "Answer", "BenchReport", "BuildOutcome",
    "CatalogStatus", "ClusterCatalog", "LocalShards", "Manifest", "ShardIndex", "ShardedIndex",
    "ShardsUnavailableError", "Transport", "UnavailableError", "read_manifest", "served_manifest", "Example", "ExportOutcome", "Hit", "ImportOutcome", "IndexFolderOutcome", "IndexerError", "InputError",
    "LiveCatalog", "MissingDependencyError", "NotFoundError", "QueryOutcome", "Recipe", "Rerank", "Searcher", "TagOutcome",
    "TrainOutcome", "WATCH_COUNTS", "WATCH_LABELS", "WATCH_MODES", "WatchConfig", "WatchStatus", "Watcher", "Workspace", "backup_workspace", "bench_catalog", "bench_filtered", "bench_label_filters", "bench_synthetic", "build_index",
    "cached_imagenet_file", "catalog_fields", "catalog_images", "catalog_status", "catalog_vectors", "content_type", "image_fields", "image_id_of", "label_filter_table", "limit_blas_threads", "freeze_loaded_objects",
    "default_model_name", "derive_model", "draw_answer", "draw_duplicates", "embed", "export_vectors",
    "find_duplicates", "import_vectors", "index_folder", "ingest_directory", "ingest_flowers102", "offset_of",
    "page_token", "parse_types", "prepare_output_paths", "query", "remove_images", "report_table", "set_image_fields", "tag_from_csv", "train", "train_config", "train_recipe",
    "train_sift_vlad", "update_index", "upgrade_database", "write_outputs",
]
