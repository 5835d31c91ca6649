"""Index operations: build (or replace) an index from a model's embeddings, update it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexer.api.devices import check_kind_device
from indexer.api.pipeline.training import embed
from indexer.api.registry.index_files import IndexTarget, change_index, writing
from indexer.api.registry.indexes import (
    catalog_vectors,
    model_of,
    stale_index_message,
)
from indexer.api.registry.models import default_model_name
from indexer.api.workspace import Workspace, check_artifact_name
from indexer.core.errors import InputError
from indexer.core.kinds import (
    AUTO,
    BENCH_KINDS,
    DEFAULT_KIND,
    DEFAULT_PCA_DIM,
    DEFAULT_TARGET_RECALL,
    EF_SEARCH,
    INDEX_KINDS,
    KINDS,
    NPROBE,
    index_kind,
)
from indexer.core.rerank import Rerank, as_rerank

TUNING_K = 10
SHARDED_KINDS = ("ivf", "ivfsq", "ivfpq", "ivf-hnsw", "pca-ivf")  # kinds --shards lays out in memory

__all__ = [
    "BENCH_KINDS", "DEFAULT_KIND", "DEFAULT_PCA_DIM", "DEFAULT_TARGET_RECALL", "INDEX_KINDS", "BuildOutcome",
    "build", "update",
]


@dataclass(frozen=True)
class BuildOutcome:
    """What :func:`build` and :func:`update` did: the index ``name`` of ``kind`` over ``model``'s vectors.

    ``factory``: the FAISS factory string; ``ntotal`` vectors of ``dim`` dims; ``search_params``:
    the saved settings (``nprobe`` / ``efSearch``); ``tuned_recall``: recall@10 reached by tuning
    (None when not tuned); ``embedded``: images embedded first; ``path``: the index file.
    """

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
    reason: str | None = None  # --index auto: why this kind and these parameters


def build(
    workspace: Workspace,
    kind: str = DEFAULT_KIND,
    *,
    model_name: str | None = None,
    name: str | None = None,
    nlist: int | None = None,
    nprobe: int | None = None,
    efSearch: int | None = None,  # noqa: N803 - FAISS's name for the setting
    pca_dim: int = DEFAULT_PCA_DIM,
    factory: str | None = None,
    target_recall: float | None = None,
    seed: int = 0,
    use_gpu: bool | None = None,
    max_memory_mb: float | None = None,
    progress: bool = True,
    rerank: str | Rerank | None = None,
    on_disk: bool = False,
    shards: int | None = None,
) -> BuildOutcome:
    """Embed what is missing, build a ``kind`` index over every ok image, tune it, save and register it.

    An existing index of the same name is replaced atomically: it keeps answering until the
    new one is complete. ``target_recall`` (default 0.95 for IVF/HNSW kinds) picks the smallest
    nprobe / efSearch reaching that recall@10 against exact search, unless one is given.
    ``use_gpu``: None uses FAISS's GPU build when there is one. ``rerank`` "dba" stores every vector
    augmented with its nearest neighbours (:func:`indexer.core.rerank.augment_database`) and records
    it in the sidecar; "qe" is a query-time setting and is refused here. ``kind="auto"`` lets
    :mod:`indexer.core.auto` pick the kind and its parameters from N, d, ``max_memory_mb`` and
    measured recall; the outcome's ``reason`` says why. ``on_disk``: an IVF kind whose lists live in a file
    beside the index, built from the embedding store ``shards`` shards at a time (:mod:`indexer.api.pipeline.ondisk`).
    """
    if shards is not None and not on_disk and kind not in SHARDED_KINDS:
        raise InputError(f"--shards lays out IVF kinds ({', '.join(SHARDED_KINDS)}) or reads an --on-disk build in "
                         f"shards; got kind {kind!r}")
    if on_disk and (kind == AUTO or as_rerank(rerank).mode != "none" or use_gpu):
        raise InputError("--on-disk builds take an IVF kind (ivf, ivfsq, ivfpq, ivf-hnsw), without --rerank or --gpu")
    if kind == AUTO:
        return _build_auto(workspace, model_name=model_name, name=name, target_recall=target_recall,
                           max_memory_mb=max_memory_mb, seed=seed, use_gpu=use_gpu, progress=progress)
    if max_memory_mb is not None:
        raise InputError("--max-memory-mb applies to --index auto only")
    check_kind_device(kind)  # gpu-flat without a GPU: refused before anything is embedded or written
    from indexer.core.build import build_index
    from indexer.core.factory import IndexParams

    model_name = model_name or default_model_name(workspace)
    name = check_artifact_name("index", name or kind)
    _check_search_options(kind, nprobe, efSearch)
    rerank = as_rerank(rerank)
    if rerank.mode == "qe":
        raise InputError("query expansion happens at query time: use 'indexer query --rerank qe' (build takes "
                         "--rerank none or dba)")
    params = IndexParams(
        kind=kind, nlist=nlist, nprobe=nprobe, efSearch=efSearch, pca_dim=pca_dim, factory=factory, seed=seed
    )
    report = embed(workspace, model_name, progress=progress)
    if on_disk:
        return _on_disk(workspace, params, model_name, name, shards or 1, target_recall, progress, report.embedded)
    ids, vectors = catalog_vectors(workspace, model_name)
    if len(ids) == 0:
        raise InputError(f"model {model_name!r} has no embedded images to index; run 'indexer ingest DIR' first")
    if rerank.mode == "dba":
        from indexer.core.rerank import augment_database

        vectors = augment_database(vectors, rerank.n, rerank.alpha)
    device = "auto" if use_gpu is None else ("gpu" if use_gpu else "cpu")
    withheld = _withheld(kind, efSearch, len(ids), seed)
    index, info = build_index(params, vectors, ids, device=device, withhold=withheld)
    tuning = _tune(index, vectors, ids, kind, nprobe, efSearch, target_recall, seed, withheld)
    path = workspace.indexes_dir / f"{name}.faiss"
    with writing(workspace, IndexTarget(name, kind, params.to_dict(), model_name, path)) as (file,):
        sidecar = file.save(index, {"name": name, "kind": kind, "model": model_name, "params": params.to_dict(),
                                    "build": info.to_dict(), "tuning": tuning, "seed": seed,
                                    "rerank": rerank.to_dict()}, replace=True)
    reason = _lay_out_shards(workspace, index, sidecar, shards)
    return BuildOutcome(
        name=name, kind=kind, model=model_name, factory=info.factory, ntotal=int(index.ntotal), dim=info.d,
        build_s=info.build_s, search_params=sidecar["search_params"],
        tuned_recall=tuning.get("recall") if tuning else None, embedded=report.embedded, path=path, reason=reason,
    )


def _lay_out_shards(workspace: Workspace, index, sidecar: dict, shards: int | None) -> str | None:
    """Write the shard files and manifest of the index just saved (``indexer serve --ray`` serves them); without
    ``shards``, drop an earlier layout of that name (its quantizer is not this index's). A line saying where."""
    import shutil

    from indexer.api.cluster.layout import shards_dir, write_shards

    if shards is None:
        shutil.rmtree(shards_dir(workspace, sidecar["name"]), ignore_errors=True)
        return None
    manifest = write_shards(workspace, index, sidecar, shards)
    counts = ", ".join(f"{entry.count:,}" for entry in manifest.shards)
    return f"{shards} shards by id range in {shards_dir(workspace, manifest.index)} ({counts} vectors)"


def _on_disk(workspace, params, model_name, name, shards, target_recall, progress, embedded) -> BuildOutcome:
    from indexer.api.pipeline.ondisk import build_on_disk_index

    path = workspace.indexes_dir / f"{name}.faiss"
    target = DEFAULT_TARGET_RECALL if target_recall is None else target_recall
    index, info, tuning = build_on_disk_index(workspace, params, model_name=model_name, path=path, shards=shards,
                                              k=TUNING_K, target_recall=target, progress=progress)
    with writing(workspace, IndexTarget(name, params.kind, params.to_dict(), model_name, path)) as (file,):
        sidecar = file.save(index, {"name": name, "kind": params.kind, "model": model_name,
                                    "params": params.to_dict(), "build": {**info.to_dict(), "shards": shards},
                                    "tuning": tuning, "seed": params.seed}, replace=True)
    return BuildOutcome(
        name=name, kind=params.kind, model=model_name, factory=info.factory, ntotal=int(index.ntotal), dim=info.d,
        build_s=info.build_s, search_params=sidecar["search_params"], tuned_recall=tuning.get("recall"),
        embedded=embedded, path=path, reason=f"lists on disk in {sidecar['on_disk']['data_file']}, {shards} shards")


def _build_auto(workspace, *, model_name, name, target_recall, max_memory_mb, seed, use_gpu, progress) -> BuildOutcome:
    from indexer.core.auto import build_auto

    model_name = model_name or default_model_name(workspace)
    if name is not None:
        check_artifact_name("index", name)
    report = embed(workspace, model_name, progress=progress)
    ids, vectors = catalog_vectors(workspace, model_name)
    if len(ids) == 0:
        raise InputError(f"model {model_name!r} has no embedded images to index; run 'indexer ingest DIR' first")
    target = DEFAULT_TARGET_RECALL if target_recall is None else target_recall
    device = "auto" if use_gpu is None else ("gpu" if use_gpu else "cpu")
    index, info, choice, tuned = build_auto(vectors, ids, target_recall=target, max_memory_mb=max_memory_mb,
                                            k=TUNING_K, seed=seed, device=device)
    kind = choice.params.kind
    name = check_artifact_name("index", name or kind)
    tuning = {} if tuned is None else {
        "param": tuned.param_name, "value": tuned.value, "recall": tuned.recall, "target": target,
        "reached": tuned.reached, "k": TUNING_K, "tried": tuned.tried}
    path = workspace.indexes_dir / f"{name}.faiss"
    with writing(workspace, IndexTarget(name, kind, choice.params.to_dict(), model_name, path)) as (file,):
        sidecar = file.save(index, {"name": name, "kind": kind, "model": model_name,
                                    "params": choice.params.to_dict(), "build": info.to_dict(), "tuning": tuning,
                                    "seed": seed, "auto": choice.to_dict()}, replace=True)
    return BuildOutcome(
        name=name, kind=kind, model=model_name, factory=info.factory, ntotal=int(index.ntotal), dim=info.d,
        build_s=info.build_s, search_params=sidecar["search_params"],
        tuned_recall=tuning.get("recall"), embedded=report.embedded, path=path, reason=choice.reason,
    )


def update(workspace: Workspace, name: str, *, progress: bool = True) -> BuildOutcome:
    """Add newly ingested images to index ``name`` without retraining it.

    Refused when the index's model was retrained after the index was built: its vectors and the
    model's new ones live in different spaces, so the index must be rebuilt.
    """
    from indexer.core.build import add_vectors
    from indexer.core.membership import indexed_ids

    with workspace.catalog() as catalog:
        row = catalog.index(name)
        model_name = model_of(row)
        stale = stale_index_message(row, catalog.model(model_name))
    if stale is not None:
        raise InputError(f"cannot update: {stale}")
    report = embed(workspace, model_name, progress=progress)
    added = 0

    def add_new(index, sidecar):
        nonlocal added
        ids, vectors = catalog_vectors(workspace, model_name)
        new = ~np.isin(ids, indexed_ids(index))
        added = int(new.sum())
        augmentation = as_rerank(Rerank.from_dict(sidecar.get("rerank")))
        if added and augmentation.mode == "dba":
            from indexer.core.rerank import augment_database

            # New vectors are augmented among all of them; stored ones keep their old neighbours until a rebuild.
            vectors = augment_database(vectors, augmentation.n, augmentation.alpha)
        if added:
            add_vectors(index, vectors[new], ids[new])
        return index, {**sidecar, "updated_with": added}

    path = workspace.resolve(row.path)
    index, sidecar = change_index(workspace, IndexTarget.of_row(workspace, row), add_new)
    return BuildOutcome(
        name=name, kind=row.kind, model=model_name, factory=sidecar.get("build", {}).get("factory", ""),
        ntotal=int(index.ntotal), dim=int(index.d), build_s=0.0, search_params=sidecar["search_params"],
        tuned_recall=None, embedded=report.embedded, path=path,
    )


def _withheld(kind: str, efSearch: int | None, n: int, seed: int):  # noqa: N803
    """Rows a graph kind to be tuned leaves out until tuned on them (:func:`indexer.core.tuning.held_out_rows`)."""
    from indexer.core.tuning import held_out_rows

    entry = KINDS.get(kind)
    if entry is None or entry.knob != EF_SEARCH or not entry.tuned or efSearch is not None:
        return None
    return held_out_rows(n, seed)


def _tune(index, vectors, ids, kind, nprobe, efSearch, target_recall, seed, withheld=None) -> dict:  # noqa: N803
    from indexer.core.settings import knob_of
    from indexer.core.tuning import tune_filter_widening, tune_held_out, tune_search_param

    knob = knob_of(index)
    given = {NPROBE: nprobe, EF_SEARCH: efSearch}.get(knob)
    target = DEFAULT_TARGET_RECALL if target_recall is None else target_recall
    if withheld is not None:  # a graph: tuned on vectors it has not seen, which are then added (never lost)
        result = tune_held_out(index, vectors, ids, withheld, k=TUNING_K, target_recall=target)
    elif knob is None or given is not None or not KINDS[kind].tuned or len(ids) < TUNING_K + 1:
        return {}
    else:
        result = tune_search_param(index, vectors, ids, k=TUNING_K, target_recall=target, seed=seed)
    widening = tune_filter_widening(index, vectors, ids, k=TUNING_K, target_recall=target, seed=seed)
    return {"param": result.param_name, "value": result.value, "recall": result.recall, "target": target,
            "reached": result.reached, "k": TUNING_K, "tried": result.tried, "filter_widen": widening,
            "queries": "held out" if withheld is not None else "stored"}


def _check_search_options(kind: str, nprobe: int | None, efSearch: int | None) -> None:  # noqa: N803
    """An option the kind has no use for is an error, not silently dropped (raw kinds: checked on the index)."""
    entry = index_kind(kind)
    if entry.name == "raw":
        return
    ivf_kinds = ", ".join(name for name, k in KINDS.items() if k.knob == NPROBE)
    hnsw_kinds = ", ".join(name for name, k in KINDS.items() if k.knob == EF_SEARCH)
    if nprobe is not None and entry.knob != NPROBE:
        raise InputError(f"--nprobe applies to IVF kinds ({ivf_kinds}); index kind {kind!r} has no lists")
    if efSearch is not None and entry.knob != EF_SEARCH:
        raise InputError(f"--efSearch applies to {hnsw_kinds}; index kind {kind!r} has no graph")
