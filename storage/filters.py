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
looked up in :data:`FIELDS`, every value checked against its field's type, and
:func:`storage.filter_sql.where_clause` turns the tree into SQLAlchemy expressions whose values are bound
parameters. Bad filters raise :class:`FilterError` with one line naming the problem.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

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
