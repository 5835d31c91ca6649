"""Two checkouts' ``indexer serve`` side by side on one workspace: queries and single writes, arms alternating.

For each round and arm (A, B, A, B, ...): the served workspace (``--workspace``, e.g. ``serve_million.py``'s
``ws-fresh``) is copied to a scratch folder, that checkout's ``cli.py serve`` started on it, and one client times
``--queries`` JSON vector queries (after 20 warm-up ones), ``--writes`` ``POST /points`` and as many ``DELETE``s
of them, over loopback; then the service stops and the copy goes. The vectors are the realistic synthetic rows
``serve_million.py`` generates (``--n`` must be the workspace's). Prints each arm's p50 / p99 per round and the
median of its p50s. A checkout is any folder with a ``cli.py`` (``git worktree add /tmp/old COMMIT``); both run
with this Python.

Usage: python benchmarks/serve_ab.py --workspace /tmp/sm1m/ws-fresh --a /tmp/old --b . [--n 1000000]
       [--rounds 2] [--queries 300] [--writes 200] [--json out.json]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's indexer

from serve_million import free_port, start_service, wait_until_up  # noqa: E402 - the service run's own helpers (this folder)


def timed(call) -> float:
    started = time.perf_counter()
    call().raise_for_status()
    return (time.perf_counter() - started) * 1e3


def one_arm(checkout: Path, workspace: Path, queries: np.ndarray, extra: np.ndarray, writes: int) -> dict:
    import httpx

    scratch = Path(tempfile.mkdtemp(prefix="serve-ab-"))
    try:
        shutil.copytree(workspace, scratch / "ws")
        port = free_port()
        server = start_service(scratch / "ws", port, checkout)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as client:
                wait_until_up(client)
                for vector in queries[:20]:
                    client.post("/query", json={"vector": vector.tolist(), "k": 10})
                query = [timed(lambda v=v: client.post("/query", json={"vector": v.tolist(), "k": 10})) for v in queries]
                ids, post = [], []
                for i in range(writes):
                    started = time.perf_counter()
                    answer = client.post("/points", json={"path": f"ab-{i}", "vector": extra[i].tolist()})
                    post.append((time.perf_counter() - started) * 1e3)
                    answer.raise_for_status()
                    ids.append(answer.json()["id"])
                delete = [timed(lambda i=i: client.delete(f"/images/{i}")) for i in ids]
        finally:
            server.terminate()
            server.wait(timeout=120)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {name: {"p50": round(float(np.percentile(times, 50)), 3), "p99": round(float(np.percentile(times, 99)), 3)}
            for name, times in (("query_ms", query), ("points_ms", post), ("delete_ms", delete))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--a", required=True, help="checkout A (a folder with cli.py)")
    parser.add_argument("--b", required=True, help="checkout B")
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--writes", type=int, default=200)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    from indexer.bench.synthetic_bench import synthetic_data
    from indexer.core.files import write_json

    data = synthetic_data(args.n + args.writes, args.dim, args.queries, 0, seed=0, data="realistic")
    arms = {"A": Path(args.a).resolve(), "B": Path(args.b).resolve()}
    rows = []
    for round_no in range(1, args.rounds + 1):
        for arm, checkout in arms.items():
            row = {"round": round_no, "arm": arm, **one_arm(checkout, Path(args.workspace), data.queries,
                                                             data.base[args.n:], args.writes)}
            rows.append(row)
            print(f"round {round_no} {arm}: " + ", ".join(f"{name} p50 {row[name]['p50']} / p99 {row[name]['p99']}"
                                                         for name in ("query_ms", "points_ms", "delete_ms")), flush=True)
    medians = {arm: {name: round(statistics.median(r[name]["p50"] for r in rows if r["arm"] == arm), 3)
                     for name in ("query_ms", "points_ms", "delete_ms")} for arm in arms}
    print(f"median p50s: A ({arms['A']}) {medians['A']}; B ({arms['B']}) {medians['B']}")
    if args.json:
        write_json(args.json, {"workspace": args.workspace, "a": str(arms["A"]), "b": str(arms["B"]), "n": args.n,
                               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rows": rows,
                               "median_p50": medians})


if __name__ == "__main__":
    main()
