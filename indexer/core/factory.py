"""One index factory over FAISS factory strings.

The index kinds differ in data (a template in :mod:`indexer.core.kinds`), not in behaviour:
every kind is created by the same code below. Vectors are expected to be (n, d) float32 and
L2-normalised, so inner product = cosine. Every index carries int64 ids (catalog ids): IVF
indexes store them natively, anything else is wrapped in ``IndexIDMap2``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from indexer.core import coarse
from indexer.core.errors import InputError
from indexer.core.kinds import (
    DEFAULT_EF_CONSTRUCTION,
    DEFAULT_HNSW_M,
    DEFAULT_PCA_DIM,
    INDEX_KINDS,
    KINDS,
    graph_defaults,
)

METRICS = ("ip", "l2")
MIN_POINTS_PER_LIST = 39  # FAISS warns below 39 training points per centroid
LIST_LENGTH = 256  # past 4·√n = n/256 (about 1M vectors), nlist grows with n and lists keep this length
LEGACY_PARAM_NAMES = {"ef_search": "efSearch"}  # older sidecars spell efSearch ef_search; they still load


def _check_optional_int(name: str, value: Any, minimum: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InputError(f"IndexParams.{name} must be an integer >= {minimum} or None; got {value!r}")


@dataclass(frozen=True)
class IndexParams:
    """How to build one index. Fields not used by ``kind`` are ignored.

    kind: a name from :data:`indexer.core.kinds.KINDS`; ``raw`` takes ``factory`` verbatim
    (e.g. "OPQ16,IVF256,PQ16"). nlist: IVF lists (default :func:`default_nlist`: 4·√n, n/256 past 1M).
    nprobe / efSearch: the index's default search setting (``None``: leave for tuning).
    pca_dim: output dims of PCA. pq_m: PQ sub-quantisers (default d/4). hnsw_m: HNSW graph
    degree. efConstruction: HNSW candidate list while building the graph. metric: "ip" (cosine
    on normalised vectors) or "l2". seed: k-means / sampling seed.
    """

    kind: str
    nlist: int | None = None
    nprobe: int | None = None
    pca_dim: int = DEFAULT_PCA_DIM
    pq_m: int | None = None
    hnsw_m: int | None = None  # None: the kind's default (indexer.core.kinds.graph_defaults)
    efSearch: int | None = None  # noqa: N815 - FAISS's name for the setting, the one name used everywhere
    efConstruction: int | None = None  # noqa: N815 - FAISS's name; None: the kind's default
    factory: str | None = None
    metric: str = "ip"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InputError(f"IndexParams.kind must be one of {', '.join(INDEX_KINDS)}; got {self.kind!r}")
        if self.metric not in METRICS:
            raise InputError(f"IndexParams.metric must be one of {', '.join(METRICS)}; got {self.metric!r}")
        for name, minimum in (("nlist", 1), ("nprobe", 1), ("pq_m", 1), ("efSearch", 1)):
            _check_optional_int(name, getattr(self, name), minimum)
        if self.kind in KINDS:
            default_m, default_ef = graph_defaults(self.kind)
            if self.hnsw_m is None:
                object.__setattr__(self, "hnsw_m", default_m)
            if self.efConstruction is None:
                object.__setattr__(self, "efConstruction", default_ef)
        for name, minimum in (("pca_dim", 1), ("hnsw_m", 2), ("efConstruction", 1), ("seed", 0)):
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

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IndexParams:
        """Inverse of :meth:`to_dict` (older sidecars' ``ef_search`` is read as ``efSearch``; one without
        ``efConstruction`` was built with FAISS's default, which is ours)."""
        known = {f.name for f in fields(cls)}
        values = {LEGACY_PARAM_NAMES.get(key, key): value for key, value in data.items()}
        # a sidecar always wrote hnsw_m; one without efConstruction was built with FAISS's default
        values.setdefault("hnsw_m", DEFAULT_HNSW_M)
        values.setdefault("efConstruction", DEFAULT_EF_CONSTRUCTION)
        unknown = set(values) - known
        if unknown:
            raise InputError(f"unknown index parameter(s) {sorted(unknown)}; allowed: {', '.join(sorted(known))}")
        return cls(**values)


def default_nlist(n: int) -> int:
    """About 4·√n inverted lists up to about a million vectors, then n/256 (lists of constant length, so a
    query scans as many vectors at 10M as at 1M for the same nprobe); never more than n/39 (FAISS's minimum
    points per list), at least 1."""
    lists = max(int(round(4 * math.sqrt(n))), n // LIST_LENGTH)
    return max(1, min(lists, n // MIN_POINTS_PER_LIST))


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
    """The FAISS factory string for ``params`` over n vectors of d dims (the kind's template, filled in)."""
    if n < 1 or d < 1:
        raise InputError(f"need n >= 1 vectors of d >= 1 dims; got n={n}, d={d}")
    template = KINDS[params.kind].factory
    values: dict[str, Any] = {"factory": params.factory, "hnsw_m": params.hnsw_m}
    if "{pca}" in template:
        values["pca"] = _pca_prefix(params, n, d)
    if "{nlist}" in template:
        values["nlist"] = params.nlist if params.nlist is not None else default_nlist(n)
        big = values["nlist"] >= coarse.HNSW_COARSE_MIN_NLIST
        values["coarse"] = f"_HNSW{coarse.COARSE_HNSW_M}" if big else ""
    if "{pq_m}" in template:
        m = params.pq_m if params.pq_m is not None else _default_pq_m(d)
        if d % m:
            raise InputError(f"IndexParams.pq_m must divide the {d} dims; got {m}")
        values.update(pq_m=m, pq_bits=_pq_bits(n))
    return template.format(**values)


def metric_type(metric: str) -> int:
    """FAISS's metric constant for "ip" / "l2"."""
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
        index = faiss.index_factory(d, fs, metric_type(params.metric))
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
    hnsw = find_hnsw(index)
    if hnsw is not None:
        hnsw.hnsw.efConstruction = params.efConstruction
    return faiss.IndexIDMap2(index)
