"""The Ray Serve deployments' classes: a shard replica over :class:`indexer.api.ShardIndex`, and the router
replica whose HTTP app is :func:`indexer.service.create_app` over :class:`indexer.api.ClusterCatalog`.

They are plain classes; :mod:`.server` makes them deployments at start (so importing this needs no Ray)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from indexer import api
from indexer.service.app import ServiceConfig, create_app
from indexer.service.server import settle_serving_process

SHARD_METHODS = ("search", "change", "ids", "holds", "reconcile", "flush", "describe")
# Reads answered on the replica's event loop itself: a search is a FAISS call of a fraction of a millisecond, and
# a hop to Serve's thread pool and back costs more than that on a busy machine (docs/BENCHMARKS.md, issue 30).
# Changes, saves and reconciling take the thread pool: they may take seconds, and the loop must go on answering.
INLINE_METHODS = ("search", "holds")


class ShardReplica:
    """One replica of shard ``number`` of index ``index_name``: the shard loaded and reconciled at start."""

    def __init__(self, workspace: str | None, db: str | None, index_name: str, number: int, flush_s: float) -> None:
        self.shard = api.ShardIndex(api.Workspace.at(workspace, db), index_name, number, flush_s=flush_s)
        settle_serving_process()

    async def call(self, method: str, args: tuple) -> Any:
        """``ShardIndex.<method>(*args)`` (one entry point: the router's transport calls it by name)."""
        if method not in SHARD_METHODS:
            raise api.InputError(f"shard method {method!r} is unknown; expected one of {', '.join(SHARD_METHODS)}")
        if method == "describe":
            return {**self.shard.describe(), "pid": os.getpid()}
        if method in INLINE_METHODS:
            return getattr(self.shard, method)(*args)
        return await asyncio.to_thread(getattr(self.shard, method), *args)

    def __del__(self) -> None:  # Ray Serve calls it when it stops the replica: save what is unsaved
        shard = self.__dict__.get("shard")
        if shard is not None:
            shard.close()


class RouterReplica:
    """The router: the model, the catalog and the merge; its shards' handles come as arguments."""

    def __init__(self, config: ServiceConfig, shard_timeout_s: float, *shards: Any) -> None:
        from indexer.service.cluster.transport import ServeTransport

        self.config = config
        self.live = api.ClusterCatalog(api.Workspace.at(config.workspace, config.db), config.index,
                                       ServeTransport(list(shards), shard_timeout_s), flush_s=config.flush_s)
        settle_serving_process()

    def __serve_build_asgi_app__(self):  # Ray Serve's hook: the ASGI app of this replica, built after __init__
        return create_app(self.config, self.live)

    def __del__(self) -> None:
        live = self.__dict__.get("live")
        if live is not None:
            live.close()

