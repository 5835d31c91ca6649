"""bench --filters --peers: each peer's own filter returns only selected ids and reaches the recall the bench
reports; a peer without one is a row that says so; filters reach a peer only as checked data.

Skipped with the reason when the ``peers`` extra is missing (failed under CI=true: tests/requirements.py).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from indexer.bench.filtered_bench import field_filters, filtered_table, peer_metadata, selections
from indexer.bench.peer_filtered import bench_peer_filtered, smallest_reaching
from indexer.bench.peers import PEERS, FieldFilter, FilterUnsupported, PeerUnavailable, peer_class
from indexer.bench.realistic import make_realistic, make_realistic_queries
from indexer.bench.selection_recall import padded, recall_within
from indexer.core.errors import InputError
from indexer.core.search import exact_search
from tests.requirements import extra, missing

N, D, K = 6000, 16, 10  # LanceDB indexes from 5,000 rows: its IVF path is the one measured
FRACTIONS = (0.01, 0.2)
FILTERING = [name for name in PEERS if name != "usearch"]


def _available(name: str):
    try:
        return peer_class(name)
    except PeerUnavailable as exc:
        missing(f"peer {name} ({exc})", extra("peers"))


@pytest.fixture(scope="module")
def data():
    base, _ = make_realistic(N, D, n_clusters=20, seed=0)
    drawn, _ = make_realistic_queries(50, D, n_clusters=20, seed=0)
    queries, tune = drawn[:20], drawn[20:]
    ids = np.arange(N, dtype=np.int64)
    chosen = selections(N, FRACTIONS, 0)
    truths = {key: exact_search(base[allowed], allowed, queries, K)[1] for key, allowed in chosen.items()}
    tune_truths = {key: exact_search(base[allowed], allowed, tune, K)[1] for key, allowed in chosen.items()}
    tune_truths[None] = exact_search(base, ids, tune, K)[1]
    return base, ids, queries, tune, chosen, truths, tune_truths


@pytest.mark.parametrize("name", FILTERING)
def test_a_peer_filter_returns_only_selected_ids_at_the_recall_the_bench_reports(name, data) -> None:
    cls = _available(name)
    base, ids, queries, tune, chosen, truths, tune_truths = data
    filters = field_filters(FRACTIONS)
    rows = bench_peer_filtered(name, base, ids, queries, tune, peer_metadata(N, 0), filters, truths, tune_truths,
                               k=K, target_recall=0.95)
    assert [(row["field"], row["fraction"]) for row in rows] == list(filters)
    for row in rows:
        key = (row["field"], row["fraction"])
        assert row["selected"] == len(chosen[key]) and row["outside"] == 0, row
        assert row["recall"] >= 0.9 and row["reached"], row
        assert row["setting"].startswith(cls.knob) and row["p50_ms"] > 0 and row["unfiltered_p50_ms"] > 0

    # Again by hand at the reported setting: only selected ids, and the recall the row says.
    peer = cls(filter_fields=("category", "value"))
    try:
        peer.build(ids, base, peer_metadata(N, 0))
        for row in rows:
            key = (row["field"], row["fraction"])
            peer.set_knob(int(row["setting"].split()[-1]))
            found = [peer.query_filtered(q, K, filters[key]) for q in queries]
            assert set(np.concatenate(found).tolist()) <= set(chosen[key].tolist())
            assert recall_within(padded(found, K), truths[key]) == pytest.approx(row["recall"], abs=0.051)
    finally:
        peer.close()


def test_a_peer_without_a_filter_is_a_row_that_says_so(data) -> None:
    _available("usearch")
    base, ids, queries, tune, _, truths, tune_truths = data
    rows = bench_peer_filtered("usearch", base, ids, queries, tune, [], field_filters(FRACTIONS), truths,
                               tune_truths)
    assert len(rows) == 1 and rows[0]["plan"].startswith("no filter: no filter predicate")
    table = filtered_table({"rows": rows})
    assert "| usearch " in table and "no filter predicate in its Python API" in table
    with pytest.raises(FilterUnsupported, match="usearch"):
        peer_class("usearch")().query_filtered(np.zeros(D, np.float32), K, FieldFilter("value", below=0.5))


def test_the_bench_with_peers_puts_them_in_the_same_table(tmp_path) -> None:
    _available("hnswlib")
    from click.testing import CliRunner

    from cli import main

    result = CliRunner().invoke(main, ["--workspace", str(tmp_path / "ws"), "bench", "--synthetic", "3000", "--dim",
                                       "8", "--indexes", "hnsw", "--filters", "0.1", "--queries", "20",
                                       "--peers", "hnswlib,usearch"])
    assert result.exit_code == 0, result.output
    assert "| hnsw | value | 10.0%" in result.output and "| hnswlib 0.8" in result.output
    assert "filter callable | ef " in result.output and "| usearch " in result.output
    bad = CliRunner().invoke(main, ["--workspace", str(tmp_path / "ws"), "bench", "--synthetic", "3000",
                                    "--filters", "0.1", "--peers", "annoy"])
    assert bad.exit_code != 0 and "unknown peer(s) annoy" in bad.output


@pytest.mark.parametrize("field, values, below, wrong", [
    ("category; drop", ("c0001",), None, "'category; drop'"),
    ("category", ("c0001') or 1=1 --",), None, "c0001') or 1=1 --"),
    ("category", ('c0001"]',), None, 'c0001"]'),
    ("value", (), math.nan, "nan"),
    ("value", (), "0.1 or true", "'0.1 or true'"),
    ("value", (), True, "True"),
    ("value", ("a",), 0.5, "both"),
    ("value", (), None, "neither"),
])
def test_a_filter_holds_only_checked_values(field, values, below, wrong) -> None:
    with pytest.raises(InputError, match="filter") as caught:
        FieldFilter(field, values, below)
    assert wrong in str(caught.value)


def test_milvus_expressions_are_written_from_checked_values_only() -> None:
    _available("milvus-lite")
    from indexer.bench.peers.milvus_peer import _expression

    assert _expression(FieldFilter("category", ("c0000", "c0001"))) == 'category in ["c0000", "c0001"]'
    assert _expression(FieldFilter("value", below=0.001)) == "value < 0.001"


def test_the_filters_select_what_the_bench_selects() -> None:
    n = 5000
    chosen, filters, rows = selections(n, FRACTIONS, 3), field_filters(FRACTIONS), peer_metadata(n, 3)
    for key, where in filters.items():
        column = np.array([row[where.field] for row in rows])
        assert np.array_equal(np.flatnonzero(where.mask(column)), chosen[key]), key


def test_smallest_reaching_doubles_then_bisects() -> None:
    grid = (1, 2, 3, 4, 6, 8, 12, 16)
    asked = []

    def reaches(value):
        asked.append(value)
        return value >= 6

    assert smallest_reaching(grid, 2, reaches) == (6, True)
    assert len(asked) <= 5 and all(value >= 2 for value in asked)
    assert smallest_reaching(grid, 1, lambda value: False) == (16, False)
    assert smallest_reaching(grid, 32, lambda value: True) == (16, True)
