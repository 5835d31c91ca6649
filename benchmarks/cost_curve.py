"""How search cost grows with N: tuned single-query latency per index kind on seeded clustered vectors.

Usage: python benchmarks/cost_curve.py [--ns 10000,100000,1000000] [--dim 128] [--kinds flat,pca,ivf]
       [--json out.json] [--plot out.png]
"""

from __future__ import annotations

import argparse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ns", default="10000,100000,1000000")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--kinds", default="flat,pca,ivf")
    parser.add_argument("--json", default=None)
    parser.add_argument("--plot", default=None)
    args = parser.parse_args()

    from indexer.bench.plots import plot_cost_curve
    from indexer.bench.synthetic_bench import cost_curve
    from indexer.core.files import write_json

    rows = cost_curve([int(n) for n in args.ns.split(",")], args.dim, args.kinds.split(","))
    print(f"{'n':>9}  {'kind':<5}  {'recall@10':>9}  {'p50 ms':>8}  {'build s':>8}")
    for row in rows:
        print(f"{row['n']:>9,}  {row['kind']:<5}  {row['ann_recall_at_k']:>9.3f}  {row['search_ms_p50']:>8.3f}  {row['build_s']:>8.1f}")
    if args.json:
        write_json(args.json, rows, indent=2, default=float)
    if args.plot:
        plot_cost_curve(rows, args.plot)
        print(f"plot written to {args.plot}")


if __name__ == "__main__":
    main()
