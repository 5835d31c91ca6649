"""Vectors in: what ``indexer export`` writes (or any file of that form) becomes catalog rows and an embedding
store of an external model, ready for ``indexer build``.

The rows need no image file: ``path`` is any unique string, stored as given (not resolved). Each is catalogued
as an ok image marked as imported (:mod:`indexer.api.registry.images`); its label and split are the file's.
The model is registered with kind ``external`` and params ``{"embedder": "external", "dim", "source", ...}``;
it has no embedder, so it is queried with vectors (``Searcher.hits_for_vectors``) or stored ids.

Two passes over the file, each one batch of rows at a time. The first checks everything and writes nothing:
columns, one dimension for every vector, finite non-zero values, a non-empty path unique in the file and not
yet in the catalog, label and split within the catalog's widths, the model's kind and dimension. The second
writes each batch as one chunk: its catalog rows in one transaction, then their vectors appended to the
store. A run that stops between chunks is finished by running it again: rows whose path is catalogued and
stored by this model are skipped (``skipped_existing``), and a chunk catalogued but not stored (a kill
between the two writes) is stored then.

Vectors are stored L2-normalised, as every store holds them (inner product is cosine): a row whose norm is
not 1 (to 1e-4) is divided by it (``normalised`` counts them); unit rows are stored bit for bit, so an
export imported again gives the same vectors.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from indexer.api.pipeline.vector_sources import FORMATS, SourceBatch, VectorSource, open_source
from indexer.api.registry.images import IMPORTED_FORMAT, imported_sha256, is_imported
from indexer.api.workspace import Workspace, check_artifact_name
from indexer.core.errors import InputError
from indexer.core.files import write_json

DEFAULT_BATCH_ROWS = 16384
MAX_LABEL, MAX_SPLIT = 255, 32  # the catalog's column widths (PostgreSQL enforces them)
UNIT_TOLERANCE = 1e-4
RECORD_FILE = "external.json"

__all__ = ["FORMATS", "ImportOutcome", "import_vectors"]


@dataclass(frozen=True)
class ImportOutcome:
    """What :func:`import_vectors` did: ``rows`` vectors of ``dim`` dims stored for ``model`` now,
    ``skipped_existing`` rows a previous run had imported already, ``normalised`` rows divided by their norm;
    ``created``: the model was registered by this run."""

    model: str
    rows: int
    skipped_existing: int
    dim: int
    source: str
    format: str
    normalised: int = 0
    created: bool = False


@dataclass
class _Plan:
    """One batch's rows to write: positions in the batch, and the catalog id of each (None: a new row)."""

    positions: list[int] = field(default_factory=list)
    ids: list[int | None] = field(default_factory=list)
    skipped: int = 0


def import_vectors(
    workspace: Workspace,
    source: str | os.PathLike[str],
    *,
    model_name: str | None = None,
    format: str | None = None,  # noqa: A002 - the CLI's --format
    batch_rows: int = DEFAULT_BATCH_ROWS,
    progress: bool = True,
) -> ImportOutcome:
    """Catalogue the rows of ``source`` (a Parquet file or an npy folder, as ``indexer export`` writes) and store
    their vectors for the external model ``model_name`` (default: the file's stem).

    Nothing is written unless the whole file is valid (InputError naming the file, the row and the reason).
    Running it again finishes an interrupted import and skips what is there. An existing model of that name
    must be an external one of the same dimension (its rows are kept; the file's new rows are added).
    """
    from models.embedders import EXTERNAL
    from models.embedding_store import EmbeddingStore
    from storage.errors import NotInCatalogError

    if batch_rows < 1:
        raise InputError(f"batch_rows must be at least 1; got {batch_rows}")
    reader = open_source(source, format)
    name = check_artifact_name("model", model_name or Path(reader.name).stem)
    with workspace.catalog(write=True) as catalog:
        try:
            model = catalog.model(name)
        except NotInCatalogError:
            model = None
    if model is not None and model.params.get("embedder") != EXTERNAL:
        raise InputError(f"model {name!r} is a trained model ({model.kind}), not imported vectors: give the import "
                         "a model name of its own (--model NAME)")
    if model is not None and reader.dim is not None and reader.dim != model.dim:
        raise InputError(_dim_message(name, model.dim, reader))
    store_dir = workspace.embeddings_dir / name
    stored = EmbeddingStore(store_dir).ids() if model is not None and store_dir.is_dir() else np.zeros(0, np.int64)
    checker = _Checker(workspace, name, resumable=model is not None, stored=stored)
    totals = checker.check(reader, batch_rows, progress)
    _declare_fields(workspace, reader)
    if model is not None and reader.dim != model.dim:
        raise InputError(_dim_message(name, model.dim, reader))
    outcome = ImportOutcome(model=name, rows=totals.rows, skipped_existing=totals.skipped, dim=int(reader.dim),
                            source=reader.name, format=reader.format, normalised=totals.normalised,
                            created=model is None)
    if totals.rows == 0:
        return outcome
    record = workspace.models_dir / name / RECORD_FILE
    if model is None:
        record.parent.mkdir(parents=True, exist_ok=True)
        write_json(record, {"embedder": EXTERNAL, "dim": reader.dim, "source": Path(reader.name).name,
                            "imports": []})
        with workspace.catalog(write=True) as catalog:
            catalog.register_model(
                name=name, kind=EXTERNAL, metrics={}, path=workspace.relative(record), dim=int(reader.dim),
                params={"embedder": EXTERNAL, "dim": int(reader.dim), "source": Path(reader.name).name,
                        "name": name},
            )
    store = EmbeddingStore(store_dir)
    with store.locked():  # a second import or embed of this model waits
        _write(workspace, store, reader, checker, batch_rows, progress)
    _log(record, outcome)
    return outcome


