"""One-shot queries: open the engine, answer image files and stored ids, draw an answer."""

from __future__ import annotations

import os
from pathlib import Path

from indexer.api.search.engine import Searcher
from indexer.api.search.examples import Example
from indexer.api.search.results import Answer, QueryOutcome
from indexer.api.workspace import Workspace
from indexer.core.errors import InputError
from indexer.core.files import atomic_path
from indexer.core.rerank import Rerank


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
    where: str | None = None,
    min_score: float | None = None,
    offset: int = 0,
    weights: list[float] | None = None,
    unlike: list[str] | None = None,
    unlike_ids: list[int] | None = None,
) -> QueryOutcome:
    """Top-``k`` catalog images for each query image file and each stored image id (see :class:`Searcher`).

    ``index_name``: default the most recently built index. Answers come in the order given,
    image files first, then ids. ``rerank``: "none", "qe" or "dba" (see :meth:`Searcher.answer`). ``where``:
    a filter (:mod:`storage.filters`, e.g. ``label = "rose" and width >= 500``): only matching images answer;
    ``min_score`` and ``offset``: a score cutoff and a page's start (see :meth:`Searcher.answer`).

    ``weights`` (one per image, then one per id), ``unlike`` (image files) or ``unlike_ids``: the images and ids
    make ONE query together, their vectors summed with those weights (default 1 each) and the ``unlike`` ones
    with weight -1 (:meth:`Searcher.search_examples`).
    """
    if not images and not ids:
        raise InputError("give query image files or catalog ids")
    searcher = Searcher(workspace, index_name, threads=threads)
    if weights is not None or unlike or unlike_ids:
        examples = _examples(list(images or []), list(ids or []), weights, list(unlike or []), list(unlike_ids or []))
        answer = searcher.search_examples(examples, k=k, nprobe=nprobe, rerank=rerank, where=where,
                                          min_score=min_score, offset=offset)
        return QueryOutcome(answer.index or "", searcher.model_name, [answer], [], list(searcher.warnings))
    outcome = searcher.answer(list(images), k=k, nprobe=nprobe, rerank=rerank, where=where,
                              min_score=min_score, offset=offset) if images else None
    if ids:
        by_id = searcher.answer_ids(list(ids), k=k, nprobe=nprobe, rerank=rerank, where=where, min_score=min_score,
                                    offset=offset)
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


def _examples(images: list[str], ids: list[int], weights: list[float] | None, unlike: list[str],
              unlike_ids: list[int]) -> list[Example]:
    positives = len(images) + len(ids)
    if weights is not None and len(weights) != positives:
        raise InputError(f"--weights: {len(weights)} given for {positives} examples (one per image, then per --id)")
    weights = weights if weights is not None else [1.0] * positives
    for path in [*images, *unlike]:
        if not os.path.exists(path):
            raise InputError(f"{path}: no such file")
    return ([Example(path=path, weight=w) for path, w in zip(images, weights)]
            + [Example(id=int(i), weight=w) for i, w in zip(ids, weights[len(images):])]
            + [Example(path=path, weight=-1.0) for path in unlike]
            + [Example(id=int(i), weight=-1.0) for i in unlike_ids])
