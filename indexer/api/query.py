"""Answering queries: image → the model's ONNX embedder → FAISS search → catalog rows.

This path imports neither torch nor Alembic: the model runs under onnxruntime and the
schema revision is checked with one plain SELECT.
"""

from __future__ import annotations

import io
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from indexer.api.tables import to_dataframe
from indexer.api.workspace import Workspace
from indexer.core.arrays import as_vectors, check_finite
from indexer.core.errors import DimensionMismatchError, InputError
from indexer.core.files import atomic_path
from indexer.core.rerank import Rerank, check_query_rerank
from indexer.datasets.folders import catalog_path
from storage.catalog import Catalog, ImageRow

HIT_COLUMNS = ("rank", "id", "path", "label", "score")

THUMB_SIDE = 256  # grid tiles are 128 px: decode pictures no larger than twice that


@dataclass(frozen=True)
class Hit:
    """One result: its 1-based ``rank``, catalog ``id``, image ``path``, ``label`` and inner-product ``score``."""

    rank: int
    id: int
    path: str
    label: str | None
    score: float

    def to_dict(self) -> dict[str, Any]:
        """The hit as a JSON-ready dict (the keys of ``indexer query --json``)."""
        return asdict(self)


@dataclass
class Answer:
    """One query image (or stored image, ``query_id``) and its hits, best first.

    In a notebook it shows itself as the grid picture ``indexer query --grid`` writes.
    """

    query: str
    label: str | None  # the query's own label when it is in the catalog
    results: list[Hit]
    query_id: int | None = None  # the query's catalog id when it is a catalogued image

    def to_dict(self) -> dict[str, Any]:
        """The answer as a JSON-ready dict: query, label, query_id and results (a list of hit dicts)."""
        return {"query": self.query, "label": self.label, "query_id": self.query_id,
                "results": [hit.to_dict() for hit in self.results]}

    def to_pandas(self) -> Any:
        """The hits as a DataFrame with columns rank, id, path, label, score (needs pandas)."""
        return to_dataframe([hit.to_dict() for hit in self.results], HIT_COLUMNS)

    def picture(self) -> Any:
        """The query beside its results (a PIL RGB image): matches of its label framed green, others red."""
        from indexer.api.grid import render_grid

        results = [
            {"image": _picture_or_placeholder(hit.path), "label": hit.label, "score": hit.score,
             "match": None if self.label is None or hit.label is None else hit.label == self.label}
            for hit in self.results
        ]
        return render_grid(_picture_or_placeholder(self.query), self.label, results)

    def _repr_png_(self) -> bytes:
        """PNG bytes of :meth:`picture`, for Jupyter's inline display."""
        buffer = io.BytesIO()
        self.picture().save(buffer, format="PNG")
        return buffer.getvalue()


@dataclass
class QueryOutcome:
    """What :func:`query` returns: the index and model used, one :class:`Answer` per readable query."""

    index: str
    model: str
    answers: list[Answer]
    failures: list[str] = field(default_factory=list)  # one line per query image that could not be read
    warnings: list[str] = field(default_factory=list)

    def to_pandas(self) -> Any:
        """Every hit of every answer, one row each: query, query_label, rank, id, path, label, score."""
        rows = [{"query": answer.query, "query_label": answer.label, **hit.to_dict()}
                for answer in self.answers for hit in answer.results]
        return to_dataframe(rows, ("query", "query_label", *HIT_COLUMNS))


