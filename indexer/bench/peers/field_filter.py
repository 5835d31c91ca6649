"""One filter on a stored metadata field, as the bench hands it to a peer: ``field in values`` or ``field < bound``.

Each peer turns it into its own native form (hnswlib a callable, Chroma a ``where`` dict, LanceDB an ``Expr``,
Milvus an expression string). The bench's fields and values are generated (:mod:`indexer.bench.filtered_bench`),
never typed by a user; still, a filter is checked on creation, so that a peer writing it into an expression
string can only ever write an identifier, a quoted run of letters, digits, ``_``, ``.`` and ``-``, or a finite
number: nothing that could close a quote or start another clause.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from indexer.core.errors import InputError

FIELD_NAME = re.compile(r"[a-z_][a-z0-9_]{0,63}")
TEXT_VALUE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
MAX_VALUES = 10_000


@dataclass(frozen=True)
class FieldFilter:
    """``field in values`` (a text field: ``values`` non-empty, ``below`` None) or ``field < below`` (a number
    field: ``values`` empty, ``below`` finite)."""

    field: str
    values: tuple[str, ...] = ()
    below: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.field, str) or not FIELD_NAME.fullmatch(self.field):
            raise InputError(f"filter field {self.field!r}: expected a lower-case identifier ({FIELD_NAME.pattern})")
        if bool(self.values) == (self.below is not None):
            raise InputError(f"filter on {self.field!r}: give either values (in) or below (<), not "
                             f"{'both' if self.values else 'neither'}")
        if self.below is not None:
            below = self.below
            if isinstance(below, bool) or not isinstance(below, (int, float)) or not math.isfinite(below):
                raise InputError(f"filter on {self.field!r}: below must be a finite number; got {below!r}")
            object.__setattr__(self, "below", float(below))
            return
        if len(self.values) > MAX_VALUES:
            raise InputError(f"filter on {self.field!r}: {len(self.values):,} values; at most {MAX_VALUES:,}")
        for value in self.values:
            if not isinstance(value, str) or not TEXT_VALUE.fullmatch(value):
                raise InputError(f"filter on {self.field!r}: value {value!r} is not a plain token "
                                 f"({TEXT_VALUE.pattern})")
        object.__setattr__(self, "values", tuple(self.values))

    @property
    def operator(self) -> str:
        """"in" or "<"."""
        return "in" if self.values else "<"

    def mask(self, column: np.ndarray) -> np.ndarray:
        """(n,) bool: which rows of ``column`` (the field's stored values, one per row) pass."""
        column = np.asarray(column)
        if self.values:
            return np.isin(column, list(self.values))
        return column < self.below

    def describe(self) -> str:
        """A short human form for tables and logs (not an expression any peer runs)."""
        if self.values:
            shown = ", ".join(self.values[:2]) + (", ..." if len(self.values) > 2 else "")
            return f"{self.field} in [{shown}] ({len(self.values)} values)"
        return f"{self.field} < {self.below:g}"
