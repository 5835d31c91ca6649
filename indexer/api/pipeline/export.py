"""Vectors out: a model's embeddings with each image's id, path, label and split, for other tools.

User fields (see :mod:`indexer.api.registry.fields`) follow as columns of their type (float64, string, UTC
timestamp; in ``meta.csv``, text). Two formats. ``parquet``: one file, columns ``id`` (int64), ``path``, ``label``, ``split``
(strings, label and split nullable) and ``vector`` (fixed-size list of float32), one row
group per batch. ``npy``: a folder with ``ids.npy`` ((n,) int64), ``vectors.npy`` ((n, d)
float32) and ``meta.csv`` (``id,path,label,split``), rows aligned.

Rows are every ok catalog image the model has embedded, in id order. The export streams: it
holds one batch of rows (plus the (n,) id column of the store) however large the catalog: vectors
are read through a memory map opened per batch and written with plain appends. Each file is
written under a temporary name, fsynced and renamed when complete, so a failed export leaves no half-written file.
"""

from __future__ import annotations

import contextlib
import csv
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexer.api.registry.images import IMPORTED_FORMAT
from indexer.api.registry.models import default_model_name
from indexer.api.workspace import Workspace
from indexer.core.errors import InputError, MissingDependencyError
from indexer.core.files import atomic_path
from storage.catalog import ImageRow

FORMATS = ("parquet", "npy")
DEFAULT_BATCH_ROWS = 4096
NPY_FILES = ("ids.npy", "vectors.npy", "meta.csv")
META_COLUMNS = ("id", "path", "label", "split")
PYARROW_HELP = "export --format parquet needs pyarrow, which is not installed: pip install pyarrow"

__all__ = ["FORMATS", "ExportOutcome", "export_vectors"]


@dataclass(frozen=True)
class ExportOutcome:
    """What :func:`export_vectors` wrote: ``rows`` vectors of ``dim`` dims into ``files``.

    ``not_embedded``: ok catalog images the model has not embedded yet (not exported; run
    ``indexer embed --model NAME`` first to include them).
    """

    model: str
    format: str
    rows: int
    dim: int
    files: list[Path]
    not_embedded: int


@dataclass(frozen=True)
class _Batch:
    ids: np.ndarray  # (b,) int64, ascending
    rows: list[ImageRow]  # the catalog rows of ids, same order
    vectors: np.ndarray  # (b, d) float32
    fields: dict[int, dict[str, object]]  # user fields of those ids that have any


