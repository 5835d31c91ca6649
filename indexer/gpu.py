"""Optional GPU execution of FAISS indexes (FAISS's GPU build) and of exact search (torch matmul).

CPU is the default and the fully tested path. ``use_gpu=None`` means "auto": the GPU when
FAISS was built with GPU support and a GPU is present, else the CPU.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from indexer.errors import InputError


def faiss_gpu_count() -> int:
    """Number of GPUs FAISS can use (0 with the CPU-only build)."""
    import faiss

    if not hasattr(faiss, "StandardGpuResources"):
        return 0
    return int(faiss.get_num_gpus())


def resolve_gpu(use_gpu: bool | None) -> bool:
    """True when work should go to the GPU; ``use_gpu=True`` without a usable GPU is an error."""
    available = faiss_gpu_count() > 0
    if use_gpu and not available:
        raise InputError("--gpu: FAISS has no usable GPU here (install faiss-gpu and check the CUDA driver)")
    return available if use_gpu is None else bool(use_gpu)


def to_gpu(index: Any, device: int = 0) -> Any:
    """A GPU copy of a CPU index (kinds FAISS cannot move raise InputError)."""
    import faiss

    try:
        return faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), device, index)
    except RuntimeError as exc:
        raise InputError(f"this index ({type(index).__name__}) cannot run on the GPU: {exc}") from exc


def to_cpu(index: Any) -> Any:
    """A CPU copy of a GPU index (for saving); CPU indexes are returned as they are."""
    import faiss

    if hasattr(faiss, "GpuIndex") and isinstance(index, faiss.GpuIndex):
        return faiss.index_gpu_to_cpu(index)
    return index


def torch_exact_search(base: np.ndarray, queries: np.ndarray, k: int, device: str = "cuda") -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-k as one matrix product on a torch device.

    base (n, d) float32, queries (q, d) float32 → ((q, k) float32 scores, (q, k) int64 row numbers).
    """
    import torch

    xb = torch.as_tensor(np.ascontiguousarray(base, dtype=np.float32), device=device)
    xq = torch.as_tensor(np.ascontiguousarray(queries, dtype=np.float32), device=device)
    scores, rows = torch.topk(xq @ xb.T, min(k, xb.shape[0]), dim=1)
    return scores.cpu().numpy(), rows.cpu().numpy().astype(np.int64)
