"""Answering queries: image → the model's ONNX embedder → FAISS search → catalog rows.

This path imports neither torch nor Alembic: the model runs under onnxruntime and the
schema revision is checked with one plain SELECT.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from indexer.api.workspace import Workspace
from indexer.core.arrays import as_vectors, check_finite
from indexer.core.errors import DimensionMismatchError, InputError, NotFoundError
from indexer.datasets.folders import catalog_path
from storage.catalog import ArtifactRow, Catalog


@dataclass(frozen=True)
class Hit:
    rank: int
    id: int
    path: str
    label: str | None
    score: float


@dataclass
class Answer:
    query: str
    label: str | None  # the query's own label when it is in the catalog
    results: list[Hit]


@dataclass
class QueryOutcome:
    index: str
    model: str
    answers: list[Answer]
    failures: list[str] = field(default_factory=list)  # one line per query image that could not be read
    warnings: list[str] = field(default_factory=list)


class Searcher:
    """A loaded index with its model's ONNX embedder, ready to answer many queries.

    :meth:`answer` may be called from several threads at once: search settings travel with
    each call and every catalog read opens its own session.
    """

    def __init__(self, workspace: Workspace, index_name: str | None = None, *, threads: int = 1) -> None:
        from indexer.api.indexes import stale_index_message
        from indexer.core.index_io import load_index
        from models.onnx_embedder import OnnxEmbedder
        from models.preprocess import PreprocessSpec

        self.workspace = workspace
        with workspace.catalog() as catalog:
            index_row = _pick_index(catalog, index_name)
            if index_row.model_name is None:
                raise NotFoundError(
                    f"index {index_row.name!r} was built with a model that no longer exists; rebuild it"
                )
            model = catalog.model(index_row.model_name)
        if model.dim != index_row.dim:
            raise DimensionMismatchError(
                f"model {model.name!r} makes {model.dim}-dim embeddings; "
                f"index {index_row.name!r} holds {index_row.dim}-dim vectors"
            )
        onnx_path = workspace.resolve(model.params["onnx"])
        if not onnx_path.is_file():
            raise NotFoundError(f"model {model.name!r} has no ONNX file at {onnx_path}; train it again")
        self.index_name, self.model_name = index_row.name, model.name
        stale = stale_index_message(index_row, model)
        self.warnings = [] if stale is None else [f"{stale}; until then results may be poor"]
        self.embedder = OnnxEmbedder(onnx_path, PreprocessSpec.from_dict(model.params["preprocess"]), threads=threads)
        self.index, _ = load_index(workspace.resolve(index_row.path))

    def answer(self, images: list[str], *, k: int = 10, nprobe: int | None = None) -> QueryOutcome:
        """Top-``k`` catalog images for each query image; unreadable ones go to ``failures``."""
        from indexer.core.search import search
        from models.errors import ImageError
        from models.images import open_rgb

        if k < 1:
            raise InputError(f"-k must be at least 1; got {k}")
        pictures, names, failures = [], [], []
        for image in images:
            if not os.path.exists(image):
                failures.append(f"{image}: no such file")
                continue
            try:
                pictures.append(open_rgb(image))
                names.append(image)
            except ImageError as exc:
                failures.append(str(exc))
        if not pictures:
            return QueryOutcome(self.index_name, self.model_name, [], failures, self.warnings)
        vectors = self.embedder.embed_images(pictures)
        if vectors.shape[1] != self.index.d:
            raise DimensionMismatchError(
                f"query embedding has {vectors.shape[1]} dims; index {self.index_name!r} was built with "
                f"model {self.model_name!r} ({self.index.d} dims)"
            )
        check_finite(vectors, "query embeddings")  # the one scan of the values; search() trusts them
        scores, ids = search(self.index, vectors, min(k, int(self.index.ntotal)), nprobe=nprobe)
        with self.workspace.catalog() as catalog:
            answers = _answers(catalog, names, scores, ids)
        return QueryOutcome(self.index_name, self.model_name, answers, failures, self.warnings)


    def hits_for_vectors(self, vectors, *, k: int = 10) -> list[list[Hit]]:
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
    images: list[str],
    *,
    index_name: str | None = None,
    k: int = 10,
    nprobe: int | None = None,
    threads: int = 1,
) -> QueryOutcome:
    """Top-``k`` catalog images for each query image (see :class:`Searcher`)."""
    return Searcher(workspace, index_name, threads=threads).answer(images, k=k, nprobe=nprobe)


def draw_answer(answer: Answer, path: str | os.PathLike[str]) -> Path:
    """The query beside its results, matches of its label framed green and others red."""
    from indexer.api.grid import draw_grid
    from models.images import open_rgb

    results = [
        {"image": _picture_or_placeholder(hit.path), "label": hit.label, "score": hit.score,
         "match": None if answer.label is None or hit.label is None else hit.label == answer.label}
        for hit in answer.results
    ]
    draw_grid(open_rgb(answer.query), answer.label, results, path)
    return Path(path)


def _picture_or_placeholder(path: str):
    """The image, or a grey tile when the catalogued file has gone or broken since it was indexed."""
    from PIL import Image

    from models.errors import ImageError
    from models.images import open_rgb

    try:
        return open_rgb(path)
    except ImageError:
        return Image.new("RGB", (64, 64), (128, 128, 128))


def _answers(catalog: Catalog, names: list[str], scores, ids) -> list[Answer]:
    wanted = {int(i) for row in ids for i in row if i >= 0}
    rows = catalog.images_by_ids(wanted)
    own = catalog.images_by_paths(catalog_path(name) for name in names)
    answers = []
    for name, score_row, id_row in zip(names, scores, ids):
        hits = [
            Hit(rank=rank, id=int(i), path=rows[int(i)].path, label=rows[int(i)].label, score=float(s))
            for rank, (s, i) in enumerate(((s, i) for s, i in zip(score_row, id_row) if i >= 0 and int(i) in rows), 1)
        ]
        me = own.get(catalog_path(name))
        answers.append(Answer(query=name, label=me.label if me else None, results=hits))
    return answers


def _pick_index(catalog: Catalog, name: str | None) -> ArtifactRow:
    if name is not None:
        return catalog.index(name)
    rows = catalog.indexes()
    if not rows:
        raise NotFoundError("the catalog has no index yet: run 'indexer build --index ivf' first")
    return rows[-1]
