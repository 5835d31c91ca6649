"""A partition plan for filtered HNSW search, measured against FAISS's filtered graph search (issue 27).

The idea: keep about √n spherical k-means centroids over the graph's stored vectors and each cluster's rows; a
filtered query compares itself with the centroids, then only with the *selected* rows of its nprobe nearest
clusters (the selected rows grouped by cluster once per selection, outside the timed loop). This script builds
`hnsw` on the bench's realistic vectors (seed 0; the index is cached in --cache), tunes efSearch to recall@10
0.95 unfiltered, and prints, for the filter bench's 10 % and 50 % selections, recall@10 within the selection and
the p50 of (a) the filtered graph search at 3x the tuned efSearch and (b) the partition plan at several nprobe,
each as a ratio to the unfiltered p50. It was not kept: at 1M it lost to (a) (docs/BENCHMARKS.md).

Usage: python benchmarks/partition_plan.py [N] [--cache DIR]
"""
import argparse
import os
import sys
import time
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from indexer.bench.filtered_bench import selections  # noqa: E402
from indexer.bench.selection_recall import recall_within  # noqa: E402
from indexer.bench.synthetic_bench import synthetic_data  # noqa: E402
from indexer.core.build import build_index  # noqa: E402
from indexer.core.factory import IndexParams  # noqa: E402
from indexer.core.filtered import Plan, Selection, search_within  # noqa: E402
from indexer.core.search import exact_search, search  # noqa: E402
from indexer.core.tuning import tune_search_param  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("n", type=int, nargs="?", default=1_000_000)
parser.add_argument("--cache", default="/tmp/proto")
args = parser.parse_args()
n = args.n
k = 10
data = synthetic_data(n, 128, 300, 200, seed=0, data="realistic")
base, queries = data.base, data.queries
ids = np.arange(n, dtype=np.int64)
path = os.path.join(args.cache, f"hnsw-{n}.faiss")
os.makedirs(args.cache, exist_ok=True)
t = time.time()
if os.path.exists(path):
    index = faiss.read_index(path)
else:
    index, _ = build_index(IndexParams(kind="hnsw", seed=0), base, ids)
    faiss.write_index(index, path)
print("index", time.time() - t, flush=True)
tuned = tune_search_param(index, base, ids, k=k, target_recall=0.95, queries=data.tune_queries)
print("tuned", tuned, flush=True)
ef = int(tuned.value)

# the storage, zero-copy
hnsw_index = faiss.downcast_index(index.index) if hasattr(index, "id_map") else index
id_map = faiss.vector_to_array(index.id_map) if hasattr(index, "id_map") else ids
storage = faiss.downcast_index(hnsw_index.storage)
codes = faiss.rev_swig_ptr(storage.codes.data(), storage.codes.size()).view(np.float32).reshape(-1, 128)
print("codes", codes.shape, codes.dtype, flush=True)

# the partition: k-means on a sample, assign every stored row
t = time.time()
c = int(min(1024, round(np.sqrt(n))))
rng = np.random.default_rng(0)
sample = codes[np.sort(rng.choice(n, 40 * c, replace=False))]
km = faiss.Kmeans(128, c, niter=10, seed=0, spherical=True, max_points_per_centroid=41)
km.train(np.ascontiguousarray(sample))
assign = np.empty(n, np.int64)
for s in range(0, n, 65536):
    assign[s:s + 65536] = km.index.search(codes[s:s + 65536], 1)[1][:, 0]
order = np.argsort(assign, kind="stable")
bounds = np.searchsorted(assign[order], np.arange(c + 1))
cent = km.centroids
print("partition", time.time() - t, "contiguous runs", int((np.diff(order) != 1).sum()), flush=True)


def timed(run):
    out, times = [], []
    run(queries[:1])
    for q in queries:
        t0 = time.perf_counter()
        found = run(q[None, :])
        times.append((time.perf_counter() - t0) * 1e3)
        out.append(found[0])
    return np.array(out), float(np.median(times))


_, plain = timed(lambda q: search(index, q, k, efSearch=ef)[1])
print(f"unfiltered ef {ef} p50 {plain:.3f}", flush=True)

chosen = selections(n, (0.1, 0.5), 0)
for key, allowed in chosen.items():
    truth = exact_search(base[allowed], allowed, queries, k)[1]
    sel = Selection(allowed)
    for mult in (3.0,):
        plan = Plan("filtered", len(allowed), efSearch=int(ef * mult))
        found, p50 = timed(lambda q, sel=sel, plan=plan: search_within(index, q, k, sel, plan)[1])
        print(key, f"filtered ef {plan.efSearch} recall {recall_within(found, truth):.3f} p50 {p50:.3f} "
              f"ratio {p50 / plain:.2f}", flush=True)
    # selection precompute: selected stored rows, grouped by cluster
    t = time.time()
    row_selected = sel.holds(id_map)
    sel_rows = order[row_selected[order]]
    sel_bounds = np.concatenate([[0], np.cumsum(np.add.reduceat(row_selected[order].astype(np.int64), bounds[:-1])
                                                * (np.diff(bounds) > 0))])
    print("selection precompute", time.time() - t, flush=True)
    for nprobe in (8, 12, 16, 24, 32, 48):
        def run(q, nprobe=nprobe, sel_rows=sel_rows, sel_bounds=sel_bounds):
            q0 = q[0]
            cs = cent @ q0
            probe = np.argpartition(-cs, nprobe)[:nprobe]
            starts, ends = sel_bounds[probe], sel_bounds[probe + 1]
            rows = np.concatenate([sel_rows[a:b] for a, b in zip(starts.tolist(), ends.tolist())])
            scores = codes[rows] @ q0
            top = np.argpartition(-scores, k)[:k]
            top = top[np.argsort(-scores[top])]
            return id_map[rows[top]][None, :]
        found, p50 = timed(run)
        print(key, f"partition nprobe {nprobe} recall {recall_within(found, truth):.3f} p50 {p50:.3f} "
              f"ratio {p50 / plain:.2f}", flush=True)
