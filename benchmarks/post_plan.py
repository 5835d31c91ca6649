"""The "post" plan of a filtered IVF search against the "filtered" one, side by side, at N vectors.

Loads the IVF index that ``benchmarks/serve_million.py`` built (``--workdir``/ws-fresh) and the vectors it
imported (``--workdir``/vectors), selects ids with the filter bench's two fields (``category``, ``value``:
independent of where a vector lies, see :mod:`indexer.bench.filtered_bench`) and, for each fraction, answers the
queries one at a time with: the unfiltered search (the reference p50); the "filtered" plan (a selector, nprobe
widened); and the "post" plan at each (over-fetch, widen) asked for. Prints recall@10 within the selection,
p50 and the ratio to the unfiltered p50, and writes them with ``--json``.

Usage: python benchmarks/post_plan.py [--workdir /tmp/sm1m] [--fractions 0.1,0.25,0.5] [--overfetch 2,3]
       [--widen 1.25,1.5] [--queries 300] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's indexer


def floats(text: str) -> list[float]:
    return [float(part) for part in text.split(",") if part]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="/tmp/serve-million")
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--changes", type=int, default=50_000, help="as serve_million was run (its queries)")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--fractions", type=floats, default=[0.1, 0.25, 0.5])
    parser.add_argument("--overfetch", type=floats, default=[2.0, 3.0])
    parser.add_argument("--widen", type=floats, default=[1.25, 1.5])
    parser.add_argument("--filtered-widen", type=floats, default=[],
                        help="also the filtered plan at these multiples of the unfiltered nprobe")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    from indexer.bench.filtered_bench import _recall, _timed, selections
    from indexer.bench.synthetic_bench import synthetic_data
    from indexer.core import filtered
    from indexer.core.factory import find_ivf
    from indexer.core.filtered import Plan, Selection, choose_plan, search_within
    from indexer.core.index_io import load_index
    from indexer.core.membership import indexed_ids
    from indexer.core.search import exact_search, search

    folder = Path(args.workdir) / "ws-fresh" / "indexes"
    index, sidecar = load_index(folder / "served.faiss")  # at the tuned nprobe
    nprobe = int(sidecar["search_params"]["nprobe"])
    base = np.load(Path(args.workdir) / "vectors" / "vectors.npy")  # what serve_million imported, row i as id i + 1
    queries = synthetic_data(args.n + args.changes, base.shape[1], args.queries, 0, seed=0, data="realistic").queries
    ivf = find_ivf(index)
    ids = indexed_ids(index)
    assert len(ids) == args.n and ids[0] == 1 and ids[-1] == args.n, "ids 1..n expected (serve_million's import)"
    _, plain_times = _timed(lambda q: search(index, q, 10), queries)
    plain = float(np.median(plain_times))
    _, plain_found = search(index, queries, 10)
    plain_recall = _recall(plain_found, exact_search(base, ids, queries, 10)[1])
    print(f"unfiltered nprobe {nprobe}: recall@10 {plain_recall:.4f}, p50 {plain:.3f} ms", flush=True)
    rows = []
    for (field, fraction), chosen in selections(args.n, tuple(args.fractions), 0).items():
        allowed = chosen + 1
        truth = exact_search(base[chosen], allowed, queries, 10)[1]
        selection = Selection(allowed)
        default = choose_plan(index, len(allowed), args.n, k=10)
        widened = Plan("filtered", len(allowed), nprobe=min(int(ivf.nlist), math.ceil(
            nprobe * filtered.widened(len(allowed), args.n))))
        variants = [("chosen: " + default.kind, default, None), ("filtered", widened, None)]
        variants += [(f"filtered widen {widen:g}", Plan("filtered", len(allowed), nprobe=math.ceil(nprobe * widen)),
                      None) for widen in args.filtered_widen]
        variants += [(f"post x{over:g} widen {widen:g}", Plan("post", len(allowed), nprobe=math.ceil(nprobe * widen)),
                      over) for over in args.overfetch for widen in args.widen]
        for name, plan, over in variants:
            saved = filtered.POST_OVERFETCH
            filtered.POST_OVERFETCH = over if over is not None else saved
            try:
                found, times = _timed(lambda q, plan=plan, s=selection: search_within(index, q, 10, s, plan), queries)
            finally:
                filtered.POST_OVERFETCH = saved
            p50 = float(np.median(times))
            row = {"field": field, "fraction": fraction, "variant": name, "nprobe": plan.nprobe,
                   "recall": round(_recall(found, truth), 4), "p50_ms": round(p50, 3),
                   "p99_ms": round(float(np.percentile(times, 99)), 3), "ratio": round(p50 / plain, 2)}
            rows.append(row)
            print(" ".join(f"{key} {value}" for key, value in row.items()), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"unfiltered_p50_ms": plain, "unfiltered_recall": plain_recall, "nprobe": nprobe, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
