"""The router's view of a sharded index: one object the query engine searches like a segmented index, which
sends every search to all shards, merges their top k, and sends each change to the shard that owns the id.

How a call reaches a shard is a :class:`Transport` (Ray Serve handles in the service; :class:`LocalShards`
in one process). A shard that does not answer within the transport's time is *missing*: the search answers
with the others' results and :func:`missing_shards` tells the caller (on the calling thread) which were
missing, so that an answer is never silently short.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from indexer.api.cluster.layout import Manifest
from indexer.core.errors import IndexerError, UnavailableError
from indexer.core.shards import merge_top_k, owners

_last = threading.local()


class ShardsUnavailableError(UnavailableError):
    """No shard answered (or, with complete answers required, one did not); the service answers 503."""


class Transport(Protocol):
    """Calls a method of every shard (or of some) at once."""

    def call(self, method: str, calls: dict[int, tuple]) -> dict[int, Any]:
        """``{shard: args}`` -> ``{shard: result, or the exception it raised or a timeout}``."""


class LocalShards:
    """A :class:`Transport` over :class:`indexer.api.cluster.shard.ShardIndex` objects in this process."""

    def __init__(self, shards: Sequence[Any]) -> None:
        self.shards = list(shards)

    def call(self, method: str, calls: dict[int, tuple]) -> dict[int, Any]:
        """``{shard: args}`` -> ``{shard: result or the exception it raised}``, one shard after the other."""
        out: dict[int, Any] = {}
        for number, args in calls.items():
            try:
                out[number] = getattr(self.shards[number], method)(*args)
            except Exception as exc:  # noqa: BLE001 - reported per shard, as a remote failure would be
                out[number] = exc
        return out


def forget_missing() -> None:
    """Start a query on this thread: no shard missing yet."""
    _last.missing = []


def missing_shards() -> list[int]:
    """The shards the last search on this thread went without (empty: a complete answer)."""
    return list(getattr(_last, "missing", ()))


class ShardedIndex:
    """The shards of ``manifest`` behind ``transport``, searched and changed as one segmented index.

    ``template``: the trained index with no vectors (its coarse quantizer and default nprobe), which the query
    planner inspects; ``inner_product``: the metric. Immutable in the sense the engine needs: a change goes to
    the owning shard and returns this same object."""

    segmented = True

    def __init__(self, manifest: Manifest, transport: Transport, template: Any) -> None:
        import faiss

        self.manifest, self.transport, self.sealed = manifest, transport, template
        self.d = int(manifest.d)
        self.metric_type = template.metric_type
        self.inner_product = template.metric_type == faiss.METRIC_INNER_PRODUCT
        self._counts = [entry.count for entry in manifest.shards]
        self.pending = 0  # the shards save their own changes
        self.gate = None

    @property
    def shards(self) -> int:
        """How many shards."""
        return len(self.manifest.shards)

    @property
    def ntotal(self) -> int:
        """Live vectors over all shards, as they last said."""
        return int(sum(self._counts))

    def describe(self) -> dict[str, int]:
        """Vectors per segment as a held index says them (the shards' own segments are theirs)."""
        return {"sealed": self.ntotal, "growing": 0, "deleted": 0, "shards": self.shards}

    def search(self, queries: np.ndarray, k: int, *, nprobe: int | None = None, efSearch: int | None = None,  # noqa: N803
               allowed: Any | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Every shard's top ``k`` for (q, d) float32 ``queries``, merged; the shards that did not answer are
        left out and named by :func:`missing_shards` (ShardsUnavailableError when none answered)."""
        allowed_ids = None if allowed is None else np.asarray(getattr(allowed, "ids", allowed), np.int64)
        queries = np.ascontiguousarray(queries, np.float32)
        args = (queries, int(k), nprobe, efSearch, allowed_ids)
        answers = self.transport.call("search", {number: args for number in range(self.shards)})
        parts, missing = [], []
        for number in range(self.shards):
            answer = answers.get(number)
            if isinstance(answer, BaseException) or answer is None:
                missing.append(number)
                continue
            scores, ids, count = answer
            self._counts[number] = int(count)
            parts.append((scores, ids))
        _last.missing = missing
        if not parts:
            raise ShardsUnavailableError(f"no shard of index {self.manifest.index!r} answered "
                                         f"(shards {', '.join(map(str, missing))})")
        return merge_top_k(parts, int(k), self.inner_product)

    def ids(self) -> np.ndarray:
        """Sorted (n,) int64 ids over every shard (IndexerError when one does not answer)."""
        answers = self._all("ids", {number: () for number in range(self.shards)})
        return np.sort(np.concatenate([np.asarray(answers[n], np.int64) for n in range(self.shards)]))

    def holds(self, image_id: int) -> bool:
        """Whether the shard owning ``image_id`` holds it."""
        number = int(owners(self.manifest.ranges, np.array([image_id]))[0])
        return bool(self._all("holds", {number: (int(image_id),)})[number])

    def added(self, ids: np.ndarray, vectors: np.ndarray) -> ShardedIndex:
        """Each of (n,) ``ids`` with its row of (n, d) ``vectors`` sent to the shard owning it; this object."""
        ids = np.asarray(ids, np.int64).reshape(-1)
        vectors = np.asarray(vectors, np.float32).reshape(len(ids), self.d)
        shard_of = owners(self.manifest.ranges, ids)
        calls = {int(n): ((ids[shard_of == n], vectors[shard_of == n]), None) for n in np.unique(shard_of)}
        self._counted(self._all("change", calls))
        return self

    def removed(self, ids: np.ndarray) -> tuple[ShardedIndex, int]:
        """(this object, how many went): each id removed from the shard owning it."""
        ids = np.unique(np.asarray(ids, np.int64).reshape(-1))
        shard_of = owners(self.manifest.ranges, ids)
        before = self.ntotal
        self._counted(self._all("change", {int(n): (None, ids[shard_of == n]) for n in np.unique(shard_of)}))
        return self, max(before - self.ntotal, 0)

    def reconcile(self) -> dict[int, tuple[int, int]]:
        """{shard: (added, removed)}: each shard that answers makes itself agree with the catalog."""
        answers = self.transport.call("reconcile", {number: () for number in range(self.shards)})
        return {number: tuple(answer) for number, answer in answers.items() if not isinstance(answer, BaseException)}

    def flush(self) -> None:
        """Every shard saves its pending changes now."""
        self._all("flush", {number: () for number in range(self.shards)})

    def _counted(self, answers: dict[int, Any]) -> None:
        for number, count in answers.items():
            self._counts[number] = int(count)

    def _all(self, method: str, calls: dict[int, tuple]) -> dict[int, Any]:
        """The answers of the shards called; IndexerError naming the first that failed (a write or a
        membership question must reach its shard: no partial answer there)."""
        answers = self.transport.call(method, calls)
        for number in calls:
            answer = answers.get(number)
            if isinstance(answer, IndexerError):
                raise answer
            if isinstance(answer, BaseException) or number not in answers:
                raise ShardsUnavailableError(f"shard {number} of index {self.manifest.index!r} did not answer "
                                             f"{method!r}: {_one_line(answer)}")
        return answers


def _one_line(error: object) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
