"""How the HNSW coarse quantizer's settings move IVF recall and latency, at lists of constant length.

    python benchmarks/coarse_ab.py [--n 2000000] [--json coarse_ab.json]

Builds the realistic vectors (``indexer bench --data realistic``), trains nlist = N/256 centroids once with
two-level k-means (:mod:`indexer.core.coarse`), then fills in-memory IVF indexes whose vectors were assigned
to their lists three ways: exactly (a flat quantizer), and by the HNSW graph at efSearch 32 and 128. For each
it sweeps nprobe and, for the graph quantizers, the search efSearch rule (2·nprobe, or nprobe + 16), reporting
recall@10 against exact search and the single-query p50 on one thread. Its figures set ``ASSIGN_EF`` and
``quantizer_ef`` (:mod:`indexer.core.coarse`; docs/BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import math
import time

import faiss
import numpy as np

from indexer.bench import realistic
from indexer.bench.timing import percentiles_ms
from indexer.core.fidelity import ann_recall_at_k
from indexer.core.files import write_json
from indexer.core.search import exact_search

NPROBES = (32, 48, 64, 80, 96, 128)
K = 10


def _centroids(x: np.ndarray, nlist: int, seed: int) -> np.ndarray:
    from faiss.contrib.clustering import two_level_clustering

    sample = x[np.sort(np.random.default_rng(seed).choice(len(x), min(len(x), 64 * nlist), replace=False))]
    centroids, _ = two_level_clustering(sample, int(round(math.sqrt(nlist))), nlist, clustering_niter=20,
                                        spherical=True, seed=seed)
    return np.ascontiguousarray(centroids, dtype=np.float32)


def _ivf(centroids: np.ndarray, x: np.ndarray, assign_ef: int | None) -> tuple[faiss.IndexIVFFlat, faiss.Index]:
    """(index, its quantizer): the caller keeps the quantizer alive as long as the index."""
    d, nlist = x.shape[1], len(centroids)
    if assign_ef is None:
        quantizer = faiss.IndexFlatIP(d)
    else:
        quantizer = faiss.IndexHNSWFlat(d, 32, faiss.METRIC_INNER_PRODUCT)
        quantizer.hnsw.efSearch = assign_ef
    quantizer.add(centroids)
    index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
    index.is_trained = True
    index.add_with_ids(x, np.arange(len(x), dtype=np.int64))
    return index, quantizer


def _measure(index, queries, truth, nprobe: int, ef: int | None) -> dict[str, float]:
    params = faiss.SearchParametersIVF(nprobe=nprobe)
    if ef is not None:
        coarse = faiss.SearchParametersHNSW(efSearch=ef)
        params.quantizer_params = coarse
    _, found = index.search(queries, K, params=params)
    recall = ann_recall_at_k(found, truth[1], K, exact_scores=truth[0])
    seconds = []
    for q in queries[:200]:
        started = time.perf_counter()
        index.search(q[None], K, params=params)
        seconds.append(time.perf_counter() - started)
    return {"recall": recall, "p50_ms": percentiles_ms(np.array(seconds))["p50"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2_000_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    faiss.omp_set_num_threads(2)
    x = np.concatenate(list(realistic.realistic_chunks(args.n, args.dim, seed=args.seed, chunk=250_000)))
    queries, _ = realistic.make_realistic_queries(args.queries, args.dim, realistic.default_n_clusters(args.n),
                                                  args.seed)
    truth = exact_search(x, np.arange(len(x), dtype=np.int64), queries, K + 10)
    nlist = args.n // 256
    started = time.perf_counter()
    centroids = _centroids(x, nlist, args.seed)
    print(f"{args.n:,} x {args.dim}, nlist {nlist:,}: two-level k-means {time.perf_counter() - started:.0f} s",
          flush=True)
    rows = []
    for assign_ef in (None, 32, 128):
        started = time.perf_counter()
        index, quantizer = _ivf(centroids, x, assign_ef)
        add_s = time.perf_counter() - started
        faiss.omp_set_num_threads(1)
        rules = {"flat": lambda p: None} if assign_ef is None else {
            "2*nprobe": lambda p: max(32, 2 * p), "nprobe+16": lambda p: p + 16}
        for rule, ef_of in rules.items():
            for nprobe in NPROBES:
                row = {"assign": "exact" if assign_ef is None else f"hnsw ef {assign_ef}", "add_s": add_s,
                       "search_ef": rule, "nprobe": nprobe, **_measure(index, queries, truth, nprobe, ef_of(nprobe))}
                rows.append(row)
                print(f"assign {row['assign']:>12}  add {add_s:6.1f} s  search ef {rule:>9}  nprobe {nprobe:4d}"
                      f"  recall@10 {row['recall']:.3f}  p50 {row['p50_ms']:.3f} ms", flush=True)
        faiss.omp_set_num_threads(2)
        del index, quantizer
    if args.json:
        write_json(args.json, {"n": args.n, "dim": args.dim, "nlist": nlist, "rows": rows}, indent=1)


if __name__ == "__main__":
    main()
