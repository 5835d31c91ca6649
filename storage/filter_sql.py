"""A parsed filter (:mod:`storage.filters`) as SQLAlchemy conditions: columns from :data:`~storage.filters.FIELDS`,
values as bound parameters, and the two SQL constructs the conditions need on both databases (a case-sensitive
prefix that SQLite can answer from an index, and a column kept off an index).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import and_, false, literal, not_, or_
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement

from storage.filters import FIELDS, Compare, Either, Every, Filter, Member, Negation, Prefix


def needs_labels(node: Filter) -> bool:
    """Whether the filter reads the label (the query then joins the labels table)."""
    if isinstance(node, (Every, Either)):
        return any(needs_labels(item) for item in node.items)
    if isinstance(node, Negation):
        return needs_labels(node.item)
    return node.field == "label"


def where_clause(node: Filter, narrow: Callable[[Any, Any], bool] | None = None) -> Any:
    """The SQLAlchemy condition of a parsed filter: columns from :data:`FIELDS`, values as bound parameters.

    ``narrow(field, match)``: whether few ``image_fields`` rows of user field ``field`` satisfy the SQLAlchemy
    condition ``match`` (the catalog counts them, see :meth:`storage.catalog.Catalog.matching_ids`); such a
    condition is written so that the database reads only those rows (see :func:`_user_field`)."""
    if isinstance(node, Every):
        return and_(*(where_clause(item, narrow) for item in node.items))
    if isinstance(node, Either):
        return or_(*(where_clause(item, narrow) for item in node.items))
    if isinstance(node, Negation):
        inner = where_clause(node.item, narrow)
        return or_(not_(inner), inner.is_(None))  # SQL's NULL: "not (label = x)" holds for no label too
    if node.field not in FIELDS:
        return _user_field(node, narrow)
    column = FIELDS[node.field].column
    if node.field == "folder":
        return _under(column, node.value if isinstance(node, Prefix) else None, node)
    if isinstance(node, Prefix):
        return StartsWith(column, node.value)
    if isinstance(node, Member):
        if node.negate:
            return or_(column.not_in(list(node.values)), column.is_(None))
        return column.in_(list(node.values))
    value = node.value
    if node.op == "=":
        return column == value
    if node.op == "!=":
        return or_(column != value, column.is_(None))
    return {"<": column < value, "<=": column <= value, ">": column > value, ">=": column >= value}[node.op]


def _user_field(node: Filter, narrow: Callable[[Any, Any], bool] | None = None) -> Any:
    """A user field's condition: whether the image has a value of that field that matches; ``!=`` and
    ``not in`` hold when it has no matching value, or none at all.

    Two forms of the same condition. A correlated ``EXISTS`` over ``image_fields`` probes that table once per
    catalog image: at 1M rows 0.5-1.4 s whatever the selection, but the cheaper form for a wide one. When
    ``narrow`` says few rows match, ``images.id [NOT] IN (SELECT image_id FROM image_fields WHERE name = ? AND
    <match>)``: the database reads only the matching rows through the ``(name, value)`` index, so a narrow filter
    costs what it selects (5 ms at 0.1 % of 1M rows; docs/BENCHMARKS.md, "The catalog's part"). ``image_id`` is
    never NULL, so ``NOT IN`` means exactly "no matching value"."""
    from sqlalchemy import exists, select

    from storage.schema import Image, ImageField

    values = (node.value,) if isinstance(node, (Compare, Prefix)) else node.values
    sample = values[0]
    column = ImageField.date_value if isinstance(sample, datetime) else \
        ImageField.number_value if isinstance(sample, (int, float)) else ImageField.text_value
    if isinstance(node, Prefix):
        match, negate = StartsWith(column, node.value), False
    elif isinstance(node, Member):
        match, negate = column.in_(list(node.values)), node.negate
    elif node.op in ("=", "!="):
        match, negate = column == node.value, node.op == "!="
    else:
        match, negate = {"<": column < node.value, "<=": column <= node.value, ">": column > node.value,
                         ">=": column >= node.value}[node.op], False
    if narrow is not None and narrow(node.field, match):
        having = select(ImageField.image_id).where(ImageField.name == node.field, match)
        return Image.id.not_in(having) if negate else Image.id.in_(having)
    found = exists().where(ImageField.image_id == Image.id, ImageField.name == node.field, match)
    return not_(found) if negate else found


def _under(column: Any, prefix: str | None, node: Filter) -> Any:
    """``folder``: paths under the folder(s) named (``=``, ``in``), or whose folder starts with ``prefix``."""
    if prefix is not None:
        return StartsWith(column, prefix)
    if isinstance(node, Member):
        inside = or_(*(StartsWith(column, _as_folder(v)) for v in node.values)) if node.values else false()
        return not_(inside) if node.negate else inside
    inside = StartsWith(column, _as_folder(node.value))
    return not_(inside) if node.op == "!=" else inside


def _as_folder(value: str) -> str:
    return value.rstrip("/") + "/" if value.strip("/") else "/"


class StartsWith(ColumnElement):
    """``column`` starts with the text ``prefix``, case-sensitively, on every database: ``LIKE 'prefix%'`` (its
    wildcards escaped) where LIKE is case-sensitive (PostgreSQL), and on SQLite, whose LIKE ignores ASCII case and
    reads every row, the byte range ``prefix <= column < prefix+1`` (its BINARY order is code-point order), which
    its index on the column answers: a path prefix over a million rows took 190-310 ms as LIKE. Both values are
    bound parameters."""

    inherit_cache = False  # the prefix is not part of a cache key: statements holding one are compiled each time

    def __init__(self, column: Any, prefix: str) -> None:
        self.column, self.prefix = column, prefix


@compiles(StartsWith)
def _starts_with(element: StartsWith, compiler: Any, **kw: Any) -> str:
    return "(" + compiler.process(element.column.startswith(element.prefix, autoescape=True), **kw) + ")"


@compiles(StartsWith, "sqlite")
def _starts_with_sqlite(element: StartsWith, compiler: Any, **kw: Any) -> str:
    upper = _after_prefix(element.prefix)
    if not element.prefix:
        condition = element.column.is_not(None)
    elif upper is None:
        condition = element.column >= literal(element.prefix)
    else:
        condition = and_(element.column >= literal(element.prefix), element.column < literal(upper))
    return "(" + compiler.process(condition, **kw) + ")"


def _after_prefix(prefix: str) -> str | None:
    """The least text above every text that starts with ``prefix`` (its last character raised by one, past the
    surrogates; None when every character is the highest one)."""
    chars = list(prefix)
    while chars:
        code = ord(chars.pop()) + 1
        if 0xD800 <= code <= 0xDFFF:
            code = 0xE000
        if code <= 0x10FFFF:
            return "".join(chars) + chr(code)
    return None


class Unindexed(ColumnElement):
    """``column``, written on SQLite as ``+column`` so that its planner answers the term without the column's
    index. For the catalog's ``status = 'ok'``, true of almost every row: without statistics SQLite would read
    the whole table through that index rather than the path index that a prefix can use."""

    inherit_cache = False

    def __init__(self, column: Any) -> None:
        self.column, self.type = column, column.type


@compiles(Unindexed)
def _unindexed(element: Unindexed, compiler: Any, **kw: Any) -> str:
    return compiler.process(element.column, **kw)


@compiles(Unindexed, "sqlite")
def _unindexed_sqlite(element: Unindexed, compiler: Any, **kw: Any) -> str:
    return "+" + compiler.process(element.column, **kw)
