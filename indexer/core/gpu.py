"""Optional GPU execution of FAISS indexes (FAISS's GPU build); torch exact search lives in :mod:`models.exact_search`.

CPU is the default and the fully tested path. ``use_gpu=None`` means "auto": the GPU when
FAISS was built with GPU support and a GPU is present, else the CPU.
"""

from __future__ import annotations

from typing import Any

from indexer.core.errors import InputError

_RESOURCES: Any = None  # one StandardGpuResources per process, made on first use


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

    global _RESOURCES
    if _RESOURCES is None:  # a GPU index keeps using its resources: they must outlive this call
        _RESOURCES = faiss.StandardGpuResources()
    try:
        return faiss.index_cpu_to_gpu(_RESOURCES, device, index)
    except RuntimeError as exc:
        raise InputError(f"this index ({type(index).__name__}) cannot run on the GPU: {exc}") from exc


def to_cpu(index: Any) -> Any:
    """A CPU copy of a GPU index (for saving); CPU indexes are returned as they are."""
    import faiss

    if hasattr(faiss, "GpuIndex") and isinstance(index, faiss.GpuIndex):
        return faiss.index_gpu_to_cpu(index)
    return index
