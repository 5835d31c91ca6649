"""User fields: names, types and values (text, number, date), checked before they reach the catalog."""

from __future__ import annotations

import math
import re
from datetime import date, datetime, timezone

from storage.errors import CatalogError

FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
MAX_TEXT = 10_000


class FieldTypeError(CatalogError):
    """A user field name that is not valid, not declared, or a value that does not fit the field's type."""


def check_field_name(name: str) -> str:
    """``name`` when it is a valid field name (letters, digits, _; not starting with a digit; at most 64)."""
    if not isinstance(name, str) or not FIELD_NAME.fullmatch(name):
        raise FieldTypeError(f"field name {name!r}: use letters, digits and _ (not first), at most 64")
    return name


def parse_date(name: str, value: object) -> datetime:
    """An ISO date or time (a string, date or datetime) as an aware datetime (UTC when no zone is given)."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise FieldTypeError(f"field {name!r} is a date; {value!r} is not an ISO date (e.g. 2026-01-31)") from None
    else:
        raise FieldTypeError(f"field {name!r} is a date; got {value!r}")
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def typed_value(name: str, type_: str, value: object) -> dict[str, object]:
    """The ``image_fields`` column and value for ``value`` of a field of ``type_``; FieldTypeError when it does
    not fit (a number field takes numbers and numeric strings, a date field ISO dates)."""
    if type_ == "number":
        if isinstance(value, bool):
            raise FieldTypeError(f"field {name!r} is a number; got {value!r}")
        try:
            number = float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise FieldTypeError(f"field {name!r} is a number; got {value!r}") from None
        if not math.isfinite(number):
            raise FieldTypeError(f"field {name!r} is a number; got {value!r}")
        return {"number_value": number}
    if type_ == "date":
        return {"date_value": parse_date(name, value)}
    text = str(value)
    if len(text) > MAX_TEXT:
        raise FieldTypeError(f"field {name!r}: {len(text):,} characters; at most {MAX_TEXT:,}")
    return {"text_value": text}


def infer_type(values: list[str]) -> str:
    """The type a column of strings fits: number when every non-empty value is one, else date when every one is
    an ISO date, else text."""
    present = [value.strip() for value in values if value is not None and value.strip()]
    if not present:
        return "text"
    try:
        if all(math.isfinite(float(value)) for value in present):
            return "number"
    except ValueError:
        pass
    try:
        for value in present:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        return "date"
    except ValueError:
        return "text"
