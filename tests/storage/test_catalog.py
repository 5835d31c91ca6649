"""Catalog queries: labels, images, summary and the model/index registries."""

from __future__ import annotations

import pytest

from storage.catalog import Catalog
from storage.database import make_engine, upgrade
from storage.errors import CatalogError, NotInCatalogError


@pytest.fixture
def catalog(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    upgrade(engine)
    with Catalog(engine) as cat:
        yield cat


def test_labels_are_created_once_with_preferred_ids(catalog):
    assert catalog.label_id("passion flower", preferred_id=77) == 77
    assert catalog.label_id("passion flower") == 77
    rose = catalog.label_id("rose", preferred_id=77)  # taken: gets another id
    assert rose != 77
    assert catalog.label_names() == {77: "passion flower", rose: "rose"}


def test_summary_counts_by_status_and_split(catalog):
    label = catalog.label_id("a")
    first = catalog.add_image(path="/x/1.png", sha256="1", status="ok", split="train", label_id=label)
    catalog.add_image(path="/x/2.png", sha256="1", status="duplicate", duplicate_of=first, split="train")
    catalog.add_image(path="/x/3.png", status="error", error="empty file (0 bytes)", split="test")
    catalog.add_image(path="/x/4.png", sha256="4", status="ok", split="test", label_id=label)
    summary = catalog.summary()
    assert (summary.images_total, summary.images_ok, summary.images_error, summary.duplicates) == (4, 2, 1, 1)
    assert summary.splits == {"train": 1, "test": 1}
    assert summary.labels == 1
    rows = catalog.images(splits=["test"])
    assert [(r.path, r.label) for r in rows] == [("/x/4.png", "a")]


def test_removing_an_original_promotes_its_first_copy(catalog):
    first = catalog.add_image(path="/x/1.png", sha256="1", status="ok")
    dup = catalog.add_image(path="/x/2.png", sha256="1", status="duplicate", duplicate_of=first)
    dup2 = catalog.add_image(path="/x/3.png", sha256="1", status="duplicate", duplicate_of=first)
    assert catalog.remove_images([first]) == 1
    rows = catalog.images_by_ids([dup, dup2])
    assert (rows[dup].status, rows[dup].duplicate_of) == ("ok", None)
    assert (rows[dup2].status, rows[dup2].duplicate_of) == ("duplicate", dup)
    assert catalog.summary().images_ok == 1


def test_model_and_index_registries(catalog):
    catalog.register_model(name="m", kind="mobilenet_v2", params={"a": 1}, metrics={"p_at_1": 0.7}, path="models/m/model.pt", dim=128)
    catalog.register_index(name="ivf", kind="ivf", params={"nprobe": 8}, path="indexes/ivf.faiss", dim=128, ntotal=10, model_name="m")
    assert catalog.model("m").metrics == {"p_at_1": 0.7}
    index = catalog.index("ivf")
    assert (index.model_name, index.ntotal, index.params) == ("m", 10, {"nprobe": 8})
    assert catalog.summary().indexes == ["ivf"]
    with pytest.raises(NotInCatalogError, match="no index named 'nope'.*ivf"):
        catalog.index("nope")
    with pytest.raises(NotInCatalogError, match="no model named 'x'"):
        catalog.model("x")


def test_image_ids_are_never_reused_after_removal(catalog):
    """Ids are FAISS ids in every index: a removed image's id must never name a new image."""
    first = catalog.add_image(path="/x/a.png", sha256="a", status="ok")
    second = catalog.add_image(path="/x/b.png", sha256="b", status="ok")
    catalog.commit()
    assert catalog.remove_images([second]) == 1
    catalog.commit()
    third = catalog.add_image(path="/x/c.png", sha256="c", status="ok")
    assert third > second > first
    catalog.remove_images([first, third])
    catalog.commit()
    assert catalog.add_image(path="/x/a.png", sha256="a", status="ok") > third, "same path, new id"


def test_image_keys_are_the_rows_fields_without_orm_objects(catalog):
    cat = catalog.label_id("cat")
    catalog.add_image(path="/a.png", sha256="1" * 64, format="PNG", status="ok", label_id=cat)
    catalog.add_image(path="/b.png", sha256="2" * 64, format="PNG", status="ok")
    catalog.add_image(path="/c.png", status="error", error="broken")
    keys = catalog.image_keys()
    assert [(k.path, k.label, k.format, k.sha256) for k in keys] == [("/a.png", "cat", "PNG", "1" * 64),
                                                                    ("/b.png", None, "PNG", "2" * 64)]
    assert [k.id for k in keys] == [row.id for row in catalog.images()]
    assert [k.path for k in catalog.image_keys(status="error")] == ["/c.png"]


def test_image_key_batches_page_through_the_same_keys_in_id_order(catalog):
    for i in range(7):
        catalog.add_image(path=f"/p{i}.png", sha256=str(i), format="PNG", status="ok" if i != 3 else "error")
    catalog.commit()
    pages = list(catalog.image_key_batches(size=2))
    assert [len(page) for page in pages] == [2, 2, 2] and [k for page in pages for k in page] == catalog.image_keys()
    assert [k.path for page in catalog.image_key_batches(status="error") for k in page] == ["/p3.png"]
    with pytest.raises(CatalogError, match="got 0"):
        next(catalog.image_key_batches(size=0))


def test_files_under_lists_every_status_below_a_folder_only(catalog):
    """The folder watcher's view: rows of any status under the folder, not a sibling sharing its prefix, and
    not a path with LIKE wildcards that only looks similar."""
    import time

    dog = catalog.label_id("dog")
    catalog.add_image(path="/w/a.png", sha256="1" * 64, size_bytes=10, status="ok", label_id=dog)
    catalog.add_image(path="/w/sub/b.png", status="error", error="truncated")
    catalog.add_image(path="/w2/c.png", sha256="2" * 64, status="ok")
    catalog.add_image(path="/w_x/d.png", sha256="3" * 64, status="ok")
    catalog.commit()
    rows = catalog.files_under("/w")
    assert [(r.path, r.status, r.sha256, r.size_bytes, r.label) for r in rows] == [
        ("/w/a.png", "ok", "1" * 64, 10, "dog"), ("/w/sub/b.png", "error", None, None, None)]
    assert abs(rows[0].updated_at - time.time()) < 60, "updated_at is Unix seconds (UTC)"
    assert [r.path for r in catalog.files_under("/w/")] == ["/w/a.png", "/w/sub/b.png"]
    assert catalog.files_under("/w_") == []
