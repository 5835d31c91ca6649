"""Ray Serve's own floor on this machine: issue 30's topology with no work in it.

``serve_cluster.py`` measures the router's overhead over plain ``indexer serve`` (target: within 3 ms at one
client). This asks how much of it is Ray Serve's, whatever our code does: the same local two-node Ray cluster,
the same Serve switches as ``indexer serve --ray`` (its environment for Serve's actors, HAProxy direct ingress,
no access log, gRPC calls between deployments, ``num_cpus`` 0; ``--env`` and ``--access-log`` change them), and
apps that do nothing but pass the query along:

- ``plain``: one uvicorn + FastAPI process answering ``POST /query`` with a fixed 10-result answer (the floor of
  plain ``indexer serve``: no catalog, no index);
- ``ingress``: the same FastAPI route in a Serve ingress replica behind HAProxy (one HTTP hop into Serve);
- ``fanout-1`` / ``fanout-S``: that replica also calls 1 / S no-op shard deployments through their handles, as
  the router does, and awaits them together on its own event loop (the cheapest way to await them: no worker
  thread);
- ``fanout-S-ours``: the same S calls made as the router makes them: from a worker thread (where the query
  engine runs) through :class:`indexer.service.cluster.transport.ServeTransport` and its own event loop.

Each variant is up at once under its own route; ``--rounds`` rounds time each in turn (``--queries`` JSON vector
queries at 1 client, then at ``--clients`` clients, each on one kept-open connection, the same client as
``serve_cluster.py``). Medians over the rounds of each round's p50 / p99 are reported, and each Serve variant's p50
minus ``plain``'s: the part of the router's overhead no code of ours can remove on this machine.

Usage: python benchmarks/serve_floor.py [--shards 4] [--queries 300] [--clients 8] [--rounds 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from serve_cluster import free_port, log, timed  # noqa: E402 - the same client and timing as the router's run

ANSWER = {"results": [{"id": i, "score": 0.5, "path": f"item-{i}"} for i in range(10)], "partial": False}
PLAIN_APP = """
import sys, uvicorn
from fastapi import FastAPI
app = FastAPI()
ANSWER = {answer!r}
@app.post("/query")
def query(body: dict):
    return ANSWER
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
"""


def plain_server(port: int) -> subprocess.Popen:
    """The ``plain`` variant: a bare FastAPI app under uvicorn, as ``indexer serve`` runs its app."""
    import httpx

    process = subprocess.Popen([sys.executable, "-c", PLAIN_APP.format(answer=ANSWER), str(port)],
                               start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.post(f"http://127.0.0.1:{port}/query", json={"vector": [0.0]}, timeout=2)
            return process
        except httpx.HTTPError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError("the plain FastAPI app did not answer in 60 s")


def serve_apps(port: int, shards: list[int], env: dict[str, str], access_log: bool) -> list[str]:
    """Deploy ``ingress`` and ``fanout-S`` for each S in ``shards`` on the connected Ray, with ``env`` in every
    actor Serve starts; their route prefixes."""
    from fastapi import FastAPI
    from fastapi.concurrency import run_in_threadpool
    from ray import serve

    from indexer.service.cluster.server import REPLICA_LOGGING, serve_env

    serve.start(http_options={"host": "127.0.0.1", "port": port, "location": "HeadOnly"},
                controller_options={"runtime_env": {"env_vars": {**serve_env(), **env}}})
    free = {"num_cpus": 0}
    logs = {**REPLICA_LOGGING, **({"enable_access_log": True} if access_log else {})}

    @serve.deployment(ray_actor_options=free, max_ongoing_requests=64, logging_config=logs)
    class NoopShard:
        async def call(self, method: str, args: tuple):
            return [(0.5, i) for i in range(10)]

    def router_class(ours: bool):
        app = FastAPI()

        @serve.deployment(ray_actor_options=free, max_ongoing_requests=64, logging_config=logs)
        @serve.ingress(app)
        class Router:
            def __init__(self, *handles) -> None:
                from indexer.service.cluster.transport import ServeTransport

                self.handles = [handle.options(_by_reference=False) for handle in handles]
                self.transport = ServeTransport(list(handles), 2.0) if ours else None

            @app.post("/query")
            async def query(self, body: dict):
                if self.transport is not None:  # as the router: the engine's worker thread, the transport's loop
                    await run_in_threadpool(self.transport.call, "search",
                                            {number: (body["vector"],) for number in range(len(self.handles))})
                elif self.handles:
                    await asyncio.gather(*(handle.call.remote("search", (body["vector"],))
                                           for handle in self.handles))
                return ANSWER

        return Router

    routes = []
    for count, ours in ((0, False), *((count, False) for count in shards), (shards[-1], True)):
        name = "ingress" if count == 0 else f"fanout-{count}" + ("-ours" if ours else "")
        noops = [NoopShard.options(name=f"{name}-shard-{i}").bind() for i in range(count)]
        serve.run(router_class(ours).options(name=f"{name}-router").bind(*noops), name=name,
                  route_prefix=f"/{name}", blocking=False)
        routes.append(name)
    for name in routes:  # every replica up before timing
        while serve.status().applications[name].status != "RUNNING":
            time.sleep(0.5)
    return routes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="a Ray Serve switch for every actor Serve starts (repeatable)")
    parser.add_argument("--access-log", action="store_true", help="replicas log a line per request")
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.env)
    import ray

    from indexer.service.cluster.local import LocalRayCluster

    queries = np.random.default_rng(0).standard_normal((args.queries, args.dim)).astype(np.float32)
    report: dict = {"shards": args.shards, "queries": args.queries, "clients": args.clients, "rounds": args.rounds,
                    "cpus": os.cpu_count(), "env": env, "access_log": args.access_log,
                    "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    log("starting a two-node Ray cluster")
    cluster = LocalRayCluster(cpus=1, root=ROOT).start()
    os.environ.update({key: value for key, value in cluster.env.items() if key.startswith("RAY_")})
    plain_port, serve_port = free_port(), free_port()
    plain = None
    try:
        plain = plain_server(plain_port)
        ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
        routes = serve_apps(serve_port, sorted({1, args.shards}), env, args.access_log)
        urls = {"plain": f"http://127.0.0.1:{plain_port}",
                **{name: f"http://127.0.0.1:{serve_port}/{name}" for name in routes}}
        log(f"up: {', '.join(urls)}")
        runs: dict[str, dict[int, list[dict]]] = {name: {1: [], args.clients: []} for name in urls}
        for round_number in range(args.rounds):
            for clients in (1, args.clients):
                for name, url in urls.items():
                    timed(url, queries[:30], clients)  # warm
                    runs[name][clients].append(timed(url, queries, clients))
            log(f"round {round_number + 1}: " + ", ".join(f"{name} {runs[name][1][-1]['p50']:.2f} ms"
                                                          for name in urls))
        summary = {}
        for name in urls:
            summary[name] = {f"{clients}_clients": {key: round(statistics.median(run[key] for run in done), 3)
                                                    for key in ("p50", "p99", "qps")}
                             for clients, done in runs[name].items()}
        base = summary["plain"]["1_clients"]["p50"]
        for name in routes:
            summary[name]["overhead_p50_ms_1_client"] = round(summary[name]["1_clients"]["p50"] - base, 3)
        report.update(summary=summary, runs={name: {str(c): r for c, r in v.items()} for name, v in runs.items()})
    finally:
        if plain is not None:
            plain.kill()
        if ray.is_initialized():
            from ray import serve

            serve.shutdown()
            ray.shutdown()
        cluster.stop()
    print(json.dumps(report["summary"], indent=2))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
