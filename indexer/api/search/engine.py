"""The query engine every face uses: a model's embedder and its loaded indexes, answering from any thread.

image (file, upload) or stored id → the model's embedder (ONNX or SIFT-VLAD, :mod:`models.embedders`) →
FAISS search of a held index (with query expansion when asked) → catalog rows → :class:`Answer`.

Thread safety: everything a search reads (the held indexes, the served vectors, the known rows) is published
by swapping one reference and never modified afterwards, so searches need no lock (:mod:`.holdings`). The live
catalog (:mod:`indexer.api.search.live`) publishes new versions through :meth:`Searcher.publish`,
:meth:`Searcher.publish_vectors` and :meth:`Searcher.publish_rows`. A filter's selection and the plan among it:
:mod:`.selections`. This path imports neither torch nor Alembic.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from indexer.api.devices import device_refusal
from indexer.api.registry.indexes import served_index, stale_index_message
from indexer.api.search.examples import Example, check_examples, combine, query_name
from indexer.api.search.held import HeldIndex, KnownRows
from indexer.api.search.holdings import Holdings, Rows
from indexer.api.search.narrowing import MAX_OFFSET, Narrowing, page_token
from indexer.api.search.results import Answer, Hit, QueryOutcome
from indexer.api.search.selections import Selections, search_selected
from indexer.api.search.uploads import decode_query, read_upload
from indexer.api.workspace import Workspace
from indexer.core.arrays import as_vectors, check_finite
from indexer.core.errors import DimensionMismatchError, InputError, NotFoundError
from indexer.core.filtered import Plan, Selection
from indexer.core.rerank import Rerank, check_query_rerank
from indexer.datasets.folders import catalog_path
from storage.catalog import ImageRow

MAX_K = 1000
DELETE_SLACK = 4  # extra neighbours fetched: a delete commits in the catalog just before the index swap


def unit_vector(values: Any, dim: int) -> np.ndarray:
    """(1, dim) float32 L2-normalised copy of one vector; InputError naming what is wrong with it."""
    try:
        vector = np.asarray(values, dtype=np.float64).reshape(1, -1)
    except (TypeError, ValueError):
        raise InputError("vector: expected a list of numbers") from None
    if vector.shape[1] != dim:
        raise InputError(f"vector: {vector.shape[1]} values; the model makes {dim}-dim vectors")
    if not np.isfinite(vector).all():
        raise InputError("vector: holds a value that is not finite (NaN or infinity)")
    norm = float(np.linalg.norm(vector))
    if norm == 0.0:
        raise InputError("vector: all zeros (it has no direction to compare)")
    return (vector / norm).astype(np.float32)


def check_k(k: int) -> None:
    """The one rule for k, for every face: 1..MAX_K."""
    if not 1 <= k <= MAX_K:
        raise InputError(f"k must be in 1..{MAX_K}; got {k}")


class Searcher(Holdings):
    """A model's embedder and its indexes, loaded once, ready to answer many queries from any thread.

    ``index_name``: the default index (the most recent when None). ``hold_all``: also hold every other index
    of the same model that is not stale (the service does). ``threads``: embedder threads per query;
    ``solo_threads``: a second ONNX session with more threads, used when a query runs alone (so one client is
    answered faster while many do not over-subscribe the cores); None: no second session. ``max_pixels``: a
    pixel limit for uploads, checked on the whole file.
    """

    def __init__(self, workspace: Workspace, index_name: str | None = None, *, threads: int = 1,
                 solo_threads: int | None = None, hold_all: bool = False, max_pixels: int | None = None) -> None:
        from models.embedders import EXTERNAL, ONNX, embedder_kind, external_message, open_embedder

        self.max_pixels = max_pixels
        with workspace.catalog() as catalog:
            default = served_index(catalog, index_name)
            model = catalog.model(default.model_name)
            rows = [row for row in catalog.indexes() if row.model_name == model.name
                    and (row.name == default.name or (hold_all and stale_index_message(row, model) is None
                                                      and device_refusal(row.kind) is None))]
        if model.dim != default.dim:
            raise DimensionMismatchError(
                f"model {model.name!r} makes {model.dim}-dim embeddings; "
                f"index {default.name!r} holds {default.dim}-dim vectors"
            )
        self.model = model
        stale = stale_index_message(default, model)
        self.warnings = [] if stale is None else [f"{stale}; until then results may be poor"]
        self.embedder = open_embedder(model.params, workspace.resolve, threads=threads)
        # an external model (imported vectors) is queried with vectors; an image query is refused with this
        self.vectors_only = external_message({"name": model.name, **model.params}) \
            if embedder_kind(model.params) == EXTERNAL else None
        self._solo = None
        if solo_threads is not None and solo_threads > threads and embedder_kind(model.params) == ONNX:
            self._solo = open_embedder(model.params, workspace.resolve, threads=solo_threads)
        self._in_flight, self._flight_lock = 0, threading.Lock()
        super().__init__(workspace, model.name, default.name, rows)
        self._selections = Selections()

    # -- queries ---------------------------------------------------------------------------------------------

    def answer(self, images: Sequence[str], *, k: int = 10, nprobe: int | None = None,
               rerank: str | Rerank | None = None, index_name: str | None = None,
               where: str | None = None, min_score: float | None = None, offset: int = 0) -> QueryOutcome:
        """Top-``k`` catalog images for each query image file; unreadable ones go to ``failures``.

        ``rerank``: "qe" expands each query with its nearest stored vectors and searches again; "dba" needs
        an index built with ``rerank="dba"`` (its stored vectors were augmented). ``where``: a filter
        (:mod:`storage.filters`); only the images it matches are answered, and each answer says its plan.
        ``min_score``: results below it are dropped (fewer than k may come back). ``offset``: the page's start
        (ranks offset+1..offset+k); an answer with a full page carries ``next_page_token``
        (:mod:`indexer.api.search.narrowing`). Every query method below takes the same three.
        """
        from models.errors import ImageError

        held, rerank = self._prepare(k, rerank, index_name)
        narrow = Narrowing(where, min_score, offset)
        self._check_takes_images()
        started = time.perf_counter()
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
            return self._outcome(held, [], failures)
        decoded = time.perf_counter()
        vectors = self.embedder.embed_images(pictures)
        embedded = time.perf_counter()
        with self.workspace.catalog() as catalog:
            own = catalog.images_by_paths(catalog_path(name) for name in names)
        queries = [(name, own.get(catalog_path(name)), None) for name in names]
        timings = {"decode": (decoded - started) * 1e3, "embed": (embedded - decoded) * 1e3}
        return self._outcome(held, self._search(held, queries, vectors, k, nprobe, rerank, timings, narrow), failures)

    def answer_ids(self, ids: Sequence[int], *, k: int = 10, nprobe: int | None = None,
                   rerank: str | Rerank | None = None, index_name: str | None = None,
                   exclude_self: bool = False, where: str | None = None,
                   min_score: float | None = None, offset: int = 0) -> QueryOutcome:
        """Top-``k`` catalog images for stored images, by catalog id, using their stored embeddings.

        Nothing is decoded or embedded. An id that is not an ok catalog image, or not embedded by the model,
        goes to ``failures``. ``exclude_self``: each stored image is left out of its own results (and of the
        neighbours a "qe" re-ranking expands it with); otherwise it is its own first hit.
        """
        held, rerank = self._prepare(k, rerank, index_name)
        narrow = Narrowing(where, min_score, offset)
        wanted = [int(i) for i in ids]
        with self.workspace.catalog() as catalog:
            rows = {i: row for i, row in catalog.images_by_ids(wanted).items() if row.status == "ok"}
        found, vectors = self._stored(i for i in wanted if i in rows)
        failures = []
        for image_id in wanted:
            if image_id not in rows:
                failures.append(f"id {image_id}: not in the catalog")
            elif image_id not in found:
                failures.append(f"id {image_id}: not embedded by model {self.model_name!r} "
                                f"(run 'indexer embed --model {self.model_name}')")
        queries = [(rows[i].path, rows[i], i if exclude_self else None) for i in found]
        if not queries:
            return self._outcome(held, [], failures)
        return self._outcome(held, self._search(held, queries, vectors, k, nprobe, rerank, {}, narrow), failures)

    def search_bytes(self, data: bytes, name: str, *, k: int = 10, index_name: str | None = None,
                     rerank: str | Rerank | None = None, nprobe: int | None = None,
                     where: str | None = None, min_score: float | None = None, offset: int = 0) -> Answer:
        """Top-``k`` catalog images for an encoded image (an upload); InputError when it does not decode."""
        held, rerank = self._prepare(k, rerank, index_name)
        narrow = Narrowing(where, min_score, offset)
        self._check_takes_images()
        started = time.perf_counter()
        if self.max_pixels is None:
            name, picture = decode_query(data, name, self.embedder.load_bytes)
        else:  # a pixel limit of its own: checked on the whole file, as for an upload
            upload = read_upload(data, name, max_pixels=self.max_pixels, load=self.embedder.load_bytes)
            name, picture = upload.name, upload.picture
        decoded = time.perf_counter()
        vector = self.embed_query(picture)
        timings = {"decode": (decoded - started) * 1e3, "embed": (time.perf_counter() - decoded) * 1e3}
        return self._search(held, [(name, None, None)], vector, k, nprobe, rerank, timings, narrow)[0]

    def search_vector(self, vector: Any, *, k: int = 10, index_name: str | None = None,
                      rerank: str | Rerank | None = None, nprobe: int | None = None,
                      where: str | None = None, min_score: float | None = None, offset: int = 0) -> Answer:
        """Top-``k`` catalog images for a query vector of the model's dimension (any model; the way to query
        an external one), L2-normalised here as every stored vector is. InputError for a wrong length, a
        value that is not finite, or a zero vector."""
        held, rerank = self._prepare(k, rerank, index_name)
        narrow = Narrowing(where, min_score, offset)
        started = time.perf_counter()
        vector = unit_vector(vector, held.index.d)
        timings = {"decode": (time.perf_counter() - started) * 1e3, "embed": 0.0}
        return self._search(held, [("vector", None, None)], vector, k, nprobe, rerank, timings, narrow)[0]

    def similar(self, image_id: int, *, k: int = 10, index_name: str | None = None,
                rerank: str | Rerank | None = None, nprobe: int | None = None, where: str | None = None,
                min_score: float | None = None, offset: int = 0) -> Answer:
        """Top-``k`` catalog images like catalog image ``image_id`` (its stored vector), itself excluded;
        NotFoundError when it is not an ok catalog image or has no stored vector."""
        outcome = self.answer_ids([image_id], k=k, nprobe=nprobe, rerank=rerank, index_name=index_name,
                                  exclude_self=True, where=where, min_score=min_score, offset=offset)
        if not outcome.answers:
            raise NotFoundError(f"image {outcome.failures[0]}")
        return outcome.answers[0]

    def search_examples(self, examples: Sequence[Example], *, k: int = 10, index_name: str | None = None,
                        rerank: str | Rerank | None = None, nprobe: int | None = None, where: str | None = None,
                        min_score: float | None = None, offset: int = 0) -> Answer:
        """Top-``k`` catalog images for several examples at once (:mod:`indexer.api.search.examples`): the
        weighted sum of their vectors, normalised; a negative weight pushes away. Catalogued examples (ids, and
        files the catalog holds) are left out of the results. InputError for an example that cannot be read."""
        from models.errors import ImageError

        held, rerank = self._prepare(k, rerank, index_name)
        narrow = Narrowing(where, min_score, offset)
        examples = check_examples(examples)
        started = time.perf_counter()
        vectors, own = [], []
        for example in examples:
            if example.id is not None:
                found, stored = self._stored([example.id])
                if not found:
                    raise NotFoundError(f"example id {example.id}: not an image embedded by model {self.model_name!r}")
                vectors.append(stored[0])
                own.append(int(example.id))
            elif example.vector is not None:
                vectors.append(unit_vector(example.vector, held.index.d)[0])
            else:
                self._check_takes_images()
                try:
                    if example.data is not None:
                        _, picture = decode_query(example.data, example.name or "upload", self.embedder.load_bytes)
                    else:
                        picture = self.embedder.load(example.path)
                except ImageError as exc:
                    raise InputError(str(exc)) from None
                vectors.append(self.embed_query(picture)[0])
                if example.path is not None:
                    with self.workspace.catalog() as catalog:
                        row = catalog.images_by_paths([catalog_path(example.path)]).get(catalog_path(example.path))
                    if row is not None:
                        own.append(row.id)
        vector = combine(np.vstack(vectors), [example.weight for example in examples])
        timings = {"embed": (time.perf_counter() - started) * 1e3}
        return self._search(held, [(query_name(examples), None, tuple(own) or None)], vector, k, nprobe, rerank,
                            timings, narrow)[0]

    def hits_for_vectors(self, vectors: np.ndarray, *, k: int = 10, index_name: str | None = None) -> list[list[Hit]]:
        """Top-``k`` catalog rows for each of (q, d) float32 query vectors: vector in, rows out."""
        held, rerank = self._prepare(k, None, index_name)
        vectors = as_vectors(vectors, held.index.d, name="query vectors")
        queries = [(f"vector {i}", None, None) for i in range(len(vectors))]
        return [answer.results for answer in self._search(held, queries, vectors, k, None, rerank, {})]

    def embed_query(self, picture: Any) -> np.ndarray:
        """(1, dim) vector of a decoded query picture: with the ``solo_threads`` session when no other query is
        being embedded at this moment, else with the one-thread session."""
        with self._flight_lock:
            self._in_flight += 1
            alone = self._in_flight == 1
        try:
            return (self._solo if alone and self._solo is not None else self.embedder).embed_images([picture])
        finally:
            with self._flight_lock:
                self._in_flight -= 1

    # -- internals -------------------------------------------------------------------------------------------

    def _prepare(self, k: int, rerank: str | Rerank | None, index_name: str | None) -> tuple[HeldIndex, Rerank]:
        check_k(k)
        held = self.held(index_name)
        return held, check_query_rerank(rerank, Rerank.from_dict(held.sidecar.get("rerank")), held.name, held.kind)

    def _check_takes_images(self) -> None:
        if self.vectors_only is not None:
            raise InputError(self.vectors_only)

    def _outcome(self, held: HeldIndex, answers: list[Answer], failures: list[str]) -> QueryOutcome:
        return QueryOutcome(held.name, self.model_name, answers, failures, list(self.warnings))

    def _stored(self, ids) -> tuple[list[int], np.ndarray]:
        """(the ids that have a stored vector, their (n, d) vectors): from the served vectors when loaded, else
        read from the embedding store (only those rows: safe beside a running 'indexer embed')."""
        ids = np.asarray(ids, np.int64) if isinstance(ids, np.ndarray) else np.fromiter(ids, dtype=np.int64)
        if self._vectors is not None:
            return self._vectors.take(ids)
        from models.embedding_store import EmbeddingStore

        found, vectors = EmbeddingStore(self.workspace.embeddings_dir / self.model_name).lookup(ids)
        return ids[np.asarray(found, bool)].tolist(), np.asarray(vectors, np.float32)

    def _gathered(self, allowed: Selection) -> tuple[np.ndarray, np.ndarray]:
        """(ids with a stored vector, their (n, d) vectors) of a selection searched exactly, kept while it lives."""
        return self._selections.gathered(allowed, self._stored)

    def _search(self, held: HeldIndex, queries: list[tuple[str, ImageRow | None, int | None]], vectors: np.ndarray,
                k: int, nprobe: int | None, rerank: Rerank, timings: dict[str, float],
                narrow: Narrowing | None = None) -> list[Answer]:
        """One Answer per (name, own catalog row or None, id to exclude or None) and its row of ``vectors``;
        ``narrow``: the filter, score cutoff and page the answers keep to."""
        from indexer.core.search import search

        if vectors.shape[1] != held.index.d:
            raise DimensionMismatchError(
                f"query embedding has {vectors.shape[1]} dims; index {held.name!r} was built with "
                f"model {self.model_name!r} ({held.index.d} dims)"
            )
        check_finite(vectors, "query embeddings")  # the one scan of the values; search() trusts them
        started = time.perf_counter()
        narrow = narrow or Narrowing()
        allowed = self._selections.matching(self.workspace, narrow.where, self._generation)
        selected = time.perf_counter()
        excluded = [() if e is None else (e,) if isinstance(e, int) else tuple(e) for _, _, e in queries]
        wanted = min(narrow.offset + k + max(len(e) for e in excluded) + DELETE_SLACK, held.ntotal)
        plan = None
        if wanted > 0 and allowed is not None:
            scores, ids, plan = search_selected(held, vectors, wanted, nprobe, rerank, allowed, self._gathered)
        elif wanted <= 0:
            scores, ids = np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        elif rerank.mode == "qe":
            from indexer.core.rerank import search_expanded

            own = None if not any(excluded) else np.array([e[0] if e else -1 for e in excluded], np.int64)
            scores, ids = search_expanded(held.index, vectors, wanted, self.served_vectors().lookup(), rerank,
                                          exclude_ids=own, nprobe=nprobe)
        elif nprobe is None and held.device is not None and held.device.serves(held.index):  # gpu-flat, unchanged
            scores, ids = held.device.search(vectors, wanted)
        else:  # (gpu-flat with changes since loading: FAISS's exact search, the same results; nprobe: flat's error)
            scores, ids = search(held.index, vectors, wanted, nprobe=nprobe)
        searched = time.perf_counter()
        rows = self._rows_of(ids)
        results = []
        for exclude, score_row, id_row in zip(excluded, scores, ids):
            kept = [(float(s), int(i)) for s, i in zip(score_row, id_row) if i >= 0 and int(i) not in exclude
                    and int(i) in rows]  # a row deleted meanwhile is skipped
            if narrow.min_score is not None:
                kept = [(s, i) for s, i in kept if s >= narrow.min_score]
            kept = kept[narrow.offset:narrow.offset + k]
            results.append([Hit(rank, i, *rows[i], s) for rank, (s, i) in enumerate(kept, narrow.offset + 1)])
        timings = {**timings, **({"filter": (selected - started) * 1e3} if allowed is not None else {}),
                   "search": (searched - selected) * 1e3, "catalog": (time.perf_counter() - searched) * 1e3}
        plan_out = None if allowed is None else (plan or Plan("exact", len(allowed))).to_dict()
        following = page_token(narrow.offset + k) if narrow.offset + k <= MAX_OFFSET else None
        return [Answer(query=name, label=me.label if me else None, results=hits, query_id=me.id if me else None,
                       index=held.name, timings_ms=timings, plan=plan_out,
                       next_page_token=following if len(hits) == k else None)
                for (name, me, _), hits in zip(queries, results)]

    def _rows_of(self, ids: np.ndarray) -> Rows:
        """(path, label) of the ok catalog images among ``ids``: known rows, the rest asked of the catalog (an
        image catalogued by another process since the last reload)."""
        known = self._rows
        found = np.unique(ids)
        found = found[found >= 0]
        if isinstance(known, KnownRows):  # one bulk lookup: per-id lookups cost ~35 us each (0.8 ms a query)
            rows = known.rows_of(found)
        else:
            rows = {i: known[i] for i in found.tolist() if i in known}
        unknown = [i for i in found.tolist() if i not in rows]
        if unknown:
            with self.workspace.catalog() as catalog:
                fetched = catalog.images_by_ids(unknown)
            rows.update({i: (row.path, row.label) for i, row in fetched.items() if row.status == "ok"})
        return rows

