"""Benchmarks: what each index kind gives up and gains, on the catalog or on synthetic vectors.

Catalog mode: every image of the split is queried against the images of that same split,
itself excluded. Each kind is built in memory over exactly those vectors (same embeddings,
same parameters as ``indexer build``, tuned to the same target recall), so label quality,
fidelity to exact search and speed are measured side by side. End-to-end latency (decode,
embed with ONNX, search, catalog rows) uses the workspace's registered index of that kind,
built first when missing.
"""

from __future__ import annotations

import platform
import time
from typing import Any

import numpy as np

from indexer.api.indexes import TUNED_KINDS, build, catalog_vectors
from indexer.api.models import default_model_name
from indexer.errors import InputError
from indexer.workspace import Workspace
from storage.catalog import Catalog

DEFAULT_KINDS = ("flat", "pca", "ivf", "hnsw")
END_TO_END_QUERIES = 30
MIN_IMAGES = 3


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
) -> dict[str, Any]:
    """Compare index kinds on the catalog; returns ``{"params", "results", "sweeps"}``."""
    import faiss

    from indexer.bench_core import bytes_per_vector, faiss_direct_overhead, index_bytes, sweep
    from indexer.factory import IndexParams, build_index, get_search_params
    from indexer.fidelity import ann_recall_at_k
    from indexer.metrics import label_metrics, relevant_counts
    from indexer.search import drop_self, exact_search, search
    from indexer.timing import latency_ms, throughput_qps
    from indexer.tuning import tune_search_param

    model_name = model_name or default_model_name(workspace)
    # end-to-end timing uses the workspace's own index of each kind for this model, built when missing
    served_by = {kind: _workspace_index(workspace, kind, model_name, target_recall, seed, progress) for kind in kinds}
    ids, vectors, labels, paths = _split_vectors(workspace, model_name, split)
    queries_at = _query_rows(len(ids), n_queries, seed)
    query_ids, query_vectors, query_labels = ids[queries_at], vectors[queries_at], labels[queries_at]
    relevant = relevant_counts(query_labels, labels)
    depth = int(max(k, relevant.max(initial=0)))  # MAP@R needs the top R of every query
    exact_scores, exact_ids = exact_search(vectors, ids, query_vectors, depth + 10, exclude_self_ids=query_ids)
    label_of = dict(zip(ids.tolist(), labels.tolist()))

    results, sweeps = [], {}
    exact_map = None
    for kind in _progress(kinds, progress):
        params = IndexParams(kind=kind, seed=seed)
        index, info = build_index(params, vectors, ids)
        tuned = None
        if kind in TUNED_KINDS:
            tuned = tune_search_param(index, vectors, ids, k=k, target_recall=target_recall, seed=seed)
        scores, found = search(index, query_vectors, min(depth + 1, len(ids)))
        scores, found = drop_self(scores, found, query_ids, min(depth, len(ids) - 1))
        neighbour_labels = np.vectorize(lambda i: label_of.get(int(i), -1), otypes=[np.int64])(found)
        quality = label_metrics(query_labels, neighbour_labels, relevant, k)
        if kind == "flat":
            exact_map = quality["map_at_r"]
        latency = latency_ms(index, query_vectors[:300], k)
        overhead = faiss_direct_overhead(index, query_vectors[:200], k)
        row = {
            "kind": kind,
            "factory": info.factory,
            **{key: get_search_params(index).get(src) for key, src in (("nprobe", "nprobe"), ("ef_search", "efSearch"))},
            "p_at_1": quality["precision_at_1"],
            "p_at_k": quality["precision_at_k"],
            "r_at_k": quality["recall_at_k"],
            "f1_at_k": quality["f1_at_k"],
            "map_at_r": quality["map_at_r"],
            "ann_recall_at_k": ann_recall_at_k(found[:, :k], exact_ids, k, exact_scores=exact_scores),
            "search_ms_p50": latency["p50"],
            "search_ms_p95": latency["p95"],
            "search_ms_p99": latency["p99"],
            "qps": throughput_qps(index, query_vectors, k),
            "build_s": info.build_s,
            "bytes_per_vector": bytes_per_vector(index),
            "index_bytes": index_bytes(index),
            "our_overhead_pct": overhead["overhead_pct"],
            "tuned_recall": None if tuned is None else tuned.recall,
        }
        row["query_ms_p50"] = _end_to_end_ms(workspace, served_by[kind], paths[queries_at][:END_TO_END_QUERIES], k)
        results.append(row)
        if kind in TUNED_KINDS:
            sweeps[kind] = sweep(index, None, query_vectors[:300], exact_ids[:300], k,
                                 exact_scores=exact_scores[:300], n_latency=100, query_ids=query_ids[:300])
    flat = next((row for row in results if row["kind"] == "flat"), None)
    for row in results:
        row["map_at_r_change"] = None if exact_map is None else row["map_at_r"] - exact_map
        row["speedup_vs_flat"] = None if flat is None else flat["search_ms_p50"] / row["search_ms_p50"]
    return {
        "params": {
            "mode": "catalog", "model": model_name, "split": split, "k": k, "n_images": int(len(ids)),
            "n_queries": int(len(query_ids)), "target_recall": target_recall, "seed": seed,
            "kinds": list(kinds), "faiss_version": faiss.__version__, "machine": _machine(),
            "date": time.strftime("%Y-%m-%d"),
        },
        "results": results,
        "sweeps": sweeps,
    }