class Searcher:
    """A loaded index with its model's embedder (ONNX, or SIFT-VLAD: see :mod:`models.embedders`), ready to answer many queries.

    :meth:`answer` may be called from several threads at once: search settings travel with
    each call and every catalog read opens its own session.
    """

    def __init__(self, workspace: Workspace, index_name: str | None = None, *, threads: int = 1) -> None:
        from indexer.api.indexes import served_index, stale_index_message
        from indexer.core.index_io import load_index
        from models.embedders import open_embedder

        self.workspace = workspace
        with workspace.catalog() as catalog:
            index_row = served_index(catalog, index_name)
            model = catalog.model(index_row.model_name)
        if model.dim != index_row.dim:
            raise DimensionMismatchError(
                f"model {model.name!r} makes {model.dim}-dim embeddings; "
                f"index {index_row.name!r} holds {index_row.dim}-dim vectors"
            )
        self.index_name, self.model_name = index_row.name, model.name
        stale = stale_index_message(index_row, model)
        self.warnings = [] if stale is None else [f"{stale}; until then results may be poor"]
        self.embedder = open_embedder(model.params, workspace.resolve, threads=threads)
        self.index, sidecar = load_index(workspace.resolve(index_row.path))
        self.kind = index_row.kind
        self.augmentation = Rerank.from_dict(sidecar.get("rerank"))  # "dba" when built so
        self._lookup = None
        self._lookup_lock = threading.Lock()

    def answer(
        self, images: list[str], *, k: int = 10, nprobe: int | None = None, rerank: str | Rerank | None = None,
    ) -> QueryOutcome:
        """Top-``k`` catalog images for each query image file; unreadable ones go to ``failures``.

        ``rerank``: "qe" expands each query with its nearest stored vectors and searches again;
        "dba" requires an index built with ``rerank="dba"`` (its stored vectors were augmented).
        """
        from models.errors import ImageError

        if k < 1:
            raise InputError(f"-k must be at least 1; got {k}")
        rerank = check_query_rerank(rerank, self.augmentation, self.index_name, self.kind)
        pictures, names, failures = [], [], []
        for image in images:
            if not os.path.exists(image):
                failures.append(f"{image}: no such file")
                continue
            try:
                pictures.append(self.embedder.load(image))  # the catalogue's own loader for this model
                names.append(image)
            except ImageError as exc:
                failures.append(str(exc))
        if not pictures:
            return QueryOutcome(self.index_name, self.model_name, [], failures, self.warnings)
        vectors = self.embedder.embed_images(pictures)
        with self.workspace.catalog() as catalog:
            own = catalog.images_by_paths(catalog_path(name) for name in names)
        queries = [(name, own.get(catalog_path(name))) for name in names]
        return self._search(queries, vectors, k, nprobe, rerank, failures)

    def answer_ids(
        self, ids: list[int], *, k: int = 10, nprobe: int | None = None, rerank: str | Rerank | None = None,
    ) -> QueryOutcome:
        """Top-``k`` catalog images for stored images, by catalog id, using their stored embeddings.

        Nothing is decoded or embedded: the vectors come from the model's embedding store. An
        id that is not in the catalog, or not embedded by the index's model, goes to ``failures``.
        Each stored image is its own first hit.
        """
        from models.embedding_store import EmbeddingStore

        if k < 1:
            raise InputError(f"-k must be at least 1; got {k}")
        rerank = check_query_rerank(rerank, self.augmentation, self.index_name, self.kind)
        wanted = [int(i) for i in ids]
        with self.workspace.catalog() as catalog:
            rows = catalog.images_by_ids(wanted)
        in_catalog = [image_id for image_id in wanted if image_id in rows]
        store = EmbeddingStore(self.workspace.embeddings_dir / self.model_name)
        found, vectors = store.lookup(in_catalog)  # reads only: safe beside a running 'indexer embed'
        embedded = {image_id for image_id, ok in zip(in_catalog, found) if ok}
        failures = []
        for image_id in wanted:
            if image_id not in rows:
                failures.append(f"id {image_id}: not in the catalog")
            elif image_id not in embedded:
                failures.append(
                    f"id {image_id}: not embedded by model {self.model_name!r} "
                    f"(run 'indexer embed --model {self.model_name}')"
                )
        queries = [(rows[image_id].path, rows[image_id]) for image_id, ok in zip(in_catalog, found) if ok]
        if not queries:
            return QueryOutcome(self.index_name, self.model_name, [], failures, self.warnings)
        return self._search(queries, vectors, k, nprobe, rerank, failures)

    def _search(self, queries: list[tuple[str, ImageRow | None]], vectors: np.ndarray, k: int,
                nprobe: int | None, rerank: Rerank, failures: list[str]) -> QueryOutcome:
        from indexer.core.search import search

        if vectors.shape[1] != self.index.d:
            raise DimensionMismatchError(
                f"query embedding has {vectors.shape[1]} dims; index {self.index_name!r} was built with "
                f"model {self.model_name!r} ({self.index.d} dims)"
            )
        check_finite(vectors, "query embeddings")  # the one scan of the values; search() trusts them
        depth = min(k, int(self.index.ntotal))
        if rerank.mode == "qe":
            from indexer.core.rerank import search_expanded

            scores, ids = search_expanded(self.index, vectors, depth, self._vector_lookup(), rerank, nprobe=nprobe)
        else:
            scores, ids = search(self.index, vectors, depth, nprobe=nprobe)
        with self.workspace.catalog() as catalog:
            answers = _answers(catalog, queries, scores, ids)
        return QueryOutcome(self.index_name, self.model_name, answers, failures, self.warnings)

    def _vector_lookup(self):
        """The model's stored embeddings by id (loaded once, on the first expanded query)."""
        with self._lookup_lock:
            if self._lookup is None:
                from indexer.core.rerank import lookup_vectors
                from models.embedding_store import EmbeddingStore

                store = EmbeddingStore(self.workspace.embeddings_dir / self.model_name)
                vectors = store.vectors(mmap=False)  # first: it folds appended chunks into the base part
                self._lookup = lookup_vectors(store.ids(), vectors)
            return self._lookup


    def hits_for_vectors(self, vectors: np.ndarray, *, k: int = 10) -> list[list[Hit]]:
        """Top-``k`` catalog rows for each of (q, d) float32 query vectors: vector in, rows out."""
        from indexer.core.search import search

        vectors = as_vectors(vectors, self.index.d, name="query vectors")  # validated once, here
        scores, ids = search(self.index, vectors, min(k, int(self.index.ntotal)))
        with self.workspace.catalog() as catalog:
            rows = catalog.images_by_ids({int(i) for row in ids for i in row if i >= 0})
        return [
            [Hit(rank=rank, id=int(i), path=rows[int(i)].path, label=rows[int(i)].label, score=float(s))
             for rank, (s, i) in enumerate(((s, i) for s, i in zip(srow, irow) if i >= 0 and int(i) in rows), 1)]
            for srow, irow in zip(scores, ids)
        ]


