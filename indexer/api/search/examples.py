"""Several examples in one query: "more like these, less like that".

Each :class:`Example` is an image file, an upload, a catalogued image (by id) or a vector, with a weight. The
query vector is the L2-normalised weighted sum of the examples' unit vectors, so a negative weight pushes the
answers away from that example (the sum-of-embeddings rule rclip's ``+`` / ``-`` use; Qdrant's recommend API
averages the same way). Catalogued examples are left out of the answers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from indexer.core.errors import InputError

MAX_EXAMPLES = 100


@dataclass(frozen=True)
class Example:
    """One example: exactly one of ``path`` (an image file), ``data`` (an upload's bytes, named ``name``), ``id``
    (a catalogued image's stored vector) or ``vector``; ``weight`` (default 1; negative: unlike this)."""

    path: str | None = None
    data: bytes | None = None
    name: str | None = None
    id: int | None = None
    vector: Sequence[float] | None = None
    weight: float = 1.0

    def __post_init__(self) -> None:
        given = [part for part in ("path", "data", "id", "vector") if getattr(self, part) is not None]
        if len(given) != 1:
            raise InputError(f"an example is one of path, data, id or vector; got {', '.join(given) or 'none'}")
        if isinstance(self.weight, bool) or not isinstance(self.weight, (int, float)) or \
                not math.isfinite(self.weight) or self.weight == 0:
            raise InputError(f"{self.describe()}: weight must be a finite non-zero number; got {self.weight!r}")

    def describe(self) -> str:
        """How the example reads in an answer's ``query``: its file, upload name, id or "vector"."""
        if self.path is not None:
            return self.path
        if self.data is not None:
            return self.name or "upload"
        return f"id {self.id}" if self.id is not None else "vector"


def check_examples(examples: Sequence[Example]) -> list[Example]:
    """The examples as a list; InputError when there are none, too many, or no positive weight."""
    examples = list(examples)
    if not examples:
        raise InputError("give at least one example")
    if len(examples) > MAX_EXAMPLES:
        raise InputError(f"{len(examples)} examples; at most {MAX_EXAMPLES}")
    if not any(example.weight > 0 for example in examples):
        raise InputError("at least one example needs a positive weight (negative ones only push away)")
    return examples


def combine(vectors: np.ndarray, weights: Sequence[float]) -> np.ndarray:
    """(1, d) float32: the L2-normalised weighted sum of (n, d) unit ``vectors``; InputError when it is zero."""
    total = np.asarray(weights, np.float32) @ np.asarray(vectors, np.float32)
    norm = float(np.linalg.norm(total))
    if not norm > 1e-6:
        raise InputError("the examples cancel out (their weighted sum is zero): change a weight")
    return (total / norm).astype(np.float32).reshape(1, -1)


def query_name(examples: Sequence[Example]) -> str:
    """``+a.jpg +b.jpg -c.jpg`` (weights other than ±1 shown): the combined query's name in its answer."""
    parts = []
    for example in examples:
        sign = "+" if example.weight > 0 else "-"
        size = abs(example.weight)
        parts.append(f"{sign}{example.describe()}" + ("" if size == 1 else f"*{size:g}"))
    return " ".join(parts)
