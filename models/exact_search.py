"""Exact inner-product search as one matrix product on a torch device (the GPU path of exact search)."""

from __future__ import annotations

import numpy as np


def torch_exact_search(base: np.ndarray, queries: np.ndarray, k: int, device: str = "cuda") -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-k as one matrix product on a torch device.

    base (n, d) float32, queries (q, d) float32 → ((q, k) float32 scores, (q, k) int64 row numbers).
    """
    import torch

    xb = torch.as_tensor(np.ascontiguousarray(base, dtype=np.float32), device=device)
    xq = torch.as_tensor(np.ascontiguousarray(queries, dtype=np.float32), device=device)
    return torch_topk(xb, xq, k)


def torch_topk(base, queries, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k inner products of (q, d) query tensors against (n, d) base tensors on their device, as CPU arrays."""
    import torch

    scores, rows = torch.topk(queries @ base.T, min(k, base.shape[0]), dim=1)
    return scores.cpu().numpy(), rows.cpu().numpy().astype(np.int64)
