"""Index operations: build (or replace) an index from a model's embeddings, update it, remove images."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexer.api.models import default_model_name, embed
from indexer.errors import InputError, NotFoundError
from indexer.ingest import catalog_path
from indexer.workspace import Workspace, check_artifact_name
from storage.catalog import ArtifactRow, Catalog

TUNED_KINDS = frozenset({"ivf", "ivfpq", "hnsw", "pca-ivf", "raw"})
DEFAULT_TARGET_RECALL = 0.95
TUNING_K = 10


@dataclass(frozen=True)
class BuildOutcome:
    name: str
    kind: str
    model: str
    factory: str
    ntotal: int
    dim: int
    build_s: float
    search_params: dict
    tuned_recall: float | None
    embedded: int
    path: Path


def build(
    workspace: Workspace,
    kind: str,
    *,
    model_name: str | None = None,
    name: str | None = None,
    nlist: int | None = None,
    nprobe: int | None = None,
    ef_search: int | None = None,
    pca_dim: int = 32,
    factory: str | None = None,
    target_recall: float | None = None,
    seed: int = 0,
    use_gpu: bool | None = None,
    progress: bool = True,
) -> BuildOutcome:
    """Embed what is missing, build a ``kind`` index over every ok image, tune it, save and register it.

    An existing index of the same name is replaced atomically: it keeps answering until the
    new one is complete. ``target_recall`` (default 0.95 for IVF/HNSW kinds) picks the smallest
    nprobe / efSearch reaching that recall@10 against exact search, unless nprobe is given.
    """
    from indexer.factory import IndexParams
    from indexer.index_io import save_index

    model_name = model_name or default_model_name(workspace)
    name = check_artifact_name("index", name or kind)
    _check_search_options(kind, nprobe, ef_search)
    params = IndexParams(
        kind=kind, nlist=nlist, nprobe=nprobe, ef_search=ef_search, pca_dim=pca_dim, factory=factory, seed=seed
    )
    report = embed(workspace, model_name, progress=progress)
    ids, vectors = catalog_vectors(workspace, model_name)
    if len(ids) == 0:
        raise InputError(f"model {model_name!r} has no embedded images to index; run 'indexer ingest DIR' first")
    index, info = _build_on_device(params, vectors, ids, use_gpu)
    tuning = _tune(index, vectors, ids, kind, nprobe, ef_search, target_recall, seed)
    path = workspace.indexes_dir / f"{name}.faiss"
    sidecar = save_index(
        index,
        path,
        {"name": name, "kind": kind, "model": model_name, "params": params.to_dict(), "build": info.to_dict(),
         "tuning": tuning, "seed": seed},
    )
    _register(workspace, name, kind, params.to_dict(), sidecar, path, model_name, replace=True)
    return BuildOutcome(
        name=name, kind=kind, model=model_name, factory=info.factory, ntotal=int(index.ntotal), dim=info.d,
        build_s=info.build_s, search_params=sidecar["search_params"],
        tuned_recall=tuning.get("recall") if tuning else None, embedded=report.embedded, path=path,
    )


def update(workspace: Workspace, name: str, *, progress: bool = True) -> BuildOutcome:
    """Add newly ingested images to index ``name`` without retraining it."""
    from indexer.factory import add_vectors
    from indexer.index_io import load_index, save_index
    from indexer.membership import indexed_ids

    row = _index_row(workspace, name)
    model_name = _model_of(row)
    report = embed(workspace, model_name, progress=progress)
    path = workspace.resolve(row.path)
    index, sidecar = load_index(path)
    ids, vectors = catalog_vectors(workspace, model_name)
    new = ~np.isin(ids, indexed_ids(index))
    if new.any():
        add_vectors(index, vectors[new], ids[new])
    sidecar = save_index(index, path, {**_user_sidecar(sidecar), "updated_with": int(new.sum())})
    _register(workspace, name, row.kind, row.params, sidecar, path, model_name)
    return BuildOutcome(
        name=name, kind=row.kind, model=model_name, factory=sidecar.get("build", {}).get("factory", ""),
        ntotal=int(index.ntotal), dim=int(index.d), build_s=0.0, search_params=sidecar["search_params"],
        tuned_recall=None, embedded=report.embedded, path=path,
    )


@dataclass(frozen=True)
class RemoveOutcome:
    removed_images: int
    not_found: list[str]
    per_index: dict[str, int]


def remove(workspace: Workspace, paths: list[str] = (), ids: list[int] = ()) -> RemoveOutcome:
    """Remove images (by path, resolved to absolute, or by id) from every index, embedding store and the catalog.

    Indexes are updated first, the catalog last, so an interrupted removal leaves images that
    'indexer status' reports as inconsistent rather than index entries with no catalog row.
    """
    from indexer.factory import find_hnsw, remove_ids
    from indexer.index_io import load_index, save_index
    from models.embedding_store import EmbeddingStore

    engine = workspace.open_for_writing()
    with Catalog(engine) as catalog:
        resolved = {catalog_path(p): p for p in paths}
        by_path = catalog.images_by_paths(resolved)
        by_id = catalog.images_by_ids(ids)
        not_found = [given for path, given in resolved.items() if path not in by_path]
        not_found += [str(i) for i in ids if int(i) not in by_id]
        wanted = np.array(sorted({row.id for row in [*by_path.values(), *by_id.values()]}), dtype=np.int64)
        index_rows, model_rows = catalog.indexes(), catalog.models()
    per_index: dict[str, int] = {}
    if len(wanted):
        # load every index first: a missing or corrupt one stops the removal before anything changed
        loaded = [(row, workspace.resolve(row.path), *load_index(workspace.resolve(row.path))) for row in index_rows]
        for row, path, index, sidecar in loaded:
            if find_hnsw(index) is not None:  # graphs cannot delete: rebuild from their own vectors without them
                held_ids, held_vectors = _own_vectors(index)
                keep = ~np.isin(held_ids, wanted)
                per_index[row.name] = int((~keep).sum())
                if per_index[row.name]:
                    index = _rebuild(sidecar, held_vectors[keep], held_ids[keep])
            else:
                per_index[row.name] = remove_ids(index, wanted)
            sidecar = save_index(index, path, _user_sidecar(sidecar))
            _register(workspace, row.name, row.kind, row.params, sidecar, path, row.model_name)
        for model in model_rows:
            EmbeddingStore(workspace.embeddings_dir / model.name).remove(wanted)
        with Catalog(engine) as catalog:
            removed = catalog.remove_images(wanted.tolist())
    else:
        removed = 0
    return RemoveOutcome(removed_images=removed, not_found=not_found, per_index=per_index)


def catalog_vectors(workspace: Workspace, model_name: str) -> tuple[np.ndarray, np.ndarray]:
    """(ids (n,) int64, vectors (n, d) float32) of the model's embeddings of ok catalog images."""
    with Catalog(workspace.open_read_only()) as catalog:
        ok_ids = np.array([row.id for row in catalog.images()], dtype=np.int64)
    store_ids, vectors = _store_arrays(workspace, model_name)
    keep = np.isin(store_ids, ok_ids)
    return store_ids[keep], np.ascontiguousarray(vectors[keep], dtype=np.float32)


