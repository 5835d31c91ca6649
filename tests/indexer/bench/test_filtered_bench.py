"""indexer bench --synthetic N --filters: every kind and selection measured, plans and recall within the selection."""

from __future__ import annotations

import json

from click.testing import CliRunner

from cli import main
from indexer import api


def test_the_filtered_bench_measures_each_kind_and_selection(tmp_path):
    report = api.bench_filtered(4000, 16, kinds=("ivf", "hnsw"), fractions=(0.01, 0.5), n_queries=30)
    rows = report["rows"]
    assert len(rows) == 2 * 2 * 2, "kinds x fields x fractions"
    for row in rows:
        assert row["recall"] >= 0.9, row
        assert abs(row["selected"] - row["fraction"] * 4000) < 0.25 * row["fraction"] * 4000 + 20
    small = [row for row in rows if row["fraction"] == 0.01]
    assert {row["plan"] for row in small} == {"exact"} and {row["recall"] for row in small} == {1.0}
    assert "| ivf | category | 1.0%" in report["table"]
    result = CliRunner().invoke(main, ["--workspace", str(tmp_path / "ws"), "bench", "--synthetic", "3000",
                                       "--dim", "8", "--indexes", "ivf", "--filters", "0.1", "--queries", "20",
                                       "--json", str(tmp_path / "f.json")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "f.json").read_text())["rows"][0]["kind"] == "ivf"
    bad = CliRunner().invoke(main, ["--workspace", str(tmp_path / "ws"), "bench", "--filters", "0.1"])
    assert bad.exit_code != 0 and "--filters needs --synthetic" in bad.output
