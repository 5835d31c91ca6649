"""What one live write costs at N vectors: the segments (a version sharing the sealed index) against the
copy-on-write of a whole index, and what the segments cost a query.

For each kind (flat, ivf): build the index over N realistic vectors (the bench's data, seed 0), then time,
interleaved in rounds,
- ``copy``: the old live write, ``copy_index`` (a FAISS clone) then ``add_vectors`` of one vector;
- ``segment add`` / ``segment delete``: :meth:`SegmentedIndex.added` / :meth:`SegmentedIndex.removed` of one
  vector on a version already holding ``--pending`` growing vectors and as many deletion marks;
- ``served vectors``: :meth:`ServedVectors.changed` of one add (the old one was a concatenate + argsort of N);
- query p50 (one query per call, one thread) on the sealed index alone and on that version, and its recall@10
  against exact search over the live set.

Usage: python benchmarks/segments_write.py [--n 1000000] [--dim 128] [--pending 1000] [--rounds 5]
       [--kinds flat,ivf] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np

from indexer.bench.synthetic_bench import synthetic_data
from indexer.bench.timing import faiss_threads
from indexer.core.build import add_vectors, build_index, copy_index
from indexer.core.factory import IndexParams
from indexer.core.search import exact_search, search
from indexer.core.segments import SegmentedIndex


def _ms(function, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        times.append((time.perf_counter() - started) * 1e3)
    return statistics.median(times)


def _time_rounds(index, version, served, one: tuple, last_id, queries, nprobe: dict, rounds: int) -> dict:
    """Each operation's median ms per round, the rounds interleaved (one FAISS thread)."""
    rows: dict[str, list[float]] = {"copy": [], "segment add": [], "segment delete": [], "served vectors": [],
                                    "query sealed": [], "query segments": []}
    one_id, vector = one
    with faiss_threads(1):
        for round_ in range(rounds):
            print(f"  round {round_ + 1}/{rounds}", file=sys.stderr, flush=True)
            rows["copy"].append(_ms(lambda: add_vectors(copy_index(index), vector, one_id), 1))
            rows["segment add"].append(_ms(lambda: version.added(one_id, vector), 20))
            rows["segment delete"].append(_ms(lambda: version.removed(last_id), 20))
            rows["served vectors"].append(_ms(lambda: served.changed(add=(one_id, vector)), 20))
            rows["query sealed"].append(statistics.median(
                _ms(lambda q=q: search(index, q[None], 10, **nprobe), 1) for q in queries))
            rows["query segments"].append(statistics.median(
                _ms(lambda q=q: search(version, q[None], 10, **nprobe), 1) for q in queries))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--pending", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--kinds", default="flat,ivf")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    from indexer.api.search.held import ServedVectors
    from indexer.core.files import write_json

    data = synthetic_data(args.n + args.pending + 1, args.dim, 200, 0, seed=0, data="realistic")
    base, extra = data.base[:args.n], data.base[args.n:]
    base_ids = np.arange(args.n, dtype=np.int64)
    extra_ids = np.arange(args.n, args.n + len(extra), dtype=np.int64)
    rng = np.random.default_rng(0)
    gone = np.sort(rng.choice(base_ids, args.pending, replace=False))
    served = ServedVectors.by_id(base_ids, base).changed(add=(extra_ids[:-1], extra[:-1]), remove=gone)
    report = {"n": args.n, "dim": args.dim, "pending": args.pending, "kinds": {}}
    for kind in args.kinds.split(","):
        print(f"building {kind} over {args.n:,}", file=sys.stderr, flush=True)
        index, info = build_index(IndexParams(kind=kind, seed=0), base, base_ids)
        nprobe = {"nprobe": 32} if kind == "ivf" else {}
        version = SegmentedIndex(index).added(extra_ids[:-1], extra[:-1])
        version, _ = version.removed(gone)
        one_id, one = extra_ids[-1:], extra[-1:]
        queries = data.queries[:200]
        rows = _time_rounds(index, version, served, (one_id, one), base_ids[-1:], queries, nprobe, args.rounds)
        live = ~np.isin(base_ids, gone)
        _, truth = exact_search(np.concatenate([base[live], extra[:-1]]),
                                np.concatenate([base_ids[live], extra_ids[:-1]]), queries, 10)
        _, found = search(version, queries, 10, **nprobe)
        recall = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth)]))
        medians = {name: round(statistics.median(values), 4) for name, values in rows.items()}
        report["kinds"][kind] = {"median_ms": medians, "recall_at_10_segments": round(recall, 4),
                                 "segments": version.describe(), **nprobe}
        print(json.dumps({kind: report["kinds"][kind]}), flush=True)
    if args.json:
        write_json(args.json, report)


if __name__ == "__main__":
    main()
