"""The router of a sharded index: :class:`indexer.api.LiveCatalog` (the same queries, writes, rows, errors)
over a :class:`ShardedIndex` instead of loaded index files.

A query is decoded and embedded here once, sent to every shard, and the shards' top k merged; the catalog rows,
filters, pages and re-ranking are the one engine's (:mod:`indexer.api.search.engine`). A write is made durable
here (catalog row, embedding store) and then sent to the shard that owns the id, as LiveCatalog sends it to its
held index. Only the index is sharded: the router holds the model and reads the catalog and the embedding store,
which every node must reach (PostgreSQL and shared storage when the nodes are several machines).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from indexer.api.cluster.fanout import (
    ShardedIndex,
    ShardsUnavailableError,
    Transport,
    forget_missing,
    missing_shards,
)
from indexer.api.cluster.layout import load_template, read_manifest
from indexer.api.search.engine import Searcher
from indexer.api.search.held import HeldIndex
from indexer.api.search.live import LiveCatalog
from indexer.api.search.results import Answer
from indexer.api.workspace import Workspace
from storage.catalog import ArtifactRow


class ShardedSearcher(Searcher):
    """The query engine holding one index, whose shards answer through ``transport``."""

    def __init__(self, workspace: Workspace, index_name: str | None, transport: Transport, **options: Any) -> None:
        self.transport = transport
        super().__init__(workspace, index_name, hold_all=False, **options)

    def load_held(self, row: ArtifactRow) -> HeldIndex:
        from indexer.api.registry.index_files import file_signature
        from indexer.core.index_io import index_paths

        manifest = read_manifest(self.workspace, row.name)
        template, sidecar = load_template(self.workspace, row.name)
        path = index_paths(self.workspace.resolve(row.path))[0]
        return HeldIndex(row.name, row.kind, row.model_name, path, ShardedIndex(manifest, self.transport, template),
                         sidecar, row.params, file_signature(path))


class ClusterCatalog(LiveCatalog):
    """A LiveCatalog whose one index ``index_name`` (default: the most recent) is served by its shards through
    ``transport``. A query answers with the shards that answered and names the others (``missing_shards``);
    with ``complete=True`` it raises :class:`ShardsUnavailableError` instead (the service's 503)."""

    def __init__(self, workspace: Workspace, index_name: str | None, transport: Transport, **options: Any) -> None:
        self._transport = transport
        super().__init__(workspace, index_name, **options)

    def _open_engine(self, workspace: Workspace, index_name: str | None, **options: Any) -> Searcher:
        return ShardedSearcher(workspace, index_name, self._transport, **options)

    def search_bytes(self, *args: Any, complete: bool = False, **options: Any) -> Answer:
        """LiveCatalog.search_bytes's answer for an encoded image, over the shards that answered (see the class)."""
        forget_missing()
        return self._marked(super().search_bytes(*args, **options), complete)

    def search_vector(self, *args: Any, complete: bool = False, **options: Any) -> Answer:
        """LiveCatalog.search_vector's answer for a query vector, over the shards that answered (see the class)."""
        forget_missing()
        return self._marked(super().search_vector(*args, **options), complete)

    def search_examples(self, *args: Any, complete: bool = False, **options: Any) -> Answer:
        """LiveCatalog.search_examples's answer for weighted examples, over the shards that answered (see the class)."""
        forget_missing()
        return self._marked(super().search_examples(*args, **options), complete)

    def similar(self, *args: Any, complete: bool = False, **options: Any) -> Answer:
        """LiveCatalog.similar's answer for a catalogued image, over the shards that answered (see the class)."""
        forget_missing()
        return self._marked(super().similar(*args, **options), complete)

    def flush(self) -> list[str]:
        """Every shard saves its pending changes now; the names of the held indexes."""
        for name in self.engine.held_names():
            self.engine.held(name).index.flush()
        super().flush()
        return self.engine.held_names()

    def _reconcile_indexes(self, served: Any) -> dict[str, tuple[int, int]]:
        """Each shard makes itself agree with the catalog over its id range (it does so when it starts too, so a
        shard that does not answer now is skipped); {name: (added, removed)} over the shards that answered."""
        changes = {}
        for name in self.engine.held_names():
            answers = self.engine.held(name).index.reconcile()
            changes[name] = (sum(a for a, _ in answers.values()), sum(r for _, r in answers.values()))
        return changes

    def _marked(self, answer: Answer, complete: bool) -> Answer:
        missing = missing_shards()
        if not missing:
            return answer
        if complete:
            raise ShardsUnavailableError(f"shards {', '.join(map(str, missing))} of index {answer.index!r} did not "
                                         "answer; drop complete=true for the other shards' results")
        return replace(answer, missing_shards=tuple(missing))
