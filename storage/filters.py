"""The filter language: ``label = "rose" and width >= 500``, parsed by a grammar, answered with bound SQL.

A filter narrows a search to the catalog images it matches. The grammar (Lark, LALR):

- comparisons ``FIELD OP VALUE`` with ``=`` (or ``==``), ``!=``, ``<``, ``<=``, ``>``, ``>=``;
- ``FIELD in [V, ...]`` and ``FIELD not in [V, ...]``; ``FIELD prefix "text"``;
- ``and``, ``or``, ``not`` and parentheses (``not`` binds tightest, then ``and``, then ``or``);
- values: quoted strings (``"..."`` or ``'...'``, backslash escapes the quote) and numbers; a date field
  takes an ISO date or time as a string (``ingested >= "2026-01-31"``, UTC when no zone is given).

Keywords are case-insensitive. The fields are the catalog's own, each with a type: text fields take ``=``,
``!=``, ``in`` and ``prefix``; number and date fields take every comparison and ``in``. ``!=`` and ``not in``
also match images that have no value (an image without a label is "not rose"). ``folder = "/photos/2024"``
matches every image under that folder, at any depth.

The text is never evaluated and never pasted into SQL: it is parsed into a small tree (:class:`Compare`,
:class:`Member`, :class:`Prefix`, :class:`Every`, :class:`Either`, :class:`Negation`), every field name is
looked up in :data:`FIELDS`, every value checked against its field's type, and :func:`where_clause` turns the
tree into SQLAlchemy expressions whose values are bound parameters. Bad filters raise :class:`FilterError`
with one line naming the problem.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import and_, false, literal, not_, or_
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ColumnElement

from storage.errors import CatalogError
from storage.schema import Image, Label

MAX_FILTER_CHARS = 20_000
MAX_TERMS = 1_000  # comparisons plus listed values
MAX_DEPTH = 32  # nested parentheses and nots

TEXT, NUMBER, DATE = "text", "number", "date"


class FilterError(CatalogError):
    """A filter that does not parse, names an unknown field, or compares a field with the wrong type."""


@dataclass(frozen=True)
class FieldSpec:
    type: str
    column: Any
    doc: str


FIELDS: dict[str, FieldSpec] = {
    "label": FieldSpec(TEXT, Label.name, "the image's label"),
    "split": FieldSpec(TEXT, Image.split, "train, val, test or none"),
    "path": FieldSpec(TEXT, Image.path, "the image's path as catalogued (prefix works too)"),
    "folder": FieldSpec(TEXT, Image.path, "every image under this folder, at any depth"),
    "format": FieldSpec(TEXT, Image.format, "the decoded format: JPEG, PNG, WEBP, HEIF, ..."),
    "width": FieldSpec(NUMBER, Image.width, "pixels"),
    "height": FieldSpec(NUMBER, Image.height, "pixels"),
    "size": FieldSpec(NUMBER, Image.size_bytes, "the file's size in bytes"),
    "ingested": FieldSpec(DATE, Image.created_at, "when the image was catalogued (UTC)"),
}

TEXT_OPS = ("=", "!=")
ORDER_OPS = ("=", "!=", "<", "<=", ">", ">=")

GRAMMAR = r"""
start: expr
?expr: or_test
?or_test: and_test (_OR and_test)*
?and_test: not_test (_AND not_test)*
?not_test: _NOT not_test -> negation
         | atom
?atom: "(" expr ")"
     | FIELD OP value -> compare
     | FIELD _IN values -> member
     | FIELD _NOT _IN values -> non_member
     | FIELD _PREFIX STRING -> prefix
values: "[" [value ("," value)*] "]"
      | "(" [value ("," value)*] ")"
?value: STRING -> string
      | NUMBER -> number
