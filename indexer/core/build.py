"""Building an index: create, train on one seeded sample, fill; adding and removing vectors later.

The CPU and the GPU build are one function with a ``device`` argument: both train on the
same seeded sub-sample, so they differ only in where k-means runs.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from indexer.core.arrays import as_ids, as_vectors
from indexer.core.coarse import needs_two_level, quantizer_hnsw, set_assign_ef, train_two_level
from indexer.core.errors import IndexerError, InputError
from indexer.core.factory import IndexParams, create_index, factory_string, find_hnsw, find_ivf
from indexer.core.settings import set_default_settings

TRAIN_POINTS_PER_LIST = 64  # k-means sample per IVF list; FAISS warns below 39
MIN_TRAIN_POINTS = 10_000  # PQ codebooks of 256 centroids need >= 39 * 256 points
DEVICES = ("cpu", "gpu", "auto")
ORDERED_ADD_ROWS = 16_384  # a graph's vectors are added in storage order this many at a time (8 MB at 128 dims)


@dataclass(frozen=True)
class BuildInfo:
    """What ``build_index`` did: factory string, sizes, training sample, device and timings (s)."""

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
    device: str = "cpu"

    @property
    def build_s(self) -> float:
        return self.train_s + self.add_s

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "build_s": self.build_s}


def training_rows(n: int, nlist: int | None, seed: int) -> np.ndarray:
    """The (sorted) row positions k-means trains on: all n up to a budget, else a seeded sample."""
    budget = max(MIN_TRAIN_POINTS, TRAIN_POINTS_PER_LIST * (nlist or 0))
    if n <= budget:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=budget, replace=False))


def training_sample(vectors: np.ndarray, nlist: int | None, seed: int) -> np.ndarray:
    """The rows k-means trains on: all of them up to a budget, else a seeded sorted sample."""
    rows = training_rows(vectors.shape[0], nlist, seed)
    return vectors if len(rows) == vectors.shape[0] else vectors[rows]


def train_ivf(index: Any, sample: np.ndarray, params: IndexParams, n: int, d: int) -> None:
    """Train ``index`` (untrained; its IVF, if any, clusters ``sample`` as given, without sub-sampling again)."""
    _no_resampling(find_ivf(index), sample)
    _train(index, sample, params, n, d)


def _no_resampling(ivf: Any, sample: np.ndarray) -> None:
    if ivf is not None and len(sample):  # we sub-sampled already; stop FAISS from doing it again
        ivf.cp.max_points_per_centroid = math.ceil(len(sample) / ivf.nlist) + 1


def _train(work: Any, sample: np.ndarray, params: IndexParams, n: int, d: int) -> None:
    """Train ``work``: FAISS's own training, or two-level k-means for an IVF with many lists (a CPU index)."""
    ivf = find_ivf(work)
    try:
        if ivf is not None and needs_two_level(ivf):
            train_two_level(work, ivf, sample, spherical=params.metric == "ip", seed=params.seed)
        else:
            work.train(sample)
        if ivf is not None:
            set_assign_ef(ivf)
    except RuntimeError as exc:
        raise IndexerError(
            f"training {factory_string(params, n, d)!r} on {sample.shape[0]} vectors failed: {exc}"
        ) from exc


def build_index(
    params: IndexParams, vectors: np.ndarray, ids: np.ndarray, *, device: str = "cpu",
    withhold: np.ndarray | None = None,
) -> tuple[Any, BuildInfo]:
    """Create, train (seeded, on a sub-sample) and fill an index.

    vectors: (n, d) float32, L2-normalised; ids: (n,) int64, unique. ``device``: "cpu",
    "gpu" (FAISS's GPU build; HNSW has no GPU form and stays on the CPU) or "auto".
    ``withhold``: row positions trained on but not added (a graph is tuned with them as unseen queries, then
    they are added: :func:`indexer.core.tuning.tune_held_out`). Returns a CPU index (default search settings
    from ``params`` applied) and a BuildInfo; ``BuildInfo.n`` counts every row, withheld ones included.
    """
    from indexer.core.gpu import resolve_gpu, to_cpu, to_gpu

    if device not in DEVICES:
        raise InputError(f"device must be one of {', '.join(DEVICES)}; got {device!r}")
    x = as_vectors(vectors)
    n, d = x.shape
    id_arr = as_ids(ids, n)
    index = create_index(params, n, d)
    ivf = find_ivf(index)
    graph = find_hnsw(index) is not None or (ivf is not None and quantizer_hnsw(ivf) is not None)
    on_gpu = not graph and resolve_gpu(None if device == "auto" else device == "gpu")
    nlist = int(ivf.nlist) if ivf is not None else None
    sample = training_sample(x, nlist, params.seed) if not index.is_trained else x[:0]
    _no_resampling(ivf, sample)
    work = to_gpu(index) if on_gpu else index
    if on_gpu and ivf is not None and hasattr(work, "cp"):  # the GPU copy clusters with its own parameters
        work.cp.seed, work.cp.max_points_per_centroid = ivf.cp.seed, ivf.cp.max_points_per_centroid
    train_n = 0
    t0 = time.perf_counter()
    if not work.is_trained:
        train_n = sample.shape[0]
        _train(work, sample, params, n, d)
    t1 = time.perf_counter()
    order = None
    if find_hnsw(index) is not None:  # a graph over the vectors: store neighbours together (indexer.core.locality)
        from indexer.core.locality import locality_order

        order = locality_order(x, params.seed)
    if withhold is not None:
        kept = np.ones(n, dtype=bool)
        kept[_rows(withhold, n)] = False
        order = order[kept[order]] if order is not None else np.flatnonzero(kept)
    if order is None:
        work.add_with_ids(x, id_arr)
    for start in range(0, 0 if order is None else len(order), ORDERED_ADD_ROWS):
        block = order[start:start + ORDERED_ADD_ROWS]  # in order, a block at a time: no reordered copy of them all
        work.add_with_ids(x[block], id_arr[block])
    t2 = time.perf_counter()
    index = to_cpu(work) if on_gpu else work
    set_default_settings(  # like every field, a setting the kind lacks is ignored
        index,
        nprobe=params.nprobe if find_ivf(index) is not None else None,
        efSearch=params.efSearch if find_hnsw(index) is not None else None,
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
        device="gpu" if on_gpu else "cpu",
    )
    return index, info


