"""Export an embedding model to ONNX with a dynamic batch axis, checked once with onnxruntime."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from indexer.core.files import atomic_path
from models.errors import CheckpointError
from models.preprocess import PreprocessSpec

INPUT_NAME = "images"
OUTPUT_NAME = "embeddings"


def export_onnx(model, spec: PreprocessSpec, path: str | os.PathLike[str], *, atol: float = 1e-4) -> Path:
    """Write ``model`` ((B, 3, S, S) float32 → (B, D) float32) to ``path``; verify against torch on 2 images."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval().to("cpu", memory_format=torch.contiguous_format)
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(2, 3, spec.image_size, spec.image_size, generator=generator)
    with atomic_path(path) as tmp:  # a disagreeing export raises inside: the temporary file goes, path stays
        with torch.no_grad():
            expected = model(sample).numpy()
            torch.onnx.export(
                model,
                (sample,),
                str(tmp),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
                opset_version=17,
                dynamo=False,
            )
        got = _run_onnx(tmp, sample.numpy())
        if got.shape != expected.shape or not np.allclose(got, expected, atol=atol):
            diff = float(np.abs(got - expected).max()) if got.shape == expected.shape else float("nan")
            raise CheckpointError(f"ONNX export of {path.name} disagrees with torch (max |diff| {diff:.2e} > {atol})")
    return path


def _run_onnx(path: Path, batch: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run([OUTPUT_NAME], {INPUT_NAME: batch.astype(np.float32)})[0]