OP: "==" | "!=" | "<=" | ">=" | "=" | "<" | ">"
_OR: "or"i
_AND: "and"i
_NOT: "not"i
_IN: "in"i
_PREFIX: "prefix"i
FIELD: /[A-Za-z_][A-Za-z0-9_]*/
STRING: /"(?:[^"\\]|\\.)*"/ | /'(?:[^'\\]|\\.)*'/
NUMBER: /[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?/
%import common.WS
%ignore WS
"""


@dataclass(frozen=True)
class Compare:
    field: str
    op: str
    value: Any


@dataclass(frozen=True)
class Member:
    field: str
    values: tuple
    negate: bool = False


@dataclass(frozen=True)
class Prefix:
    field: str
    value: str


@dataclass(frozen=True)
class Every:
    items: tuple


@dataclass(frozen=True)
class Either:
    items: tuple


@dataclass(frozen=True)
class Negation:
    item: Any


Filter = Compare | Member | Prefix | Every | Either | Negation


@functools.lru_cache(maxsize=1)
def _parser() -> Any:
    from lark import Lark

    return Lark(GRAMMAR, parser="lalr", maybe_placeholders=False)


class _Quoted(str):
    """A string value as written (quoted), told apart from a number."""


def parse_filter(text: str, user_fields: dict[str, str] | None = None) -> Filter:
    """The checked tree of filter ``text``; :class:`FilterError` naming the problem when it is not valid.
    ``user_fields``: the catalog's declared user fields (name -> text, number or date), filterable beside
    :data:`FIELDS` (:meth:`storage.catalog.Catalog.fields`)."""
    from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedEOF, UnexpectedToken

    if not isinstance(text, str) or not text.strip():
        raise FilterError("filter: empty; write e.g. label = \"rose\" and width >= 500")
    if len(text) > MAX_FILTER_CHARS:
        raise FilterError(f"filter: {len(text):,} characters; at most {MAX_FILTER_CHARS:,}")
    _check_depth(text)
    try:
        tree = _parser().parse(text)
    except UnexpectedCharacters as exc:
        raise FilterError(f"filter: unexpected {text[exc.pos_in_stream:exc.pos_in_stream + 12]!r} at "
                          f"column {exc.column}") from None
    except UnexpectedToken as exc:
        if exc.token.type == "$END":
            raise FilterError("filter: ends too early (a comparison or a closing bracket is missing)") from None
        raise FilterError(f"filter: unexpected {exc.token.value!r} at column {exc.column}") from None
    except UnexpectedEOF:
        raise FilterError("filter: ends too early (a comparison or a closing bracket is missing)") from None
    except LarkError as exc:  # any other grammar failure, in one line
        raise FilterError(f"filter: {str(exc).splitlines()[0]}") from None
    node = _build(tree.children[0], 0, _specs(user_fields or {}))
    terms = _terms(node)
    if terms > MAX_TERMS:
        raise FilterError(f"filter: {terms:,} terms; at most {MAX_TERMS:,}")
    return node


def quoted(text: str) -> str:
    """``text`` as a filter's string value: double-quoted, its backslashes and double quotes escaped, so
    ``parse_filter(f"label = {quoted(name)}")`` compares with ``name`` exactly (``colt's foot``, ``a "b"``)."""
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _check_depth(text: str) -> None:
    depth = deepest = 0
    quote = None
    escaped = False
    for char in text:
        if quote:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char in "([":
            depth += 1
            deepest = max(deepest, depth)
        elif char in ")]":
            depth -= 1
    if deepest > MAX_DEPTH:
        raise FilterError(f"filter: brackets nested {deepest} deep; at most {MAX_DEPTH}")


def _specs(user_fields: dict[str, str]) -> dict[str, FieldSpec]:
    specs = {name: FieldSpec(type_, None, "a user field") for name, type_ in user_fields.items()
             if name.lower() not in FIELDS}
    return {**FIELDS, **specs}


def _build(tree: Any, depth: int, specs: dict[str, FieldSpec]) -> Filter:
    from lark import Token

    if depth > MAX_DEPTH:
        raise FilterError(f"filter: nested more than {MAX_DEPTH} deep")
    if isinstance(tree, Token):  # a bare value where a comparison belongs
        raise FilterError(f"filter: {tree.value!r} is not a comparison")
    kind, children = tree.data, tree.children
    if kind == "or_test":
        return Either(tuple(_build(child, depth + 1, specs) for child in children))
    if kind == "and_test":
        return Every(tuple(_build(child, depth + 1, specs) for child in children))
    if kind == "negation":
        return Negation(_build(children[0], depth + 1, specs))
    name = _field(children[0], specs)
    spec = specs[name]
    if kind == "compare":
        op = "=" if children[1].value == "==" else children[1].value
        allowed = TEXT_OPS if spec.type == TEXT else ORDER_OPS
        if op not in allowed:
            raise FilterError(f"filter: {name} is {spec.type}: {op!r} does not apply (use {', '.join(allowed)}, "
                              "in, prefix)")
        return Compare(name, op, _value(name, spec, children[2]))
    if kind in ("member", "non_member"):
        values = tuple(_value(name, spec, child) for child in children[1].children)
        if not values:
            raise FilterError(f"filter: {name} in []: the list is empty")
        return Member(name, values, negate=kind == "non_member")
    if kind == "prefix":
        if spec.type != TEXT:
            raise FilterError(f"filter: prefix applies to text fields; {name} is {spec.type}")
        return Prefix(name, _unquote(children[1].value))
    raise FilterError(f"filter: cannot read {kind}")  # pragma: no cover - every rule is handled above


def _field(token: Any, specs: dict[str, FieldSpec]) -> str:
    name = str(token.value)
    if name.lower() in FIELDS:
        return name.lower()
    if name in specs:
        return name
    raise FilterError(f"filter: unknown field {name!r}; fields: {', '.join(specs)}")


def _value(name: str, spec: FieldSpec, tree: Any) -> Any:  # a user field's value: the same rules by its type
    token = tree.children[0]
    if tree.data == "string":
        text = _unquote(token.value)
        if spec.type == NUMBER:
            raise FilterError(f"filter: {name} is a number; got the string {text!r}")
        if spec.type == DATE:
            return _date(name, text)
        return text
    if spec.type != NUMBER:
        raise FilterError(f"filter: {name} is {spec.type}; got the number {token.value} (quote it)")
    number = float(token.value)
    return int(number) if number.is_integer() else number


def _date(name: str, text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise FilterError(f"filter: {name} is a date; {text!r} is not an ISO date (e.g. \"2026-01-31\")") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _unquote(raw: str) -> str:
    body = raw[1:-1]
    out, escaped = [], False
    for char in body:
        if escaped:
            out.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        else:
            out.append(char)
    return "".join(out)


def _terms(node: Filter) -> int:
    if isinstance(node, (Every, Either)):
        return sum(_terms(item) for item in node.items)
    if isinstance(node, Negation):
        return _terms(node.item)
    if isinstance(node, Member):
        return len(node.values)
    return 1


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
