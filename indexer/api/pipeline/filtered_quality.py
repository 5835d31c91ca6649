"""Filters on a labelled catalog: a label filter returns only that label, and the quality within a filtered
gallery, per label (``benchmarks/flowers_filtered.py``).

The queries are the catalog bench's (:func:`indexer.api.pipeline.bench.bench_catalog`): every labelled, embedded
ok image of ``split`` (default the test split), by its stored vector, itself excluded. Each goes through
:class:`~indexer.api.search.engine.Searcher`, the path every face uses: the filter is parsed by the grammar
(:mod:`storage.filters`), the catalog answers it with bound SQL, and the search keeps to the selected ids.

1. **The label check.** Each query searches with ``label = "<its own label>"`` for ``k`` results. Every hit
   must carry that label (``violations``: hits with another label; must be 0). The hits must also be the exact
   top ``min(k, n_L - 1)`` of the label's stored vectors: ``not_exact`` counts queries whose hit count or
   scores differ from a brute-force FAISS search over those vectors by more than :data:`SCORE_TOLERANCE`
   (scores are compared, not ids, so ties do not count). P@1 and MAP@R under this filter are 1 by construction
   (every result has the query's label) and are not reported as quality.
2. **Quality within a gallery.** For each gallery filter (None: everything the index holds), every query asks
   for the top ``max R`` results, where a query's R is the number of gallery images with its label, itself not
   counted. P@1 and MAP@R (R counted within the gallery) per label and over all queries. With
   ``split = "<split>"`` as the gallery this is the catalog bench's protocol (each query against the rest of its
   split), so its overall figures must equal ``indexer bench --indexes flat``'s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from indexer.api.registry.indexes import catalog_vectors
from indexer.api.workspace import Workspace
from indexer.core.errors import InputError
from storage.filters import quoted

SCORE_TOLERANCE = 1e-4
BATCH = 256  # queries per Searcher call
MISSING = "\0"  # the label of a padded (absent) neighbour: no query has it

__all__ = ["BATCH", "SCORE_TOLERANCE", "bench_label_filters", "default_galleries", "label_filter_table"]


def default_galleries(split: str | None = "test") -> tuple[str | None, ...]:
    """None (the whole index), the catalog bench's gallery ``split = "<split>"`` and ``split = "train"``."""
    galleries: list[str | None] = [None]
    galleries += [f"split = {quoted(name)}" for name in dict.fromkeys([split, "train"]) if name is not None]
    return tuple(galleries)


