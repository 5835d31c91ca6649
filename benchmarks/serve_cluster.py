"""A sharded index on Ray Serve (``indexer serve --ray``) against the same index served by plain ``indexer serve``.

Realistic synthetic N × d vectors (the bench's generator, seed 0) are imported with ``indexer import`` and
indexed once with ``indexer build --index ivf --shards S`` (tuned to recall@10 0.95): the whole index and its S
shard files. A local Ray cluster of two nodes (``ray start --head`` + ``ray start --address``, one CPU each) runs
the shards and the router; plain ``indexer serve`` serves the whole index. Over loopback HTTP:

1. the same queries to both: the merged top 10 equal to the whole index's (ids and scores);
2. JSON vector queries from 1 client and from 8 clients, each service alone in turn: p50 / p99 ms, and the
   router's overhead (router p50 − plain p50);
3. ``kill -9`` of one shard's replica while 8 clients query (half of them with ``complete=true``): complete,
   partial and refused (503) answers, other errors, and the time from the kill until complete answers return.

Usage: python benchmarks/serve_cluster.py [--n 2000000] [--dim 128] [--shards 4] [--queries 300]
       [--clients 8] [--workdir /tmp/serve-cluster] [--reuse] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def log(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def indexer(workspace: Path, *args: str) -> str:
    command = [sys.executable, str(ROOT / "cli.py"), "--workspace", str(workspace), *args]
    return subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT).stdout


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentiles(times_ms: list[float]) -> dict[str, float]:
    ordered = sorted(times_ms)
    return {"p50": round(statistics.median(ordered), 3), "p99": round(ordered[int(0.99 * (len(ordered) - 1))], 3),
            "n": len(ordered)}


def start_server(workspace: Path, port: int, env: dict, *args: str, timeout_s: float = 900) -> subprocess.Popen:
    import httpx

    log_file = open(workspace.parent / f"serve-{port}.log", "w")  # noqa: SIM115 - kept open while it runs
    process = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "--workspace", str(workspace), "serve",
                                "--index", "served", "--port", str(port), "--save-every", "86400", *args],
                               cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"serve exited; see {log_file.name}")
        try:
            answer = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
            if answer.status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise RuntimeError(f"serve did not answer in {timeout_s} s")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def ask(client, vector: np.ndarray, complete: bool = False):
    return client.post("/query", params={"complete": "true"} if complete else None,
                       json={"vector": vector.tolist(), "k": 10})


def timed(url: str, queries: np.ndarray, clients: int) -> dict:
    """p50 / p99 ms of ``queries`` spread over ``clients`` threads (each its own connection), and queries/s."""
    import httpx

    times: list[float] = []
    lock = threading.Lock()

    def worker(part: np.ndarray) -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            ask(client, part[0])  # the connection is open before timing
            for vector in part:
                started = time.perf_counter()
                answer = ask(client, vector)
                elapsed = (time.perf_counter() - started) * 1e3
                answer.raise_for_status()
                with lock:
                    times.append(elapsed)

    threads = [threading.Thread(target=worker, args=(part,)) for part in np.array_split(queries, clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {**percentiles(times), "qps": round(len(times) / (time.perf_counter() - started), 1)}


def replica_pids(port: int, deployment: str) -> list[int]:
    from indexer.service.cluster.local import replica_pids as pids

    return pids(f"indexer-{port}", deployment)


def kill_under_load(url: str, port: int, queries: np.ndarray, clients: int, seconds: float) -> dict:
    """kill -9 shard 1's replica after a second of load; count the answers until ``seconds`` after the kill."""
    import httpx

    counts = {"complete": 0, "partial": 0, "refused_503": 0, "other_errors": 0}
    last_incomplete = [0.0]
    lock = threading.Lock()
    stop_at = [time.monotonic() + 1 + seconds]
    killed_at = [None]

    def worker(number: int) -> None:
        strict = number % 2 == 1
        with httpx.Client(base_url=url, timeout=60) as client:
            i = number
            while time.monotonic() < stop_at[0]:
                try:
                    answer = ask(client, queries[i % len(queries)], complete=strict)
                    body = answer.json() if answer.status_code == 200 else None
                    kind = ("refused_503" if answer.status_code == 503 else "other_errors" if body is None
                            else "partial" if body["partial"] else "complete")
                except httpx.HTTPError:
                    kind = "other_errors"
                with lock:
                    counts[kind] += 1
                    if kind != "complete":
                        last_incomplete[0] = time.monotonic()
                i += clients

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(1)
    (victim,) = replica_pids(port, "shard-1")
    os.kill(victim, signal.SIGKILL)
    killed_at[0] = time.monotonic()
    for thread in threads:
        thread.join()
    recovered = last_incomplete[0] < stop_at[0] - 2  # the last seconds watched were all complete
    return {**counts, "seconds_watched": seconds, "victim_pid": victim, "recovered": recovered,
            "complete_again_after_s": round(max(last_incomplete[0] - killed_at[0], 0.0), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2_000_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--kill-watch-s", type=float, default=40.0, help="0: no kill -9 (latencies only)")
    parser.add_argument("--workdir", default="/tmp/serve-cluster")
    parser.add_argument("--reuse", action="store_true", help="reuse the workdir's imported and built workspace")
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args()
    import httpx

    from indexer.bench.synthetic_bench import synthetic_data
    from indexer.service.cluster.local import ENV, LocalRayCluster

    work = Path(args.workdir)
    workspace = work / "ws"
    reuse = args.reuse and (workspace / "indexes" / "served.shards" / "manifest.json").is_file()
    if not reuse:
        shutil.rmtree(work, ignore_errors=True)
    (work / "vectors").mkdir(parents=True, exist_ok=True)
    log(f"generating {args.n:,} realistic vectors")
    data = synthetic_data(args.n, args.dim, args.queries, 0, seed=0, data="realistic")
    queries = np.ascontiguousarray(data.queries, np.float32)
    report: dict = {"n": args.n, "dim": args.dim, "shards": args.shards, "queries": len(queries),
                    "clients": args.clients, "cpus": os.cpu_count()}
    if not reuse:
        np.save(work / "vectors" / "vectors.npy", data.base)
        with open(work / "vectors" / "meta.csv", "w") as handle:
            handle.write("path,label,split\n")
            handle.writelines(f"item-{i},,\n" for i in range(args.n))
        started = time.perf_counter()
        indexer(workspace, "import", str(work / "vectors"), "--model", "vectors")
        report["import_s"] = round(time.perf_counter() - started, 1)
        log(f"imported in {report['import_s']:.0f} s; building ivf with {args.shards} shards")
        started = time.perf_counter()
        report["build_output"] = indexer(workspace, "build", "--index", "ivf", "--model", "vectors", "--name",
                                         "served", "--shards", str(args.shards)).strip().splitlines()
        report["build_s"] = round(time.perf_counter() - started, 1)
    del data
    sidecar = json.loads((workspace / "indexes" / "served.json").read_text())
    report["search_params"] = sidecar["search_params"]
    log(f"index ready ({sidecar['search_params']}); starting a two-node Ray cluster")
    cluster = LocalRayCluster(cpus=1, root=ROOT).start()
    env = {**cluster.env, **ENV}
    plain_port, router_port = free_port(), free_port()
    plain = router = None
    try:
        started = time.perf_counter()
        router = start_server(workspace, router_port, env, "--ray", "--address", cluster.address,
                              "--shard-timeout", "2")
        report["router_start_s"] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        plain = start_server(workspace, plain_port, env)
        report["plain_start_s"] = round(time.perf_counter() - started, 1)
        plain_url, router_url = f"http://127.0.0.1:{plain_port}", f"http://127.0.0.1:{router_port}"
        log("comparing answers")
        same = 0
        with httpx.Client(base_url=plain_url, timeout=60) as p, httpx.Client(base_url=router_url, timeout=60) as r:
            for vector in queries:
                ours, theirs = ask(r, vector).json(), ask(p, vector).json()
                same += [(h["id"], h["score"]) for h in ours["results"]] == \
                        [(h["id"], h["score"]) for h in theirs["results"]]
        report["identical_top10"] = f"{same}/{len(queries)}"
        log(f"identical top 10: {same}/{len(queries)}")
        for clients in (1, args.clients):
            for name, url in (("plain", plain_url), ("router", router_url)):
                timed(url, queries[:50], clients)  # warm
                report[f"{name}_{clients}_clients"] = timed(url, queries, clients)
                log(f"{name}, {clients} client(s): {report[f'{name}_{clients}_clients']}")
        report["router_overhead_p50_ms_1_client"] = round(report["router_1_clients"]["p50"]
                                                          - report["plain_1_clients"]["p50"], 3)
        if args.kill_watch_s > 0:
            log("kill -9 of shard 1's replica under load")
            report["kill"] = kill_under_load(router_url, router_port, queries, args.clients, args.kill_watch_s)
            log(f"kill: {report['kill']}")
    finally:
        for process in (plain, router):
            if process is not None:
                stop(process)
        cluster.stop()
    print(json.dumps(report, indent=2))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
