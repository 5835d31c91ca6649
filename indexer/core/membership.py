"""Which ids an index holds (for updates and consistency checks); numpy + FAISS only."""

from __future__ import annotations

from typing import Any

import numpy as np


def indexed_ids(index: Any) -> np.ndarray:
    """Sorted (n,) int64 ids stored in ``index`` (an IDMap, or an IVF index possibly under a transform)."""
    import faiss

    from indexer.core.factory import find_ivf
    if getattr(type(index), "segmented", False):  # a SegmentedIndex (indexer.core.segments)
        return index.ids()
    if isinstance(index, (faiss.IndexIDMap, faiss.IndexIDMap2)):
        return np.sort(faiss.vector_to_array(index.id_map).astype(np.int64))
    ivf = find_ivf(index)
    if ivf is None:
        raise TypeError(f"cannot list the ids of a {type(index).__name__}")
    invlists = ivf.invlists
    parts = []
    for list_no in range(ivf.nlist):
        size = invlists.list_size(list_no)
        if size:
            parts.append(faiss.rev_swig_ptr(invlists.get_ids(list_no), size).copy())
    return np.sort(np.concatenate(parts).astype(np.int64)) if parts else np.empty(0, dtype=np.int64)
