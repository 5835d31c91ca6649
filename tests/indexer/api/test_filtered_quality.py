"""The label-filter check and the per-label quality within filtered galleries, on seeded clustered vectors
imported with labels and splits (one label with an apostrophe, as Flowers' "colt's foot")."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from indexer.api import build_index, import_vectors
from indexer.api.pipeline.filtered_quality import bench_label_filters, default_galleries, label_filter_table
from indexer.api.search.engine import Searcher
from indexer.api.workspace import Workspace
from indexer.core.metrics import map_at_r, precision_at_1, relevant_counts
from indexer.core.search import exact_search

LABELS = ("aster", "colt's foot", 'the "best" rose')
DIM = 8


def clustered(seed: int = 0) -> tuple[np.ndarray, list[str], list[str]]:
    """(n, DIM) unit vectors around one centre per label (the last two centres close, so some hits cross),
    each one's label and split (test, train or val)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(LABELS), DIM))
    centres[2] = centres[1] + 0.3 * rng.normal(size=DIM)
    which = np.repeat(np.arange(len(LABELS)), [14, 12, 10])
    vectors = centres[which] + 0.4 * rng.normal(size=(len(which), DIM))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    splits = [("test", "test", "train", "val")[i % 4] for i in range(len(which))]
    return vectors.astype(np.float32), [LABELS[w] for w in which], splits


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Workspace:
    """An imported model of clustered labelled vectors with a flat index."""
    root = tmp_path_factory.mktemp("filtered-quality")
    vectors, labels, splits = clustered()
    folder = root / "vecs"
    folder.mkdir()
    np.save(folder / "vectors.npy", vectors)
    with open(folder / "meta.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "split"])
        writer.writerows([f"/v/{i}.png", label, split] for i, (label, split) in enumerate(zip(labels, splits)))
    workspace = Workspace.at(root / "ws")
    import_vectors(workspace, folder, model_name="vecs", progress=False)
    build_index(workspace, "flat", model_name="vecs", progress=False)
    return workspace


def test_the_label_filter_returns_only_that_label_and_its_exact_top_k(workspace):
    report = bench_label_filters(workspace, k=4)
    check = report["check"]
    assert report["params"]["queries"] == 18 and set(check["per_label"]) == set(LABELS)
    assert check["violations"] == 0 and check["not_exact"] == 0 and check["answered"] == 18
    sizes = dict(zip(LABELS, (14, 12, 10)))
    tests = {label: entry["queries"] for label, entry in check["per_label"].items()}
    assert check["hits"] == sum(tests[label] * min(4, sizes[label] - 1) for label in LABELS)


def test_a_filter_the_search_ignores_is_caught(workspace, monkeypatch):
    """The check can fail: a search that drops the filter returns other labels and other scores."""
    answer_ids = Searcher.answer_ids

    def unfiltered(self, ids, **kwargs):
        kwargs["where"] = None
        return answer_ids(self, ids, **kwargs)

    monkeypatch.setattr(Searcher, "answer_ids", unfiltered)
    check = bench_label_filters(workspace, k=4, galleries=())["check"]
    assert check["violations"] > 0 and check["not_exact"] > 0


def test_the_split_gallery_is_the_catalog_benchs_protocol(workspace):
    """``split = "test"``: every test vector against the rest of the test split, as numpy and FAISS give it."""
    vectors, labels, splits = clustered()
    test = np.array([split == "test" for split in splits])
    ids = np.arange(1, len(labels) + 1)[test]  # the import numbers rows from 1 in file order
    truth = np.array(labels, dtype=object)[test]
    depth = int(relevant_counts(truth, truth).max())
    _, found = exact_search(vectors[test], ids, vectors[test], depth, exclude_self_ids=ids)
    found_labels = truth[np.searchsorted(ids, found)]
    relevant = relevant_counts(truth, truth)

    report = bench_label_filters(workspace, galleries=('split = "test"',))
    gallery = report["galleries"][0]
    assert gallery["images"] == 18 and gallery["plan"]["kind"] == "exact"
    assert gallery["precision_at_1"] == pytest.approx(precision_at_1(truth, found_labels))
    assert gallery["map_at_r"] == pytest.approx(map_at_r(truth, found_labels, relevant))
    per_label = gallery["per_label"]
    weighted = sum(entry["precision_at_1"] * entry["queries"] for entry in per_label.values()) / 18
    assert weighted == pytest.approx(gallery["precision_at_1"])
    assert gallery["macro_precision_at_1"] == pytest.approx(np.mean([e["precision_at_1"] for e in per_label.values()]))
    assert min(entry["precision_at_1"] for entry in per_label.values()) < 1  # the close labels do cross


def test_r_counts_the_gallery_only_and_the_table_has_a_row_per_label(workspace):
    report = bench_label_filters(workspace, galleries=default_galleries("test"))
    none, test, train = report["galleries"]
    assert (none["where"], none["images"], none["plan"]) == (None, 36, None)
    assert train["where"] == 'split = "train"' and train["images"] == 9
    assert train["queries_with_r0"] == 0 and none["queries_with_r0"] == 0
    table = label_filter_table(report)
    assert "**0 with another label**" in table
    for label in LABELS:
        assert f"| {label} | " in table
    assert table.splitlines()[-1].startswith("| **macro mean** | 18 | 0 | 0 |")


def test_a_split_without_labelled_queries_is_refused(workspace):
    from indexer.core.errors import InputError

    with pytest.raises(InputError, match="split 'holdout'"):
        bench_label_filters(workspace, split="holdout", galleries=())
