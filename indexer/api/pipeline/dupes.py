"""Near-duplicate images: groups of catalog images whose embeddings are almost the same.

The embeddings of one model go through FAISS range search (:mod:`indexer.core.dupes`); the
byte-identical copies the catalog already knows (same SHA-256, ``duplicate_of``) are included
and marked, also those stored as ``duplicate`` and never embedded. A group whose members sit
on both sides of the test split is a leak for evaluation, and says so.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from indexer.api.workspace import Workspace
from indexer.core.dupes import check_threshold
from storage.catalog import ImageRow

# Chosen on Flowers-102 with model mnv2 by looking at every pair above 0.97 (docs/BENCHMARKS.md,
# "Near-duplicates"): the 13 pairs at >= 0.98 that are not byte-identical are one photograph
# re-cropped, re-coloured or re-encoded, or two frames of one shot; between 0.97 and 0.98 distinct
# photographs of one plant appear.
DEFAULT_THRESHOLD = 0.98
MAX_GRID_GROUPS = 40


@dataclass(frozen=True)
class DuplicateGroup:
    images: list[ImageRow]
    min_similarity: float
    exact_copies: bool  # every member has the same bytes (SHA-256)
    crosses_split: bool  # members on both sides of the test split (a leak when evaluating)

    def to_dict(self) -> dict[str, Any]:
        return {
            "images": [{"id": row.id, "path": row.path, "label": row.label, "split": row.split,
                        "sha256": row.sha256} for row in self.images],
            "min_similarity": round(self.min_similarity, 6),
            "exact_copies": self.exact_copies,
            "crosses_split": self.crosses_split,
        }


@dataclass(frozen=True)
class DupesReport:
    model: str
    threshold: float
    groups: list[DuplicateGroup]
    n_images: int

    @property
    def exact_pairs(self) -> int:
        """Pairs of byte-identical images among the groups."""
        total = 0
        for group in self.groups:
            by_hash: dict[str | None, int] = {}
            for row in group.images:
                if row.sha256 is not None:
                    by_hash[row.sha256] = by_hash.get(row.sha256, 0) + 1
            total += sum(count * (count - 1) // 2 for count in by_hash.values())
        return total

    def to_dict(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "model": self.model, "n_images": self.n_images,
                "groups": [group.to_dict() for group in self.groups]}


def find_duplicates(
    workspace: Workspace, *, model_name: str | None = None, threshold: float = DEFAULT_THRESHOLD,
    progress: bool = True,
) -> DupesReport:
    """Groups of images whose ``model_name`` embeddings have cosine >= ``threshold`` (single linkage).

    Embeds what the model has not embedded yet. Groups are ordered exact copies first, then by
    descending ``min_similarity``.
    """
    from indexer.api.pipeline.training import embed
    from indexer.api.registry.indexes import catalog_vectors
    from indexer.api.registry.models import default_model_name
    from indexer.core.dupes import duplicate_groups

    threshold = check_threshold(threshold)
    model_name = model_name or default_model_name(workspace)
    embed(workspace, model_name, progress=progress)
    ids, vectors = catalog_vectors(workspace, model_name)
    found = duplicate_groups(vectors, ids, threshold) if len(ids) > 1 else []
    with workspace.catalog() as catalog:
        copies = [row for row in catalog.images(status=None) if row.duplicate_of is not None]
        wanted = {i for group in found for i in group.ids} | {row.duplicate_of for row in copies}
        rows = catalog.images_by_ids(wanted)
    # Known copies join their original's group (or make one with it), similarity 1 by definition.
    members = [set(group.ids) for group in found]
    lowest = [group.min_similarity for group in found]
    group_of = {i: g for g, group in enumerate(members) for i in group}
    for copy in copies:
        rows[copy.id] = copy
        g = group_of.get(copy.duplicate_of, group_of.get(copy.id))
        if g is None:
            members.append({copy.duplicate_of, copy.id})
            lowest.append(1.0)
            g = len(members) - 1
        members[g] |= {copy.duplicate_of, copy.id}
        group_of[copy.id] = group_of[copy.duplicate_of] = g
    groups = [_group(sorted(ids_), lowest[g], rows) for g, ids_ in enumerate(members) if all(i in rows for i in ids_)]
    groups.sort(key=lambda group: (not group.exact_copies, -group.min_similarity, group.images[0].id))
    return DupesReport(model=model_name, threshold=threshold, groups=groups, n_images=int(len(ids)))


def draw_duplicates(report: DupesReport, path: str | os.PathLike[str], *, max_groups: int = MAX_GRID_GROUPS) -> Path:
    """A PNG with one row per group (the first ``max_groups``): green frames for exact copies,
    red for groups that cross the test split, grey otherwise."""
    from indexer.api.search.grid import draw_rows, picture_or_placeholder

    rows = []
    for group in report.groups[:max_groups]:
        match = True if group.exact_copies else (False if group.crosses_split else None)
        rows.append([
            {"image": picture_or_placeholder(row.path), "match": match,
             "lines": [f"#{row.id} {row.label or '?'}", f"{row.split or '-'} min {group.min_similarity:.3f}"]}
            for row in group.images
        ])
    return draw_rows(rows, path)


def _group(ids: list[int], min_similarity: float, rows: dict[int, ImageRow]) -> DuplicateGroup:
    images = [rows[i] for i in ids]
    hashes = {row.sha256 for row in images}
    splits = {row.split for row in images}
    return DuplicateGroup(
        images=images,
        min_similarity=min_similarity,
        exact_copies=len(hashes) == 1 and None not in hashes,
        crosses_split="test" in splits and len(splits) > 1,
    )
