"""Vectors in: the files ``indexer export`` writes, read back in batches of rows.

Two forms, as :mod:`indexer.api.pipeline.export` writes them. ``parquet``: one file with a ``path`` column
(text) and a ``vector`` column (a fixed-size or variable list of numbers), optional ``label`` and ``split``;
any other column (``id`` included: ids are the catalog's) is not read. ``npy``: a folder with ``vectors.npy``
((n, d), numbers) and ``meta.csv`` (header with ``path``, optional ``label`` and ``split``), rows aligned;
``ids.npy`` is not read.

A source streams: one batch of rows in memory at a time (Parquet's ``iter_batches``, a memory map of
``vectors.npy``). Rows are numbered from 0, as pandas and numpy number them, and every problem is an
:class:`InputError` of one line naming the file, the row and the reason.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from indexer.core.errors import InputError, MissingDependencyError

FORMATS = ("parquet", "npy")
PATH, VECTOR, LABEL, SPLIT = "path", "vector", "label", "split"
NPY_VECTORS, NPY_META = "vectors.npy", "meta.csv"
READ_BUFFER = 1 << 20  # bytes: Parquet is read through a buffered stream, not whole column chunks at once
PYARROW_HELP = "import of a Parquet file needs pyarrow, which is not installed: pip install pyarrow"

__all__ = ["FORMATS", "SourceBatch", "VectorSource", "open_source"]


@dataclass(frozen=True)
class SourceBatch:
    """Rows ``start .. start + len(paths) - 1`` of a source. ``vectors``: (b, d) float32, not yet checked for
    finite values; ``paths``, ``labels``, ``splits``: text or None (a null or empty cell)."""

    start: int
    paths: list[str | None]
    labels: list[str | None]
    splits: list[str | None]
    vectors: np.ndarray
    where: str  # the file a message about these rows' path, label or split names
    vectors_where: str  # the file a message about their vectors names
    fields: dict[str, list] = field(default_factory=dict)  # the source's other scalar columns (user fields)


class VectorSource:
    """A readable file of vectors: ``name`` (as given), ``format``, ``rows`` and ``dim`` (known after opening,
    except for a Parquet file of variable lists, whose first row sets it)."""

    name: str
    format: str
    rows: int
    dim: int | None
    field_types: dict[str, str] = {}  # noqa: RUF012 - other scalar columns kept as user fields: name -> type

    def batches(self, batch_rows: int) -> Iterator[SourceBatch]:
        """The rows in order, ``batch_rows`` at a time; InputError at the first unreadable one."""
        raise NotImplementedError


def open_source(path: str | os.PathLike[str], format: str | None = None) -> VectorSource:  # noqa: A002
    """The source at ``path``: a Parquet file, or an npy folder (``format`` None: a folder is npy, a file Parquet).

    InputError when it does not exist, cannot be read, is not of that form or lacks a required column.
    """
    path = Path(path).expanduser()
    if format is not None and format not in FORMATS:
        raise InputError(f"unknown import format {format!r}; expected one of {', '.join(FORMATS)}")
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if format is None:
        format = "npy" if path.is_dir() else "parquet"  # noqa: A001
    if format == "npy":
        if not path.is_dir():
            raise InputError(f"{path}: --format npy reads a folder holding {NPY_VECTORS} and {NPY_META}; "
                             "this is a file")
        return NpyFolder(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder; a Parquet import reads one file (an npy folder: --format npy)")
    return ParquetFile(path)


class ParquetFile(VectorSource):
    """One Parquet file: ``path``, ``vector``, (when present) ``label`` and ``split``, and every other scalar
    column (numbers, text, dates; ``id`` excepted) as a user field of that type."""

    format = "parquet"

    def __init__(self, path: Path) -> None:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise MissingDependencyError(PYARROW_HELP) from None
        self.path, self.name = path, str(path)
        try:
            # pre_buffer (pyarrow's default) keeps every column chunk read so far until the file is closed: off,
            # so memory is one row group's, however many there are
            self.file = pq.ParquetFile(path, pre_buffer=False, buffer_size=READ_BUFFER)
        except OSError as exc:
            raise InputError(f"{path}: cannot read it ({exc.strerror or exc})") from None
        except (pa.ArrowException, ValueError) as exc:
            raise InputError(f"{path}: not a Parquet file ({_first_line(exc)}); an npy folder is read with "
                             "--format npy") from None
        schema = self.file.schema_arrow
        missing = [column for column in (PATH, VECTOR) if schema.get_field_index(column) < 0]
        if missing:
            raise InputError(f"{path}: no {' or '.join(repr(c) for c in missing)} column (columns: "
                             f"{', '.join(schema.names) or 'none'}); an import needs 'path' and 'vector'")
        vector_type = schema.field(VECTOR).type
        if not (pa.types.is_list(vector_type) or pa.types.is_large_list(vector_type)
                or pa.types.is_fixed_size_list(vector_type)) or not _numeric(pa, vector_type.value_type):
            raise InputError(f"{path}: column 'vector' must hold lists of numbers; it holds {vector_type}")
        self.fixed = pa.types.is_fixed_size_list(vector_type)
        self.dim = vector_type.list_size if self.fixed else None
        if self.dim is not None and self.dim < 1:
            raise InputError(f"{path}: column 'vector' holds lists of {self.dim} values; vectors need at least 1")
        self.rows = self.file.metadata.num_rows
        self.columns = [c for c in (PATH, VECTOR, LABEL, SPLIT) if schema.get_field_index(c) >= 0]
        self.field_types = {}
        for column in schema:
            if column.name in (PATH, VECTOR, LABEL, SPLIT, "id"):
                continue
            kind = _field_type(pa, column.type)
            if kind is not None:
                self.field_types[column.name] = kind
        self.columns += list(self.field_types)

    def batches(self, batch_rows: int) -> Iterator[SourceBatch]:
        import pyarrow as pa

        start = 0
        try:
            for batch in self.file.iter_batches(batch_size=batch_rows, columns=self.columns):
                yield SourceBatch(
                    start=start, paths=self._text(batch, PATH, start), labels=self._text(batch, LABEL, start),
                    splits=self._text(batch, SPLIT, start), vectors=self._vectors(batch.column(VECTOR), start),
                    where=self.name, vectors_where=self.name,
                    fields={name: batch.column(name).to_pylist() for name in self.field_types})
                start += batch.num_rows
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{self.path}: unreadable after row {start} ({_first_line(exc)})") from None

    def _text(self, batch, column: str, start: int) -> list[str | None]:
        import pyarrow as pa
        import pyarrow.compute as pc

        if column not in batch.schema.names:
            return [None] * batch.num_rows
        values = batch.column(column)
        if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
            try:
                values = pc.cast(values, pa.string())
            except pa.ArrowException:
                raise InputError(f"{self.path}: column {column!r} must hold text; it holds {values.type}") from None
        return [value or None for value in values.to_pylist()]

    def _vectors(self, values, start: int) -> np.ndarray:
        """(b, dim) float32 of a list column; InputError at a null or empty list or one of another length."""
        import pyarrow.compute as pc

        if values.null_count:
            row = start + int(np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0])
            raise InputError(f"{self.path}: row {row}: no vector (null)")
        if not self.fixed:
            lengths = pc.list_value_length(values).to_numpy(zero_copy_only=False)
            if self.dim is None and len(lengths):
                self.dim = int(lengths[0])
                if self.dim < 1:
                    raise InputError(f"{self.path}: row {start}: the vector is empty")
            wrong = np.flatnonzero(lengths != self.dim)
            if len(wrong):
                row = int(wrong[0])
                raise InputError(f"{self.path}: row {start + row}: the vector has {int(lengths[row])} values; "
                                 f"the rows before it have {self.dim}")
        flat = values.flatten().to_numpy(zero_copy_only=False)  # null elements become NaN: refused as not finite
        with np.errstate(over="ignore", invalid="ignore"):  # float64 beyond float32 becomes inf: refused too
            return np.asarray(flat, dtype=np.float32).reshape(len(values), self.dim or 0)


class NpyFolder(VectorSource):
    """A folder with ``vectors.npy`` (memory-mapped) and ``meta.csv``; ``ids.npy`` is not read."""

    format = "npy"

    def __init__(self, folder: Path) -> None:
        self.folder, self.name = folder, str(folder)
        self.vectors_path, self.meta_path = folder / NPY_VECTORS, folder / NPY_META
        for needed in (self.vectors_path, self.meta_path):
            if not needed.is_file():
                raise InputError(f"{folder}: no {needed.name} (an npy folder holds {NPY_VECTORS} and {NPY_META})")
        try:
            self.vectors = np.load(self.vectors_path, mmap_mode="r", allow_pickle=False)
        except OSError as exc:
            raise InputError(f"{self.vectors_path}: cannot read it ({exc.strerror or exc})") from None
        except ValueError as exc:
            raise InputError(f"{self.vectors_path}: not a numeric .npy array ({_first_line(exc)})") from None
        if self.vectors.ndim != 2 or self.vectors.dtype.kind not in "fiu":
            raise InputError(f"{self.vectors_path}: expected (n, d) numbers; got shape {self.vectors.shape}, "
                             f"dtype {self.vectors.dtype}")
        self.rows, self.dim = int(self.vectors.shape[0]), int(self.vectors.shape[1])
        if self.dim < 1:
            raise InputError(f"{self.vectors_path}: vectors of 0 dims; vectors need at least 1")
        header = self._header()
        if PATH not in header:
            raise InputError(f"{self.meta_path}: no 'path' column (columns: {', '.join(header) or 'none'}); "
                             "an import needs one")

    def _header(self) -> list[str]:
        try:
            with open(self.meta_path, newline="", encoding="utf-8") as handle:
                return next(csv.reader(handle), [])
        except OSError as exc:
            raise InputError(f"{self.meta_path}: cannot read it ({exc.strerror or exc})") from None
        except (UnicodeDecodeError, csv.Error) as exc:
            raise InputError(f"{self.meta_path}: not a UTF-8 CSV file ({_first_line(exc)})") from None

    def batches(self, batch_rows: int) -> Iterator[SourceBatch]:
        start = 0
        try:
            with open(self.meta_path, newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle)
                while True:
                    chunk = [row for _, row in zip(range(batch_rows), reader)]
                    if not chunk:
                        break
                    if start + len(chunk) > self.rows:
                        raise InputError(f"{self.meta_path}: row {self.rows}: no vector for it "
                                         f"({NPY_VECTORS} has {self.rows} rows)")
                    vectors = self._rows(start, start + len(chunk))
                    yield SourceBatch(
                        start=start, paths=[row.get(PATH) or None for row in chunk],
                        labels=[row.get(LABEL) or None for row in chunk],
                        splits=[row.get(SPLIT) or None for row in chunk], vectors=vectors, where=str(self.meta_path),
                        vectors_where=str(self.vectors_path))
                    start += len(chunk)
        except OSError as exc:
            raise InputError(f"{self.folder}: unreadable after row {start} ({exc.strerror or exc})") from None
        except (UnicodeDecodeError, csv.Error) as exc:
            raise InputError(f"{self.meta_path}: row {start}: not UTF-8 CSV ({_first_line(exc)})") from None
        if start < self.rows:
            raise InputError(f"{self.meta_path}: {start} rows; {NPY_VECTORS} has {self.rows}: every vector needs "
                             "a row")

    def _rows(self, lo: int, hi: int) -> np.ndarray:
        """Rows lo..hi-1 as float32, read from a fresh memory map (pages read are not kept in the process)."""
        mapped = np.load(self.vectors_path, mmap_mode="r", allow_pickle=False)
        with np.errstate(over="ignore", invalid="ignore"):
            rows = np.array(mapped[lo:hi], dtype=np.float32)
        del mapped
        return rows


def _field_type(pa, value_type) -> str | None:
    """The user-field type of a scalar Arrow column (None: not kept, e.g. lists and structs)."""
    if pa.types.is_integer(value_type) or pa.types.is_floating(value_type) or pa.types.is_decimal(value_type):
        return "number"
    if pa.types.is_timestamp(value_type) or pa.types.is_date(value_type):
        return "date"
    if pa.types.is_string(value_type) or pa.types.is_large_string(value_type) or pa.types.is_boolean(value_type):
        return "text"
    return None


def _numeric(pa, value_type) -> bool:
    return pa.types.is_floating(value_type) or pa.types.is_integer(value_type)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
