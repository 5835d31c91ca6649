from __future__ import annotations

import faiss
import numpy as np
import pytest

from indexer.core.build import add_vectors, build_index, remove_ids
from indexer.core.errors import DimensionMismatchError, IndexerError, InputError
from indexer.core.factory import (
    IndexParams,
    default_nlist,
    factory_string,
    find_hnsw,
    find_ivf,
)
from indexer.core.kinds import DEFAULT_EF_CONSTRUCTION, DEFAULT_HNSW_M
from indexer.core.search import search
from indexer.core.settings import default_settings, set_default_settings


def _centroids(index) -> np.ndarray:
    # An explicit numpy output: once faiss.contrib.torch_utils is imported (as
    # pytorch-metric-learning does), reconstruct_n() without one returns a torch tensor.
    ivf = find_ivf(index)
    out = np.empty((ivf.nlist, ivf.d), dtype=np.float32)
    ivf.quantizer.reconstruct_n(0, ivf.nlist, out)
    return out


def test_factory_strings_for_every_kind() -> None:
    n, d = 10_000, 64
    assert factory_string(IndexParams("flat"), n, d) == "Flat"
    assert factory_string(IndexParams("pca", pca_dim=16), n, d) == "PCA16,L2norm,Flat"
    assert factory_string(IndexParams("ivf"), n, d) == f"IVF{default_nlist(n)},Flat"
    assert factory_string(IndexParams("ivf", nlist=50), n, d) == "IVF50,Flat"
    assert factory_string(IndexParams("ivfpq", nlist=50), n, d) == "IVF50,PQ16x8"
    assert factory_string(IndexParams("hnsw", hnsw_m=16), n, d) == "HNSW16"
    assert factory_string(IndexParams("pca-ivf", nlist=50), n, d) == "PCA32,L2norm,IVF50,Flat"
    assert factory_string(IndexParams("raw", factory="IVF8,SQ8"), n, d) == "IVF8,SQ8"


def test_default_nlist_is_about_4_sqrt_n_capped_by_n_over_39() -> None:
    assert default_nlist(1_000_000) == 4000
    assert default_nlist(1000) == 1000 // 39
    assert default_nlist(10) == 1


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"kind": "annoy"}, "kind"),
        ({"kind": "ivf", "nlist": 0}, "nlist"),
        ({"kind": "ivf", "metric": "cos"}, "metric"),
        ({"kind": "raw"}, "factory"),
        ({"kind": "hnsw", "hnsw_m": 1}, "hnsw_m"),
        ({"kind": "hnsw", "efConstruction": 0}, "efConstruction"),
        ({"kind": "flat", "seed": -1}, "seed"),
    ],
)
def test_params_are_validated_on_creation(kwargs: dict, field: str) -> None:
    with pytest.raises(InputError, match=field):
        IndexParams(**kwargs)


def test_hnsw_graph_is_built_with_the_efconstruction_asked(clustered) -> None:
    base, ids = clustered[0][:300], np.arange(300, dtype=np.int64)
    for ef_construction in (16, 100):
        index, _ = build_index(IndexParams("hnsw", hnsw_m=8, efConstruction=ef_construction), base, ids)
        assert find_hnsw(index).hnsw.efConstruction == ef_construction
    assert IndexParams("hnsw").efConstruction == DEFAULT_EF_CONSTRUCTION


def test_sidecar_without_efconstruction_rebuilds_the_graph_it_was_built_with() -> None:
    saved = IndexParams("hnsw", efConstruction=100).to_dict()
    assert IndexParams.from_dict(saved).efConstruction == 100
    del saved["efConstruction"]  # written before the field existed: FAISS's default then, and ours
    assert IndexParams.from_dict(saved).efConstruction == faiss.IndexHNSWFlat(8, 4).hnsw.efConstruction == 40


def test_each_graph_kind_has_its_own_default_graph_and_an_old_sidecar_keeps_the_graph_it_had() -> None:
    fp16 = IndexParams("hnsw-fp16")
    assert (fp16.hnsw_m, fp16.efConstruction) == (16, 100) and factory_string(fp16, 10_000, 128) == "HNSW16_SQfp16"
    assert (IndexParams("hnsw").hnsw_m, IndexParams("hnsw").efConstruction) == (DEFAULT_HNSW_M, DEFAULT_EF_CONSTRUCTION)
    assert IndexParams("hnsw-fp16", hnsw_m=32, efConstruction=40).to_dict()["hnsw_m"] == 32  # asked: kept
    old = fp16.to_dict()
    del old["hnsw_m"], old["efConstruction"]  # a sidecar written when every graph was M 32, efConstruction 40
    assert (IndexParams.from_dict(old).hnsw_m, IndexParams.from_dict(old).efConstruction) == (32, 40)
    assert IndexParams.from_dict(fp16.to_dict()) == fp16


