"""One index factory over FAISS factory strings.

The index kinds differ in data (a factory string), not in behaviour: every kind
is created, trained, filled, updated and tuned by the same code below. Vectors
are expected to be (n, d) float32 and L2-normalised, so inner product = cosine.
Every index carries int64 ids (catalog ids): IVF indices store them natively,
anything else is wrapped in ``IndexIDMap2``.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from indexer.arrays import as_ids, as_vectors
from indexer.errors import IndexerError, InputError

KINDS = ("flat", "pca", "ivf", "ivfpq", "hnsw", "pca-ivf", "raw")
METRICS = ("ip", "l2")
TRAIN_POINTS_PER_LIST = 64  # k-means sample per IVF list; FAISS warns below 39
MIN_TRAIN_POINTS = 10_000  # PQ codebooks of 256 centroids need >= 39 * 256 points
MIN_POINTS_PER_LIST = 39


def _check_optional_int(name: str, value: Any, minimum: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InputError(f"IndexParams.{name} must be an integer >= {minimum} or None; got {value!r}")


@dataclass(frozen=True)
class IndexParams:
    """How to build one index. Fields not used by ``kind`` are ignored.

    kind: one of KINDS; ``raw`` takes ``factory`` verbatim (e.g. "OPQ16,IVF256,PQ16").
    nlist: IVF lists (default about 4·√n, at most n/39). nprobe / ef_search: search
    settings applied after build (``None``: leave for tuning). pca_dim: output dims
    of PCA. pq_m: PQ sub-quantisers (default d/4). hnsw_m: HNSW graph degree.
    metric: "ip" (cosine on normalised vectors) or "l2". seed: k-means / sampling seed.
    """

    kind: str
    nlist: int | None = None
    nprobe: int | None = None
    pca_dim: int = 32
    pq_m: int | None = None
    hnsw_m: int = 32
    ef_search: int | None = None
    factory: str | None = None
    metric: str = "ip"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InputError(f"IndexParams.kind must be one of {', '.join(KINDS)}; got {self.kind!r}")
        if self.metric not in METRICS:
            raise InputError(f"IndexParams.metric must be one of {', '.join(METRICS)}; got {self.metric!r}")
        for name, minimum in (("nlist", 1), ("nprobe", 1), ("pq_m", 1), ("ef_search", 1)):
            _check_optional_int(name, getattr(self, name), minimum)
        for name, minimum in (("pca_dim", 1), ("hnsw_m", 2), ("seed", 0)):
            _check_optional_int(name, getattr(self, name), minimum)
            if getattr(self, name) is None:
                raise InputError(f"IndexParams.{name} must be an integer >= {minimum}; got None")
        if self.kind == "raw" and not self.factory:
            raise InputError("IndexParams.factory is required for kind 'raw' (a FAISS factory string)")
        if self.kind != "raw" and self.factory is not None:
            raise InputError(f"IndexParams.factory is only used with kind 'raw'; got kind {self.kind!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form, for the sidecar."""
        return asdict(self)


@dataclass(frozen=True)
class BuildInfo:
    """What ``build_index`` did: factory string, sizes, training sample and timings (s)."""

    kind: str
    factory: str
    n: int
    d: int
    nlist: int | None
    train_n: int
    train_s: float
    add_s: float
    seed: int
    metric: str

    @property
    def build_s(self) -> float:
        return self.train_s + self.add_s

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "build_s": self.build_s}


