"""User fields on catalog images: set them (declaring new ones with a type), read them, and tag from a CSV.

A field's type is declared once for the whole catalog: given (``types``), or inferred from the first values set
(numbers are ``number``, ISO dates ``date``, anything else ``text``; a CSV column from all of its values).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from indexer.api.workspace import Workspace
from indexer.core.errors import InputError, NotFoundError
from indexer.datasets.folders import catalog_path
from storage.errors import NotInCatalogError
from storage.fields import FieldTypeError, infer_type

FIELD_TYPES = ("text", "number", "date")


@dataclass
class TagOutcome:
    """How many images got fields, the fields declared now (name -> type), and one line per row skipped."""

    tagged: int = 0
    declared: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def value_type(value: object) -> str:
    """The type one value suggests: number for numbers, date for dates and ISO date strings, else text."""
    if isinstance(value, bool):
        return "text"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, (date, datetime)):
        return "date"
    return infer_type([str(value)]) if isinstance(value, str) and infer_type([str(value)]) == "date" else "text"


def parse_types(specs: list[str] | tuple[str, ...] | None) -> dict[str, str]:
    """``["price:number", "sku:text"]`` (``--field NAME:TYPE``) as {name: type}; InputError naming a bad one."""
    types: dict[str, str] = {}
    for spec in specs or ():
        name, _, type_ = spec.partition(":")
        if not name or type_ not in FIELD_TYPES:
            raise InputError(f"--field {spec!r}: expected NAME:TYPE with TYPE one of {', '.join(FIELD_TYPES)}")
        types[name] = type_
    return types


def set_image_fields(workspace: Workspace, image_id: int, values: Mapping[str, object], *,
                     types: Mapping[str, str] | None = None, infer_strings: bool = False) -> dict[str, object]:
    """Set user fields of image ``image_id`` (None removes one), declaring new fields (``types``, else the type
    the value suggests; ``infer_strings``: a string that reads as a number declares a number field, as on the
    command line); returns the image's fields after. NotFoundError for an unknown image, InputError for a
    value that does not fit its field's type (nothing is written then)."""
    if not values:
        raise InputError("give at least one field to set")
    types = dict(types or {})
    with workspace.catalog(write=True) as catalog:
        try:
            known = catalog.fields()
            for name, value in values.items():
                if name not in known and value is not None:
                    guess = infer_type([value]) if infer_strings and isinstance(value, str) else value_type(value)
                    catalog.declare_field(name, types.get(name) or guess)
                elif name in types:
                    catalog.declare_field(name, types[name])  # checks it was declared so
            catalog.set_fields(int(image_id), dict(values))
        except NotInCatalogError as exc:
            raise NotFoundError(str(exc)) from None
        except FieldTypeError as exc:
            raise InputError(str(exc)) from None
        return catalog.image_fields([int(image_id)]).get(int(image_id), {})


def image_fields(workspace: Workspace, image_id: int) -> dict[str, object]:
    """The user fields set on image ``image_id`` ({} when none)."""
    with workspace.catalog() as catalog:
        return catalog.image_fields([int(image_id)]).get(int(image_id), {})


def tag_from_csv(workspace: Workspace, path: str | os.PathLike[str], *,
                 types: Mapping[str, str] | None = None, root: str | os.PathLike[str] | None = None,
                 exclude: tuple[str, ...] = ()) -> TagOutcome:
    """Fields from a CSV whose first column is ``filename`` or ``path`` (relative to ``root``, default the
    CSV's folder) or ``id``, and whose other columns (but ``exclude``) are fields (types inferred per column
    unless ``types`` says); an empty cell leaves the field unset. A row naming no catalogued image is skipped
    with a line. Nothing is written when a value does not fit its field's type."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [name.strip() for name in reader.fieldnames or []]
            reader.fieldnames = header
            rows = list(reader)
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"{path}: cannot read the CSV ({exc})") from None
    if not header or header[0] not in ("filename", "path", "id") or (len(header) < 2 and not exclude):
        raise InputError(f"{path}: expected a header 'filename|path|id,FIELD[,FIELD...]', found {','.join(header)}")
    key, names = header[0], [name for name in header[1:] if name not in exclude]
    if not names:
        return TagOutcome()
    types = {**{name: infer_type([row.get(name) or "" for row in rows]) for name in names}, **dict(types or {})}
    base = Path(root) if root is not None else path.parent
    outcome = TagOutcome()
    with workspace.catalog(write=True) as catalog:
        try:
            known = catalog.fields()
            for name in names:
                catalog.declare_field(name, types[name])
                if name not in known:
                    outcome.declared[name] = types[name]
            wanted = [row.get(key, "").strip() for row in rows]
            if key == "id":
                found = catalog.images_by_ids(int(value) for value in wanted if value.isdigit())
                by_key = {str(i): row.id for i, row in found.items()}
            else:
                paths = {value: catalog_path(base / value) for value in wanted}
                found = catalog.images_by_paths(paths.values())
                by_key = {value: found[p].id for value, p in paths.items() if p in found}
            for line, (value, row) in enumerate(zip(wanted, rows), 2):
                if value not in by_key:
                    outcome.skipped.append(f"{path}:{line}: {value!r} is not in the catalog")
                    continue
                cells = {name: (row.get(name) or "").strip() for name in names}
                catalog.set_fields(by_key[value], {name: cell for name, cell in cells.items() if cell})
                outcome.tagged += 1
        except FieldTypeError as exc:
            raise InputError(f"{path}: {exc} (no field of this file was written)") from None
    return outcome


def image_id_of(workspace: Workspace, path: str | os.PathLike[str]) -> int:
    """The catalog id of the image file at ``path``; NotFoundError when it is not catalogued."""
    with workspace.catalog() as catalog:
        row = catalog.images_by_paths([catalog_path(path)]).get(catalog_path(path))
    if row is None:
        raise NotFoundError(f"{path}: not in the catalog")
    return row.id


def catalog_fields(workspace: Workspace, *, max_labels: int = 1000) -> dict[str, object]:
    """What a filter can name: ``fields`` (the user fields, name -> type) and ``labels`` (the label names in
    use, sorted, at most ``max_labels``)."""
    with workspace.catalog() as catalog:
        return {"fields": catalog.fields(), "labels": sorted(catalog.label_names().values())[:max_labels]}
