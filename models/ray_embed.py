"""Catalog embedding as a Ray Data job: (id, path) rows → stateful embedding actors → the driver's store.

The driver lists what the :class:`EmbeddingStore` lacks, Ray Data spreads those rows over ``actors``
callable-class actors (a fixed ``ActorPoolStrategy`` pool; each loads its model once, in ``__init__``: the
ONNX export on CPU, the torch checkpoint on a GPU, a SIFT-VLAD model through its embedder), and the driver appends the vectors it gets
back to the store in chunks, so a killed run resumes where it stopped. Every actor decodes with the
embedder's own ``load`` (:func:`models.preprocess.load_for_model`), so the vectors are the local path's.

Ray is optional (``pip install "indexer[scale]"``) and imported inside the functions that use it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.embed import EmbedReport
from models.embedding_store import EmbeddingStore
from models.errors import ImageError, ModelError
from models.pending_rows import PendingRows

LOCAL_OBJECT_STORE_BYTES = 512 * 1024**2  # (id, path) rows and 128-dim vectors: a local run needs little


@dataclass(frozen=True)
class ActorModel:
    """What an actor needs to open a model: its registered ``params``, the files they name
    (stored path → absolute path, readable on every node), and the torch ``checkpoint`` for GPU actors."""

    params: dict
    files: dict[str, str]
    checkpoint: str | None = None


def start_ray(address: str | None, *, num_cpus: int | None = None,
              object_store_bytes: int = LOCAL_OBJECT_STORE_BYTES) -> bool:
    """Connect to the cluster at ``address`` (``auto``, ``ray://HOST:PORT``), or with None start a local Ray
    of ``num_cpus`` (default: this machine's cores) with a small object store. Reuses a Ray already
    initialised in this process. Returns whether this call started (and so should stop) it."""
    import ray

    if ray.is_initialized():
        return False
    if address:
        ray.init(address=address, log_to_driver=False)
    else:  # "local": never join a cluster that RAY_ADDRESS happens to name
        ray.init(address="local", num_cpus=num_cpus or os.cpu_count(), include_dashboard=False,
                 object_store_memory=object_store_bytes, log_to_driver=False)
    return True


def cluster_gpus() -> int:
    """GPUs the connected cluster has (0 on a CPU-only one)."""
    import ray

    return int(ray.cluster_resources().get("GPU", 0))


def cluster_cpus() -> int:
    """CPUs the connected cluster has."""
    import ray

    return int(ray.cluster_resources().get("CPU", 1))


class EmbedActor:
    """A Ray Data ``map_batches`` callable class: one model per actor, loaded once.

    Batches are numpy dicts ``{"id": (n,) int64, "path": (n,) str}``; each call returns
    ``{"id", "vector": (n, D) float32 (zeros where the image failed), "error": (n,) str ("" when ok)}``.
    """

    def __init__(self, model: ActorModel, use_gpu: bool = False) -> None:
        if use_gpu and model.checkpoint:
            self.embedder = _TorchEmbedder(model.checkpoint)
        else:
            from models.embedders import open_embedder

            self.embedder = open_embedder(model.params, lambda stored: Path(model.files[stored]))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ids = np.asarray(batch["id"], dtype=np.int64)
        pictures, ok, errors = [], np.zeros(len(ids), bool), [""] * len(ids)
        for row, path in enumerate(batch["path"]):
            try:
                pictures.append(self.embedder.load(str(path)))
                ok[row] = True
            except ImageError as exc:
                errors[row] = str(exc)
        vectors = np.zeros((len(ids), self.embedder.dim), np.float32)
        if pictures:
            vectors[ok] = self.embedder.embed_images(pictures)
        return {"id": ids, "vector": vectors, "error": np.asarray(errors, dtype=object)}


class _TorchEmbedder:
    """The torch checkpoint on this actor's GPU, in float32 (so its vectors match the ONNX export's)."""

    def __init__(self, checkpoint: str) -> None:
        from models.checkpoint import load_model

        self.model, self.spec, meta = load_model(checkpoint, device="cuda")
        self.dim = int(meta["embedding_dim"])

    def load(self, path: str):
        from models.preprocess import load_for_model

        return load_for_model(path, self.spec)

    def embed_images(self, images: Sequence) -> np.ndarray:
        import torch

        from models.preprocess import preprocess

        batch = torch.from_numpy(self.spec.views(np.stack([preprocess(image, self.spec) for image in images])))
        with torch.inference_mode():
            return self.spec.merge(self.model(batch.to("cuda")).float().cpu().numpy())


def embed_on_ray(model: ActorModel, dim: int, items: Sequence[tuple[int, str]], store: EmbeddingStore, *,
                 actors: int | None = None, batch_size: int = 128, use_gpu: bool | None = None,
                 flush_rows: int = 2048, progress: bool = True) -> EmbedReport:
    """Embed the ``(id, path)`` items ``store`` lacks on the connected Ray cluster (see :func:`start_ray`).

    ``actors`` defaults to the cluster's GPUs when it has any (one GPU each), else its CPUs (one CPU
    each); ``dim`` is the model's output width, checked against the store before anything runs. Vectors
    reach the store every ``flush_rows`` rows. Unreadable images go to ``failed``, not fatal.
    """
    started = time.perf_counter()
    items = [(int(i), os.fspath(p)) for i, p in items]
    todo_ids = set(store.missing([i for i, _ in items]).tolist())
    todo = [item for item in items if item[0] in todo_ids]
    if store.dim is not None and todo and store.dim != dim:
        raise ModelError(f"store {store.directory} holds {store.dim}-dim vectors; the model makes {dim}")
    if not todo:
        return EmbedReport(0, len(items), [], time.perf_counter() - started, 0.0)

    import ray.data

    if use_gpu is None:
        use_gpu = cluster_gpus() > 0 and model.checkpoint is not None
    if actors is None:
        actors = cluster_gpus() if use_gpu else cluster_cpus()
    if actors < 1:
        raise ModelError(f"actors: {actors!r} is invalid; expected at least 1")
    ray.data.DataContext.get_current().enable_progress_bars = progress
    rows = ray.data.from_items([{"id": item_id, "path": path} for item_id, path in todo],
                               override_num_blocks=_blocks(len(todo), batch_size, actors))
    vectors = rows.map_batches(EmbedActor, fn_constructor_kwargs={"model": model, "use_gpu": use_gpu},
                               batch_size=batch_size, batch_format="numpy",
                               compute=ray.data.ActorPoolStrategy(size=actors),
                               num_cpus=0 if use_gpu else 1, num_gpus=1 if use_gpu else 0)
    failed: list[tuple[int, str, str]] = []
    paths = dict(todo)
    pending = PendingRows(store)

    for batch in vectors.iter_batches(batch_size=None, batch_format="numpy"):
        errors = np.asarray(batch["error"], dtype=object)
        ok = errors == ""
        ids = np.asarray(batch["id"], dtype=np.int64)
        failed.extend((int(i), paths[int(i)], str(reason)) for i, reason in zip(ids[~ok], errors[~ok]))
        if ok.any():
            pending.add(ids[ok], np.asarray(batch["vector"], np.float32)[ok])
        if pending.rows >= flush_rows:
            pending.flush()
    pending.flush()
    embedded = pending.added
    seconds = time.perf_counter() - started
    return EmbedReport(embedded, len(items) - len(todo), failed, seconds, embedded / seconds if seconds else 0.0)


def _blocks(rows: int, batch_size: int, actors: int) -> int:
    """Input blocks: at least one per actor (else some idle), a few per actor at most, never more than rows."""
    return max(1, min(rows, max(actors, min(rows // batch_size + 1, 4 * actors))))
