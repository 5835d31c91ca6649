"""Search settings: the knob an index has, its stored default, and per-call FAISS SearchParameters.

Per-call settings travel as FAISS ``SearchParametersIVF`` / ``SearchParametersHNSW`` objects
(wrapped for a PCA pre-transform), never by setting and restoring a field on a shared index,
so one loaded index can be searched from many threads at once with different settings.
The stored default (the tuned value saved in the sidecar) is set once, before sharing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from indexer.core.coarse import quantizer_ef, quantizer_hnsw
from indexer.core.errors import InputError
from indexer.core.factory import find_hnsw, find_ivf
from indexer.core.kinds import EF_SEARCH, NPROBE


@dataclass(frozen=True)
class _Shape:
    """What a search's parameters depend on in an index's structure (fixed for the index's life): its IVF
    part, its HNSW part, the IVF's graph quantizer (each downcast, or None), whether an IDMap wraps it and
    whether a pre-transform sits inside that."""

    ivf: Any
    hnsw: Any
    coarse: Any
    mapped: bool
    transformed: bool


def _shape(index: Any) -> _Shape:
    """``index``'s :class:`_Shape`, worked out once and kept on the index's Python object: a served query
    would otherwise walk the wrappers with seven downcasts per call (~30 us, holding the GIL)."""
    import faiss

    shape = getattr(index, "_indexer_shape", None)
    if isinstance(shape, _Shape):
        return shape
    ivf = find_ivf(index)
    mapped = isinstance(faiss.downcast_index(index), (faiss.IndexIDMap, faiss.IndexIDMap2))
    shape = _Shape(ivf=ivf, hnsw=find_hnsw(index), coarse=None if ivf is None else quantizer_hnsw(ivf),
                   mapped=mapped, transformed=isinstance(_unwrap_idmap(index), faiss.IndexPreTransform))
    try:  # past FAISS's guard against misspelt index fields: this one is ours
        object.__setattr__(index, "_indexer_shape", shape)
    except (AttributeError, TypeError):  # an object that takes no attributes: worked out on every call
        pass
    return shape


def knob_of(index: Any) -> str | None:
    """``"nprobe"`` for an index with an IVF part, ``"efSearch"`` for HNSW, None for exact kinds."""
    shape = _shape(index)
    if shape.ivf is not None:
        return NPROBE
    if shape.hnsw is not None:
        return EF_SEARCH
    return None


def _checked(index: Any, nprobe: Any, efSearch: Any) -> tuple[int | None, int | None]:  # noqa: N803
    shape = _shape(index)
    if nprobe is not None:
        ivf = shape.ivf
        if ivf is None:
            raise InputError(f"nprobe applies to IVF indexes; this index has no IVF part (got nprobe={nprobe})")
        if isinstance(nprobe, bool) or not isinstance(nprobe, (int, np.integer)) or not 1 <= nprobe <= ivf.nlist:
            raise InputError(f"nprobe must be an integer in 1..{ivf.nlist} (nlist); got {nprobe!r}")
        nprobe = int(nprobe)
    if efSearch is not None:
        if shape.hnsw is None:
            raise InputError(f"efSearch applies to HNSW indexes; this index has no HNSW part (got {efSearch})")
        if isinstance(efSearch, bool) or not isinstance(efSearch, (int, np.integer)) or efSearch < 1:
            raise InputError(f"efSearch must be a positive integer; got {efSearch!r}")
        efSearch = int(efSearch)
    return nprobe, efSearch


def search_parameters(index: Any, nprobe: int | None = None, efSearch: int | None = None,  # noqa: N803
                      selector: Any | None = None) -> Any | None:
    """A FAISS SearchParameters object for one call on ``index``, or None when nothing is asked.

    ``selector``: a FAISS ``IDSelector`` the search keeps to (deletion marks, filters); it is set on the
    innermost parameters, with the index's stored nprobe / efSearch where none is given (a FAISS parameters
    object would otherwise bring its own default). Raises InputError for a setting the index lacks or an
    nprobe above nlist. Make one per call: FAISS's IDMap swaps the selector on the object during a search.
    """
    import faiss

    nprobe, efSearch = _checked(index, nprobe, efSearch)
    if nprobe is None and efSearch is None and selector is None:
        return None
    shape = _shape(index)
    if selector is not None and nprobe is None and efSearch is None:
        if shape.ivf is not None:
            nprobe = int(shape.ivf.nprobe)
        elif shape.hnsw is not None:
            efSearch = int(shape.hnsw.hnsw.efSearch)
    if nprobe is not None:
        inner = faiss.SearchParametersIVF(nprobe=nprobe)
        if shape.coarse is not None:  # a graph over the centroids: its list follows nprobe
            coarse = faiss.SearchParametersHNSW(efSearch=quantizer_ef(nprobe))
            inner.quantizer_params = coarse
            inner.referenced_objects = [coarse]
    elif efSearch is not None:
        inner = faiss.SearchParametersHNSW(efSearch=efSearch)
    else:
        inner = faiss.SearchParameters()
    mapped = shape.mapped  # an IDMap translates a selector given at its level
    if selector is not None and not mapped:
        inner.sel = selector
    outer = inner
    transformed = shape.transformed
    if selector is not None and mapped and transformed:
        if nprobe is not None or efSearch is not None:  # FAISS would hand the inner parameters no selector
            raise InputError("this index (an IDMap over a transform over an IVF or HNSW index) cannot take a "
                             "selector; rebuild it as one of the listed kinds")
        transformed = False  # a transform passes plain parameters (and the IDMap's selector) through
    if transformed:
        outer = faiss.SearchParametersPreTransform()
        outer.index_params = inner
        outer.referenced_objects = [inner]  # FAISS holds a raw pointer: keep the Python object alive
    if selector is not None and mapped:
        outer.sel = selector
    return outer


def _unwrap_idmap(index: Any) -> Any:
    import faiss

    current = faiss.downcast_index(index)
    while isinstance(current, (faiss.IndexIDMap, faiss.IndexIDMap2)):
        current = faiss.downcast_index(current.index)
    return current


def set_default_settings(index: Any, nprobe: int | None = None, efSearch: int | None = None) -> None:  # noqa: N803
    """Store the index's default search setting (saved with it); ``None`` leaves a setting alone.

    For an index nobody else is searching yet (just built or just loaded): per-call settings
    go through :func:`search_parameters` instead.
    """
    nprobe, efSearch = _checked(index, nprobe, efSearch)
    if nprobe is not None:
        ivf = find_ivf(index)
        ivf.nprobe = nprobe
        graph = quantizer_hnsw(ivf)
        if graph is not None:
            graph.hnsw.efSearch = quantizer_ef(nprobe)
    if efSearch is not None:
        find_hnsw(index).hnsw.efSearch = efSearch


def default_settings(index: Any) -> dict[str, int]:
    """The index's stored default search settings: ``{"nprobe": …}`` and/or ``{"efSearch": …}``."""
    out: dict[str, int] = {}
    ivf = find_ivf(index)
    if ivf is not None:
        out[NPROBE] = int(ivf.nprobe)
    hnsw = find_hnsw(index)
    if hnsw is not None:
        out[EF_SEARCH] = int(hnsw.hnsw.efSearch)
    return out
