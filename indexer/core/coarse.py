"""The coarse quantizer of an IVF index with many lists: two-level k-means, and an HNSW graph over the centroids.

Past about a million vectors :func:`indexer.core.factory.default_nlist` keeps lists at a constant length, so
nlist grows with N (39,062 lists at 10M). Two costs then grow with it, and this module keeps both down:

- Training. One k-means over ``nlist`` centroids costs sample × nlist per iteration (hours at 10M on a few
  cores). Two-level clustering (FAISS's ``contrib.clustering.two_level_clustering``) first splits the sample
  into about √nlist groups, then clusters each group into its share of the lists: sample × 2·√nlist. Two
  global Lloyd steps follow (:func:`refine_centroids`), each assigning the sample through an HNSW graph over
  the centroids: sample × log(nlist).
- Assignment and search. Comparing a vector with every centroid costs nlist distances; past
  :data:`HNSW_COARSE_MIN_NLIST` lists the factory gives the IVF an HNSW graph over its centroids instead
  (FAISS's ``IVF{nlist}_HNSW32``), whose search costs about log(nlist). Its candidate list per call is tied to
  nprobe by :func:`quantizer_ef` (it must return nprobe centroids; a longer list bought no recall).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

TWO_LEVEL_MIN_NLIST = 16_384  # from here on, train the centroids in two levels
HNSW_COARSE_MIN_NLIST = 16_384  # from here on, the coarse quantizer of ivf/ivfsq/ivfpq/pca-ivf is a graph
COARSE_HNSW_M = 32
ASSIGN_EF = 32  # the graph's candidate list while vectors are added (one nearest centroid each)
QUANTIZER_EF_MARGIN = 0  # candidates beyond the nprobe centroids a search asks the graph for
NITER = 20  # iterations of the first level (the second level runs FAISS's default 25)
LLOYD_ITERATIONS = 2  # global k-means steps after the two levels (refine_centroids)
REFINE_CHUNK = 250_000  # training points assigned at once while refining


def quantizer_hnsw(ivf: Any) -> Any | None:
    """The IndexHNSW that is ``ivf``'s coarse quantizer (downcast), or None for a flat one."""
    import faiss

    quantizer = faiss.downcast_index(ivf.quantizer)
    return quantizer if isinstance(quantizer, faiss.IndexHNSW) else None


def quantizer_ef(nprobe: int) -> int:
    """The graph quantizer's efSearch for a search that probes ``nprobe`` lists: nprobe, at least 32.

    Measured at 10M (39,062 lists; benchmarks/ondisk_ab.py, docs/BENCHMARKS.md): at nprobe 72 a candidate list
    of exactly nprobe gives the same recall@10 (0.955) as nprobe + 16, with a query p50 of 1.52× the in-memory
    1M index's against 1.71× (nprobe + 16 times like 2·nprobe at equal nprobe); at 5M and nprobe 80, recall@10
    0.9637 against 0.9640."""
    return max(ASSIGN_EF, int(nprobe) + QUANTIZER_EF_MARGIN)


def needs_two_level(ivf: Any) -> bool:
    return int(ivf.nlist) >= TWO_LEVEL_MIN_NLIST


def train_two_level(index: Any, ivf: Any, sample: np.ndarray, *, spherical: bool, seed: int) -> None:
    """Train ``index`` (untrained; ``ivf`` its IVF part) on ``sample`` with two-level k-means centroids.

    A pre-transform (PCA) is trained first and the sample mapped through it; then the centroids go into the
    coarse quantizer and the IVF trains only what is left (SQ / PQ codes; FAISS skips its own k-means when the
    quantizer already holds nlist centroids).
    """
    import faiss
    from faiss.contrib.clustering import two_level_clustering

    outer = faiss.downcast_index(index)
    x = np.ascontiguousarray(sample, dtype=np.float32)
    if isinstance(outer, faiss.IndexPreTransform):
        for i in range(outer.chain.size()):
            transform = outer.chain.at(i)
            transform.train(x)
            x = transform.apply(x)
    nlist = int(ivf.nlist)
    groups = max(1, int(round(math.sqrt(nlist))))
    centroids, _ = two_level_clustering(x, groups, nlist, clustering_niter=NITER, spherical=spherical, seed=seed)
    centroids = refine_centroids(centroids, x, LLOYD_ITERATIONS, spherical=spherical, metric=int(ivf.metric_type))
    ivf.quantizer.reset()
    ivf.quantizer.add(np.ascontiguousarray(centroids, dtype=np.float32))
    ivf.train(x)
    index.is_trained = True


def refine_centroids(centroids: np.ndarray, x: np.ndarray, iterations: int, *, spherical: bool,
                     metric: int) -> np.ndarray:
    """``iterations`` Lloyd steps over all of ``x`` from ``centroids``: each point goes to its nearest centroid (an
    HNSW graph over the centroids, candidate list :data:`ASSIGN_EF`), each centroid moves to the mean of its
    points (L2-normalised when ``spherical``); a centroid left without points stays where it was.

    Two-level k-means never moves a centroid out of its first-level group, so cells that meet across two
    groups stay badly shaped; a couple of global steps reshape them. On 5M realistic vectors (19,531 lists;
    docs/BENCHMARKS.md) two steps raised recall@10 at nprobe 48 from 0.940 to 0.950.
    Memory: the centroids' sums and one chunk of ``x`` at a time."""
    import faiss

    centroids = np.array(centroids, dtype=np.float32, order="C")  # a copy: the caller's array stays
    nlist, d = centroids.shape
    for _ in range(iterations):
        graph = faiss.IndexHNSWFlat(d, COARSE_HNSW_M, metric)
        graph.add(centroids)
        graph.hnsw.efSearch = ASSIGN_EF
        sums = np.zeros((nlist, d), dtype=np.float64)
        counts = np.zeros(nlist, dtype=np.int64)
        for start in range(0, len(x), REFINE_CHUNK):
            chunk = x[start:start + REFINE_CHUNK]
            labels = graph.search(chunk, 1)[1][:, 0]
            order = np.argsort(labels, kind="stable")
            labels = labels[order]
            firsts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]])
            sums[labels[firsts]] += np.add.reduceat(chunk[order], firsts, axis=0, dtype=np.float64)
            counts += np.bincount(labels, minlength=nlist)
        moved = counts > 0
        means = sums[moved] / counts[moved, None]
        if spherical:
            means /= np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
        centroids[moved] = means.astype(np.float32)
    return centroids


def set_assign_ef(ivf: Any) -> None:
    """Give a graph quantizer the candidate list used while vectors are added (FAISS's default is 16)."""
    graph = quantizer_hnsw(ivf)
    if graph is not None:
        graph.hnsw.efSearch = ASSIGN_EF
