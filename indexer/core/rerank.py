"""Re-ranking after the first search: α-weighted query expansion and database-side augmentation.

Both replace a vector by a weighted sum of itself and its ``n`` nearest stored vectors, each
neighbour weighted by its cosine similarity to the power ``alpha`` (negative similarities count
as 0), then L2-normalise (Radenović et al., "Fine-tuning CNN image retrieval", αQE / αDBA):

- ``qe``: done to the query at search time: search, expand the query with its top ``n``, search again.
  It costs a second search and a lookup of ``n`` stored vectors per query.
- ``dba``: done to every stored vector once, at build time (the index sidecar records it); queries
  are searched as they come, so it costs nothing per query.

Vectors are (n, d) float32, L2-normalised; scores are inner products (cosine).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from indexer.core.arrays import as_ids, as_vectors, check_k
from indexer.core.errors import InputError
from indexer.core.search import PAD_ID, search

RERANK_MODES = ("none", "qe", "dba")
# Chosen on the Flowers train+val split with model mnv2 (docs/BENCHMARKS.md, "Re-ranking"); never on test.
DEFAULT_NEIGHBOURS = {"qe": 2, "dba": 8}
DEFAULT_ALPHA = {"qe": 0.0, "dba": 12.0}
DBA_BATCH = 4096

VectorLookup = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Rerank:
    """One re-ranking setting: ``mode`` from RERANK_MODES, ``n`` neighbours, weight exponent ``alpha``.

    ``n`` / ``alpha`` default (None) to the mode's measured defaults; "none" ignores them.
    """

    mode: str = "none"
    n: int | None = None
    alpha: float | None = None

    def __post_init__(self) -> None:
        if self.mode not in RERANK_MODES:
            raise InputError(f"rerank mode must be one of {', '.join(RERANK_MODES)}; got {self.mode!r}")
        if self.n is not None and (isinstance(self.n, bool) or not isinstance(self.n, (int, np.integer))
                                   or self.n < 1):
            raise InputError(f"Rerank.n must be an integer >= 1; got {self.n!r}")
        if self.alpha is not None and (isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float))
                                       or not np.isfinite(self.alpha) or self.alpha < 0):
            raise InputError(f"Rerank.alpha must be a finite number >= 0; got {self.alpha!r}")
        if self.mode != "none":
            object.__setattr__(self, "n", int(self.n if self.n is not None else DEFAULT_NEIGHBOURS[self.mode]))
            alpha = self.alpha if self.alpha is not None else DEFAULT_ALPHA[self.mode]
            object.__setattr__(self, "alpha", float(alpha))

    @property
    def active(self) -> bool:
        return self.mode != "none"

    def label(self) -> str:
        """'none', or e.g. 'qe(n=2, alpha=3)' for reports."""
        return "none" if not self.active else f"{self.mode}(n={self.n}, alpha={self.alpha:g})"

    def to_dict(self) -> dict[str, Any]:
        """{"mode", "n", "alpha"}: what an index sidecar and a bench row record."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Rerank:
        if not data:
            return cls()
        unknown = set(data) - {"mode", "n", "alpha"}
        if unknown:
            raise InputError(f"unknown rerank field(s) {sorted(unknown)}; allowed: alpha, mode, n")
        return cls(**data)


def as_rerank(value: str | Rerank | None) -> Rerank:
    """A :class:`Rerank` from a mode name (with the measured defaults), a Rerank, or None ("none")."""
    if value is None:
        return Rerank()
    if isinstance(value, Rerank):
        return value
    return Rerank(mode=value)


def check_query_rerank(value: str | Rerank | None, built_with: Rerank, index_name: str, kind: str) -> Rerank:
    """The query-time re-ranking for an index built with ``built_with``: "dba" needs an index whose stored
    vectors were augmented (InputError naming the index and the command that rebuilds it)."""
    rerank = as_rerank(value)
    if rerank.mode == "dba" and built_with.mode != "dba":
        raise InputError(
            f"index {index_name!r} was built without database-side augmentation; rebuild it with "
            f"'indexer build --index {kind} --name {index_name} --rerank dba'"
        )
    return rerank


def weighted_sum(
    vectors: np.ndarray, neighbours: np.ndarray, scores: np.ndarray, alpha: float
) -> np.ndarray:
    """Normalise(v + Σ_i max(s_i, 0)^α · x_i): vectors (q, d), neighbours (q, n, d), scores (q, n).

    Padding neighbours must carry score -inf (or any value <= 0): they get weight 0.
    Returns (q, d) float32, L2-normalised (a vector that sums to 0 is left as it was).
    """
    weights = np.power(np.clip(np.nan_to_num(scores, neginf=0.0), 0.0, None), alpha, dtype=np.float32)
    out = vectors.astype(np.float32) + np.einsum("qn,qnd->qd", weights, neighbours.astype(np.float32))
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    zero = norms[:, 0] == 0
    out[zero] = vectors[zero]
    norms[zero] = 1.0
    return np.ascontiguousarray(out / norms, dtype=np.float32)


