"""HNSW graph degree at 1M: FAISS HNSW with M = 16 and M = 32 beside hnswlib (M = 16), one run, same data.

The bench's `hnsw` kind uses M = 32; hnswlib's default graph is M = 16. This measures, on the bench's realistic
vectors, what each setting costs at recall@10 >= 0.95 (the cheapest swept efSearch / ef reaching it, on the
shared grid of indexer/bench/grids.py), so the docs can say why a peer wins where it does.

Usage: python benchmarks/hnsw_degree.py [--n 1000000] [--dim 128] [--degrees 16,32] [--json out.json]
"""

from __future__ import annotations

import argparse
import time

from indexer.bench.peer_bench import bench_peers
from indexer.bench.runner import EXTRA_EXACT, SWEEP_QUERIES, bench_kind
from indexer.bench.sweeps import at_target
from indexer.bench.synthetic_bench import synthetic_data
from indexer.core.factory import IndexParams
from indexer.core.files import write_json
from indexer.core.search import exact_search


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--degrees", default="16,32")
    parser.add_argument("--peers", default="hnswlib")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--target-recall", type=float, default=0.95)
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args()
    started = time.perf_counter()
    data = synthetic_data(args.n, args.dim, 300, 200, seed=0, data="realistic")
    exact = exact_search(data.base, data.base_ids, data.queries, args.k + EXTRA_EXACT)
    results, sweeps = [], {}
    for degree in (int(m) for m in args.degrees.split(",")):
        row, curve = bench_kind(IndexParams("hnsw", hnsw_m=degree), data, exact, args.k, args.target_recall,
                                overhead_repeats=1)
        row["kind"] = f"hnsw M={degree}"
        results.append(row)
        sweeps[row["kind"]] = curve
        print(f"{row['kind']}: built in {row['build_s']:.0f} s, {row['bytes_per_vector']:.0f} bytes/vector", flush=True)
    peers = [name for name in args.peers.split(",") if name]
    if peers:
        rows, curves, notes = bench_peers(peers, base=data.base, base_ids=data.base_ids, queries=data.queries,
                                          exact=exact, k=args.k, target_recall=args.target_recall,
                                          tune_queries=data.tune_queries, n_sweep_queries=SWEEP_QUERIES)
        results += rows
        sweeps.update(curves)
        for note in notes:
            print(f"note: {note}")
    best = at_target(results, sweeps, args.target_recall)
    print(f"n={args.n:,} d={args.dim}; cheapest swept setting with recall@{args.k} >= {args.target_recall}:")
    print("| system | setting | recall@10 | p50 ms | p99 ms | 1-thread q/s | build s | bytes/vec |")
    print("|---|---|---|---|---|---|---|---|")
    for row, point in zip(results, best):
        print(f"| {row['kind']} | {point['value']} | {point['recall']:.3f} | {point['p50_ms']:.3f} | "
              f"{point['p99_ms']:.3f} | {point['qps_1t']:,.0f} | {row['build_s']:.0f} | {row['bytes_per_vector']:.0f} |")
    print(f"({time.perf_counter() - started:.0f} s in all)")
    if args.json_path:
        write_json(args.json_path, {"results": results, "sweeps": sweeps, "at_target": best}, indent=2, default=str)


if __name__ == "__main__":
    main()