def export_vectors(
    workspace: Workspace,
    dest: str | os.PathLike[str],
    *,
    model_name: str | None = None,
    format: str = "parquet",  # noqa: A002 - the CLI's --format
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> ExportOutcome:
    """Write the model's embeddings of ok catalog images to ``dest`` (a ``.parquet`` file, or a folder for ``npy``).

    ``model_name``: default the most recently trained model. An existing file at ``dest`` is
    replaced, only once the new one is complete.
    """
    from models.embedders import EXTERNAL, embedder_kind
    from models.embedding_store import EmbeddingStore

    if format not in FORMATS:
        raise InputError(f"unknown export format {format!r}; expected one of {', '.join(FORMATS)}")
    if batch_rows < 1:
        raise InputError(f"batch_rows must be at least 1; got {batch_rows}")
    model_name = model_name or default_model_name(workspace)
    with workspace.catalog() as catalog:
        model = catalog.model(model_name)  # a clear error for an unknown name
        # what the model could have embedded: every ok image but imported vectors; an external model, its own rows
        embeddable = 0 if embedder_kind(model.params) == EXTERNAL else (
            catalog.count_images(status="ok") - catalog.count_images(status="ok", format=IMPORTED_FORMAT))
        field_types = catalog.fields()  # user fields travel as columns of their type
    store = EmbeddingStore(workspace.embeddings_dir / model_name)
    if len(store) == 0 or store.dim is None:
        raise InputError(f"model {model_name!r} has embedded no images yet: run 'indexer embed --model {model_name}'")
    dest = Path(dest).expanduser()
    writer = _write_parquet if format == "parquet" else _write_npy
    rows, files = writer(lambda: _batches(workspace, store, batch_rows), dest, model_name, int(store.dim),
                         field_types)
    return ExportOutcome(model=model_name, format=format, rows=rows, dim=int(store.dim), files=files,
                         not_embedded=max(0, embeddable - rows))


def _batches(workspace: Workspace, store, batch_rows: int) -> Iterator[_Batch]:
    """The store's vectors of ok catalog images in id order, ``batch_rows`` store rows at a time."""
    store_ids = store.ids()
    order = np.argsort(store_ids, kind="stable")
    for start in range(0, len(order), batch_rows):
        # a fresh memory map per batch, dropped after it: pages read stay out of the process's memory
        vectors = store.vectors(mmap=True)
        positions = np.sort(order[start:start + batch_rows])  # ascending file offsets for the memory map
        ids = store_ids[positions]
        with workspace.catalog() as catalog:
            found = catalog.images_by_ids(ids.tolist())
            fields = catalog.image_fields(ids.tolist())
        keep = np.array([int(i) in found and found[int(i)].status == "ok" for i in ids], dtype=bool)
        if not keep.any():
            continue
        positions, ids = positions[keep], ids[keep]
        by_id = np.argsort(ids, kind="stable")
        positions, ids = positions[by_id], ids[by_id]
        batch_vectors = np.array(vectors[positions], dtype=np.float32)
        del vectors
        yield _Batch(ids=ids, rows=[found[int(i)] for i in ids], vectors=batch_vectors, fields=fields)


def _write_parquet(batches, dest: Path, model_name: str, dim: int,
                   field_types: dict[str, str]) -> tuple[int, list[Path]]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingDependencyError(PYARROW_HELP) from None
    if dest.is_dir():
        raise InputError(f"{dest} is a folder; give a file name for --format parquet (e.g. {dest / model_name}.parquet)")
    _make_parent(dest)
    arrow_types = {"number": pa.float64(), "text": pa.string(), "date": pa.timestamp("us", tz="UTC")}
    names = [name for name in field_types if name not in META_COLUMNS and name != "vector"]
    schema = pa.schema(
        [("id", pa.int64()), ("path", pa.string()), ("label", pa.string()), ("split", pa.string()),
         ("vector", pa.list_(pa.float32(), dim))] + [(name, arrow_types[field_types[name]]) for name in names],
        metadata={"indexer.model": model_name, "indexer.dim": str(dim)},
    )
    rows = 0
    with atomic_path(dest) as tmp, pq.ParquetWriter(tmp, schema) as writer:
        for batch in batches():
            vector = pa.FixedSizeListArray.from_arrays(pa.array(batch.vectors.reshape(-1), pa.float32()), dim)
            writer.write_table(pa.Table.from_arrays(
                [pa.array(batch.ids, pa.int64()), pa.array([row.path for row in batch.rows], pa.string()),
                 pa.array([row.label for row in batch.rows], pa.string()),
                 pa.array([row.split for row in batch.rows], pa.string()), vector]
                + [pa.array([batch.fields.get(int(i), {}).get(name) for i in batch.ids], arrow_types[field_types[name]])
                   for name in names],
                schema=schema,
            ))
            rows += len(batch.ids)
    return rows, [dest]


def _write_npy(batches, dest: Path, model_name: str, dim: int,
               field_types: dict[str, str]) -> tuple[int, list[Path]]:
    """Two passes over the batches: meta.csv and the row count first, then the two arrays of known shape."""
    if dest.exists() and not dest.is_dir():
        raise InputError(f"{dest} is a file; --format npy writes a folder ({', '.join(NPY_FILES)})")
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{dest}: cannot create the folder ({exc.strerror or exc})") from None
    targets = [dest / name for name in NPY_FILES]
    with contextlib.ExitStack() as renames:  # each file is renamed into place only if every one was written
        ids_tmp, vectors_tmp, meta_tmp = (renames.enter_context(atomic_path(path)) for path in targets)
        rows = 0
        with open(meta_tmp, "w", newline="", encoding="utf-8") as handle:
            meta = csv.writer(handle)
            names = [name for name in field_types if name not in META_COLUMNS]
            meta.writerow([*META_COLUMNS, *names])
            for batch in batches():
                meta.writerows([int(i), row.path, row.label or "", row.split or "",
                                *(_cell(batch.fields.get(int(i), {}).get(name)) for name in names)]
                               for i, row in zip(batch.ids, batch.rows))
                rows += len(batch.ids)
        at = 0
        with open(ids_tmp, "wb") as ids_out, open(vectors_tmp, "wb") as vectors_out:
            # plain appends after a header of the known shape: no memory map, so memory stays one batch
            np.lib.format.write_array_header_1_0(ids_out, _header(np.int64, (rows,)))
            np.lib.format.write_array_header_1_0(vectors_out, _header(np.float32, (rows, dim)))
            for batch in batches():
                at += len(batch.ids)
                if at > rows:
                    raise InputError("the catalog changed during the export (more rows on the second pass); run it again")
                ids_out.write(np.ascontiguousarray(batch.ids, dtype="<i8").tobytes())
                vectors_out.write(np.ascontiguousarray(batch.vectors, dtype="<f4").tobytes())
        if at != rows:
            raise InputError("the catalog changed during the export (fewer rows on the second pass); run it again")
    return rows, targets


def _cell(value: object) -> str:
    """A user field's value in meta.csv: empty when unset, a date as ISO text."""
    if value is None:
        return ""
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _header(dtype: type, shape: tuple[int, ...]) -> dict:
    """The .npy header of a C-ordered little-endian array of ``dtype`` and ``shape``."""
    return {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype).newbyteorder("<")), "fortran_order": False,
            "shape": shape}


def _make_parent(path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{path}: cannot create its folder ({exc.strerror or exc})") from None
