"""Exact inner-product search on a torch device: fp16 scan, fp32 re-score, a certificate, an fp32 fallback.

The ``gpu-flat`` index kind's engine. The vectors sit on the device twice: as fp16, scanned tile by tile for
each query batch (half the bytes of an fp32 scan), and as fp32, from which the fp16 candidates are re-scored.
At 10M x 128 that is 2.6 GB + 5.1 GB of device memory (the fp32 copy stays on the device so re-scoring a
1,024-query batch is a gather there, not 43k random rows read on the host).

Results equal fp32 exact search, not approximately: every fp16 score is within ``eps`` of the exact one
(bound below), so a row left out of the candidates scores at most ``cut + eps`` exactly, where ``cut`` is the
lowest fp16 score kept. When the k-th re-scored candidate reaches that, the top-k is certified; a query whose
top-k is not certified is searched again by an fp32 scan. Scores are inner products (cosine on the
L2-normalised vectors every index kind holds); ids are the caller's int64 ids, -1 past the last vector.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from models.errors import ConfigError

FP16_UNIT = 2.0 ** -11  # unit roundoff of fp16 (10-bit mantissa)
# |fp16 score - exact| <= EPS_FACTOR * FP16_UNIT * |q| * max|x|: each input rounded (2u), the fp16 output
# rounded (u), fp32 accumulation (d * 2^-24, far below u at d <= 2048); doubled for split-K reductions.
EPS_FACTOR = 8.0
MAX_SCORE_ELEMENTS = 1 << 28  # queries x tile rows per product: 512 MiB of fp16 scores at most
QUERY_BATCH = 4096  # queries per pass: bounds the candidates kept per tile (tiles x k' x queries)
PAD_SCORE = float(-np.finfo(np.float32).max)  # FAISS's score for a missing result under inner product


def candidate_count(k: int) -> int:
    """Candidates kept per query from the fp16 scan: k plus a margin for fp16's rounding."""
    return max(2 * k, k + 32)


class GpuFlatSearcher:
    """Exact top-k inner product over (n, d) vectors held on a torch device.

    vectors: (n, d) float32; ids: (n,) int64 (default: row numbers); device: "cuda", "cuda:1" or "cpu"
    (the CPU runs the same code paths, for tests); tile_rows: rows per matrix product (None: as many as keep
    a product at MAX_SCORE_ELEMENTS scores, so one query scans 10M rows in one product, 1,024 in tiles of 256k).
    """

    def __init__(self, vectors: np.ndarray, ids: np.ndarray | None = None, *, device: str = "cuda",
                 tile_rows: int | None = None) -> None:
        import torch

        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2:
            raise ConfigError(f"gpu-flat: vectors must be (n, d); got shape {vectors.shape}")
        if ids is None:
            ids = np.arange(len(vectors), dtype=np.int64)
        ids = np.asarray(ids, dtype=np.int64)
        if ids.shape != (len(vectors),):
            raise ConfigError(f"gpu-flat: ids must be ({len(vectors)},); got shape {ids.shape}")
        if tile_rows is not None and (isinstance(tile_rows, bool) or int(tile_rows) < 1):
            raise ConfigError(f"gpu-flat: tile_rows must be an integer >= 1; got {tile_rows!r}")
        if str(device).startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"gpu-flat: device {device!r} is invalid; no CUDA device is available")
        self.device = torch.device(device)
        self.ntotal, self.d = vectors.shape
        self.tile_rows = None if tile_rows is None else int(tile_rows)
        self.ids = ids
        self._ids = torch.as_tensor(ids, device=self.device)
        self._fp32 = torch.as_tensor(vectors, device=self.device)
        self._fp16 = self._fp32.half()
        self._max_norm = float(torch.linalg.vector_norm(self._fp32, dim=1).max()) if self.ntotal else 0.0
        self.fallbacks = 0  # queries whose top-k was not certified and took the fp32 scan

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """queries (q, d) float32 → ((q, k) float32 scores, best first; (q, k) int64 ids, -1 past ntotal)."""
        import torch

        queries = np.ascontiguousarray(queries, dtype=np.float32)
        if queries.ndim != 2 or queries.shape[1] != self.d:
            raise ConfigError(f"gpu-flat: queries must be (q, {self.d}); got shape {queries.shape}")
        if isinstance(k, bool) or int(k) < 1:
            raise ConfigError(f"gpu-flat: k must be an integer >= 1; got {k!r}")
        k = int(k)
        scores = np.full((len(queries), k), PAD_SCORE, dtype=np.float32)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        found = min(k, self.ntotal)
        if found == 0 or len(queries) == 0:
            return scores, ids
        step = max(1, min(QUERY_BATCH, MAX_SCORE_ELEMENTS // min(self.tile_rows or 1, self.ntotal)))
        with torch.inference_mode():
            for start in range(0, len(queries), step):
                xq = torch.as_tensor(queries[start:start + step], device=self.device)
                top_scores, top_rows = self._search_batch(xq, found)
                scores[start:start + len(xq), :found] = top_scores.cpu().numpy()
                ids[start:start + len(xq), :found] = self._ids[top_rows].cpu().numpy()
        return scores, ids

    def _search_batch(self, xq: Any, k: int) -> tuple[Any, Any]:
        """(q, d) fp32 device queries, k <= ntotal → (q, k) fp32 exact scores and (q, k) row numbers."""
        import torch

        tile = self.tile_rows or max(1, MAX_SCORE_ELEMENTS // len(xq))
        width = min(candidate_count(k), self.ntotal)
        fp16_scores, rows = self._scan(xq.half(), self._fp16, width, tile)
        exact = torch.einsum("qcd,qd->qc", self._fp32[rows], xq)  # re-scored in fp32
        top_scores, at = torch.topk(exact, k, dim=1)
        top_rows = torch.gather(rows, 1, at)
        if width < self.ntotal:  # rows were left out: certify that none of them belongs in the top k
            eps = EPS_FACTOR * FP16_UNIT * torch.linalg.vector_norm(xq, dim=1) * self._max_norm
            cut = fp16_scores[:, -1].float()
            uncertain = torch.nonzero(top_scores[:, -1] < cut + eps).flatten()
            if len(uncertain):
                self.fallbacks += len(uncertain)
                top_scores[uncertain], top_rows[uncertain] = self._scan(xq[uncertain], self._fp32, k, tile)
        return top_scores, top_rows

    def _scan(self, xq: Any, base: Any, k: int, tile_rows: int) -> tuple[Any, Any]:
        """Top-k of ``xq @ base.T`` tile by tile, merged: (q, k) scores (base's dtype) and int64 row numbers."""
        import torch

        best_scores, best_rows = [], []
        for start in range(0, self.ntotal, tile_rows):
            tile = base[start:start + tile_rows]
            tile_scores, at = torch.topk(xq @ tile.T, min(k, len(tile)), dim=1)
            best_scores.append(tile_scores)
            best_rows.append(at + start)
        merged_scores, at = torch.topk(torch.cat(best_scores, dim=1), k, dim=1)
        return merged_scores, torch.gather(torch.cat(best_rows, dim=1), 1, at)
