"""The catalog's user fields (typed values per image, declared once) and the filters that read them and the
catalog's own fields: a mixin of :class:`storage.catalog.Catalog`, over its session."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from storage.errors import NotInCatalogError
from storage.fields import FieldTypeError, check_field_name, typed_value
from storage.filter_sql import Unindexed, needs_labels, where_clause
from storage.filters import Filter, parse_filter
from storage.schema import FIELD_TYPES, Field, Image, ImageField, Label

# A user-field condition that at most this share of the catalog (and this many rows) satisfies is answered by
# reading the matching rows only (docs/BENCHMARKS.md, "The catalog's part of a filtered search at 1M": at 1M
# rows the row-reading form won 50-100x at 0.1-1 %, was level or dearer at 10 % and lost 3x at 50 %)
NARROW_SHARE = 0.05
NARROW_ROWS = 50_000


class FieldQueries:
    """User fields and filters (see the module's docstring)."""

    session: Session

    def fields(self) -> dict[str, str]:
        """The declared user fields: name -> type (text, number, date)."""
        return {row.name: row.type for row in self.session.scalars(select(Field).order_by(Field.name))}

    def declare_field(self, name: str, type_: str) -> str:
        """Declare user field ``name`` of ``type_`` (text, number, date), or check it has that type already;
        returns the type. FieldTypeError naming both types when it was declared otherwise."""
        check_field_name(name)
        if type_ not in FIELD_TYPES:
            raise FieldTypeError(f"field {name!r}: type must be one of {', '.join(FIELD_TYPES)}; got {type_!r}")
        existing = self.session.get(Field, name)
        if existing is None:
            self.session.add(Field(name=name, type=type_))
            self.session.flush()
        elif existing.type != type_:
            raise FieldTypeError(f"field {name!r} is {existing.type}; got a {type_} value")
        return type_

    def set_fields(self, image_id: int, values: dict[str, object]) -> None:
        """Set user fields of image ``image_id`` (a value of None removes the field); each name must be declared
        (:meth:`declare_field`) and each value must fit its type. NotInCatalogError for an unknown image."""
        if self.session.get(Image, image_id) is None:
            raise NotInCatalogError(f"no image with id {image_id}")
        types = self.fields()
        for name, value in values.items():
            if name not in types:
                raise FieldTypeError(f"field {name!r} is not declared (declare it with a type first)")
            self.session.execute(delete(ImageField).where(ImageField.image_id == image_id, ImageField.name == name))
            if value is not None:
                self.session.add(ImageField(image_id=image_id, name=name, **typed_value(name, types[name], value)))
        self.session.flush()

    def add_field_values(self, rows: Sequence[tuple[int, str, object]]) -> None:
        """Bulk-insert (image id, field, value) for images that have no value of that field yet (an import):
        one statement per batch; each field must be declared and each value fit its type."""
        types = self.fields()
        values = []
        for image_id, name, value in rows:
            if name not in types:
                raise FieldTypeError(f"field {name!r} is not declared (declare it with a type first)")
            values.append({"image_id": int(image_id), "name": name, "text_value": None, "number_value": None,
                           "date_value": None, **typed_value(name, types[name], value)})
        if values:
            self.session.execute(insert(ImageField), values)

    def image_fields(self, ids: Iterable[int]) -> dict[int, dict[str, object]]:
        """{image id: {field: value}} of the user fields set on ``ids`` (images without any are left out)."""
        wanted = [int(i) for i in ids]
        found: dict[int, dict[str, object]] = {}
        for start in range(0, len(wanted), 500):
            query = select(ImageField).where(ImageField.image_id.in_(wanted[start:start + 500]))
            for row in self.session.scalars(query):
                value = next(v for v in (row.text_value, row.number_value, row.date_value) if v is not None)
                found.setdefault(row.image_id, {})[row.name] = value
        return found

    def parse_filter(self, text: str) -> Filter:
        """Filter ``text`` parsed against the catalog's own fields and its declared user fields."""
        return parse_filter(text, self.fields())

    def matching_ids(self, condition: Filter, *, status: str = "ok") -> list[int]:
        """Ids of the images with ``status`` that a parsed filter (:meth:`parse_filter`) matches, ascending:
        one query, every value a bound parameter."""
        query = select(Image.id)
        if needs_labels(condition):
            query = query.outerjoin(Label, Image.label_id == Label.id)
        highest = self.session.scalar(select(func.max(Image.id))) or 0  # the catalog's size, estimated in O(1)
        limit = min(NARROW_ROWS, int(highest * NARROW_SHARE))
        query = query.where(Unindexed(Image.status) == status,  # 'ok' is nearly every row: an index on it helps no one
                            where_clause(condition, lambda field, match: self._few_match(field, match, limit)))
        return list(self.session.scalars(query.order_by(Image.id)))

    def _few_match(self, field: str, match: Any, limit: int) -> bool:
        """Whether at most ``limit`` rows of user field ``field`` satisfy ``match``: counted through the field's
        index, stopping one row past the limit, so the answer costs at most that many index entries."""
        few = select(ImageField.image_id).where(ImageField.name == field, match).limit(limit + 1).subquery()
        return (self.session.scalar(select(func.count()).select_from(few)) or 0) <= limit
