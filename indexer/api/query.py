"""Answering queries: image → the model's ONNX embedder → FAISS search → catalog rows.

This path imports neither torch nor Alembic: the model runs under onnxruntime and the
schema revision is checked with one plain SELECT.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from indexer.api.workspace import Workspace
from indexer.core.errors import DimensionMismatchError, InputError, NotFoundError
from indexer.core.rerank import Rerank, as_rerank
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
    """A loaded index with its model's embedder (ONNX, or SIFT-VLAD: see :mod:`models.embedders`), ready to answer many queries.

    :meth:`answer` may be called from several threads at once: search settings travel with
    each call and every catalog read opens its own session.
    """

    def __init__(self, workspace: Workspace, index_name: str | None = None, *, threads: int = 1) -> None:
        from indexer.api.indexes import stale_index_message
        from indexer.core.index_io import load_index
        from models.embedders import open_embedder

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
        """Top-``k`` catalog images for each query image; unreadable ones go to ``failures``.

        ``rerank``: "qe" expands each query with its nearest stored vectors and searches again;
        "dba" requires an index built with ``rerank="dba"`` (its stored vectors were augmented).
        """
        from indexer.core.search import search
        from models.errors import ImageError
        from models.images import open_rgb

        if k < 1:
            raise InputError(f"-k must be at least 1; got {k}")
        rerank = self._check_rerank(as_rerank(rerank))
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
        depth = min(k, int(self.index.ntotal))
        if rerank.mode == "qe":
            from indexer.core.rerank import search_expanded

            scores, ids = search_expanded(self.index, vectors, depth, self._vector_lookup(), rerank, nprobe=nprobe)
        else:
            scores, ids = search(self.index, vectors, depth, nprobe=nprobe)
        with self.workspace.catalog() as catalog:
            answers = _answers(catalog, names, scores, ids)
        return QueryOutcome(self.index_name, self.model_name, answers, failures, self.warnings)

    def _check_rerank(self, rerank: Rerank) -> Rerank:
        if rerank.mode == "dba" and self.augmentation.mode != "dba":
            raise InputError(
                f"index {self.index_name!r} was built without database-side augmentation; rebuild it with "
                f"'indexer build --index {self.kind} --name {self.index_name} --rerank dba'"
            )
        return rerank

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


def query(
    workspace: Workspace,
    images: list[str],
    *,
    index_name: str | None = None,
    k: int = 10,
    nprobe: int | None = None,
    threads: int = 1,
    rerank: str | Rerank | None = None,
) -> QueryOutcome:
    """Top-``k`` catalog images for each query image (see :class:`Searcher`)."""
    return Searcher(workspace, index_name, threads=threads).answer(images, k=k, nprobe=nprobe, rerank=rerank)


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