@dataclass
class _Totals:
    rows: int = 0
    skipped: int = 0
    normalised: int = 0


class _Checker:
    """The rules of one import, applied to each batch the same way by the check and by the writes."""

    def __init__(self, workspace: Workspace, model: str, *, resumable: bool, stored: np.ndarray) -> None:
        self.workspace, self.model, self.resumable = workspace, model, resumable
        self.stored = np.sort(stored)
        self._elsewhere: np.ndarray | None = None  # ids the other external models store (read when needed)

    def check(self, reader: VectorSource, batch_rows: int, progress: bool) -> _Totals:
        """Read the whole source and raise InputError at the first problem; write nothing."""
        from tqdm import tqdm

        totals, hashes = _Totals(), []
        bar = tqdm(total=reader.rows, desc="check", unit="row", disable=not progress or reader.rows < 100_000)
        with self.workspace.catalog() as catalog:
            for batch in reader.batches(batch_rows):
                plan = self.plan(catalog, batch)
                totals.rows += len(plan.positions)
                totals.skipped += plan.skipped
                totals.normalised += int(_off_unit(batch.vectors[plan.positions]).sum())
                hashes.append(np.array([_path_hash(path) for path in batch.paths], dtype=np.uint64))
                bar.update(len(batch.paths))
        bar.close()
        if not hashes:
            raise InputError(f"{reader.name}: no rows to import")
        _refuse_repeated_paths(reader, batch_rows, np.concatenate(hashes))
        return totals

    def plan(self, catalog, batch: SourceBatch) -> _Plan:
        """The rows of ``batch`` to write; InputError at its first problem (the lowest row of any check)."""
        problems: list[tuple[int, str, str]] = []  # (position, reason, the file to name)
        for position, path in enumerate(batch.paths):
            reason = _path_problem(path)
            if reason is None:
                label, split = batch.labels[position], batch.splits[position]
                if label is not None and len(label) > MAX_LABEL:
                    reason = f"label longer than {MAX_LABEL} characters"
                elif split is not None and len(split) > MAX_SPLIT:
                    reason = f"split longer than {MAX_SPLIT} characters"
            if reason is not None:
                problems.append((position, reason, batch.where))
                break
        finite = np.isfinite(batch.vectors).all(axis=1)
        if not finite.all():
            problems.append((int(np.flatnonzero(~finite)[0]), "the vector is not finite (NaN, inf or a null value)",
                             batch.vectors_where))
        zero = finite & ~batch.vectors.any(axis=1)
        if zero.any():
            problems.append((int(np.flatnonzero(zero)[0]), "the vector is all zeros (it has no direction)",
                             batch.vectors_where))
        known = catalog.images_by_paths(path for path in batch.paths if path)
        plan = _Plan()
        for position, path in enumerate(batch.paths):
            row = known.get(path)
            if row is None:
                plan.positions.append(position)
                plan.ids.append(None)
            elif self.resumable and self._is_stored(row.id):
                plan.skipped += 1
            elif self.resumable and is_imported(row) and row.status == "ok" and not self._stored_elsewhere(row.id):
                plan.positions.append(position)  # catalogued by an interrupted run, its vector not stored yet
                plan.ids.append(row.id)
            else:
                problems.append((position, f"path {path!r} is already in the catalog (image {row.id})", batch.where))
                break
        if problems:
            position, reason, where = min(problems)
            raise InputError(f"{where}: row {batch.start + position}: {reason}")
        return plan

    def _is_stored(self, image_id: int) -> bool:
        at = np.searchsorted(self.stored, image_id)
        return bool(at < len(self.stored) and self.stored[at] == image_id)

    def _stored_elsewhere(self, image_id: int) -> bool:
        """True when another external model stores ``image_id`` (it was imported there, not here)."""
        if self._elsewhere is None:
            from models.embedders import EXTERNAL
            from models.embedding_store import EmbeddingStore

            with self.workspace.catalog() as catalog:
                others = [m.name for m in catalog.models() if m.params.get("embedder") == EXTERNAL and m.name != self.model]
            parts = [EmbeddingStore(self.workspace.embeddings_dir / other).ids() for other in others
                     if (self.workspace.embeddings_dir / other).is_dir()]
            self._elsewhere = np.concatenate([np.zeros(0, np.int64), *parts])
        return bool(np.isin(image_id, self._elsewhere))


