"""What narrows an answer besides k: a filter, a score cutoff and a page (the first rank wanted).

Pages: a query with ``offset`` N answers ranks N+1..N+k of the same query's full ranking; its answer carries a
``next_page_token`` (an opaque string) while a full page came back, and the next call passes it instead of an
offset. For exact search, page 2 of k = 10 is exactly results 11–20 of k = 20.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass

from indexer.core.errors import InputError

MAX_OFFSET = 10_000  # the deepest page start: offset + k results are searched for


@dataclass(frozen=True)
class Narrowing:
    """``where``: a filter (:mod:`storage.filters`); ``min_score``: results scoring below it are dropped (fewer
    than k may come back); ``offset``: how many of the best results to skip (a page's start)."""

    where: str | None = None
    min_score: float | None = None
    offset: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.offset, bool) or not isinstance(self.offset, int) or not 0 <= self.offset <= MAX_OFFSET:
            raise InputError(f"offset must be an integer in 0..{MAX_OFFSET:,}; got {self.offset!r}")
        if self.min_score is not None and (isinstance(self.min_score, bool) or not isinstance(
                self.min_score, (int, float)) or not math.isfinite(self.min_score)):
            raise InputError(f"min_score must be a finite number; got {self.min_score!r}")


def page_token(offset: int) -> str:
    """The opaque token of the page that starts after ``offset`` results."""
    raw = json.dumps({"offset": int(offset)}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def offset_of(token: str) -> int:
    """The offset a :func:`page_token` holds; InputError naming the token when it is not one."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        offset = json.loads(raw)["offset"]
    except (ValueError, KeyError, TypeError):
        raise InputError(f"page_token {token[:40]!r} is not a token this service gave") from None
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= MAX_OFFSET:
        raise InputError(f"page_token {token[:40]!r} is not a token this service gave")
    return offset
