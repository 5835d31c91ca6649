"""An IVF index split into shards by id range, and the shards' answers merged back into one top k.

Every shard is a complete index of the same class over its ids, with the one trained coarse quantizer (the
lists' entries are copied, never re-assigned or re-encoded), so a query that probes the same ``nprobe`` lists
in every shard sees, across the shards, exactly the candidates the whole index sees: the merged top k equals
the whole index's (ids and scores; ties may come in another order). Ranges are half-open ``[lo, hi)`` over
int64 ids; the first starts at 0 and the last is open (``hi`` None), so every id has one owner, new ids
included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from indexer.core.errors import InputError


@dataclass(frozen=True)
class IdRange:
    """Ids ``lo <= id < hi`` (``hi`` None: no upper end)."""

    lo: int
    hi: int | None

    def __post_init__(self) -> None:
        if self.lo < 0 or (self.hi is not None and self.hi <= self.lo):
            raise InputError(f"an id range needs 0 <= lo < hi; got lo={self.lo}, hi={self.hi}")

    def holds(self, ids: np.ndarray) -> np.ndarray:
        """(n,) bool: which of ``ids`` fall in this range."""
        ids = np.asarray(ids, np.int64)
        inside = ids >= self.lo
        return inside if self.hi is None else inside & (ids < self.hi)


def id_ranges(ids: np.ndarray, shards: int) -> list[IdRange]:
    """``shards`` ranges covering every id >= 0, each holding about as many of ``ids`` (unique, any order)."""
    if isinstance(shards, bool) or not isinstance(shards, (int, np.integer)) or shards < 1:
        raise InputError(f"--shards must be a whole number of at least 1; got {shards!r}")
    ordered = np.unique(np.asarray(ids, np.int64))
    if len(ordered) < shards:
        raise InputError(f"--shards {shards}: the index holds only {len(ordered)} vectors")
    starts = np.linspace(0, len(ordered), shards + 1).round().astype(int)[:-1]
    edges = [0] + [int(ordered[start]) for start in starts[1:]]
    return [IdRange(lo, edges[i + 1] if i + 1 < len(edges) else None) for i, lo in enumerate(edges)]


def owners(ranges: list[IdRange], ids: np.ndarray) -> np.ndarray:
    """(n,) int: the number of the range that owns each of ``ids`` (ranges as :func:`id_ranges` makes them)."""
    starts = np.array([r.lo for r in ranges], np.int64)
    ids = np.asarray(ids, np.int64).reshape(-1)
    if len(ids) and int(ids.min()) < starts[0]:
        raise InputError(f"id {int(ids.min())} is below every shard's range")
    return np.searchsorted(starts, ids, side="right") - 1


def split_by_ranges(index: Any, ranges: list[IdRange]) -> list[Any]:
    """One index per range: an empty copy of the trained ``index`` (an IVF, possibly under a transform) with
    the list entries whose ids fall in that range, in their order; ``index`` is only read (its lists may be
    in memory or on disk)."""
    import faiss

    from indexer.core.factory import find_ivf
    from indexer.core.settings import default_settings, set_default_settings

    ivf = find_ivf(index)
    if ivf is None:
        raise InputError(f"shards split IVF indexes only; got a {type(faiss.downcast_index(index)).__name__}")
    parts = []
    for _ in ranges:
        part = empty_copy(index)
        parts.append((part, find_ivf(part)))
    lists, code_size = ivf.invlists, int(ivf.code_size)
    starts = np.array([r.lo for r in ranges], np.int64)
    for list_no in range(int(ivf.nlist)):
        size = lists.list_size(list_no)
        if not size:
            continue
        ids = faiss.rev_swig_ptr(lists.get_ids(list_no), size).copy()
        codes = faiss.rev_swig_ptr(lists.get_codes(list_no), size * code_size).copy().reshape(size, code_size)
        owner = np.searchsorted(starts, ids, side="right") - 1
        for number, (_, part_ivf) in enumerate(parts):
            mine = owner == number
            if mine.any():
                kept_ids = np.ascontiguousarray(ids[mine])
                kept_codes = np.ascontiguousarray(codes[mine])
                part_ivf.invlists.add_entries(list_no, len(kept_ids), faiss.swig_ptr(kept_ids),
                                              faiss.swig_ptr(kept_codes))
                part_ivf.ntotal += len(kept_ids)
    settings = default_settings(index)
    out = []
    for part, part_ivf in parts:
        part.ntotal = part_ivf.ntotal  # a transform's wrapper counts its inner index's vectors
        set_default_settings(part, nprobe=settings.get("nprobe"), efSearch=settings.get("efSearch"))
        out.append(part)
    return out


def empty_copy(index: Any) -> Any:
    """A copy of the trained ``index`` with empty in-memory lists (the coarse quantizer, any transform, settings)."""
    import faiss

    from indexer.core.ondisk_lists import is_on_disk

    if is_on_disk(index):
        raise InputError("--shards lays out in-memory IVF indexes; an index with its lists on disk is not split yet")
    try:
        copy = faiss.clone_index(index)
    except RuntimeError:  # a transform FAISS cannot clone: its serialised form
        copy = faiss.deserialize_index(faiss.serialize_index(index))
    copy.reset()
    return copy


def merge_top_k(parts: list[tuple[np.ndarray, np.ndarray]], k: int,
                inner_product: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` of several (q, *) answers to the same queries ((scores, ids) each, padding id -1 last):
    ((q, k) scores, (q, k) ids), best first, padded as :func:`indexer.core.search.search` pads."""
    from indexer.core.search import PAD_ID

    if not parts:
        raise InputError("merging top k needs at least one answer")
    scores = np.hstack([np.asarray(s, np.float32) for s, _ in parts])
    ids = np.hstack([np.asarray(i, np.int64) for _, i in parts])
    key = np.where(ids < 0, np.inf, -scores if inner_product else scores)
    order = np.argsort(key, axis=1, kind="stable")[:, :k]
    scores, ids = np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)
    if ids.shape[1] < k:
        pad = k - ids.shape[1]
        worst = -np.inf if inner_product else np.inf
        scores = np.hstack([scores, np.full((len(ids), pad), worst, np.float32)])
        ids = np.hstack([ids, np.full((len(ids), pad), PAD_ID, np.int64)])
    return np.ascontiguousarray(scores), np.ascontiguousarray(ids)
