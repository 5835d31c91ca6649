"""``indexer build --on-disk``: an IVF index whose lists live on disk, built from the embedding store shard by shard.

The store is read through a fresh memory map per shard (dropped after it), so the build holds one shard's
vectors at a time whatever the catalog's size; see :mod:`indexer.core.ondisk` for the build itself.
"""

from __future__ import annotations

import numpy as np

from indexer.api.workspace import Workspace
from indexer.core.errors import InputError

TUNING_QUERIES = 200


def store_rows(workspace: Workspace, model_name: str):
    """(read_rows, n, d): rows 0..n of the model's stored vectors of ok catalog images, in store order;
    ``read_rows(start, stop)`` returns (ids, vectors) of those rows, read from a memory map it then drops."""
    from models.embedding_store import EmbeddingStore

    with workspace.catalog() as catalog:
        ok_ids = np.array([row.id for row in catalog.images()], dtype=np.int64)
    store = EmbeddingStore(workspace.embeddings_dir / model_name)
    store.vectors(mmap=True)  # folds appended chunks into one part first
    store_ids = np.asarray(store.ids(), dtype=np.int64)
    positions = np.flatnonzero(np.isin(store_ids, ok_ids))
    d = int(store.dim or 0)

    def read_rows(start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        rows = positions[start:stop]
        if not len(rows):
            return np.zeros(0, np.int64), np.empty((0, d), np.float32)
        mapped = store.vectors(mmap=True)
        block = np.array(mapped[rows[0]:rows[-1] + 1], dtype=np.float32)  # one contiguous read, then a copy
        del mapped
        return store_ids[rows], np.ascontiguousarray(block[rows - rows[0]])

    return read_rows, len(positions), d


def build_on_disk_index(workspace: Workspace, params, *, model_name: str, path, shards: int, k: int,
                        target_recall: float, progress: bool = True):
    """Build index of ``params`` at ``path`` (the data file is written beside it) and tune its nprobe to
    ``target_recall`` at recall@``k`` unless ``params.nprobe`` is given; returns (index, BuildInfo, tuning
    dict). The caller saves and registers it."""
    from indexer.core.ondisk import build_on_disk, exact_search_in_shards, sample_rows
    from indexer.core.tuning import tune_search_param

    read_rows, n, d = store_rows(workspace, model_name)
    if n == 0:
        raise InputError(f"model {model_name!r} has no embedded images to index; run 'indexer ingest DIR' first")
    with _progress(2 * min(shards, n) + 1, f"on-disk {params.kind} ({shards} shards)", progress) as bar:
        index, info = build_on_disk(params, read_rows, n, d, path, shards=shards,
                                    progress=lambda stage, done, total: bar(stage))
    tuning: dict = {}
    if params.nprobe is None and n > k:
        query_ids, queries = sample_rows(read_rows, n, TUNING_QUERIES, params.seed, d, shards)
        exact = exact_search_in_shards(read_rows, n, queries, k + 10, shards=shards, exclude_self_ids=query_ids)
        result = tune_search_param(index, None, k=k, target_recall=target_recall, seed=params.seed,
                                   exact=(queries, query_ids, exact))
        tuning = {"param": result.param_name, "value": result.value, "recall": result.recall,
                  "target": target_recall, "reached": result.reached, "k": k, "tried": result.tried}
    return index, info, tuning


class _progress:
    """A tqdm bar over the build's stages (train, then assign and write per shard)."""

    def __init__(self, total: int, desc: str, enabled: bool) -> None:
        self.total, self.desc, self.enabled, self.bar = total, desc, enabled, None

    def __enter__(self):
        if self.enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, desc=self.desc, unit="step", mininterval=2.0)

        def step(stage: str) -> None:
            if self.bar is not None:
                self.bar.set_postfix_str(stage, refresh=False)
                self.bar.update(1)

        return step

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()