def _store_arrays(workspace: Workspace, model_name: str) -> tuple[np.ndarray, np.ndarray]:
    from models.embedding_store import EmbeddingStore

    store = EmbeddingStore(workspace.embeddings_dir / model_name)
    return np.asarray(store.ids(), dtype=np.int64), np.asarray(store.vectors(mmap=False), dtype=np.float32)


def _build_on_device(params, vectors: np.ndarray, ids: np.ndarray, use_gpu: bool | None):
    """Train and fill the index on the GPU when asked / available (k-means is the costly part), on the CPU otherwise."""
    from indexer.factory import build_index, create_index
    from indexer.gpu import resolve_gpu, to_cpu, to_gpu

    if params.kind == "hnsw" or not resolve_gpu(use_gpu):  # FAISS has no GPU HNSW
        return build_index(params, vectors, ids)
    import time

    from indexer.factory import BuildInfo, factory_string, find_ivf, set_search_params

    started = time.perf_counter()
    n, d = vectors.shape
    gpu_index = to_gpu(create_index(params, n, d))
    gpu_index.train(vectors)
    trained = time.perf_counter()
    gpu_index.add_with_ids(vectors, ids)
    index = to_cpu(gpu_index)
    set_search_params(index, nprobe=params.nprobe, ef_search=params.ef_search)
    ivf = find_ivf(index)
    info = BuildInfo(kind=params.kind, factory=factory_string(params, n, d), n=n, d=d,
                     nlist=int(ivf.nlist) if ivf is not None else None, train_n=n, train_s=trained - started,
                     add_s=time.perf_counter() - trained, seed=params.seed, metric=params.metric)
    return index, info