def bench_label_filters(
    workspace: Workspace,
    *,
    index_name: str | None = None,
    split: str | None = "test",
    galleries: Sequence[str | None] | None = None,
    k: int = 10,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """The label check and the per-label quality within each gallery (see the module's docstring) for index
    ``index_name`` (default: the most recent). Returns the JSON-ready report: ``params``, ``check`` (totals and
    ``per_label``: queries, hits, violations, not_exact) and ``galleries`` (one dict per filter: ``where``,
    ``images``, ``plan``, ``precision_at_1``, ``map_at_r``, their ``macro_*`` means over labels and
    ``per_label``). InputError when ``split`` has no labelled, embedded image."""
    from indexer.api.search.engine import MAX_K, Searcher

    log = log or (lambda line: None)
    galleries = default_galleries(split) if galleries is None else tuple(galleries)
    searcher = Searcher(workspace, index_name)
    ids, vectors = catalog_vectors(workspace, searcher.model_name)
    with workspace.catalog() as catalog:
        rows = {row.id: row for row in catalog.images()}
    labels = np.array([rows[i].label or MISSING for i in ids.tolist()], dtype=object)
    is_query = np.array([rows[i].label is not None and (split is None or rows[i].split == split)
                         for i in ids.tolist()], dtype=bool)
    if not is_query.any():
        raise InputError(f"split {split!r} has no labelled image embedded by model {searcher.model_name!r}")
    query_ids, query_labels = ids[is_query], labels[is_query]
    started = time.perf_counter()

    log(f"label check: {len(query_ids):,} queries, k = {k}")
    check = _label_check(searcher, ids, vectors, labels, query_ids, query_labels, k)
    results = []
    for where in galleries:
        gallery = _gallery_ids(workspace, where)
        in_gallery = np.isin(ids, gallery)
        counts = _label_counts(labels[in_gallery])
        relevant = np.array([counts.get(label, 0) for label in query_labels.tolist()], np.int64)
        relevant -= np.isin(query_ids, gallery)  # the query itself is not relevant to itself
        depth = max(1, min(int(relevant.max()), MAX_K, int(in_gallery.sum())))
        log(f"gallery {where or 'none'}: {int(in_gallery.sum()):,} images, top {depth} of each query")
        neighbours, plan = _neighbour_labels(searcher, query_ids, depth, where)
        results.append(_gallery_report(where, int(in_gallery.sum()), plan, query_labels, neighbours, relevant))
    return {
        "params": {"index": searcher.index_name, "model": searcher.model_name, "kind": searcher.kind,
                   "split": split, "queries": int(len(query_ids)), "labels": int(len(set(query_labels))),
                   "k": k, "seconds": round(time.perf_counter() - started, 1), "date": time.strftime("%Y-%m-%d")},
        "check": check,
        "galleries": results,
    }


def _label_check(searcher, ids, vectors, labels, query_ids, query_labels, k) -> dict[str, Any]:
    """Each query with the filter ``label = <its label>``: violations and queries that are not the exact top k."""
    from indexer.core.search import exact_search

    per_label = {}
    for label in sorted(set(query_labels.tolist())):
        mine = query_ids[query_labels == label]
        outcome = searcher.answer_ids(mine.tolist(), k=k, exclude_self=True, where=f"label = {quoted(label)}")
        same = labels == label
        truth, _ = exact_search(vectors[same], ids[same], vectors[np.isin(ids, mine)], k, exclude_self_ids=mine)
        mine = ids[np.isin(ids, mine)]  # in the order of the rows searched
        expected = {int(i): row[np.isfinite(row)] for i, row in zip(mine, truth)}
        hits = violations = not_exact = 0
        for answer in outcome.answers:
            hits += len(answer.results)
            violations += sum(hit.label != label for hit in answer.results)
            scores = np.array([hit.score for hit in answer.results], np.float32)
            want = expected[answer.query_id]
            if len(scores) != len(want) or (len(want) and np.abs(scores - want).max() > SCORE_TOLERANCE):
                not_exact += 1
        per_label[label] = {"queries": len(mine), "answered": len(outcome.answers), "hits": hits,
                            "violations": violations, "not_exact": not_exact}
    totals = {key: sum(entry[key] for entry in per_label.values())
              for key in ("queries", "answered", "hits", "violations", "not_exact")}
    return {**totals, "k": k, "per_label": per_label}


def _gallery_ids(workspace: Workspace, where: str | None) -> np.ndarray:
    """Sorted ids of the ok catalog images ``where`` selects (all ok images when None)."""
    from storage.filters import FilterError

    with workspace.catalog() as catalog:
        if where is None:
            return np.array([key.id for key in catalog.image_keys()], np.int64)
        try:
            return np.asarray(catalog.matching_ids(catalog.parse_filter(where)), np.int64)
        except FilterError as exc:
            raise InputError(str(exc)) from None


def _label_counts(labels: np.ndarray) -> dict[str, int]:
    values, counts = np.unique(labels.astype(str), return_counts=True)
    return dict(zip(values.tolist(), counts.tolist(), strict=True))


def _neighbour_labels(searcher, query_ids: np.ndarray, depth: int, where: str | None
                      ) -> tuple[np.ndarray, dict[str, Any] | None]:
    """((q, depth) labels of each query's hits, padded with :data:`MISSING`; the plan of the last call)."""
    out = np.full((len(query_ids), depth), MISSING, dtype=object)
    position = {int(i): row for row, i in enumerate(query_ids.tolist())}
    plan = None
    for start in range(0, len(query_ids), BATCH):
        chunk = query_ids[start:start + BATCH].tolist()
        outcome = searcher.answer_ids(chunk, k=depth, exclude_self=True, where=where)
        if outcome.failures:
            raise InputError(f"{len(outcome.failures)} queries failed: {outcome.failures[0]}")
        for answer in outcome.answers:
            found = [hit.label or MISSING for hit in answer.results]
            out[position[answer.query_id], :len(found)] = found
            plan = answer.plan
    return out, plan


def _gallery_report(where: str | None, images: int, plan: dict[str, Any] | None, query_labels: np.ndarray,
                    neighbours: np.ndarray, relevant: np.ndarray) -> dict[str, Any]:
    from indexer.core.metrics import map_at_r, per_label_metrics, precision_at_1

    per_label = per_label_metrics(query_labels, neighbours, relevant)
    return {
        "where": where, "images": images, "plan": plan,
        "queries": int(len(query_labels)), "queries_with_r0": int((relevant == 0).sum()),
        "precision_at_1": precision_at_1(query_labels, neighbours),
        "map_at_r": map_at_r(query_labels, neighbours, relevant),
        "macro_precision_at_1": float(np.mean([entry["precision_at_1"] for entry in per_label.values()])),
        "macro_map_at_r": float(np.nanmean([entry["map_at_r"] for entry in per_label.values()])),
        "per_label": per_label,
    }


def label_filter_table(report: dict[str, Any]) -> str:
    """The report as Markdown: the label check and each gallery's overall figures, then one row per label."""
    check, galleries = report["check"], report["galleries"]
    lines = [
        f"Label check (`label = \"<the query's label>\"`, k = {check['k']}): {check['queries']:,} queries, "
        f"{check['hits']:,} hits, **{check['violations']} with another label**, {check['not_exact']} queries "
        "not the exact top k of their label.",
        "",
        "| gallery (filter) | images | plan | P@1 | MAP@R | macro P@1 | macro MAP@R |",
        "|---|---|---|---|---|---|---|",
    ]
    for gallery in galleries:
        plan = "unfiltered" if gallery["plan"] is None else gallery["plan"]["kind"]
        lines.append(f"| {_name(gallery)} | {gallery['images']:,} | {plan} | {gallery['precision_at_1']:.3f} | "
                     f"{gallery['map_at_r']:.3f} | {gallery['macro_precision_at_1']:.3f} | "
                     f"{gallery['macro_map_at_r']:.3f} |")
    heads = " | ".join(f"P@1 / MAP@R, {_name(gallery)}" for gallery in galleries)
    lines += ["", f"| label | queries | violations | not exact | {heads} |",
              "|---|---|---|---|" + "---|" * len(galleries)]
    for label, entry in check["per_label"].items():
        cells = " | ".join(_pair(gallery["per_label"].get(label)) for gallery in galleries)
        lines.append(f"| {label} | {entry['queries']} | {entry['violations']} | {entry['not_exact']} | {cells} |")
    means = " | ".join(f"{gallery['macro_precision_at_1']:.3f} / {gallery['macro_map_at_r']:.3f}"
                       for gallery in galleries)
    lines.append(f"| **macro mean** | {check['queries']} | {check['violations']} | {check['not_exact']} | {means} |")
    return "\n".join(lines)


def _name(gallery: dict[str, Any]) -> str:
    return "none (whole index)" if gallery["where"] is None else f"`{gallery['where']}`"


def _pair(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return "-"
    return f"{entry['precision_at_1']:.3f} / {entry['map_at_r']:.3f}"
