"""Choose the re-ranking defaults: P@1 and MAP@R of query expansion and database-side augmentation over a
grid of (n neighbours, alpha), exact search, each image queried against the others of the chosen splits.

The defaults in indexer/core/rerank.py were chosen with --splits train,val (never test).

Usage: python benchmarks/rerank_grid.py WORKSPACE --model mnv2 [--splits train,val] [--ns 1,2,3,5,8]
       [--alphas 0,1,3,5] [--json out.json]
"""

from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("workspace")
    parser.add_argument("--model", required=True)
    parser.add_argument("--splits", default="train,val")
    parser.add_argument("--ns", default="1,2,3,5,8")
    parser.add_argument("--alphas", default="0,1,3,5")
    parser.add_argument("--modes", default="qe,dba")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    from indexer.api.registry.indexes import catalog_vectors
    from indexer.api.workspace import Workspace
    from indexer.bench.runner import BenchData, run_bench
    from indexer.core.files import write_json
    from indexer.core.rerank import Rerank

    workspace = Workspace.at(args.workspace)
    ids, vectors = catalog_vectors(workspace, args.model)
    splits = set(args.splits.split(","))
    with workspace.catalog() as catalog:
        rows = {row.id: row for row in catalog.images()}
    keep = np.array([rows[i].split in splits and rows[i].label_id is not None for i in ids.tolist()])
    ids, vectors = ids[keep], np.ascontiguousarray(vectors[keep])
    labels = np.array([rows[i].label_id for i in ids.tolist()], dtype=np.int64)
    data = BenchData(base=vectors, base_ids=ids, queries=vectors, query_ids=ids, base_labels=labels,
                     query_labels=labels)
    settings = [Rerank()] + [Rerank(mode, n=int(n), alpha=float(a)) for mode in args.modes.split(",")
                             for n in args.ns.split(",") for a in args.alphas.split(",")]
    print(f"{len(ids)} images of splits {sorted(splits)}, model {args.model!r}, exact search (flat)")
    print(f"{'rerank':<24} {'P@1':>6} {'MAP@R':>6} {'ms/query':>9}")
    out = []
    for rerank in settings:
        row = run_bench(data, ["flat"], k=10, n_latency=100, n_tune_queries=10, overhead_repeats=1,
                        with_sweep=False, progress=False, rerank=rerank)["results"][0]
        ms = row.get("rerank_ms_p50", row["search_ms_p50"])
        print(f"{row['rerank']:<24} {row['p_at_1']:>6.4f} {row['map_at_r']:>6.4f} {ms:>9.3f}", flush=True)
        out.append({"rerank": rerank.to_dict(), "p_at_1": row["p_at_1"], "map_at_r": row["map_at_r"],
                    "ms_per_query": ms})
    if args.json:
        write_json(args.json, {"model": args.model, "splits": sorted(splits), "n_images": int(len(ids)), "rows": out},
                   indent=2)


if __name__ == "__main__":
    main()
