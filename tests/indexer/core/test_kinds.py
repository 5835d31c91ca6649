"""The one table of index kinds agrees with the indexes FAISS builds from it."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.core.build import build_index, remove_ids
from indexer.core.errors import IndexerError, InputError
from indexer.core.factory import IndexParams, factory_string
from indexer.core.kinds import BENCH_KINDS, INDEX_KINDS, KINDS, index_kind
from indexer.core.settings import knob_of, search_parameters


@pytest.mark.parametrize("kind", [k for k in INDEX_KINDS if k != "raw"])
def test_each_kind_builds_the_factory_string_knob_and_removal_its_row_says(kind, clustered) -> None:
    base, ids, _ = clustered
    params = IndexParams(kind, nlist=16, pca_dim=8, hnsw_m=8)
    index, info = build_index(params, base, ids)
    assert info.factory == factory_string(params, len(base), base.shape[1])
    assert knob_of(index) == KINDS[kind].knob
    if KINDS[kind].removes:
        assert remove_ids(index, ids[:3]) == 3 and index.ntotal == len(ids) - 3
    else:
        with pytest.raises(IndexerError, match="cannot remove"):
            remove_ids(index, ids[:3])


def test_raw_kind_takes_its_knob_from_the_factory_string(clustered) -> None:
    base, ids, _ = clustered
    index, info = build_index(IndexParams("raw", factory="IVF8,SQ8"), base, ids)
    assert info.factory == "IVF8,SQ8" and knob_of(index) == "nprobe" and KINDS["raw"].tuned


def test_unknown_kinds_and_settings_a_kind_lacks_are_one_line_errors(clustered) -> None:
    base, ids, _ = clustered
    with pytest.raises(InputError, match="unknown index kind 'annoy'"):
        index_kind("annoy")
    assert "raw" not in BENCH_KINDS and set(BENCH_KINDS) < set(INDEX_KINDS)
    flat, _ = build_index(IndexParams("flat"), base[:100], ids[:100])
    with pytest.raises(InputError, match="nprobe applies to IVF"):
        search_parameters(flat, nprobe=2)
    ivf, _ = build_index(IndexParams("ivf", nlist=4), base[:400], ids[:400])
    with pytest.raises(InputError, match="efSearch applies to HNSW"):
        search_parameters(ivf, efSearch=16)
    with pytest.raises(InputError, match=r"nprobe must be an integer in 1\.\.4"):
        search_parameters(ivf, nprobe=5)


def test_sidecars_written_before_efsearch_was_the_one_name_still_load() -> None:
    params = IndexParams.from_dict({"kind": "hnsw", "ef_search": 48, "hnsw_m": 16})
    assert params.efSearch == 48 and params.to_dict()["efSearch"] == 48
    with pytest.raises(InputError, match="unknown index parameter"):
        IndexParams.from_dict({"kind": "flat", "bogus": 1})
    assert np.isfinite(params.seed)