def test_params_are_frozen() -> None:
    with pytest.raises(AttributeError):
        IndexParams("flat").kind = "ivf"  # type: ignore[misc]


@pytest.mark.parametrize("kind", ["flat", "pca", "ivf", "hnsw", "pca-ivf"])
def test_ids_returned_are_the_ids_given(kind: str, clustered) -> None:
    base, ids, _ = clustered
    index, info = build_index(IndexParams(kind, nlist=16, pca_dim=8), base, ids)
    assert index.ntotal == len(ids)
    _, found = search(index, base[:20], 5)
    assert np.isin(found, ids).all()
    assert info.factory and info.n == len(ids) and info.d == base.shape[1]


def test_pca_reduces_dims_as_asked(clustered) -> None:
    base, ids, _ = clustered
    index, _ = build_index(IndexParams("pca", pca_dim=8), base, ids)
    pre = faiss.downcast_index(faiss.downcast_index(index).index)
    assert isinstance(pre, faiss.IndexPreTransform)
    assert pre.chain.at(0).d_out == 8 and pre.index.d == 8
    assert index.d == base.shape[1]  # queries still come in at full dims


def test_pca_dim_must_be_below_d() -> None:
    with pytest.raises(InputError, match="pca_dim"):
        factory_string(IndexParams("pca", pca_dim=64), 1000, 32)


def test_ivf_training_is_seeded(clustered) -> None:
    base, ids, _ = clustered

    def centroids(seed: int) -> np.ndarray:
        index, _ = build_index(IndexParams("ivf", nlist=16, seed=seed), base, ids)
        return _centroids(index)

    np.testing.assert_array_equal(centroids(3), centroids(3))
    assert not np.array_equal(centroids(3), centroids(4))


def test_add_vectors_does_not_retrain(clustered) -> None:
    base, ids, _ = clustered
    half = len(ids) // 2
    index, _ = build_index(IndexParams("ivf", nlist=16), base[:half], ids[:half])
    before = _centroids(index)
    add_vectors(index, base[half:], ids[half:])
    assert index.is_trained and index.ntotal == len(ids)
    np.testing.assert_array_equal(_centroids(index), before)
    _, found = search(index, base[-3:], 1, nprobe=16)
    np.testing.assert_array_equal(found[:, 0], ids[-3:])


@pytest.mark.parametrize("kind", ["flat", "ivf"])
def test_remove_ids_removes(kind: str, clustered) -> None:
    base, ids, _ = clustered
    index, _ = build_index(IndexParams(kind, nlist=16, nprobe=16), base, ids)
    assert remove_ids(index, np.array([ids[0], ids[1], 123456789])) == 2
    assert index.ntotal == len(ids) - 2
    _, found = search(index, base[:2], 5)
    assert not np.isin(ids[:2], found).any()


def test_remove_ids_on_hnsw_raises(clustered) -> None:
    base, ids, _ = clustered
    index, _ = build_index(IndexParams("hnsw", hnsw_m=8), base[:500], ids[:500])
    with pytest.raises(IndexerError, match="HNSW"):
        remove_ids(index, ids[:1])


def test_dimension_mismatch_raises(clustered) -> None:
    base, ids, _ = clustered
    index, _ = build_index(IndexParams("flat"), base, ids)
    with pytest.raises(DimensionMismatchError, match=r"16 dims.*32 dims"):
        add_vectors(index, np.zeros((2, 16), np.float32), np.array([1, 2]))
    with pytest.raises(DimensionMismatchError):
        search(index, np.zeros((1, 16), np.float32), 3)


def test_bad_ids_raise(clustered) -> None:
    base, ids, _ = clustered
    with pytest.raises(InputError, match="duplicates"):
        build_index(IndexParams("flat"), base[:3], np.array([1, 1, 2]))
    with pytest.raises(InputError, match="one per vector"):
        build_index(IndexParams("flat"), base[:3], np.array([1, 2]))


def test_default_settings_reach_through_wrappers(clustered) -> None:
    base, ids, _ = clustered
    pca_ivf, _ = build_index(IndexParams("pca-ivf", nlist=16, pca_dim=8), base, ids)
    set_default_settings(pca_ivf, nprobe=5)
    assert default_settings(pca_ivf) == {"nprobe": 5}
    hnsw, _ = build_index(IndexParams("hnsw", hnsw_m=8, efSearch=40), base[:500], ids[:500])
    assert default_settings(hnsw) == {"efSearch": 40}
    with pytest.raises(InputError, match="nprobe"):
        set_default_settings(hnsw, nprobe=4)
    with pytest.raises(InputError, match="1..16"):
        set_default_settings(pca_ivf, nprobe=17)
