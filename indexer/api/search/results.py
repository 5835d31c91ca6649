"""What a search answers, for every face: hits, one answer per query, and a batch's outcome.

``to_dict`` gives the JSON every face prints or serves (``indexer query --json``, the HTTP service), with
the same names and rounding: scores to 6 decimals, milliseconds to 3.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

from indexer.api.tables import to_dataframe

HIT_COLUMNS = ("rank", "id", "path", "label", "score")
SCORE_DECIMALS = 6
MS_DECIMALS = 3


@dataclass(frozen=True)
class Hit:
    """One result: its 1-based ``rank``, catalog ``id``, image ``path``, ``label`` and inner-product ``score``."""

    rank: int
    id: int
    path: str
    label: str | None
    score: float

    def to_dict(self) -> dict[str, Any]:
        """The hit as a JSON-ready dict: rank, id, path, label, score (6 decimals)."""
        return {"rank": self.rank, "id": self.id, "path": self.path, "label": self.label,
                "score": round(self.score, SCORE_DECIMALS)}


@dataclass(frozen=True)
class Answer:
    """One query (an image file, an upload, or a stored image ``query_id``) and its hits, best first.

    ``label``: the query's own label when it is in the catalog. ``timings_ms``: decode, embed, search and
    catalog milliseconds of the call that answered it. In a notebook it shows itself as the grid picture
    ``indexer query --grid`` writes.
    """

    query: str
    label: str | None
    results: list[Hit]
    query_id: int | None = None
    index: str | None = None
    timings_ms: dict[str, float] = field(default_factory=dict)
    plan: dict[str, Any] | None = None  # a filtered query's plan: kind (exact, filtered), selected, nprobe / efSearch
    next_page_token: str | None = None  # the next page's token, while this page came back full
    missing_shards: tuple[int, ...] = ()  # a sharded index's shards that did not answer (the results lack theirs)

    @property
    def took_ms(self) -> float:
        return sum(self.timings_ms.values())

    def to_dict(self) -> dict[str, Any]:
        """The answer as a JSON-ready dict: query, query_id, label, index, took_ms, results (hit dicts), and plan
        (a filtered query's: kind, selected, nprobe, efSearch; None without a filter), next_page_token, and partial
        with missing_shards (a sharded index's shards that did not answer; False and [] otherwise)."""
        return {"query": self.query, "query_id": self.query_id, "label": self.label, "index": self.index,
                "took_ms": round(self.took_ms, MS_DECIMALS), "results": [hit.to_dict() for hit in self.results],
                "plan": None if self.plan is None else {"nprobe": None, "efSearch": None, **self.plan},
                "next_page_token": self.next_page_token, "partial": bool(self.missing_shards),
                "missing_shards": list(self.missing_shards)}

    def to_pandas(self) -> Any:
        """The hits as a DataFrame with columns rank, id, path, label, score (needs pandas)."""
        return to_dataframe([hit.to_dict() for hit in self.results], HIT_COLUMNS)

    def picture(self) -> Any:
        """The query beside its results (a PIL RGB image): matches of its label framed green, others red."""
        from indexer.api.search.grid import picture_or_placeholder, render_grid

        results = [
            {"image": picture_or_placeholder(hit.path), "label": hit.label, "score": hit.score,
             "match": None if self.label is None or hit.label is None else hit.label == self.label}
            for hit in self.results
        ]
        return render_grid(picture_or_placeholder(self.query), self.label, results)

    def _repr_png_(self) -> bytes:
        """PNG bytes of :meth:`picture`, for Jupyter's inline display."""
        buffer = io.BytesIO()
        self.picture().save(buffer, format="PNG")
        return buffer.getvalue()


@dataclass
class QueryOutcome:
    """A batch of queries: the index and model used, one :class:`Answer` per readable query."""

    index: str
    model: str
    answers: list[Answer]
    failures: list[str] = field(default_factory=list)  # one line per query that could not be answered
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """index, model, answers (answer dicts), failures and warnings."""
        return {"index": self.index, "model": self.model, "answers": [a.to_dict() for a in self.answers],
                "failures": list(self.failures), "warnings": list(self.warnings)}

    def to_pandas(self) -> Any:
        """Every hit of every answer, one row each: query, query_label, rank, id, path, label, score."""
        rows = [{"query": answer.query, "query_label": answer.label, **hit.to_dict()}
                for answer in self.answers for hit in answer.results]
        return to_dataframe(rows, ("query", "query_label", *HIT_COLUMNS))
