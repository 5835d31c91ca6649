"""What a search reads beside the indexes: the served vectors and the known catalog rows.

Both are versions, never modified once published, and both change in segments so that a write costs what it
changes, at any size: a ``base`` shared by every version (the served vectors' base may be a read-only memory map
of the embedding store, so it costs page cache, not a second copy in the process), rows appended since, and the
ids removed since. Appended rows live in a buffer shared by the versions: the writer (one at a time, under the
live catalog's write lock) fills rows past every published version's count, so a reader's version never sees
them. Nothing here folds the segments back into a new base during a write; a new base is made at start-up.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from indexer.core.arrays import AppendBuffer, in_sorted, sorted_inserted
from indexer.core.errors import InputError, NotFoundError

if TYPE_CHECKING:
    from models.store_reader import StoreReader

__all__ = ["KnownRows", "RowTable", "ServedVectors", "StoredRows"]

Row = tuple[str, "str | None"]  # (path, label)


class ServedVectors:
    """The served model's vectors of the ok catalog images, by id; never modified once published.

    ``base_ids`` (sorted) with ``base_vectors`` (rows in ``base_rows`` order, or aligned when it is None), the
    rows appended since, and the ``removed`` ids (sorted; base or appended). Re-adding a removed id is the one
    change that makes a new base (the catalog never reuses an id; it is there for correctness only)."""

    def __init__(self, base_ids: np.ndarray, base_vectors: np.ndarray, base_rows: np.ndarray | None = None,
                 appended: AppendBuffer | StoredRows | None = None, count: int = 0,
                 removed: np.ndarray | None = None) -> None:
        self.base_ids, self.base_vectors, self.base_rows = base_ids, base_vectors, base_rows
        self.dim = int(base_vectors.shape[1])
        self._appended = appended if appended is not None else AppendBuffer(self.dim)
        self.count = count
        self.removed = removed if removed is not None else np.zeros(0, np.int64)
        self._lookup_fn = None

    @classmethod
    def empty(cls, dim: int) -> ServedVectors:
        return cls.by_id(np.zeros(0, np.int64), np.zeros((0, dim), np.float32))

    @classmethod
    def by_id(cls, ids: np.ndarray, vectors: np.ndarray) -> ServedVectors:
        """Rows ``vectors`` of ``ids``, used as given (a memory map stays one): nothing is copied but the ids."""
        return cls.from_store(ids, vectors, None)

    @classmethod
    def from_store(cls, ids: np.ndarray, vectors: np.ndarray, served: np.ndarray | None) -> ServedVectors:
        """The embedding store's ``ids`` and ``vectors`` (a memory map is kept as one), serving only the ids in
        ``served`` (None: all); the others are marked removed, never copied out."""
        ids = np.asarray(ids, np.int64)
        ordered = len(ids) < 2 or bool((np.diff(ids) > 0).all())
        order = None if ordered else np.argsort(ids, kind="stable")
        base_ids = ids if order is None else ids[order]
        removed = np.zeros(0, np.int64)
        if served is not None and served is not base_ids:
            served = np.asarray(served, np.int64)
            ascending = len(served) < 2 or bool((served[1:] > served[:-1]).all())
            # both sorted (a service's catalog ids): a binary search each, not np.isin's sort of both lists
            kept = in_sorted(served, base_ids) if ascending else np.isin(base_ids, served)
            removed = base_ids[~kept]
        return cls(base_ids, vectors, order, removed=removed)

    @property
    def ids(self) -> np.ndarray:
        """(n,) int64 served ids, sorted (O(n): for reconciling, not for a query)."""
        recent = self._appended.ids[:self.count]
        ids = np.concatenate([self.base_ids, recent]) if len(recent) else self.base_ids
        ids = ids[~np.isin(ids, self.removed)] if len(self.removed) else ids
        return np.sort(ids) if len(recent) else ids

    @property
    def vectors(self) -> np.ndarray:
        """(n, d) float32 rows of :attr:`ids` (O(n), a copy: for tests and small workspaces)."""
        return self.take(self.ids)[1]

    def __len__(self) -> int:
        return len(self.base_ids) + self.count - len(self.removed)

    def changed(self, *, add: tuple[np.ndarray, np.ndarray] | None = None, remove: np.ndarray | None = None,
                stored: StoreReader | None = None) -> ServedVectors:
        """A new version with ``remove`` (ids) taken out and ``add`` (ids, vectors) put in; costs what it changes.

        ``stored``: a reader of the embedding store that already holds the added rows (and every row appended
        before): the version then keeps the added ids only and reads their vectors from the store's files, so the
        process holds no second copy of them (a service adding a row at a time, at any size)."""
        removed = self.removed
        if remove is not None and len(remove):
            remove = np.unique(np.asarray(remove, np.int64))
            held = in_sorted(self.base_ids, remove) | (self._appended.rows(remove, self.count) >= 0)
            removed = sorted_inserted(removed, remove[held & ~in_sorted(removed, remove)])
        version = ServedVectors(self.base_ids, self.base_vectors, self.base_rows, self._appended, self.count, removed)
        if add is None or not len(add[0]):
            return version
        ids = np.asarray(add[0], np.int64).reshape(-1)
        vectors = np.asarray(add[1], np.float32).reshape(len(ids), self.dim)
        if in_sorted(self.base_ids, ids).any() or (self._appended.rows(ids, self.count) >= 0).any():
            found, old = version.take(version.ids)  # an id comes back: a new base (the catalog never does this)
            keep = ~np.isin(found, ids)
            return ServedVectors.by_id(np.concatenate([np.asarray(found, np.int64)[keep], ids]),
                                       np.concatenate([old[keep], vectors]))
        if stored is not None:
            appended = StoredRows.of(self._appended, self.count, stored).extended(self.count, ids, vectors)
        else:
            appended = self._appended.extended(self.count, ids, vectors)
        return ServedVectors(self.base_ids, self.base_vectors, self.base_rows, appended, self.count + len(ids),
                             removed)

    def take(self, ids: np.ndarray) -> tuple[list[int], np.ndarray]:
        """(the ``ids`` that have a vector, in the order given; their (n, dim) vectors)."""
        ids = np.asarray(ids, np.int64).reshape(-1)
        live = ~in_sorted(self.removed, ids) if len(self.removed) else np.ones(len(ids), bool)
        if len(self.base_ids):  # one binary search per id: where it is, and whether it is there
            at = np.minimum(np.searchsorted(self.base_ids, ids), len(self.base_ids) - 1)
            in_base = live & (self.base_ids[at] == ids)
        else:
            at, in_base = np.zeros(len(ids), np.int64), np.zeros(len(ids), bool)
        rows = at[in_base] if self.base_rows is None else self.base_rows[at[in_base]]
        ascending = len(rows) < 2 or bool((rows[1:] >= rows[:-1]).all())  # sorted ids, as a selection's are
        if ascending:  # ascending offsets read a memory map in one pass, straight into the answer
            picked = self.base_vectors[rows]
        else:
            order = np.argsort(rows)
            picked = np.empty((len(rows), self.dim), np.float32)
            picked[order] = self.base_vectors[rows[order]]
        if not self.count and in_base.all():
            return ids.tolist(), np.asarray(picked, np.float32)
        out = np.zeros((len(ids), self.dim), np.float32)
        out[in_base] = picked
        found = in_base
        if self.count:
            rows = self._appended.rows(ids, self.count)
            recent = live & (rows >= 0)
            out[recent] = self._appended.vectors_at(rows[recent])
            found = found | recent
        return ids[found].tolist(), out[found]

    def of(self, image_id: int, model_name: str) -> np.ndarray:
        """(1, dim) vector of ``image_id``; NotFoundError when it has none."""
        found, vectors = self.take(np.array([image_id]))
        if not found:
            raise NotFoundError(f"image {image_id} has no embedding for model {model_name!r}")
        return vectors

    def lookup(self) -> Any:
        """The vectors by id for query expansion: (m,) ids -> (m, d) rows (padding id -1 -> zeros; an id without
        a vector raises InputError), the same function for the life of this version."""
        if self._lookup_fn is None:
            self._lookup_fn = self._rows_of
        return self._lookup_fn

    def _rows_of(self, wanted: np.ndarray) -> np.ndarray:
        wanted = np.asarray(wanted, np.int64).reshape(-1)
        real = wanted >= 0
        found, vectors = self.take(wanted[real])
        if len(found) != int(real.sum()):
            missing = sorted(set(wanted[real].tolist()) - set(found))
            raise InputError(f"no stored vector for id {missing[0]}")
        out = np.zeros((len(wanted), self.dim), np.float32)
        out[real] = vectors
        return out


class StoredRows:
    """Rows appended to :class:`ServedVectors` whose vectors stay in the embedding store's files: their ids in an
    :class:`AppendBuffer` of width 0 (shared by versions as the vectors' buffer is), the vectors read by id
    through a :class:`~models.store_reader.StoreReader` taken after the last append. The same interface as
    :class:`AppendBuffer` (``ids``, ``rows``, ``vectors_at``, ``extended``)."""

    def __init__(self, ids: AppendBuffer, reader: StoreReader) -> None:
        self._ids, self.reader = ids, reader

    @classmethod
    def of(cls, appended: AppendBuffer | StoredRows, count: int, reader: StoreReader) -> StoredRows:
        """The first ``count`` rows of ``appended`` (either kind) read through ``reader`` from now on."""
        if isinstance(appended, StoredRows):
            return cls(appended._ids, reader)
        return cls(AppendBuffer(0).extended(0, appended.ids[:count], np.zeros((count, 0), np.float32)), reader)

    @property
    def ids(self) -> np.ndarray:
        return self._ids.ids

    def rows(self, ids: np.ndarray, count: int) -> np.ndarray:
        return self._ids.rows(ids, count)

    def vectors_at(self, rows: np.ndarray) -> np.ndarray:
        """(m, dim) vectors of rows ``rows``, read from the store; InputError naming an id the store lacks."""
        wanted = self._ids.ids[np.asarray(rows, np.int64)]
        found, vectors = self.reader.lookup(wanted)
        if not found.all():
            raise InputError(f"id {int(wanted[~found][0])} was served but its vector is no longer in the "
                             "embedding store")
        return vectors

    def extended(self, count: int, ids: np.ndarray, vectors: np.ndarray) -> StoredRows:
        """These rows and ``ids`` after the first ``count`` (their vectors are the store's: not kept)."""
        ids = np.asarray(ids, np.int64).reshape(-1)
        return StoredRows(self._ids.extended(count, ids, np.zeros((len(ids), 0), np.float32)), self.reader)


class RowTable(Mapping):
    """id -> (path, label) for many rows in a few arrays (sorted ids, one UTF-8 blob of paths with offsets, a
    label code each): at a million rows tens of MB where a dict of tuples takes hundreds."""

    def __init__(self, rows: Mapping[int, Row] | Iterator[tuple[int, str, str | None]]) -> None:
        triples = ([(i, *row) for i, row in rows.items()] if isinstance(rows, Mapping) else list(rows))
        triples.sort(key=lambda triple: triple[0])
        self._fill([triples])

    @classmethod
    def from_sorted_batches(cls, batches: Iterator[list[tuple[int, str, str | None]]]) -> RowTable:
        """The table of ``(id, path, label)`` lists whose ids ascend across all of them (a catalog read page by
        page): each list is turned into arrays before the next is read, so no more than one list of tuples is
        ever held. InputError if the ids do not ascend."""
        table = object.__new__(cls)
        table._fill(batches)
        return table

    def _fill(self, batches: Iterable[list[tuple[int, str, str | None]]]) -> None:
        """The arrays of ``batches`` (ids ascending across them), one batch turned into arrays at a time."""
        ids, lengths, blobs, codes = [], [], [], []
        first_seen: dict[str, int] = {}
        for batch in batches:
            if not batch:
                continue
            part = np.fromiter((t[0] for t in batch), np.int64, count=len(batch))
            if len(part) and ((np.diff(part) <= 0).any() or (ids and part[0] <= ids[-1][-1])):
                raise InputError("RowTable: the ids must ascend across the batches, each id once")
            encoded = [t[1].encode("utf-8", "surrogatepass") for t in batch]
            ids.append(part)
            lengths.append(np.fromiter((len(e) for e in encoded), np.int64, count=len(encoded)))
            blobs.append(b"".join(encoded))
            codes.append(np.fromiter((-1 if t[2] is None else first_seen.setdefault(t[2], len(first_seen))
                                      for t in batch), np.int32, count=len(batch)))
        self.ids = np.concatenate(ids) if ids else np.zeros(0, np.int64)
        offsets = np.zeros(len(self.ids) + 1, np.int64)
        if ids:
            np.cumsum(np.concatenate(lengths), out=offsets[1:])
        # 4 bytes an offset while the paths fit in 4 GiB (a million rows: 4 MB less than int64)
        self.offsets = offsets.astype(np.uint32) if offsets[-1] < 2**32 else offsets
        del offsets
        self.blob = b"".join(blobs)
        self.labels: list[str] = sorted(first_seen)
        rank = np.zeros(len(first_seen) + 1, np.int32)  # first-seen code -> sorted code; the last slot: -1
        rank[-1] = -1
        for position, label in enumerate(self.labels):
            rank[first_seen[label]] = position
        self.codes = rank[np.concatenate(codes)] if codes else np.zeros(0, np.int32)

    def _position(self, image_id: object) -> int:
        if not isinstance(image_id, (int, np.integer)) or not len(self.ids):
            return -1
        at = int(np.searchsorted(self.ids, image_id))
        return at if at < len(self.ids) and self.ids[at] == image_id else -1

    def __getitem__(self, image_id: int) -> Row:
        at = self._position(image_id)
        if at < 0:
            raise KeyError(image_id)
        path = self.blob[int(self.offsets[at]):int(self.offsets[at + 1])].decode("utf-8", "surrogatepass")
        code = int(self.codes[at])
        return path, (self.labels[code] if code >= 0 else None)

    def __contains__(self, image_id: object) -> bool:
        return self._position(image_id) >= 0

    def rows_of(self, ids: np.ndarray) -> dict[int, Row]:
        """``{id: (path, label)}`` of those of the int64 ``ids`` in the table: one binary search for all of them
        (a query's answers), not one per id."""
        ids = np.asarray(ids, np.int64).reshape(-1)
        if not len(ids) or not len(self.ids):
            return {}
        at = np.searchsorted(self.ids, ids)
        inside = at < len(self.ids)
        found = np.zeros(len(ids), bool)
        found[inside] = self.ids[at[inside]] == ids[inside]
        labels, blob = self.labels, self.blob
        rows = {}
        for image_id, start, end, code in zip(ids[found].tolist(), self.offsets[at[found]].tolist(),
                                              self.offsets[at[found] + 1].tolist(), self.codes[at[found]].tolist()):
            rows[image_id] = (blob[start:end].decode("utf-8", "surrogatepass"), labels[code] if code >= 0 else None)
        return rows

    def __iter__(self) -> Iterator[int]:
        return iter(self.ids.tolist())

    def __len__(self) -> int:
        return len(self.ids)


class _RecentRows:
    """Rows added one write at a time, shared by versions: id -> (sequence number, row)."""

    def __init__(self) -> None:
        self.rows: dict[int, tuple[int, Row]] = {}
        self.filled = 0


class KnownRows(Mapping):
    """The ok catalog images a search knows without asking the catalog: id -> (path, label); never modified
    once published. A version shares the ``base`` mapping (a :class:`RowTable` in the service), sees the first
    ``count`` rows added since, and carries the ``removed`` ids (sorted): a write costs what it changes."""

    def __init__(self, base: Mapping[int, Row] | None = None, recent: _RecentRows | None = None, count: int = 0,
                 removed: np.ndarray | None = None) -> None:
        self.base = base if base is not None else {}
        self._recent = recent if recent is not None else _RecentRows()
        self.count = count
        self.removed = removed if removed is not None else np.zeros(0, np.int64)

    @property
    def recent(self) -> dict[int, Row]:
        """The rows this version sees beyond the base (removed ones left out)."""
        return {i: row for i, (seq, row) in self._recent.rows.items() if seq < self.count and not self._gone(i)}

    def _gone(self, image_id: int) -> bool:
        return bool(len(self.removed)) and bool(in_sorted(self.removed, np.array([image_id]))[0])

    def _recent_row(self, image_id: object) -> Row | None:
        entry = self._recent.rows.get(image_id)  # type: ignore[call-overload]
        return entry[1] if entry is not None and entry[0] < self.count else None

    def __getitem__(self, image_id: int) -> Row:
        if isinstance(image_id, (int, np.integer)) and not self._gone(int(image_id)):
            row = self._recent_row(int(image_id))
            if row is not None:
                return row
            if image_id in self.base:
                return self.base[image_id]
        raise KeyError(image_id)

    def __contains__(self, image_id: object) -> bool:
        try:
            self[image_id]  # type: ignore[index]
        except KeyError:
            return False
        return True

    def rows_of(self, ids: np.ndarray) -> dict[int, Row]:
        """``{id: (path, label)}`` of those of the int64 ``ids`` this version knows, looked up together: the
        removed ones dropped in one pass, the recent ones from their dict, the rest by the base's own bulk
        lookup when it has one."""
        ids = np.asarray(ids, np.int64).reshape(-1)
        if len(self.removed) and len(ids):
            ids = ids[~in_sorted(self.removed, ids)]
        rows, rest = {}, []
        for image_id in ids.tolist():
            row = self._recent_row(image_id) if self._recent.rows else None
            if row is not None:
                rows[image_id] = row
            else:
                rest.append(image_id)
        if rest:
            if isinstance(self.base, RowTable):
                rows.update(self.base.rows_of(np.array(rest, np.int64)))
            else:
                rows.update((i, self.base[i]) for i in rest if i in self.base)
        return rows

    def __iter__(self):
        yield from self.recent
        yield from (i for i in self.base if not self._gone(i))

    def __len__(self) -> int:
        return len(self.base) + sum(1 for seq, _ in self._recent.rows.values() if seq < self.count) - len(self.removed)

    def with_row(self, image_id: int, row: Row) -> KnownRows:
        image_id = int(image_id)
        if image_id in self.base or self._recent_row(image_id) is not None:  # an id comes back: a new base
            return KnownRows(RowTable({**dict(self.items()), image_id: row}))
        recent = self._recent
        if self.count != recent.filled:  # a later version already added rows: copy what this one sees
            recent = _RecentRows()
            recent.rows = {i: entry for i, entry in self._recent.rows.items() if entry[0] < self.count}
        recent.rows[image_id] = (self.count, row)
        recent.filled = self.count + 1
        return KnownRows(self.base, recent, self.count + 1, self.removed)

    def renamed(self, rows: Mapping[int, Row]) -> KnownRows:
        """A new version where the known ids of ``rows`` have their new (path, label): one new base (O(N), once
        for many renames: a moved file keeps its id and vector)."""
        changes = {int(i): row for i, row in rows.items() if int(i) in self}
        if not changes:
            return self
        return KnownRows(RowTable({**dict(self.items()), **changes}))

    def without(self, image_id: int) -> KnownRows:
        if int(image_id) not in self:
            return self
        return KnownRows(self.base, self._recent, self.count, sorted_inserted(self.removed, np.array([image_id])))
