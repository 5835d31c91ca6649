"""Float32 embeddings keyed by int64 ids, on disk. numpy-only: the indexer reads it without torch.

Layout: ``store.json`` (the manifest, replaced atomically) names a consolidated ``base`` part, appended
``chunks`` and the ``removed`` id parts; each part is ``<name>.ids.npy`` + ``<name>.vectors.npy`` (a removed part
has sorted ids only), fully written and fsynced before the manifest names it. A crash therefore loses at most the
part being written; stray files are swept later.

A write costs what it changes, not the store's size: an append writes a chunk, and the chunks merge in pairs
of similar size (so there are O(log n) of them and each row is rewritten O(log n) times); a removal writes its
ids as a new removed part, and the removed parts merge the same way (a delete never rewrites every removed id);
the rows themselves go at the next consolidation (:meth:`vectors`, or once the removed ids pass
:data:`CONSOLIDATE_REMOVED` of the rows).

Several processes may use one store: every public method runs under an advisory lock on ``.lock`` (shared to read,
exclusive to write, re-reading the manifest when taken), and :meth:`locked` holds it across a whole run (``embed``)
so a second embedder waits and then finds the vectors already there.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from indexer.core.files import write_json
from models.errors import ModelError
from models.store_files import in_sorted, read_array, span_of, write_array, write_rows

if TYPE_CHECKING:
    from models.store_reader import StoreReader

MANIFEST = "store.json"
LOCK_FILE = ".lock"
CONSOLIDATE_REMOVED = 0.05  # removed ids, as a share of the rows, past which a removal rewrites the store
COPY_ROWS = 65_536  # rows copied at a time when parts are rewritten
SMALL_CHECK = 32  # up to this many ids are checked against a part by comparison, without sorting it


class EmbeddingStore:
    """Append-only (plus remove) store of ``(n, D) float32`` vectors keyed by unique ``int64`` ids."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._manifest = self._read_manifest()
        self._lock_depth = 0
        self._spans_written: dict[str, list] = {}  # parts written (or read) whose spans the manifest lacks yet
        self._maps: dict[tuple[str, str], np.ndarray] = {}  # (part, "ids"/"vectors") memory maps made before

    @contextlib.contextmanager
    def locked(self, exclusive: bool = True):
        """Hold the store's lock (reentrant within this object); the manifest is re-read when it is taken."""
        if self._lock_depth:
            self._lock_depth += 1
            try:
                yield self
            finally:
                self._lock_depth -= 1
            return
        import fcntl

        with open(self.directory / LOCK_FILE, "a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            self._lock_depth = 1
            try:
                self._manifest = self._read_manifest()
                self._forget_unnamed()
                yield self
            finally:
                self._lock_depth = 0
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    @property
    def dim(self) -> int | None:
        """Vector width, or None while the store is empty and has never held vectors."""
        return self._manifest["dim"]

    def __len__(self) -> int:
        with self.locked(exclusive=False):
            return len(self._ids())

    def ids(self) -> np.ndarray:
        """(n,) int64 ids in storage order (the row order of :meth:`vectors`)."""
        with self.locked(exclusive=False):
            return self._ids()

    def _all_ids(self) -> np.ndarray:
        """Every part's ids, removed ones included, in part order (the rows of the parts' vectors)."""
        parts = [np.asarray(self._load(name, "ids", mmap=False)) for name in self._parts()]
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)

    def _ids(self) -> np.ndarray:
        ids = self._all_ids()
        removed = self._removed()
        return ids[~np.isin(ids, removed)] if len(removed) else ids

    def _removed_parts(self) -> list[str]:
        """Names of the removed-id parts, oldest first (a store written before they were a list names one)."""
        names = self._manifest.get("removed")
        return [] if not names else [names] if isinstance(names, str) else list(names)

    def _removed(self) -> np.ndarray:
        """Sorted (r,) int64 removed ids (every removed part, merged)."""
        parts = [np.asarray(self._load(name, "ids", mmap=False), np.int64) for name in self._removed_parts()]
        if not parts:
            return np.zeros(0, np.int64)
        return parts[0] if len(parts) == 1 else np.unique(np.concatenate(parts))

    def _is_removed(self, ids: np.ndarray) -> np.ndarray:
        """(m,) bool: which of ``ids`` are removed, by bisection in each (sorted) removed part."""
        out = np.zeros(len(ids), bool)
        for name in self._removed_parts():
            out |= in_sorted(np.asarray(self._load(name, "ids", mmap=True)), ids)
        return out

    def _present(self, ids: np.ndarray) -> np.ndarray:
        """(m,) bool: which of ``ids`` some part holds (removed ones included). A part is read only for the ids
        inside its recorded id range; a part whose ids are sorted (the usual case: the catalog hands out
        increasing ids) is searched by bisection, so checking a new id costs O(log n), not a pass over n."""
        present = np.zeros(len(ids), bool)
        for name in self._parts():
            low, high, ordered = self._span(name)
            inside = ~present & (ids >= low) & (ids <= high)
            if not inside.any():
                continue
            part = np.asarray(self._load(name, "ids", mmap=True))
            wanted = ids[inside]
            if ordered:
                at = np.minimum(np.searchsorted(part, wanted), len(part) - 1)
                present[inside] = part[at] == wanted
            elif len(wanted) <= SMALL_CHECK:
                present[inside] = [bool((part == value).any()) for value in wanted.tolist()]
            else:
                present[inside] = np.isin(wanted, part)
        return present

    def _span(self, name: str) -> tuple[int, int, bool]:
        """(lowest id, highest id, ids sorted) of part ``name``: recorded when it was written (a store written
        before spans were recorded reads the part once and keeps the answer in its manifest at the next write)."""
        span = self._manifest.get("spans", {}).get(name) or self._spans_written.get(name)
        if span is None:
            span = self._spans_written[name] = span_of(np.asarray(self._load(name, "ids", mmap=True)))
        return span[0], span[1], bool(span[2])

    def vectors(self, mmap: bool = True) -> np.ndarray:
        """(n, D) float32, rows aligned with :meth:`ids`; consolidates appended chunks first.

        With ``mmap`` the rows are mapped from a part file that a later write by another process may
        delete (the mapping stays valid on POSIX); pass ``mmap=False`` for a private copy."""
        with self.locked(exclusive=True):
            if self._manifest["chunks"] or self._manifest.get("removed"):
                self._consolidate(keep=None)
            if self._manifest["base"] is None:
                return np.zeros((0, self.dim or 0), np.float32)
            return self._load(self._manifest["base"], "vectors", mmap=mmap)

    def items(self, mmap: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """((n,) int64 ids, (n, D) float32 vectors) read under one lock, so a write by another process between
        the two reads cannot misalign them (see :meth:`vectors` for ``mmap``)."""
        with self.locked(exclusive=True):
            vectors = self.vectors(mmap=mmap)
            return self._ids(), vectors

    def reader(self) -> StoreReader:
        """The rows stored now, read through memory maps of the part files (see :mod:`models.store_reader`):
        no copy of the vectors, safe for many threads, unchanged by later writes. O(parts): each part's maps are
        made once and kept while the manifest names it. Removed ids are not applied (the reader knows parts
        only); the caller keeps its own removals."""
        from models.store_reader import StorePart, StoreReader

        with self.locked(exclusive=False):
            parts = []
            for name in self._parts():
                low, high, ordered = self._span(name)
                parts.append(StorePart(self._load(name, "ids", mmap=True), self._load(name, "vectors", mmap=True),
                                       low, high, ordered))
            return StoreReader(tuple(parts), int(self.dim or 0))

    def lookup(self, ids) -> tuple[np.ndarray, np.ndarray]:
        """The rows of ``ids`` without writing anything (no consolidation, safe beside a running embed).

        Returns ``(found (m,) bool, vectors (found.sum(), D) float32)``, vectors in the order of the
        ids that were found.
        """
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        found = self._is_removed(ids)  # removed: counted as found for the loop, cleared after it
        gone = found.copy()
        out = np.zeros((len(ids), self.dim or 0), dtype=np.float32)
        for name in self._parts():
            part_ids = np.asarray(self._load(name, "ids", mmap=False), dtype=np.int64)
            hit = np.isin(ids, part_ids) & ~found
            if hit.any():
                order = np.argsort(part_ids, kind="stable")
                rows = order[np.searchsorted(part_ids, ids[hit], sorter=order)]
                out[hit] = self._load(name, "vectors", mmap=True)[rows]
                found |= hit
        found &= ~gone
        return found, out[found]

    def missing(self, ids) -> np.ndarray:
        """The given ids (order kept) that the store lacks: (m,) int64."""
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        with self.locked(exclusive=False):
            return ids[~np.isin(ids, self._ids())]

    def append(self, ids, vectors) -> None:
        """Durably add rows; ids must be new and unique, vectors (n, D) with the store's D."""
        with self.locked(exclusive=True):
            self._append(ids, vectors)

    def _append(self, ids, vectors) -> None:
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(ids):
            raise ModelError(f"append: expected (n, D) vectors for {len(ids)} ids, got shape {vectors.shape}")
        if len(ids) == 0:
            return
        if self.dim is not None and vectors.shape[1] != self.dim:
            raise ModelError(f"append: vectors have {vectors.shape[1]} dims; store {self.directory} holds "
                             f"{self.dim}-dim vectors")
        if len(np.unique(ids)) != len(ids):
            raise ModelError("append: duplicate ids in one call")
        held = self._present(ids)
        live = held & ~self._is_removed(ids) if held.any() else held
        if live.any():
            present = ids[live]
            raise ModelError(f"append: {len(present)} id(s) already stored (e.g. {present[:5].tolist()}); "
                             "remove them first")
        if held.any():  # an id removed but still in a part comes back: drop its old row first
            self._consolidate(keep=None)
        name = self._new_part_name("chunk")
        self._write_part(name, ids, vectors)
        rows = [*self._chunk_rows(), len(ids)]
        chunks = [*self._manifest["chunks"], name]
        self._write_manifest(dict(self._manifest, dim=int(vectors.shape[1]), chunks=chunks, chunk_rows=rows))
        self._merge_chunks()

    def remove(self, ids, *, consolidate: bool = True) -> int:
        """Delete the rows of ``ids`` (absent ids are ignored); returns how many rows went. The ids are recorded
        as removed (a write of the removed ids, not of the store); the rows go at the next consolidation, which
        this call makes once the removed ids pass :data:`CONSOLIDATE_REMOVED` of the rows unless ``consolidate``
        is False (the service: a delete must cost what it changes; its start-up consolidates)."""
        ids = np.unique(np.asarray(ids, dtype=np.int64).reshape(-1))
        with self.locked(exclusive=True):
            going = ids[self._present(ids) & ~self._is_removed(ids)]
            if not len(going):
                return 0
            if self._add_removed(going):
                self._sweep()  # the merged parts' files (a removal that merged none left no file unnamed)
            rows = sum(self._chunk_rows()) + (len(self._load(self._manifest["base"], "ids", mmap=True))
                                              if self._manifest["base"] else 0)
            if consolidate and sum(self._removed_rows()) > CONSOLIDATE_REMOVED * rows:
                self._consolidate(keep=None)
            return len(going)

    # -- internals -------------------------------------------------------------------------------------------

    def _parts(self) -> list[str]:
        base = [self._manifest["base"]] if self._manifest["base"] else []
        return base + list(self._manifest["chunks"])

    def _consolidate(self, keep: np.ndarray | None) -> None:
        """One new base of the live rows, copied part by part through memory maps (the rows never all sit in
        the process's memory at once)."""
        parts = self._parts()
        ids = self._all_ids()
        live = ~np.isin(ids, self._removed())
        if keep is not None:
            live &= keep
        name = self._new_part_name("base")
        if not live.any():
            self._write_part(name, ids[live], np.zeros((0, self.dim or 0), np.float32))
            self._write_manifest(dict(self._manifest, base=name, chunks=[], chunk_rows=[], removed=[], removed_rows=[]))
            self._sweep()
            return
        self._write_ids(name, ids[live])

        def pieces():  # each part's live rows, in bounded pieces: a million rows copy in 64k-row steps
            start = 0
            for part in parts:
                block = self._load(part, "vectors", mmap=True)
                mask = live[start:start + len(block)]
                start += len(block)
                for at in range(0, len(block), COPY_ROWS):
                    yield np.asarray(block[at:at + COPY_ROWS])[mask[at:at + COPY_ROWS]]

        write_rows(self.directory / f"{name}.vectors.npy", int(live.sum()), self.dim or 0, pieces())
        self._write_manifest(dict(self._manifest, base=name, chunks=[], chunk_rows=[], removed=[], removed_rows=[]))
        self._sweep()

    def _chunk_rows(self) -> list[int]:
        """Rows of each chunk (recorded in the manifest; read from the files for a store written before)."""
        rows = self._manifest.get("chunk_rows")
        if rows is None or len(rows) != len(self._manifest["chunks"]):
            rows = [len(self._load(name, "ids", mmap=True)) for name in self._manifest["chunks"]]
        return list(rows)

    def _merge_chunks(self) -> None:
        """Merge the two newest chunks while the newer holds at least as many rows as the one before."""
        while len(self._manifest["chunks"]) >= 2:
            *older, second, last = self._manifest["chunks"]
            *older_rows, second_rows, last_rows = self._chunk_rows()
            if last_rows < second_rows:
                return
            name = self._new_part_name("chunk")
            self._write_concatenated(name, (second, last))
            self._write_manifest(dict(self._manifest, chunks=[*older, name],
                                      chunk_rows=[*older_rows, second_rows + last_rows]))
            self._sweep()

    def _removed_rows(self) -> list[int]:
        """Ids in each removed part (recorded in the manifest; read from the files for a store written before)."""
        rows = self._manifest.get("removed_rows")
        names = self._removed_parts()
        if rows is None or len(rows) != len(names):
            rows = [len(self._load(name, "ids", mmap=True)) for name in names]
        return list(rows)

    def _add_removed(self, going: np.ndarray) -> int:
        """Record the sorted ``going`` ids as removed: merged with the newest removed parts while it holds at least
        as many ids as the one before (as the chunks merge: O(log r) parts, each id rewritten O(log r) times), then
        written as one part and named by one manifest write. A removal never rewrites every removed id. Returns
        how many parts were merged (their files are no longer named)."""
        names, rows = self._removed_parts(), self._removed_rows()
        merged = 0
        while names and len(going) >= rows[-1]:
            going = np.union1d(self._load(names.pop(), "ids", mmap=False), going).astype(np.int64)
            rows.pop()
            merged += 1
        name = self._new_part_name("removed")
        self._write_ids(name, going)
        self._write_manifest(dict(self._manifest, removed=[*names, name], removed_rows=[*rows, len(going)]))
        return merged

    def _new_part_name(self, kind: str) -> str:
        number = self._manifest["next"]
        self._manifest = dict(self._manifest, next=number + 1)
        return f"{kind}-{number:06d}"

    def _write_part(self, name: str, ids: np.ndarray, vectors: np.ndarray) -> None:
        self._write_ids(name, ids)
        self._write_array(self.directory / f"{name}.vectors.npy", np.ascontiguousarray(vectors, np.float32))

    def _write_concatenated(self, name: str, parts: tuple[str, ...]) -> None:
        """Part ``name`` = ``parts`` one after the other, copied through memory maps (the rows never all sit in
        the process's memory at once)."""
        ids = np.concatenate([self._load(n, "ids", mmap=False) for n in parts]).astype(np.int64)
        self._write_ids(name, ids)
        write_rows(self.directory / f"{name}.vectors.npy", len(ids), self.dim or 0,
                   (self._load(part, "vectors", mmap=True) for part in parts))

    def _write_ids(self, name: str, ids: np.ndarray) -> None:
        ids = np.asarray(ids, np.int64)
        self._write_array(self.directory / f"{name}.ids.npy", ids)
        self._spans_written[name] = span_of(ids)

    @staticmethod
    def _write_array(path: Path, array: np.ndarray) -> None:  # every part file's write (tests count them)
        write_array(path, array)

    def _write_manifest(self, manifest: dict) -> None:
        # the folder's fsync after the rename also makes the new parts' names durable
        parts = ([manifest["base"]] if manifest["base"] else []) + list(manifest["chunks"])
        known = {**manifest.get("spans", {}), **self._spans_written}
        manifest = dict(manifest, spans={name: known[name] for name in parts if name in known})
        self._spans_written = {}
        write_json(self.directory / MANIFEST, manifest, indent=None)
        self._manifest = manifest

    def _read_manifest(self) -> dict:
        path = self.directory / MANIFEST
        if not path.exists():
            return {"format": 1, "dim": None, "base": None, "chunks": [], "next": 0}
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
            assert {"dim", "base", "chunks", "next"} <= manifest.keys()
        except (OSError, ValueError, AssertionError):
            raise ModelError(f"embedding store manifest {path} is unreadable or incomplete") from None
        return manifest

    def _load(self, name: str, what: str, mmap: bool) -> np.ndarray:
        path = self.directory / f"{name}.{what}.npy"
        if not mmap:
            return read_array(path, mmap)
        if (name, what) not in self._maps:  # part names are never reused, so a part's map stays right
            self._maps[name, what] = read_array(path, mmap=True)
        return self._maps[name, what]

    def _named(self) -> set[str]:
        return set(self._parts()) | set(self._removed_parts())

    def _forget_unnamed(self) -> None:
        """Drop the memory maps of parts the manifest no longer names (their files may be deleted; a map would keep
        the disk space)."""
        named = self._named()
        self._maps = {key: mapped for key, mapped in self._maps.items() if key[0] in named}

    def _sweep(self) -> None:
        """Delete part files the manifest no longer names (old bases, chunks, crash leftovers)."""
        live = self._named()
        self._forget_unnamed()
        for path in self.directory.glob("*.npy"):
            if path.name.split(".", 1)[0] not in live:
                path.unlink(missing_ok=True)
