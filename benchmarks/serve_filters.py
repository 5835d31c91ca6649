"""Filtered queries against `indexer serve` at a million, over loopback HTTP (issue 27).

Serves a copy of the workspace `benchmarks/serve_million.py` imported and built (its `ws-fresh`: N synthetic
vectors whose catalog paths are ``item-0`` … ``item-{N-1}``, catalog id = i + 1). A filter on the catalog's own
``path`` field then selects a known share of them with no fields to generate: ``path prefix "item-1"`` holds
item-1, item-10 … item-199999 (111,111 of a million, 11 %), ``"item-12"`` 1.1 %, ``"item-123"`` 0.11 %, and so on.
For each filter, one client sends ``POST /query`` JSON vector queries with ``"filter"``:

- the first query of a filter (its selection not cached yet: the catalog's SQL, then the search), and again
  after the selection cache's lifetime has passed (``--cold`` times);
- then ``--queries`` more, one after another (the selection cached), timed end to end, with the service's own
  parts from its ``Server-Timing`` header (``filter``, ``search``);
- recall@10 of each answer against exact search over the selected vectors (numpy, this process).

Usage: python benchmarks/serve_filters.py --workdir /tmp/sm1m [--changes 50000] [--prefixes item-1,item-12,...]
       [--json out.json]   (--changes: the value serve_million.py was given for that workdir)
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np
from serve_million import free_port, log, percentiles, start_service, wait_until_up  # a sibling script

DEFAULT_PREFIXES = "item-12345,item-1234,item-123,item-12,item-1"


def selected_rows(n: int, prefix: str) -> np.ndarray:
    """Rows i (0-based; catalog id i + 1) whose path ``item-i`` starts with ``prefix``."""
    digits = prefix.removeprefix("item-")
    return np.array([i for i in range(n) if str(i).startswith(digits)], np.int64) if digits else np.arange(n)


def server_parts(header: str) -> dict[str, float]:
    """``{"filter": ms, "search": ms, ...}`` from a Server-Timing header (``name;dur=1.23, ...``)."""
    parts = {}
    for item in header.split(","):
        name, _, rest = item.strip().partition(";")
        if rest.startswith("dur="):
            parts[name] = float(rest[4:])
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="/tmp/serve-million", help="serve_million.py's --workdir")
    parser.add_argument("--prefixes", default=DEFAULT_PREFIXES)
    parser.add_argument("--queries", type=int, default=200, help="cached-selection queries per filter")
    parser.add_argument("--cold", type=int, default=3, help="uncached first queries per filter")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--changes", type=int, default=50_000, help="serve_million.py's --changes for that workdir")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    import httpx

    from indexer.api.search.selections import SELECTION_TTL_S  # a cached selection is read again after it
    from indexer.bench.synthetic_bench import synthetic_data
    from indexer.core.files import write_json

    work = Path(args.workdir)
    fresh = work / "ws-fresh"
    if not (fresh / "indexes" / "served.json").is_file():
        raise SystemExit(f"{fresh}: no built workspace; run benchmarks/serve_million.py --workdir {work} first")
    base = np.load(work / "vectors" / "vectors.npy", mmap_mode="r")
    n, dim = base.shape
    # serve_million's own queries: its data is drawn for n + changes vectors (the mixture depends on the count)
    queries = synthetic_data(n + args.changes, dim, args.queries, 0, seed=0, data="realistic").queries
    workspace = work / "ws-filters"
    shutil.rmtree(workspace, ignore_errors=True)
    shutil.copytree(fresh, workspace)
    port = free_port()
    server = start_service(workspace, port)
    report: dict = {"n": int(n), "dim": int(dim), "k": args.k, "filters": []}
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600)
        wait_until_up(client)

        def ask(vector: np.ndarray, where: str | None) -> tuple[float, dict, list[int], dict]:
            body = {"vector": vector.tolist(), "k": args.k, **({"filter": where} if where else {})}
            started = time.perf_counter()
            answer = client.post("/query", json=body)
            took = (time.perf_counter() - started) * 1e3
            answer.raise_for_status()
            data = answer.json()
            return took, data, [hit["id"] for hit in data["results"]], server_parts(
                answer.headers.get("server-timing", ""))

        for vector in queries[:20]:
            ask(vector, None)  # warm-up
        plain = [ask(vector, None)[0] for vector in queries]
        report["unfiltered_ms"] = percentiles(plain)
        log(f"unfiltered: p50 {report['unfiltered_ms']['p50']:.2f} ms")
        for prefix in args.prefixes.split(","):
            where = f'path prefix "{prefix}"'
            rows = selected_rows(int(n), prefix)
            cold, cold_filter = [], []
            for i in range(args.cold):
                if i:
                    time.sleep(SELECTION_TTL_S + 0.5)  # the cached selection has expired
                took, data, _, parts = ask(queries[i], where)
                cold.append(took)
                cold_filter.append(parts.get("filter", float("nan")))
            times, filter_ms, search_ms, recalls = [], [], [], []
            plan, selected = None, np.asarray(base[rows])  # the selected vectors, for exact search within them
            for vector in queries:
                took, data, ids, parts = ask(vector, where)
                times.append(took)
                filter_ms.append(parts.get("filter", float("nan")))
                search_ms.append(parts.get("search", float("nan")))
                plan = data["plan"]
                top = rows[np.argsort(-(selected @ vector))[:args.k]] + 1  # catalog id = row + 1
                recalls.append(len(set(ids) & set(top.tolist())) / max(1, min(args.k, len(rows))))
            row = {"filter": where, "selected": int(len(rows)), "share": len(rows) / n, "plan": plan,
                   "cold_ms": [round(t, 2) for t in cold], "cold_filter_ms": [round(t, 2) for t in cold_filter],
                   "cached_ms": percentiles(times), "filter_part_p50_ms": float(np.nanmedian(filter_ms)),
                   "search_part_p50_ms": float(np.nanmedian(search_ms)),
                   "recall_at_k": float(np.mean(recalls)) if recalls else None,
                   "p50_over_unfiltered": percentiles(times)["p50"] / report["unfiltered_ms"]["p50"]}
            report["filters"].append(row)
            log(f"{where}: {len(rows):,} selected ({100 * len(rows) / n:.3f} %), plan {plan}; first query "
                f"{', '.join(f'{t:.0f}' for t in cold)} ms (filter part {', '.join(f'{t:.0f}' for t in cold_filter)}); "
                f"cached p50 {row['cached_ms']['p50']:.2f} ms ({row['p50_over_unfiltered']:.2f}x unfiltered), "
                f"recall@{args.k} {row['recall_at_k']}")
    finally:
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(workspace, ignore_errors=True)
    if args.json:
        write_json(Path(args.json), report)


if __name__ == "__main__":
    main()
