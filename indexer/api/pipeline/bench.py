"""Benchmarks on the catalog or on synthetic vectors, through the one bench routine.

Catalog mode: every image of the split is queried against the images of that same split,
itself excluded. Each kind is built in memory over exactly those vectors (same params as
``indexer build``, tuned to the same target recall) by :func:`indexer.bench.runner.run_bench`,
which also measures synthetic data. End-to-end latency (decode, embed with ONNX, search,
catalog rows) then uses the workspace's own registered index of each kind; where the workspace
has none, the API builds and registers one first and the report's ``notes`` say so.
"""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from indexer.api.devices import check_kind_device, kind_device
from indexer.api.pipeline.build import build
from indexer.api.registry.indexes import catalog_vectors
from indexer.api.registry.models import default_model_name
from indexer.api.tables import to_dataframe
from indexer.api.workspace import Workspace
from indexer.bench.runner import check_bench_kinds
from indexer.core.errors import InputError
from indexer.core.files import write_json, write_text
from indexer.core.kinds import AUTO, BENCH_KINDS, DEFAULT_BENCH_KINDS, ON_DISK
from indexer.core.rerank import Rerank, as_rerank

DEFAULT_KINDS = DEFAULT_BENCH_KINDS
END_TO_END_QUERIES = 30
MIN_IMAGES = 3

__all__ = [
    "BENCH_KINDS", "DEFAULT_KINDS", "BenchReport", "bench_catalog", "bench_synthetic", "report_table", "write_outputs",
]


class BenchReport(dict):
    """The JSON-ready dict a bench returns, plus :meth:`to_pandas` and :meth:`sweeps_to_pandas`.

    Keys: ``params`` (the run's settings, machine and date), ``results`` (one dict per index
    kind: ``kind``, P@1 ``p_at_1``, ``p_at_k``, ``r_at_k``, ``f1_at_k``, ``map_at_r``, recall
    against exact search ``ann_recall_at_k``, ``search_ms_p50/p95/p99``, ``qps``, end-to-end
    ``query_ms_p50`` (catalog mode), ``build_s``, ``bytes_per_vector``, ...), ``sweeps``
    (recall-latency points per IVF/HNSW kind) and ``notes`` (lines worth showing).
    """

    def to_pandas(self) -> Any:
        """One row per index kind, the columns of ``results`` in their order (needs pandas)."""
        rows = self["results"]
        columns = list(dict.fromkeys(key for row in rows for key in row))
        return to_dataframe(rows, columns)

    def sweeps_to_pandas(self) -> Any:
        """The recall-latency points, one row each, with the kind they belong to (needs pandas)."""
        rows = [{"kind": kind, **point} for kind, points in self["sweeps"].items() for point in points]
        columns = list(dict.fromkeys(key for row in rows for key in row)) or ["kind"]
        return to_dataframe(rows, columns)


