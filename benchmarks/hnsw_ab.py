"""Our HNSW against hnswlib at recall@10 >= 0.95, timed interleaved so that the machine's load hits both alike.

The bench sweeps one system after the other, minutes apart; on a shared machine the load changes between them
and a p50 ratio of two sweeps moves by ±30 %. Here both indexes are built on the same realistic vectors (the
bench's data, seed 0), the recall of each setting is measured against exact search, and then the latency of
every setting is timed in rounds: each round times every (system, setting) over the same 300 queries, one
query per call on one thread, in a new random order of the systems. Reported: the median over rounds of each
setting's p50, and for the cheapest setting of each system reaching the target, the ratio of p50s per round
(median, min, max).

Usage: python benchmarks/hnsw_ab.py [--n 1000000] [--dim 128] [--rounds 7] [--settings 24,32,40,48,64]
       [--kinds hnsw,hnsw-fp16] [--json out.json]
(--settings: the efSearch / ef values timed for both; integers, so a fine list near the target finds each
system's own cheapest setting, as the tuner's bisection does; --kinds: our graph kinds timed, each against
hnswlib.)
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from indexer.bench.peers.hnswlib_peer import EF_CONSTRUCTION, HnswlibPeer, M
from indexer.bench.runner import EXTRA_EXACT
from indexer.bench.synthetic_bench import synthetic_data
from indexer.bench.timing import faiss_threads
from indexer.core.build import build_index
from indexer.core.factory import IndexParams
from indexer.core.fidelity import ann_recall_at_k
from indexer.core.files import write_json
from indexer.core.search import exact_search, search
from indexer.core.settings import search_parameters

SETTINGS = (24, 32, 40, 48, 64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--target-recall", type=float, default=0.95)
    parser.add_argument("--settings", default=",".join(map(str, SETTINGS)))
    parser.add_argument("--kinds", default="hnsw", help="Our HNSW kinds, comma-separated (hnsw, hnsw-fp16).")
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args()
    kinds = [kind.strip() for kind in args.kinds.split(",") if kind.strip()]
    settings = tuple(int(value) for value in args.settings.split(","))
    started = time.perf_counter()
    data = synthetic_data(args.n, args.dim, 300, 200, seed=0, data="realistic")
    queries, k = data.queries, args.k
    gt_scores, gt_ids = exact_search(data.base, data.base_ids, queries, k + EXTRA_EXACT)

    ours, build_s = {}, {}
    for kind in kinds:
        t0 = time.perf_counter()
        ours[kind], info = build_index(IndexParams(kind), data.base, data.base_ids)
        build_s[f"indexer {kind}"] = time.perf_counter() - t0
        print(f"built: {kind} ({info.factory}, efConstruction 40) {build_s[f'indexer {kind}']:.0f} s", flush=True)
    peer = HnswlibPeer()
    t0 = time.perf_counter()
    peer.build(data.base_ids, data.base, None)
    build_s["hnswlib"] = time.perf_counter() - t0
    print(f"built: hnswlib M={M} (efConstruction {EF_CONSTRUCTION}) {build_s['hnswlib']:.0f} s", flush=True)

    def ours_at(kind, value):  # per-call settings, as the bench and the query path search
        index = ours[kind]
        params = search_parameters(index, efSearch=value)
        return (lambda: None), (lambda row: search(index, row, k, params=params)[1][0])

    def peer_at(value):  # hnswlib keeps ef on the index: set before each block of queries
        return (lambda: peer.set_knob(value)), (lambda row: peer.query(row[0], k))

    systems = {(f"indexer {kind}", v): ours_at(kind, v) for kind in kinds for v in settings}
    systems |= {("hnswlib", v): peer_at(v) for v in settings}
    rows = [queries[i:i + 1] for i in range(queries.shape[0])]
    recall = {}
    for key, (setup, fn) in systems.items():
        setup()
        found = np.stack([fn(row) for row in rows])
        recall[key] = float(ann_recall_at_k(found, gt_ids, k, exact_scores=gt_scores))
    rng = np.random.default_rng(0)
    p50s = {key: [] for key in systems}
    with faiss_threads(1):
        for round_no in range(args.rounds):
            for i in rng.permutation(len(systems)):
                key = list(systems)[i]
                setup, fn = systems[key]
                setup()
                fn(rows[0])
                seconds = np.empty(len(rows))
                for j, row in enumerate(rows):
                    t = time.perf_counter()
                    fn(row)
                    seconds[j] = time.perf_counter() - t
                p50s[key].append(float(np.median(seconds)) * 1e3)
            print(f"round {round_no + 1}/{args.rounds} done", flush=True)
    peer.close()

    print(f"n={args.n:,} d={args.dim}, 300 queries, {args.rounds} interleaved rounds; median over rounds of p50:")
    print("| system | setting | recall@10 | p50 ms (median of rounds) | min–max of rounds |")
    print("|---|---|---|---|---|")
    for key in systems:
        values = p50s[key]
        print(f"| {key[0]} | {key[1]} | {recall[key]:.3f} | {np.median(values):.3f} | "
              f"{min(values):.3f}–{max(values):.3f} |")
    pick = {}
    for name in [f"indexer {kind}" for kind in kinds] + ["hnswlib"]:
        reaching = [v for v in settings if recall[(name, v)] >= args.target_recall]
        pick[name] = min(reaching) if reaching else None
    summary = {"pick": pick, "ratio": {}}
    for kind in kinds:
        name = f"indexer {kind}"
        if pick[name] is None or pick["hnswlib"] is None:
            print(f"{name} or hnswlib reaches recall {args.target_recall} at none of the settings")
            continue
        ratios = np.array(p50s[(name, pick[name])]) / np.array(p50s[("hnswlib", pick["hnswlib"])])
        summary["ratio"][name] = {"median": float(np.median(ratios)), "min": float(ratios.min()),
                                  "max": float(ratios.max())}
        print(f"cheapest reaching {args.target_recall}: {name} efSearch {pick[name]}, hnswlib ef "
              f"{pick['hnswlib']}; p50 ratio {name}/hnswlib per round: median {np.median(ratios):.2f} "
              f"(min {ratios.min():.2f}, max {ratios.max():.2f})")
    print(f"({time.perf_counter() - started:.0f} s in all)")
    if args.json_path:
        write_json(args.json_path, {
            "n": args.n, "dim": args.dim, "rounds": args.rounds, "build_s": build_s,
            "rows": [{"system": key[0], "setting": key[1], "recall": recall[key], "p50_ms_rounds": p50s[key]}
                     for key in systems], **summary}, indent=2)


if __name__ == "__main__":
    main()
