"""One search of a held index for the live catalog: the neighbours, then their catalog rows.

Called from any thread without a lock: everything it reads (the held index, the rows by id) is published by
swapping one reference and never modified afterwards.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from indexer.api.live_types import HeldIndex, LiveAnswer, LiveHit
from indexer.api.workspace import Workspace
from indexer.core.errors import InputError
from indexer.core.rerank import Rerank

MAX_K = 100
DELETE_SLACK = 4  # extra neighbours fetched: a delete commits in the catalog just before the index swap


def check_k(k: int) -> None:
    if not 1 <= k <= MAX_K:
        raise InputError(f"k must be in 1..{MAX_K}; got {k}")


def search_held(held: HeldIndex, vector: np.ndarray, k: int, name: str, exclude: int | None, rerank: Rerank, *,
                rows: Mapping[int, tuple[str, str | None]], workspace: Workspace,
                vector_lookup: Callable[[], Any]) -> LiveAnswer:
    """Top ``k`` catalog images for ``vector`` in ``held``, ``exclude`` (an image id) left out.

    ``rows``: the ok catalog images known to the caller (id -> (path, label)); an id found in the index but not
    there was catalogued by another process, and is looked up in the catalog. ``vector_lookup()``: the served
    vectors by id, called only for a "qe" re-ranking."""
    from indexer.core.search import search

    started = time.perf_counter()
    wanted = min(k + (exclude is not None) + DELETE_SLACK, held.ntotal)
    hits: list[LiveHit] = []
    searched = started
    if wanted > 0:
        if rerank.mode == "qe":
            from indexer.core.rerank import search_expanded

            own = None if exclude is None else np.array([exclude], dtype=np.int64)
            scores, ids = search_expanded(held.index, vector, wanted, vector_lookup(), rerank, exclude_ids=own)
        else:
            scores, ids = search(held.index, vector, wanted)
        searched = time.perf_counter()
        pairs = [(float(s), int(i)) for s, i in zip(scores[0], ids[0]) if i >= 0 and int(i) != exclude]
        unknown = [i for _, i in pairs if i not in rows]
        if unknown:  # catalogued by another process since the last reload: ask the database
            with workspace.catalog() as catalog:
                found = catalog.images_by_ids(unknown)
            rows = {**{i: rows[i] for _, i in pairs if i in rows},
                    **{i: (row.path, row.label) for i, row in found.items() if row.status == "ok"}}
        kept = [(s, i) for s, i in pairs if i in rows][:k]  # a row deleted meanwhile is skipped
        hits = [LiveHit(rank, i, *rows[i], s) for rank, (s, i) in enumerate(kept, 1)]
    done = time.perf_counter()
    return LiveAnswer(query=name, index=held.name, results=hits,
                      timings_ms={"search": (searched - started) * 1e3, "catalog": (done - searched) * 1e3})
