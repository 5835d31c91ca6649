"""Query-time embedding with onnxruntime. Imports no torch: the query path stays light."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from models.errors import CheckpointError
from models.preprocess import PreprocessSpec, decode_for_model, load_for_model, preprocess


class OnnxEmbedder:
    """Embeds images with an exported model: the same :func:`preprocess` as catalog embedding."""

    def __init__(self, onnx_path: str | os.PathLike[str], spec: PreprocessSpec, *, threads: int = 1,
                 batch_size: int = 64) -> None:
        import onnxruntime as ort

        path = Path(onnx_path)
        if not path.is_file():
            raise CheckpointError(f"ONNX model {str(path)!r} not found")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
            raise CheckpointError(f"ONNX model {str(path)!r} is unreadable ({exc.__class__.__name__})") from None
        self.spec = spec
        self.batch_size = batch_size
        self._input = self._session.get_inputs()[0].name
        self.dim = int(self._session.get_outputs()[0].shape[-1])

    def load(self, path: str | os.PathLike[str]):
        """``path`` decoded for this model by the catalogue's own loader (:func:`models.preprocess.load_for_model`)."""
        return load_for_model(path, self.spec)

    def load_bytes(self, data: bytes, name: str):
        """Encoded image bytes decoded exactly as :meth:`load` decodes a file (ImageError)."""
        return decode_for_model(data, name, self.spec)

    def embed_arrays(self, batch: np.ndarray) -> np.ndarray:
        """(n, 3, S, S) float32 preprocessed images → (n, D) float32, L2-normalised; with the spec's test-time
        flip, each chunk and its mirrors go through the network in one run (:meth:`PreprocessSpec.views`)."""
        if len(batch) == 0:
            return np.zeros((0, self.dim), np.float32)
        outputs = [self.spec.merge(self._run(self.spec.views(np.asarray(batch[i:i + self.batch_size], np.float32))))
                   for i in range(0, len(batch), self.batch_size)]
        return np.concatenate(outputs).astype(np.float32, copy=False)

    def _run(self, batch: np.ndarray) -> np.ndarray:
        return self._session.run(None, {self._input: np.ascontiguousarray(batch, np.float32)})[0]

    def embed_images(self, images: Sequence) -> np.ndarray:
        """List of PIL RGB images → (n, D) float32, L2-normalised."""
        return self.embed_arrays(_stack([preprocess(img, self.spec) for img in images], self.spec))


def _stack(arrays: list[np.ndarray], spec: PreprocessSpec) -> np.ndarray:
    if not arrays:
        return np.zeros((0, 3, spec.image_size, spec.image_size), np.float32)
    return np.stack(arrays)