def bench_catalog(
    workspace: Workspace,
    *,
    kinds: tuple[str, ...] = DEFAULT_KINDS,
    model_name: str | None = None,
    split: str | None = "test",
    k: int = 10,
    n_queries: int | None = None,
    target_recall: float = 0.95,
    seed: int = 0,
    progress: bool = True,
    rerank: str | Rerank = "none",
    peers: tuple[str, ...] = (),
) -> BenchReport:
    """Compare index kinds (and ``peers``) on the catalog; returns a :class:`BenchReport` (``params``,
    ``results``, ``sweeps``, ``data``, ``notes``).

    ``rerank`` ("none", "qe", "dba" or a :class:`~indexer.core.rerank.Rerank`): the re-ranking the
    label metrics are measured with; every row says which (``"rerank"``). Besides the image-in
    ``query_ms_p50``, each of our rows gets ``rows_ms_p50``: one stored vector in, catalog rows
    (path, label) out, the call a database peer's ``rows_ms_p50`` is compared with (the peers store
    path and label as their metadata).
    """
    import faiss

    from indexer.bench.runner import BenchData, run_bench

    check_bench_kinds(kinds, peers)
    _check_device_kinds(kinds)
    model_name = model_name or default_model_name(workspace)
    notes: list[str] = []
    served_by = {kind: _workspace_index(workspace, kind, model_name, target_recall, seed, progress, notes)
                 for kind in kinds if kind != AUTO}
    ids, vectors, labels, paths = _split_vectors(workspace, model_name, split)
    queries_at = _query_rows(len(ids), n_queries, seed)
    metadata = [{"path": str(path), "label": int(label)} for path, label in zip(paths, labels)] if peers else None
    data = BenchData(base=vectors, base_ids=ids, queries=vectors[queries_at], query_ids=ids[queries_at],
                     base_labels=labels, query_labels=labels[queries_at], metadata=metadata)
    rerank = as_rerank(rerank)
    report = run_bench(data, kinds, k=k, target_recall=target_recall, seed=seed, n_latency=300,
                       progress=progress, rerank=rerank, peers=peers)
    end_to_end = rerank if rerank.mode == "qe" else Rerank()
    if rerank.mode == "dba":
        notes.append("dba changes the stored vectors only: the end-to-end query time is that of the plain index")
    for row in report["results"]:
        if row["system"] == "indexer" and row["kind"] in served_by:
            row["query_ms_p50"] = _end_to_end_ms(workspace, served_by[row["kind"]],
                                                 paths[queries_at][:END_TO_END_QUERIES], k, end_to_end)
            row["rows_ms_p50"] = _vector_to_rows_ms(workspace, served_by[row["kind"]], data.queries[:100], k)
    report["params"] = {
        "mode": "catalog", "model": model_name, "split": split, "k": k, "n_images": int(len(ids)),
        "n_queries": int(len(queries_at)), "target_recall": target_recall, "seed": seed, "kinds": list(kinds),
        "peers": list(peers), "rerank": rerank.to_dict(),
        "faiss_version": faiss.__version__, "machine": _machine(), "date": time.strftime("%Y-%m-%d"),
    }
    report["notes"] = notes + report["notes"]
    return BenchReport(report)


def bench_filtered(
    n: int, dim: int, *, kinds: tuple[str, ...] = ("ivf", "hnsw"), fractions: tuple[float, ...] | None = None,
    k: int = 10, n_queries: int | None = None, target_recall: float = 0.95, seed: int = 0, data: str = "realistic",
    json_path: str | os.PathLike[str] | None = None, markdown_path: str | os.PathLike[str] | None = None,
    log: Callable[[str], None] | None = None, peers: tuple[str, ...] = (),
) -> dict:
    """Filtered search on ``n`` seeded synthetic vectors with two generated fields (a 1,000-value category and
    a uniform number): for each kind and each fraction selected (default 0.1 %, 1 %, 10 %, 50 %), the plan the
    service runs, its recall@k against exact search within the selection and its p50 beside the unfiltered p50
    (:mod:`indexer.bench.filtered_bench`). Returns the JSON-ready report (written to ``json_path``); ``table``
    holds it as Markdown (written to ``markdown_path``). ``peers``: the same filtered queries through each peer's
    own filter, in the same run and table (:mod:`indexer.bench.peer_filtered`; a peer without one gets a row
    saying so, a missing one a line in ``notes``)."""
    from indexer.bench.filtered_bench import DEFAULT_FRACTIONS, filtered_table, run_filtered_bench
    from indexer.bench.synthetic_bench import synthetic_data

    fractions = tuple(fractions or DEFAULT_FRACTIONS)
    if not all(0 < fraction <= 1 for fraction in fractions):
        raise InputError(f"--filters: fractions must be in (0, 1]; got {', '.join(map(str, fractions))}")
    check_bench_kinds(kinds, peers)
    _check_device_kinds(kinds)
    vectors = synthetic_data(n, dim, n_queries or 300, 200, seed, data=data)
    report = run_filtered_bench(vectors.base, vectors.queries, vectors.tune_queries, list(kinds), k=k,
                                target_recall=target_recall, fractions=fractions, seed=seed, peers=tuple(peers),
                                log=log)
    report.update(data=data, seed=seed, date=time.strftime("%Y-%m-%d"), machine=_machine(),
                  faiss_version=_faiss_version())
    if json_path:
        write_json(json_path, report)
    report["table"] = filtered_table(report)
    if markdown_path:
        write_text(markdown_path, report["table"] + "\n")
    return report