def default_nlist(n: int) -> int:
    """About 4·√n inverted lists, never more than n/39 (FAISS's minimum points per list), at least 1."""
    return max(1, min(int(round(4 * math.sqrt(n))), n // MIN_POINTS_PER_LIST))


def _default_pq_m(d: int) -> int:
    # The largest divisor of d not above d/4: 4 dims per 8-bit code (32 bytes at d=128).
    return max(m for m in range(1, max(1, d // 4) + 1) if d % m == 0)


def _pq_bits(n: int) -> int:
    # 8-bit codebooks need 39 * 256 training points; smaller sets get fewer bits.
    return int(max(1, min(8, math.floor(math.log2(max(2, n // MIN_POINTS_PER_LIST))))))


def _pca_prefix(params: IndexParams, n: int, d: int) -> str:
    if params.pca_dim >= d:
        raise InputError(
            f"IndexParams.pca_dim must be smaller than the vectors' {d} dims; got {params.pca_dim}"
        )
    if params.pca_dim > n:
        raise InputError(
            f"PCA to {params.pca_dim} dims needs at least {params.pca_dim} vectors; got {n} (lower --pca-dim)"
        )
    # FAISS's PCA centres the data, so inner products after it are between centred,
    # projected vectors: every base vector gets a bias of -<y, mean> and long vectors
    # win. Re-normalising (L2norm) turns the score back into a cosine, which ranks
    # closer to exact cosine search (recall@10 0.19 vs 0.16 against exact search on
    # synthetic clustered 100k x 128 -> 32; better at every cluster spread we tried).
    # "PCAR" would only add a rotation, which leaves inner products unchanged.
    suffix = ",L2norm" if params.metric == "ip" else ""
    return f"PCA{params.pca_dim}{suffix}"


def factory_string(params: IndexParams, n: int, d: int) -> str:
    """The FAISS factory string for ``params`` over n vectors of d dims."""
    if n < 1 or d < 1:
        raise InputError(f"need n >= 1 vectors of d >= 1 dims; got n={n}, d={d}")
    nlist = params.nlist if params.nlist is not None else default_nlist(n)
    if params.kind == "flat":
        return "Flat"
    if params.kind == "pca":
        return f"{_pca_prefix(params, n, d)},Flat"
    if params.kind == "ivf":
        return f"IVF{nlist},Flat"
    if params.kind == "ivfpq":
        m = params.pq_m if params.pq_m is not None else _default_pq_m(d)
        if d % m:
            raise InputError(f"IndexParams.pq_m must divide the {d} dims; got {m}")
        return f"IVF{nlist},PQ{m}x{_pq_bits(n)}"
    if params.kind == "hnsw":
        return f"HNSW{params.hnsw_m}"
    if params.kind == "pca-ivf":
        return f"{_pca_prefix(params, n, d)},IVF{nlist},Flat"
    return str(params.factory)


def _metric_type(metric: str) -> int:
    import faiss

    return faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2


def inner_indices(index: Any) -> list[Any]:
    """The index and every index it wraps (IDMap, PreTransform, Refine), downcast, outermost first."""
    import faiss

    chain = []
    current = faiss.downcast_index(index)
    while current is not None:
        chain.append(current)
        inner = getattr(current, "index", None) if not isinstance(current, faiss.IndexHNSW) else None
        current = faiss.downcast_index(inner) if inner is not None else None
    return chain


def find_ivf(index: Any) -> Any | None:
    """The IndexIVF inside ``index`` (downcast), or None."""
    import faiss

    return next((i for i in inner_indices(index) if isinstance(i, faiss.IndexIVF)), None)


def find_hnsw(index: Any) -> Any | None:
    """The IndexHNSW inside ``index`` (downcast), or None."""
    import faiss

    return next((i for i in inner_indices(index) if isinstance(i, faiss.IndexHNSW)), None)


def create_index(params: IndexParams, n: int, d: int) -> Any:
    """An empty, untrained FAISS index for n vectors of d dims that accepts int64 ids."""
    import faiss

    fs = factory_string(params, n, d)
    try:
        index = faiss.index_factory(d, fs, _metric_type(params.metric))
    except RuntimeError as exc:
        raise InputError(f"FAISS cannot build factory string {fs!r} for d={d}: {exc}") from exc
    ivf = find_ivf(index)
    if ivf is not None:
        ivf.cp.seed = params.seed
        pq = getattr(ivf, "pq", None)
        if pq is not None:
            pq.cp.seed = params.seed
            # Polysemous training only serves Hamming pre-filtering, which we never
            # use, and multiplies IVFPQ training time.
            ivf.do_polysemous_training = False
        return index  # IVF (also under PreTransform) stores ids itself
    return faiss.IndexIDMap2(index)


def _training_sample(vectors: np.ndarray, nlist: int | None, seed: int) -> np.ndarray:
    n = vectors.shape[0]
    budget = max(MIN_TRAIN_POINTS, TRAIN_POINTS_PER_LIST * (nlist or 0))
    if n <= budget:
        return vectors
    rows = np.sort(np.random.default_rng(seed).choice(n, size=budget, replace=False))
    return vectors[rows]


def build_index(params: IndexParams, vectors: np.ndarray, ids: np.ndarray) -> tuple[Any, BuildInfo]:
    """Create, train (seeded, on a sub-sample) and fill an index.

    vectors: (n, d) float32, L2-normalised; ids: (n,) int64, unique.
    Returns the index (search settings from ``params`` applied) and a BuildInfo.
    """
    x = as_vectors(vectors)
    n, d = x.shape
    id_arr = as_ids(ids, n)
    index = create_index(params, n, d)
    ivf = find_ivf(index)
    nlist = int(ivf.nlist) if ivf is not None else None
    train_n = 0
    t0 = time.perf_counter()
    if not index.is_trained:
        sample = _training_sample(x, nlist, params.seed)
        train_n = sample.shape[0]
        if ivf is not None:  # we sub-sampled already; stop FAISS from doing it again
            ivf.cp.max_points_per_centroid = math.ceil(train_n / nlist) + 1
        try:
            index.train(sample)
        except RuntimeError as exc:
            raise IndexerError(
                f"training {factory_string(params, n, d)!r} on {train_n} vectors failed: {exc}"
            ) from exc
    t1 = time.perf_counter()
    index.add_with_ids(x, id_arr)
    t2 = time.perf_counter()
    set_search_params(  # like every field, a setting the kind lacks is ignored
        index,
        nprobe=params.nprobe if ivf is not None else None,
        ef_search=params.ef_search if find_hnsw(index) is not None else None,
    )
    info = BuildInfo(
        kind=params.kind,
        factory=factory_string(params, n, d),
        n=n,
        d=d,
        nlist=nlist,
        train_n=train_n,
        train_s=t1 - t0,
        add_s=t2 - t1,
        seed=params.seed,
        metric=params.metric,
    )
    return index, info


def add_vectors(index: Any, vectors: np.ndarray, ids: np.ndarray) -> None:
    """Add (n, d) float32 vectors with (n,) int64 ids to a trained index, without retraining."""
    x = as_vectors(vectors, index.d)
    id_arr = as_ids(ids, x.shape[0])
    if not index.is_trained:
        raise IndexerError("cannot add vectors to an untrained index; build it with build_index first")
    index.add_with_ids(x, id_arr)


def remove_ids(index: Any, ids: np.ndarray) -> int:
    """Remove the vectors with these int64 ids; returns how many were removed (unknown ids are skipped)."""
    id_arr = np.ascontiguousarray(np.asarray(ids, dtype=np.int64).reshape(-1))
    if find_hnsw(index) is not None:
        raise IndexerError("HNSW indices cannot remove vectors; rebuild the index without them")
    try:
        return int(index.remove_ids(id_arr))
    except RuntimeError as exc:
        raise IndexerError(f"this index ({type(index).__name__}) cannot remove vectors: {exc}") from exc


def set_search_params(index: Any, nprobe: int | None = None, ef_search: int | None = None) -> None:
    """Set IVF ``nprobe`` / HNSW ``efSearch`` on the index, through IDMap/PCA wrappers.

    ``None`` leaves a setting alone. Raises InputError for a setting the index lacks
    or an nprobe above nlist.
    """
    if nprobe is not None:
        ivf = find_ivf(index)
        if ivf is None:
            raise InputError(
                f"nprobe applies to IVF indices; this index has no IVF part (got nprobe={nprobe})"
            )
        if (
            isinstance(nprobe, bool)
            or not isinstance(nprobe, (int, np.integer))
            or not 1 <= nprobe <= ivf.nlist
        ):
            raise InputError(f"nprobe must be an integer in 1..{ivf.nlist} (nlist); got {nprobe!r}")
        ivf.nprobe = int(nprobe)
    if ef_search is not None:
        hnsw = find_hnsw(index)
        if hnsw is None:
            raise InputError(
                f"ef_search applies to HNSW indices; this index has no HNSW part (got {ef_search})"
            )
        if isinstance(ef_search, bool) or not isinstance(ef_search, (int, np.integer)) or ef_search < 1:
            raise InputError(f"ef_search must be a positive integer; got {ef_search!r}")
        hnsw.hnsw.efSearch = int(ef_search)


def get_search_params(index: Any) -> dict[str, int]:
    """The index's current search settings: {"nprobe": …} and/or {"efSearch": …}."""
    out: dict[str, int] = {}
    ivf = find_ivf(index)
    if ivf is not None:
        out["nprobe"] = int(ivf.nprobe)
    hnsw = find_hnsw(index)
    if hnsw is not None:
        out["efSearch"] = int(hnsw.hnsw.efSearch)
    return out
