"""Near-duplicate groups: FAISS range search over the embeddings, then connected components.

Every vector's neighbours above a similarity threshold come from one range search of an exact
inner-product index (batched, never an all-pairs loop in Python); pairs are joined into groups
by union-find (single linkage), and each group reports its smallest pairwise similarity.
Vectors are (n, d) float32, L2-normalised, so similarities are cosines.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from indexer.core.arrays import as_ids, as_vectors
from indexer.core.errors import InputError

# Cosine of two copies of one image is 1 up to float32 rounding of the dot product (a few 1e-7 at
# d = 128); a threshold of 1.0 must still find them, and nothing that differs by a pixel.
SIMILARITY_TOLERANCE = 1e-5
RANGE_BATCH = 4096


@dataclass(frozen=True)
class DuplicateGroup:
    """ids (m,) of one group (m >= 2), ascending, and the smallest cosine between two of its members."""

    ids: tuple[int, ...]
    min_similarity: float


def check_threshold(threshold: float) -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 < threshold <= 1.0:
        raise InputError(f"the duplicate threshold is a cosine similarity in (0, 1]; got {threshold!r}")
    return float(threshold)


def similar_pairs(
    vectors: np.ndarray, ids: np.ndarray, threshold: float, *, batch: int = RANGE_BATCH
) -> tuple[np.ndarray, np.ndarray]:
    """Every pair of distinct vectors with cosine >= ``threshold`` (less SIMILARITY_TOLERANCE).

    Returns ((m, 2) int64 ids, smaller first; (m,) float32 similarities), sorted by pair.
    """
    import faiss

    x = as_vectors(vectors, name="vectors")
    ids = as_ids(ids, x.shape[0], name="ids")
    threshold = check_threshold(threshold)
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    rows_a, rows_b, sims = [], [], []
    for start in range(0, x.shape[0], batch):
        block = x[start : start + batch]
        # FAISS keeps inner products strictly above the radius.
        limits, scores, rows = index.range_search(block, threshold - SIMILARITY_TOLERANCE)
        owner = np.repeat(np.arange(start, start + len(block)), np.diff(limits).astype(np.int64))
        later = rows > owner  # each pair once, and never a vector with itself
        rows_a.append(owner[later])
        rows_b.append(rows[later])
        sims.append(scores[later])
    a = np.concatenate(rows_a) if rows_a else np.zeros(0, np.int64)
    b = np.concatenate(rows_b) if rows_b else np.zeros(0, np.int64)
    pairs = np.sort(np.stack([ids[a], ids[b]], axis=1), axis=1).astype(np.int64).reshape(-1, 2)
    similarities = np.minimum(np.concatenate(sims) if sims else np.zeros(0, np.float32), 1.0).astype(np.float32)
    order = np.lexsort((pairs[:, 1], pairs[:, 0])) if len(pairs) else np.zeros(0, np.int64)
    return pairs[order], similarities[order]


def group_pairs(pairs: np.ndarray) -> list[tuple[int, ...]]:
    """Connected components of the graph with edges ``pairs`` (m, 2) int64: ascending id tuples, by first id."""
    parent: dict[int, int] = {}

    def root(i: int) -> int:
        parent.setdefault(i, i)
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in np.asarray(pairs, dtype=np.int64).reshape(-1, 2).tolist():
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    members: dict[int, list[int]] = {}
    for i in list(parent):
        members.setdefault(root(i), []).append(i)
    return sorted(tuple(sorted(group)) for group in members.values())


def duplicate_groups(vectors: np.ndarray, ids: np.ndarray, threshold: float) -> list[DuplicateGroup]:
    """Groups of vectors joined by cosine >= ``threshold``, with each group's smallest pairwise cosine."""
    x = as_vectors(vectors, name="vectors")
    ids = as_ids(ids, x.shape[0], name="ids")
    pairs, _ = similar_pairs(x, ids, threshold)
    row_of = {int(i): row for row, i in enumerate(ids.tolist())}
    groups = []
    for members in group_pairs(pairs):
        block = x[[row_of[i] for i in members]]
        cosines = block @ block.T
        lowest = float(cosines[np.triu_indices(len(members), 1)].min())
        groups.append(DuplicateGroup(ids=members, min_similarity=min(1.0, lowest)))
    return groups
