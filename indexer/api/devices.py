"""Index kinds that search on a torch device (``gpu-flat``): the one refusal where the device is missing, and the
device copy of a held index's vectors.

torch is imported only here, and only when such a kind is used: ``--help`` and the CPU kinds never load it.
``INDEXER_GPU_FLAT_DEVICE=cpu`` runs the gpu-flat code (fp16 scan, fp32 re-score) with torch on the CPU: for
tests and for checking a machine without a GPU, never for speed. It is read here, in the API, as the engine
reads ``INDEXER_EXACT_MAX``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from indexer.core.errors import InputError
from indexer.core.kinds import KINDS

GPU_FLAT_DEVICE_ENV = "INDEXER_GPU_FLAT_DEVICE"  # "cpu" forces the torch CPU path (tests); default: the kind's


def kind_device(kind: str) -> str | None:
    """The torch device ``kind`` searches on (None: a FAISS CPU kind), after the environment's override."""
    entry = KINDS.get(kind)
    if entry is None or entry.device is None:
        return None
    return os.environ.get(GPU_FLAT_DEVICE_ENV) or entry.device


def device_refusal(kind: str) -> str | None:
    """Why ``kind`` cannot be used on this machine, in one line (None: it can)."""
    device = kind_device(kind)
    if device is None or not device.startswith("cuda"):
        return None
    from models.device import cuda_available

    if cuda_available():
        return None
    return (f"index kind {kind!r} needs a CUDA GPU; none is available (torch.cuda.is_available() is False); "
            f"use 'flat' for the same results on the CPU")


def check_kind_device(kind: str) -> None:
    """InputError (one line) when ``kind`` needs a device this machine lacks."""
    refusal = device_refusal(kind)
    if refusal is not None:
        raise InputError(refusal)


@dataclass(frozen=True)
class DeviceCopy:
    """A held index's sealed vectors on a torch device (:class:`models.gpu_flat.GpuFlatSearcher`), valid for the
    ``sealed`` FAISS index it was made from while no change is pending on top of it."""

    sealed: Any
    searcher: Any

    def serves(self, index: Any) -> bool:
        """True when ``index`` (a SegmentedIndex) is exactly the sealed vectors this copy holds."""
        return getattr(index, "sealed", None) is self.sealed and not getattr(index, "pending", 1)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(q, d) float32 → ((q, k) float32 scores, (q, k) int64 catalog ids, -1 past the last vector)."""
        return self.searcher.search(queries, k)


def device_copy(kind: str, sealed: Any) -> DeviceCopy | None:
    """The device copy of ``sealed`` (an IDMap-wrapped flat index) for a device kind; None for a CPU kind.
    InputError when the kind's device is missing."""
    device = kind_device(kind)
    if device is None:
        return None
    check_kind_device(kind)
    import faiss

    from indexer.core.build import stored_vectors
    from models.gpu_flat import GpuFlatSearcher

    if sealed.metric_type != faiss.METRIC_INNER_PRODUCT:
        raise InputError(f"index kind {kind!r} searches by inner product; this index uses another metric")
    ids, vectors = stored_vectors(sealed)
    return DeviceCopy(sealed, GpuFlatSearcher(vectors, ids, device=device))