def _rows(rows: np.ndarray, n: int) -> np.ndarray:
    """Row positions checked against n rows (int64, each in [0, n))."""
    out = np.asarray(rows, dtype=np.int64).reshape(-1)
    if len(out) and (out.min() < 0 or out.max() >= n):
        raise InputError(f"withheld rows must lie in [0, {n}); got {int(out.min())}..{int(out.max())}")
    return out


def add_vectors(index: Any, vectors: np.ndarray, ids: np.ndarray) -> None:
    """Add (n, d) float32 vectors with (n,) int64 ids to a trained index, without retraining."""
    x = as_vectors(vectors, index.d)
    id_arr = as_ids(ids, x.shape[0])
    if not index.is_trained:
        raise IndexerError("cannot add vectors to an untrained index; build it with build_index first")
    from indexer.core.ondisk_lists import is_on_disk, rewrite_on_disk

    if is_on_disk(index):
        rewrite_on_disk(index, add=(id_arr, x))
        return
    index.add_with_ids(x, id_arr)


def remove_ids(index: Any, ids: np.ndarray) -> int:
    """Remove the vectors with these int64 ids; returns how many were removed (unknown ids are skipped)."""
    id_arr = np.ascontiguousarray(np.asarray(ids, dtype=np.int64).reshape(-1))
    if find_hnsw(index) is not None:
        raise IndexerError("HNSW indexes cannot remove vectors; rebuild the index without them")
    from indexer.core.ondisk_lists import is_on_disk, rewrite_on_disk

    if is_on_disk(index):
        return rewrite_on_disk(index, remove=id_arr)
    try:
        return int(index.remove_ids(id_arr))
    except RuntimeError as exc:
        raise IndexerError(f"this index ({type(index).__name__}) cannot remove vectors: {exc}") from exc


def stored_vectors(index: Any) -> tuple[np.ndarray, np.ndarray]:
    """(ids (n,) int64, vectors (n, d) float32) held by an IDMap-wrapped index that can reconstruct (flat, HNSW)."""
    import faiss

    ids = faiss.vector_to_array(index.id_map).astype(np.int64)
    vectors = np.empty((index.ntotal, index.d), dtype=np.float32)
    index.index.reconstruct_n(0, index.ntotal, vectors)
    return ids, vectors


def copy_index(index: Any) -> Any:
    """A deep copy of ``index`` with the same default search settings (for copy-on-write updates: change the
    copy, then publish it, so readers of the original never see a half-applied change)."""
    import faiss

    from indexer.core.ondisk_lists import is_on_disk, without_prefetch
    from indexer.core.settings import default_settings

    # an on-disk index cannot be cloned; its serialised form names its (read-only) data file, mapped again
    if is_on_disk(index):
        copy = without_prefetch(faiss.deserialize_index(faiss.serialize_index(index)))
    else:
        try:
            copy = faiss.clone_index(index)
        except RuntimeError:  # a transform FAISS cannot clone (normalisation): copy its serialised form
            copy = faiss.deserialize_index(faiss.serialize_index(index))
    settings = default_settings(index)
    set_default_settings(copy, nprobe=settings.get("nprobe"), efSearch=settings.get("efSearch"))
    return copy


def remove_from_index(index: Any, sidecar: dict, ids: np.ndarray) -> tuple[Any, int]:
    """(index without ``ids``, how many went). Modifies ``index`` in place, except an HNSW graph (it cannot
    delete), which is built again from its own remaining vectors into a new object with the settings its
    ``sidecar`` (as :func:`indexer.core.index_io.save_index` wrote it) records."""
    ids = np.ascontiguousarray(np.asarray(ids, dtype=np.int64).reshape(-1))
    if find_hnsw(index) is None:
        return index, remove_ids(index, ids)
    held_ids, held_vectors = stored_vectors(index)
    keep = ~np.isin(held_ids, ids)
    removed = int((~keep).sum())
    if not removed:
        return index, 0
    rebuilt, _ = build_index(IndexParams.from_dict(sidecar["params"]), held_vectors[keep], held_ids[keep])
    settings = sidecar.get("search_params") or {}
    set_default_settings(rebuilt, nprobe=settings.get("nprobe"), efSearch=settings.get("efSearch"))
    return rebuilt, removed