def bench_synthetic(
    n: int, dim: int, *, kinds: tuple[str, ...] = DEFAULT_KINDS, k: int = 10, n_queries: int | None = None,
    target_recall: float = 0.95, seed: int = 0, progress: bool = True, data: str = "realistic",
    peers: tuple[str, ...] = (), export_vectors: str | os.PathLike[str] | None = None,
    shards: int = 10, memory_n: int | None = None,
) -> BenchReport:
    """The same comparison on ``n`` seeded synthetic vectors of ``dim`` dims (cluster labels, no MAP@R).

    ``data``: "realistic" (shaped like trained embeddings) or "blobs" (isotropic clusters).
    ``export_vectors``: a folder for base.npy, queries.npy and gt.npy (exact top 100). With ``ivf-ondisk``
    among ``kinds`` the vectors are generated chunk by chunk and never held at once
    (:mod:`indexer.bench.ondisk_bench`): ivf-ondisk is built over all n in ``shards`` shards, the other kinds
    in memory over the first ``memory_n`` (default min(n, 1M)).
    """
    from indexer.bench.synthetic_bench import run_synthetic_bench

    check_bench_kinds(kinds, peers)
    _check_device_kinds(kinds)
    if ON_DISK in kinds:
        if peers or export_vectors or data != "realistic":
            raise InputError(f"--indexes {ON_DISK} streams realistic vectors: no --peers, --export-vectors or "
                             "--data blobs with it")
        from indexer.bench.ondisk_bench import run_streaming_bench

        report = run_streaming_bench(n, dim, list(kinds), k=k, n_queries=n_queries or 300,
                                     target_recall=target_recall, seed=seed, shards=shards, memory_n=memory_n,
                                     progress=progress)
        report["params"].update(machine=_machine(), date=time.strftime("%Y-%m-%d"), faiss_version=_faiss_version())
        return BenchReport(report)
    if memory_n is not None:
        raise InputError(f"--memory-n applies to benches with {ON_DISK} only")
    report = run_synthetic_bench(n, dim, list(kinds), k=k, n_queries=n_queries or 300,
                                 target_recall=target_recall, seed=seed, progress=progress, data=data,
                                 peers=peers, export_vectors=None if export_vectors is None else str(export_vectors))
    report["params"].update(mode="synthetic", machine=_machine(), date=time.strftime("%Y-%m-%d"))
    return BenchReport(report)


def _check_device_kinds(kinds: tuple[str, ...]) -> None:
    """gpu-flat is refused in one line: without a GPU for that reason; with one because the bench runner
    (indexer.bench: FAISS, no torch) would time FAISS's CPU flat search under its name."""
    for kind in kinds:
        if kind_device(kind) is not None:
            check_kind_device(kind)
            raise InputError(f"bench does not measure index kind {kind!r} yet; benchmarks/gpu_check.py measures "
                             "its latency, throughput and recall on the GPU")


def report_table(report: dict[str, Any]) -> str:
    """The report as a terminal table."""
    from indexer.bench.report import text_table

    return text_table(report)


def write_outputs(
    report: dict[str, Any],
    *,
    json_path: str | os.PathLike[str] | None = None,
    plot_path: str | os.PathLike[str] | None = None,
    markdown_path: str | os.PathLike[str] | None = None,
) -> list[str]:
    """Write the report as JSON, a Markdown block and a recall-latency plot; one line per file written
    (or why a plot could not be drawn)."""
    from indexer.bench.report import markdown_block

    lines = []
    if json_path:
        write_text(json_path, json.dumps(report, indent=2, default=float))
        lines.append(f"JSON written to {json_path}")
    if markdown_path:
        write_text(markdown_path, markdown_block(report) + "\n")
        lines.append(f"Markdown written to {markdown_path}")
    if plot_path:
        from indexer.bench.plots import plot_sweep

        if report["sweeps"]:
            from indexer.bench.plots import plot_pareto

            plot_sweep(report["sweeps"], plot_path)
            lines.append(f"recall-latency plot written to {plot_path}")
            pareto_path = Path(plot_path).with_name(Path(plot_path).stem + "-pareto" + Path(plot_path).suffix)
            plot_pareto(report["sweeps"], pareto_path)
            lines.append(f"recall-QPS Pareto plot written to {pareto_path}")
        else:
            lines.append("no ivf/hnsw kind benchmarked: no recall-latency curve to plot")
    return lines


