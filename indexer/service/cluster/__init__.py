"""``indexer serve --ray``: a sharded index on Ray Serve. One deployment per shard (:mod:`.deployments`), a
router deployment that is the same FastAPI app as ``indexer serve`` over :class:`indexer.api.ClusterCatalog`,
and the transport between them (:mod:`.transport`: Ray Serve handles). Ray Serve places, restarts and routes;
this package only says which shard is which."""

from indexer.service.cluster.server import ClusterOptions, serve_on_ray

__all__ = ["ClusterOptions", "serve_on_ray"]
