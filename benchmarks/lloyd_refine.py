"""Does refining two-level k-means centroids with global Lloyd steps cut the nprobe IVF needs for a recall?

    python benchmarks/lloyd_refine.py [--n 5000000] [--iterations 0,2,6] [--json lloyd_refine.json]

Builds the realistic vectors (``indexer bench --data realistic``) in memory, trains nlist = N/256 centroids on
the build's seeded sample with two-level k-means as the build does (:mod:`indexer.core.coarse`), then for each
iteration count refines them with :func:`indexer.core.coarse.refine_centroids`, fills an in-memory IVF through
an HNSW graph over those centroids (as the build assigns), and reports the mean inner product of the sample to
its centroid, the list-size spread, and recall@10 against exact search for nprobe 40..128 (1,000 held-out
queries; the graph's candidate list at the search default, :func:`indexer.core.coarse.quantizer_ef`). Recall only: no timing.
"""

from __future__ import annotations

import argparse
import math
import time

import faiss
import numpy as np

from indexer.bench import realistic
from indexer.core import coarse
from indexer.core.build import training_rows
from indexer.core.factory import default_nlist
from indexer.core.fidelity import ann_recall_at_k
from indexer.core.files import write_json
from indexer.core.search import exact_search

K = 10
NPROBES = tuple(range(40, 129, 8))


def _graph(centroids: np.ndarray, ef: int) -> faiss.IndexHNSWFlat:
    graph = faiss.IndexHNSWFlat(centroids.shape[1], coarse.COARSE_HNSW_M, faiss.METRIC_INNER_PRODUCT)
    graph.add(centroids)
    graph.hnsw.efSearch = ef
    return graph


def _evaluate(centroids, base, ids, sample, queries, truth) -> dict:
    nlist, d = centroids.shape
    graph = _graph(centroids, coarse.ASSIGN_EF)
    fit = float(np.mean(np.sum(sample * centroids[graph.search(sample, 1)[1][:, 0]], axis=1)))
    index = faiss.IndexIVFFlat(graph, d, nlist, faiss.METRIC_INNER_PRODUCT)
    index.is_trained = True
    for start in range(0, len(base), 500_000):
        index.add_with_ids(base[start:start + 500_000], ids[start:start + 500_000])
    sizes = np.array([index.invlists.list_size(i) for i in range(nlist)])
    curve = []
    for nprobe in NPROBES:
        params = faiss.SearchParametersIVF(nprobe=nprobe)
        params.quantizer_params = faiss.SearchParametersHNSW(efSearch=coarse.quantizer_ef(nprobe))
        _, found = index.search(queries, K, params=params)
        curve.append({"nprobe": nprobe, "recall": ann_recall_at_k(found, truth[1], K, exact_scores=truth[0])})
    return {"mean_ip_to_centroid": fit, "list_size_cv": float(sizes.std() / sizes.mean()), "curve": curve}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5_000_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--iterations", default="0,2,6")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    from faiss.contrib.clustering import two_level_clustering

    n, d = args.n, args.dim
    base = np.concatenate(list(realistic.realistic_chunks(n, d, seed=args.seed, chunk=250_000)))
    ids = np.arange(n, dtype=np.int64)
    queries, _ = realistic.make_realistic_queries(1000, d, realistic.default_n_clusters(n), args.seed)
    truth = exact_search(base, ids, queries, K + 10)
    nlist = default_nlist(n)
    sample = np.ascontiguousarray(base[training_rows(n, nlist, args.seed)])
    started = time.perf_counter()
    centroids, _ = two_level_clustering(sample, max(1, round(math.sqrt(nlist))), nlist,
                                        clustering_niter=coarse.NITER, spherical=True, seed=args.seed)
    centroids = np.ascontiguousarray(centroids, dtype=np.float32)
    print(f"{n:,} vectors, {nlist:,} lists: two-level k-means on {len(sample):,} points in "
          f"{time.perf_counter() - started:.0f} s", flush=True)
    report = {"n": n, "nlist": nlist, "train_n": len(sample), "runs": []}
    done = 0
    for target in sorted(int(i) for i in args.iterations.split(",")):
        started = time.perf_counter()
        centroids = coarse.refine_centroids(centroids, sample, target - done, spherical=True,
                                            metric=faiss.METRIC_INNER_PRODUCT)
        refine_s, done = time.perf_counter() - started, target
        run = {"lloyd_iterations": done, "refine_s": refine_s,
               **_evaluate(centroids, base, ids, sample, queries, truth)}
        report["runs"].append(run)
        curve = "  ".join(f"{p['nprobe']}:{p['recall']:.4f}" for p in run["curve"])
        print(f"Lloyd steps {done} (+{refine_s:.0f} s): mean IP to centroid {run['mean_ip_to_centroid']:.4f}, "
              f"list size cv {run['list_size_cv']:.3f}; recall@10 by nprobe {curve}", flush=True)
    if args.json:
        write_json(args.json, report, indent=1)


if __name__ == "__main__":
    main()
