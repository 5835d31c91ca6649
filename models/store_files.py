"""The embedding store's part files: each written in full and fsynced before the manifest names it, read back
whole or as a memory map, and the id facts the manifest records about each (numpy only)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from models.errors import ModelError


def write_array(path: Path, array: np.ndarray) -> None:
    """``array`` as the .npy file ``path``: a new name the manifest does not know yet, written and fsynced in
    place, then named by the manifest."""
    with open(path, "wb") as handle:
        np.save(handle, array)
        handle.flush()
        os.fsync(handle.fileno())


def write_rows(path: Path, rows: int, dim: int, blocks: Iterable[np.ndarray]) -> None:
    """A (rows, dim) float32 .npy file ``path`` filled from ``blocks`` in order, through a memory map (the rows
    never all sit in the process's memory at once), then fsynced."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, dim))
    row = 0
    for block in blocks:
        out[row:row + len(block)] = block
        row += len(block)
    out.flush()
    del out
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def read_array(path: Path, mmap: bool) -> np.ndarray:
    """The .npy file ``path``, whole or mapped; ModelError naming the file when it cannot be read."""
    try:
        return np.load(path, mmap_mode="r" if mmap else None)
    except (OSError, ValueError) as exc:
        raise ModelError(f"embedding store part {path} is unreadable ({exc})") from None


def span_of(ids: np.ndarray) -> list:
    """[lowest, highest, sorted] of a part's ids (an empty part: a range no id falls in)."""
    if not len(ids):
        return [0, -1, True]
    ordered = bool(len(ids) < 2 or (np.diff(ids) > 0).all())
    return [int(ids[0] if ordered else ids.min()), int(ids[-1] if ordered else ids.max()), ordered]


def in_sorted(sorted_ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Which of ``values`` are in the ascending ``sorted_ids``, by binary search (no sort of either side)."""
    if not len(sorted_ids):
        return np.zeros(len(values), bool)
    return sorted_ids[np.minimum(np.searchsorted(sorted_ids, values), len(sorted_ids) - 1)] == values