def _tune(index, vectors, ids, kind, nprobe, ef_search, target_recall, seed) -> dict:
    from indexer.tuning import tune_search_param

    own_knob_given = ef_search is not None if kind == "hnsw" else nprobe is not None
    if own_knob_given or kind not in TUNED_KINDS:
        return {}
    target = DEFAULT_TARGET_RECALL if target_recall is None else target_recall
    if len(ids) < TUNING_K + 1:
        return {}
    result = tune_search_param(index, vectors, ids, k=TUNING_K, target_recall=target, seed=seed)
    if result is None:
        return {}
    return {"param": result.param_name, "value": result.value, "recall": result.recall, "target": target,
            "reached": result.reached, "k": TUNING_K, "tried": result.tried}


def _own_vectors(index) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors) stored in an IDMap-wrapped index whose storage can reconstruct (flat, HNSW)."""
    import faiss

    ids = faiss.vector_to_array(index.id_map).astype(np.int64)
    vectors = np.empty((index.ntotal, index.d), dtype=np.float32)
    index.index.reconstruct_n(0, index.ntotal, vectors)
    return ids, vectors


def _rebuild(sidecar: dict, vectors: np.ndarray, ids: np.ndarray):
    from indexer.factory import IndexParams, build_index, set_search_params

    index, _ = build_index(IndexParams(**sidecar["params"]), vectors, ids)
    params = sidecar.get("search_params") or {}
    set_search_params(index, nprobe=params.get("nprobe"), ef_search=params.get("efSearch"))
    return index


def _register(workspace, name, kind, params, sidecar, path, model_name, *, replace: bool = False) -> None:
    with Catalog(workspace.open_for_writing()) as catalog:
        catalog.register_index(
            replace=replace,
            name=name, kind=kind,
            params={**params, "search_params": sidecar["search_params"], "faiss_version": sidecar["faiss_version"],
                    "factory": sidecar.get("build", {}).get("factory")},
            path=workspace.relative(path), dim=int(sidecar["d"]), ntotal=int(sidecar["ntotal"]), model_name=model_name,
        )


def _user_sidecar(sidecar: dict) -> dict:
    """The caller-given part of a sidecar (save_index recomputes sizes, checksums and search params)."""
    computed = {"format", "d", "ntotal", "faiss_version", "search_params", "created", "index_file", "index_bytes",
                "sha256"}
    return {key: value for key, value in sidecar.items() if key not in computed}


def _index_row(workspace: Workspace, name: str) -> ArtifactRow:
    with Catalog(workspace.open_read_only()) as catalog:
        return catalog.index(name)


def _model_of(row: ArtifactRow) -> str:
    if row.model_name is None:
        raise NotFoundError(f"index {row.name!r} was built with a model that no longer exists; rebuild it")
    return row.model_name


def _check_search_options(kind: str, nprobe: int | None, ef_search: int | None) -> None:
    """An option the kind has no use for is an error, not silently dropped."""
    if nprobe is not None and kind in ("flat", "pca", "hnsw"):
        raise InputError(f"--nprobe applies to IVF kinds (ivf, ivfpq, pca-ivf); index kind {kind!r} has no lists")
    if ef_search is not None and kind not in ("hnsw", "raw"):
        raise InputError(f"--ef-search applies to hnsw; index kind {kind!r} has no graph")


__all__ = ["build", "update", "remove", "catalog_vectors", "BuildOutcome", "RemoveOutcome"]