def prepare_output_paths(*paths: str | os.PathLike[str] | None) -> None:
    """Create the folders of the output files before a long run, so a bad path fails first."""
    for path in paths:
        if path:
            try:
                Path(path).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise InputError(f"{path}: cannot create its folder ({exc.strerror or exc})") from None


def _vector_to_rows_ms(workspace: Workspace, index_name: str, vectors: np.ndarray, k: int) -> float:
    """Median ms of one stored vector in, its top-k catalog rows out (no image decoding or embedding)."""
    from indexer.api.search.query import Searcher

    searcher = Searcher(workspace, index_name)
    searcher.hits_for_vectors(vectors[:1], k=k)  # warm-up
    times = []
    for row in range(len(vectors)):
        started = time.perf_counter()
        searcher.hits_for_vectors(vectors[row : row + 1], k=k)
        times.append(time.perf_counter() - started)
    return float(np.median(times) * 1e3)


def _split_vectors(workspace: Workspace, model_name: str, split: str | None):
    ids, vectors = catalog_vectors(workspace, model_name)
    with workspace.catalog() as catalog:
        rows = {row.id: row for row in catalog.images()}
    keep = np.array([rows[i].label_id is not None and (split is None or rows[i].split == split) for i in ids.tolist()],
                    dtype=bool)
    if keep.sum() < MIN_IMAGES:
        where = f"split {split!r}" if split else "the catalog"
        raise InputError(f"{where} has {int(keep.sum())} labelled, embedded images; the bench needs at least {MIN_IMAGES}")
    ids, vectors = ids[keep], vectors[keep]
    labels = np.array([rows[i].label_id for i in ids.tolist()], dtype=np.int64)
    paths = np.array([rows[i].path for i in ids.tolist()], dtype=object)
    return ids, np.ascontiguousarray(vectors), labels, paths


def _query_rows(n: int, n_queries: int | None, seed: int) -> np.ndarray:
    if n_queries is None or n_queries >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=n_queries, replace=False))


def _end_to_end_ms(workspace: Workspace, index_name: str, paths: np.ndarray, k: int, rerank: Rerank) -> float:
    """Median ms to answer one image query in process: decode, ONNX embed, search(es), catalog rows."""
    from indexer.api.search.query import Searcher

    searcher = Searcher(workspace, index_name)
    searcher.answer([paths[0]], k=k, rerank=rerank)  # warm-up (and the vector lookup, for qe)
    times = []
    for path in paths:
        started = time.perf_counter()
        searcher.answer([path], k=k, rerank=rerank)
        times.append(time.perf_counter() - started)
    return float(np.median(times) * 1e3)


def _workspace_index(workspace: Workspace, kind: str, model_name: str, target_recall: float, seed: int,
                     progress: bool, notes: list[str]) -> str:
    """Name of a registered ``kind`` index over ``model_name`` (preferring the one named ``kind``).

    Built and registered when the workspace has none, and ``notes`` says so.
    """
    with workspace.catalog() as catalog:
        rows = catalog.indexes()
    names = {row.name for row in rows}
    on_disk = kind == ON_DISK  # an ivf index built with --on-disk, known by its name
    matching = sorted((row.name != kind, row.name) for row in rows if row.model_name == model_name
                      and (row.name == kind if on_disk else row.kind == kind))
    if matching:
        return matching[0][1]
    name = kind if kind not in names else f"{model_name}-{kind}"
    outcome = build(workspace, "ivf" if on_disk else kind, model_name=model_name, name=name,
                    target_recall=target_recall, seed=seed, progress=progress, on_disk=on_disk)
    notes.append(f"the workspace had no {kind} index of model {model_name!r}: built and registered {name!r} "
                 f"({outcome.factory}, {outcome.ntotal} vectors) for the end-to-end timing")
    return name


def _faiss_version() -> str:
    import faiss

    return faiss.__version__


def _machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.python_implementation()} {platform.python_version()}"
