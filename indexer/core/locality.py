"""Storage order for graph indexes: vectors that are neighbours stored near each other in memory.

An HNSW search reads a few thousand vectors and link lists spread over the whole index. In input order
(catalog order, or random) each of those reads is a cache and TLB miss; grouped by k-means cluster, the
nodes one query visits sit in a few contiguous stretches. Same graph, same recall, fewer misses: on the
bench's realistic 200k × 128 vectors, ``hnsw-fp16`` at recall@10 0.95 went from 1.07× to 0.92× hnswlib's
p50 (docs/BENCHMARKS.md, issue 26). hnswlib gets part of this for free by storing a node's links and
vector together; FAISS keeps them in two arrays.
"""

from __future__ import annotations

import numpy as np

MAX_CENTROIDS = 1024  # √n up to a million vectors: clusters of about √n rows
POINTS_PER_CENTROID = 40  # k-means sample per centroid (FAISS warns below 39)
ITERATIONS = 10
MIN_ROWS = 1024  # below this the whole index fits in cache: the input order is kept


def locality_order(vectors: np.ndarray, seed: int = 0) -> np.ndarray:
    """(n,) int64 permutation of the rows of ``vectors`` (n, d) float32 that groups them by nearest k-means
    centroid (about √n spherical centroids, at most 1024, trained on a seeded sample); stable, so
    rows of one cluster keep their order. Deterministic for a given ``seed``; the identity for small n."""
    import faiss

    n, d = vectors.shape
    if n < MIN_ROWS:
        return np.arange(n, dtype=np.int64)
    n_centroids = int(min(MAX_CENTROIDS, round(np.sqrt(n))))
    rng = np.random.default_rng(seed)
    sample_size = min(n, POINTS_PER_CENTROID * n_centroids)
    sample = vectors[np.sort(rng.choice(n, size=sample_size, replace=False))]
    kmeans = faiss.Kmeans(d, n_centroids, niter=ITERATIONS, seed=seed, spherical=True,
                          max_points_per_centroid=POINTS_PER_CENTROID + 1)
    kmeans.train(np.ascontiguousarray(sample, dtype=np.float32))
    assign = np.empty(n, dtype=np.int64)
    step = 65_536  # bounded memory for the (rows, 1) answers
    for start in range(0, n, step):
        _, nearest = kmeans.index.search(np.ascontiguousarray(vectors[start:start + step], dtype=np.float32), 1)
        assign[start:start + step] = nearest[:, 0]
    return np.argsort(assign, kind="stable").astype(np.int64)