def query(
    workspace: Workspace,
    images: list[str] | None = None,
    *,
    ids: list[int] | None = None,
    index_name: str | None = None,
    k: int = 10,
    nprobe: int | None = None,
    threads: int = 1,
    rerank: str | Rerank | None = None,
) -> QueryOutcome:
    """Top-``k`` catalog images for each query image file and each stored image id (see :class:`Searcher`).

    ``index_name``: default the most recently built index. Answers come in the order given,
    image files first, then ids. ``rerank``: "none", "qe" or "dba" (see :meth:`Searcher.answer`).
    """
    if not images and not ids:
        raise InputError("give query image files or catalog ids")
    searcher = Searcher(workspace, index_name, threads=threads)
    outcome = searcher.answer(list(images), k=k, nprobe=nprobe, rerank=rerank) if images else None
    if ids:
        by_id = searcher.answer_ids(list(ids), k=k, nprobe=nprobe, rerank=rerank)
        if outcome is None:
            return by_id
        outcome.answers += by_id.answers
        outcome.failures += by_id.failures
    return outcome


def draw_answer(answer: Answer, path: str | os.PathLike[str]) -> Path:
    """Save :meth:`Answer.picture` as a PNG at ``path`` (its folder is created)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        answer.picture().save(tmp, format="PNG")
    return out


def _picture_or_placeholder(path: str):
    """The image, or a grey tile when the catalogued file has gone or broken since it was indexed."""
    from PIL import Image

    from models.errors import ImageError
    from models.images import open_rgb

    try:
        return open_rgb(path, min_side=THUMB_SIDE)
    except ImageError:
        return Image.new("RGB", (64, 64), (128, 128, 128))


def _answers(catalog: Catalog, queries: list[tuple[str, ImageRow | None]], scores, ids) -> list[Answer]:
    """One Answer per (query name, its own catalog row or None) and its row of search results."""
    wanted = {int(i) for row in ids for i in row if i >= 0}
    rows = catalog.images_by_ids(wanted)
    answers = []
    for (name, me), score_row, id_row in zip(queries, scores, ids):
        hits = [
            Hit(rank=rank, id=int(i), path=rows[int(i)].path, label=rows[int(i)].label, score=float(s))
            for rank, (s, i) in enumerate(((s, i) for s, i in zip(score_row, id_row) if i >= 0 and int(i) in rows), 1)
        ]
        answers.append(Answer(query=name, label=me.label if me else None, results=hits,
                              query_id=me.id if me else None))
    return answers