def lookup_vectors(ids: np.ndarray, vectors: np.ndarray) -> VectorLookup:
    """A function (m,) int64 ids -> (m, d) float32 rows of ``vectors`` (padding id -1 -> zeros).

    ids (n,) int64 unique; vectors (n, d) float32. Unknown ids raise InputError.
    """
    x = as_vectors(vectors, name="stored vectors")
    ids = as_ids(ids, x.shape[0], name="stored ids")
    if len(ids) == 0:
        raise InputError("query expansion needs stored vectors; the model has none embedded")
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]

    def lookup(wanted: np.ndarray) -> np.ndarray:
        wanted = np.asarray(wanted, dtype=np.int64)
        at = np.clip(np.searchsorted(sorted_ids, wanted), 0, len(sorted_ids) - 1)
        padding = wanted == PAD_ID
        unknown = (sorted_ids[at] != wanted) & ~padding
        if unknown.any():
            missing = sorted(set(wanted[unknown].tolist()))[:5]
            raise InputError(f"no stored vector for id(s) {missing}; re-embed the catalog or rebuild the index")
        out = x[order[at]]
        out[padding] = 0.0
        return out

    return lookup


def expand_queries(
    queries: np.ndarray, found_scores: np.ndarray, found_ids: np.ndarray, lookup: VectorLookup, alpha: float
) -> np.ndarray:
    """αQE: each query (q, d) plus its found neighbours (q, n) weighted by score^α, normalised."""
    neighbours = lookup(found_ids.reshape(-1)).reshape(*found_ids.shape, -1)
    scores = np.where(found_ids == PAD_ID, -np.inf, found_scores)
    return weighted_sum(queries, neighbours, scores, alpha)


def search_expanded(
    index: Any,
    queries: np.ndarray,
    k: int,
    lookup: VectorLookup,
    rerank: Rerank,
    *,
    exclude_ids: np.ndarray | None = None,
    params: Any | None = None,
    nprobe: int | None = None,
    efSearch: int | None = None,  # noqa: N803 - FAISS's name for the setting
) -> tuple[np.ndarray, np.ndarray]:
    """Query expansion: search the top ``rerank.n``, expand each query with them, search again for ``k``.

    ``exclude_ids`` (q,): each query's own stored id, left out of the neighbours it is expanded
    with (the caller drops it from the final results). Returns ((q, k) scores, (q, k) ids) of the
    second search, padded like :func:`indexer.core.search.search`.
    """
    x = as_vectors(queries, index.d, name="query vectors")
    k = check_k(k)
    n = rerank.n if rerank.n is not None else DEFAULT_NEIGHBOURS["qe"]
    alpha = rerank.alpha if rerank.alpha is not None else DEFAULT_ALPHA["qe"]
    depth = min(n + (1 if exclude_ids is not None else 0), int(index.ntotal))
    scores, ids = search(index, x, depth, params=params, nprobe=nprobe, efSearch=efSearch)
    if exclude_ids is not None:
        own = ids == np.asarray(exclude_ids, dtype=np.int64).reshape(-1, 1)
        scores = np.where(own, -np.inf, scores)
        ids = np.where(own, PAD_ID, ids)
    expanded = expand_queries(x, scores, ids, lookup, alpha)
    return search(index, expanded, k, params=params, nprobe=nprobe, efSearch=efSearch)


def augment_database(vectors: np.ndarray, n: int, alpha: float, *, batch: int = DBA_BATCH) -> np.ndarray:
    """αDBA: every vector (N, d) replaced by itself plus its ``n`` nearest others weighted by score^α.

    Exact inner-product search over the vectors themselves, in batches. Returns (N, d) float32,
    L2-normalised, in the same row order.
    """
    import faiss

    x = as_vectors(vectors, name="vectors to augment")
    if n < 1:
        raise InputError(f"database-side augmentation needs n >= 1 neighbours; got {n}")
    flat = faiss.IndexFlatIP(x.shape[1])
    flat.add(x)
    depth = min(n + 1, x.shape[0])
    out = np.empty_like(x)
    for start in range(0, x.shape[0], batch):
        block = x[start : start + batch]
        scores, rows = flat.search(block, depth)
        own = rows == np.arange(start, start + len(block)).reshape(-1, 1)
        # Drop each vector's own row (the vector itself is the "1 ·" term of the sum); if ties hid it,
        # drop the last column instead so every vector gets at most n others.
        keep_col = np.where(own.any(axis=1), own.argmax(axis=1), depth - 1)
        mask = np.ones(rows.shape, dtype=bool)
        mask[np.arange(len(block)), keep_col] = False
        if depth > 1:
            rows = rows[mask].reshape(len(block), depth - 1)
            scores = scores[mask].reshape(len(block), depth - 1)
            scores = np.where(rows < 0, -np.inf, scores)
            out[start : start + len(block)] = weighted_sum(block, x[np.maximum(rows, 0)], scores, alpha)
        else:
            out[start : start + len(block)] = block
    return out