def bench_synthetic(
    n: int, dim: int, *, kinds: tuple[str, ...] = DEFAULT_KINDS, k: int = 10, n_queries: int | None = None,
    target_recall: float = 0.95, seed: int = 0, progress: bool = True,
) -> dict[str, Any]:
    """The same comparison on ``n`` seeded clustered vectors of ``dim`` dims (no label metrics)."""
    from indexer.bench_core import run_synthetic_bench

    report = run_synthetic_bench(n, dim, list(kinds), k=k, n_queries=n_queries or 300,
                                 target_recall=target_recall, seed=seed, progress=progress)
    report["params"].update(mode="synthetic", machine=_machine(), date=time.strftime("%Y-%m-%d"))
    return report


def _split_vectors(workspace: Workspace, model_name: str, split: str | None):
    ids, vectors = catalog_vectors(workspace, model_name)
    with Catalog(workspace.open_read_only()) as catalog:
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


def _end_to_end_ms(workspace: Workspace, kind: str, paths: np.ndarray, k: int) -> float:
    """Median ms to answer one image query in process: decode, ONNX embed, search, catalog rows."""
    from indexer.api.query import Searcher

    searcher = Searcher(workspace, kind)
    searcher.answer([paths[0]], k=k)  # warm-up
    times = []
    for path in paths:
        started = time.perf_counter()
        searcher.answer([path], k=k)
        times.append(time.perf_counter() - started)
    return float(np.median(times) * 1e3)


def _workspace_index(workspace: Workspace, kind: str, model_name: str, target_recall: float, seed: int,
                     progress: bool) -> str:
    """Name of a registered ``kind`` index over ``model_name`` (preferring the one named ``kind``); built if none."""
    with Catalog(workspace.open_read_only()) as catalog:
        rows = catalog.indexes()
    names = {row.name for row in rows}
    matching = sorted((row.name != kind, row.name) for row in rows if row.kind == kind and row.model_name == model_name)
    if matching:
        return matching[0][1]
    name = kind if kind not in names else f"{model_name}-{kind}"
    build(workspace, kind, model_name=model_name, name=name, target_recall=target_recall, seed=seed, progress=progress)
    return name


def _progress(kinds, enabled: bool):
    from tqdm import tqdm

    return tqdm(list(kinds), desc="bench", unit="kind", disable=not enabled)


def _machine() -> str:
    import os

    return f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.python_implementation()} {platform.python_version()}"