def _write(workspace: Workspace, store, reader: VectorSource, checker: _Checker, batch_rows: int,
           progress: bool) -> None:
    """Each batch as one chunk: its new catalog rows committed, then its vectors appended to the store."""
    from tqdm import tqdm

    bar = tqdm(total=reader.rows, desc="import", unit="row", disable=not progress or reader.rows < 100_000)
    for batch in reader.batches(batch_rows):
        with workspace.catalog(write=True) as catalog:  # one transaction per chunk
            plan = checker.plan(catalog, batch)
            new = [position for position, image_id in zip(plan.positions, plan.ids) if image_id is None]
            added = iter(catalog.add_images([_catalog_fields(catalog, batch, position) for position in new]))
            ids = [image_id if image_id is not None else next(added) for image_id in plan.ids]
            fresh = {position: image_id for position, image_id, was in zip(plan.positions, ids, plan.ids)
                     if was is None}
            catalog.add_field_values([(image_id, name, values[position]) for name, values in batch.fields.items()
                                      for position, image_id in fresh.items() if _present(values[position])])
        if ids:
            store.append(np.asarray(ids, dtype=np.int64), _unit(batch.vectors[plan.positions]))
        bar.update(len(batch.paths))
    bar.close()


def _present(value: object) -> bool:
    """A cell that holds a value (not null, not a float NaN)."""
    return value is not None and not (isinstance(value, float) and value != value)


def _declare_fields(workspace: Workspace, reader: VectorSource) -> None:
    """Declare the source's other columns as user fields of their types; InputError, before anything is
    written, when the catalog has one of them with another type."""
    from storage.fields import FieldTypeError

    with workspace.catalog(write=True) as catalog:
        try:
            for name, kind in reader.field_types.items():
                catalog.declare_field(name, kind)
        except FieldTypeError as exc:
            raise InputError(f"{reader.name}: {exc} (nothing was imported)") from None


def _catalog_fields(catalog, batch: SourceBatch, position: int) -> dict:
    path, label = batch.paths[position], batch.labels[position]
    return {"path": path, "status": "ok", "sha256": imported_sha256(path), "format": IMPORTED_FORMAT,
            "label_id": catalog.label_id(label) if label is not None else None, "split": batch.splits[position]}


def _path_problem(path: str | None) -> str | None:
    if path is None or not path.strip():
        return "empty path"
    if "\0" in path:
        return "the path holds a NUL character"
    return None


def _off_unit(vectors: np.ndarray) -> np.ndarray:
    """(b,) bool: rows whose L2 norm is not 1 to :data:`UNIT_TOLERANCE`."""
    norms = np.linalg.norm(vectors.astype(np.float64), axis=1)
    return np.abs(norms - 1.0) > UNIT_TOLERANCE


def _unit(vectors: np.ndarray) -> np.ndarray:
    """(b, d) float32 with every row of norm 1: rows already so are kept bit for bit."""
    vectors = np.array(vectors, dtype=np.float32)
    off = _off_unit(vectors)
    if off.any():
        norms = np.linalg.norm(vectors[off].astype(np.float64), axis=1, keepdims=True)
        vectors[off] = (vectors[off] / norms).astype(np.float32)
    return vectors


def _path_hash(path: str | None) -> int:
    return int.from_bytes(hashlib.blake2b((path or "").encode("utf-8"), digest_size=8).digest(), "little")


def _refuse_repeated_paths(reader: VectorSource, batch_rows: int, hashes: np.ndarray) -> None:
    """InputError at the first row whose path an earlier row has. 8-byte hashes find candidates in one sort
    (8 bytes a row, not the paths); a second read compares the candidates' paths themselves."""
    ordered = np.sort(hashes)
    candidates = set(ordered[1:][ordered[1:] == ordered[:-1]].tolist())
    if not candidates:
        return
    first: dict[str, int] = {}
    for batch in reader.batches(batch_rows):
        for position, path in enumerate(batch.paths):
            if _path_hash(path) not in candidates:
                continue
            row = batch.start + position
            if path in first:
                raise InputError(f"{batch.where}: row {row}: path {path!r} appears twice (first at row {first[path]})")
            first[path] = row


def _dim_message(name: str, dim: int, reader: VectorSource) -> str:
    return (f"{reader.name}: vectors of {reader.dim} dims; model {name!r} holds {dim}-dim vectors: import into "
            "another model (--model NAME)")


def _log(record: Path, outcome: ImportOutcome) -> None:
    """Add this run to the model's record of imports (``models/NAME/external.json``)."""
    import json

    try:
        content = json.loads(record.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        content = {"embedder": "external", "dim": outcome.dim, "imports": []}
    content.setdefault("imports", []).append({
        "source": outcome.source, "format": outcome.format, "rows": outcome.rows,
        "skipped_existing": outcome.skipped_existing, "normalised": outcome.normalised,
        "at": datetime.now(timezone.utc).isoformat(timespec="seconds")})
    write_json(record, content)
