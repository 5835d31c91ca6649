"""Query-time embedders, one per kind of model, behind one interface; none imports torch.

A registered model's params say its kind (``"embedder"``): ``"onnx"`` (the learned networks,
exported at training time; the default for models registered before kinds existed),
``"sift-vlad"`` (:mod:`models.sift_vlad`) or ``"external"`` (vectors imported from a file, made
elsewhere: no embedder exists, so its ``load``/``embed_images`` refuse with a ModelError that says
how to query it). Each embedder has ``dim`` and ``embed_images(list of PIL images) -> (n, dim)
float32``, L2-normalised.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from models.errors import CheckpointError, ImageError, ModelError

ONNX = "onnx"
SIFT_VLAD = "sift-vlad"
EXTERNAL = "external"
EMBEDDER_KINDS = (ONNX, SIFT_VLAD, EXTERNAL)


class Embedder(Protocol):
    dim: int

    def load(self, path: str | os.PathLike[str]): ...  # the image, decoded no larger than this embedder needs

    def load_bytes(self, data: bytes, name: str): ...  # the same for encoded bytes (an upload)

    def embed_images(self, images: Sequence) -> np.ndarray: ...


def embedder_kind(params: dict) -> str:
    """The embedder kind a model's registered params name (``onnx`` when they name none)."""
    kind = params.get("embedder", ONNX)
    if kind not in EMBEDDER_KINDS:
        raise ModelError(f"unknown embedder kind {kind!r}; expected one of {', '.join(EMBEDDER_KINDS)}")
    return kind


def embedder_file(params: dict) -> str:
    """The stored (workspace-relative) file the model's embedder loads (ModelError for an external model: none)."""
    kind = embedder_kind(params)
    if kind == EXTERNAL:
        raise ModelError(external_message(params))
    return params["sift_vlad"] if kind == SIFT_VLAD else params["onnx"]


def external_message(params: dict) -> str:
    """Why an external model cannot embed an image, and how to query it instead."""
    name = params.get("name", "?")
    return (f"model {name!r} takes vectors, not images: query it with a vector (POST /query with JSON, or the "
            "Python API's hits_for_vectors)")


def open_embedder(params: dict, resolve: Callable[[str], Path], *, threads: int = 1) -> Embedder:
    """The embedder of a model with registered ``params``; ``resolve`` maps stored paths to files.

    An external model (imported vectors) gets an embedder that has its ``dim`` and refuses every image with a
    ModelError saying to query with a vector, so a query engine over it still opens and answers vectors and ids.
    """
    if embedder_kind(params) == EXTERNAL:
        return _ExternalEmbedder(params)
    path = resolve(embedder_file(params))
    if not Path(path).is_file():
        raise CheckpointError(f"model file {str(path)!r} not found; train the model again")
    if embedder_kind(params) == SIFT_VLAD:
        from models.sift_vlad import SiftVladModel

        return _SiftVladEmbedder(SiftVladModel.load(path))
    from models.onnx_embedder import OnnxEmbedder
    from models.preprocess import PreprocessSpec

    return OnnxEmbedder(path, PreprocessSpec.from_dict(params["preprocess"]), threads=threads)


class _SiftVladEmbedder:
    def __init__(self, model) -> None:
        self.model = model
        self.dim = model.dim

    def load(self, path: str | os.PathLike[str]):
        from models.sift_vlad import open_image

        return open_image(path, self.model.spec)

    def load_bytes(self, data: bytes, name: str):
        from models.sift_vlad import decode_image

        return decode_image(data, name, self.model.spec)

    def embed_images(self, images: Sequence) -> np.ndarray:
        return self.model.embed_images(images)


class _ExternalEmbedder:
    """Imported vectors have no embedder: every image is refused with the one message."""

    def __init__(self, params: dict) -> None:
        self.params = params
        self.dim = int(params["dim"])

    def load(self, path: str | os.PathLike[str]):
        raise ModelError(external_message(self.params))

    def load_bytes(self, data: bytes, name: str):
        raise ModelError(external_message(self.params))

    def embed_images(self, images: Sequence) -> np.ndarray:
        raise ModelError(external_message(self.params))


def embed_with(embedder: Embedder, items: Sequence[tuple[int, str]], store, *, batch_size: int = 64,
               progress: bool = True):
    """Embed the ``(id, path)`` items ``store`` lacks with a torch-free embedder, appending per batch.

    Returns :class:`models.embed.EmbedReport`; unreadable images go to ``failed``.
    """
    from tqdm import tqdm

    from models.embed import EmbedReport

    started = time.perf_counter()
    items = [(int(i), os.fspath(p)) for i, p in items]
    todo_ids = set(store.missing([i for i, _ in items]).tolist())
    todo = [item for item in items if item[0] in todo_ids]
    if store.dim is not None and todo and store.dim != embedder.dim:
        raise ModelError(f"store {store.directory} holds {store.dim}-dim vectors; the model makes {embedder.dim}")
    failed: list[tuple[int, str, str]] = []
    embedded = 0
    bar = tqdm(total=len(todo), desc="embed", unit="img", disable=not progress)
    for start in range(0, len(todo), batch_size):
        pictures, ids = [], []
        for item_id, path in todo[start : start + batch_size]:
            try:
                pictures.append(embedder.load(path))
                ids.append(item_id)
            except ImageError as exc:
                failed.append((item_id, path, str(exc)))
        if pictures:
            store.append(np.asarray(ids, dtype=np.int64), embedder.embed_images(pictures))
            embedded += len(ids)
        bar.update(min(batch_size, len(todo) - start))
    bar.close()
    seconds = time.perf_counter() - started
    return EmbedReport(embedded, len(items) - len(todo), failed, seconds, embedded / seconds if seconds else 0.0)
