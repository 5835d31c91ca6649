"""Results as plain data: tables with to_pandas(), an answer that draws itself, queries by stored id."""

from __future__ import annotations

import json
import sys

import pytest

from tests.indexer.api.conftest import image_path as _image
from tests.indexer.api.conftest import run


@pytest.fixture
def workspace(ws):
    from indexer.api import Workspace

    return Workspace.at(ws)


def test_query_answers_are_tables_and_pictures(trained, workspace, tmp_path):
    from PIL import Image

    from indexer.api import draw_answer, query

    outcome = query(workspace, [_image(trained), _image(trained, "green_square", 2)], k=4)
    answer = outcome.answers[0]
    hits = answer.to_pandas()
    assert hits.columns.tolist() == ["rank", "id", "path", "label", "score"]
    assert hits["rank"].tolist() == [1, 2, 3, 4] and hits["id"].tolist() == [h.id for h in answer.results]
    everything = outcome.to_pandas()
    assert len(everything) == 8 and set(everything["query_label"]) == {"red_circle", "green_square"}
    assert answer.to_dict()["results"][0] == answer.results[0].to_dict()
    json.dumps(answer.to_dict())  # plain data
    # the notebook picture is byte for byte the --grid picture
    png = answer._repr_png_()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert draw_answer(answer, tmp_path / "grid.png").read_bytes() == png
    run(workspace.root, "query", _image(trained), "-k", "4", "--grid", str(tmp_path / "cli.png"))
    assert (tmp_path / "cli.png").read_bytes() == png
    assert Image.open(tmp_path / "cli.png").size == answer.picture().size


def test_query_by_stored_id_uses_the_stored_vector(trained, workspace, cli):
    from indexer.api import query

    by_path = query(workspace, [_image(trained, "blue_triangle", 5)], k=5).answers[0]
    stored = by_path.query_id
    assert stored is not None and by_path.results[0].id == stored
    by_id = query(workspace, ids=[stored, 10**6], k=5)
    assert by_id.failures == ["id 1000000: not in the catalog"]
    answer = by_id.answers[0]
    assert (answer.query_id, answer.label) == (stored, "blue_triangle")
    assert [h.id for h in answer.results] == [h.id for h in by_path.results]
    assert [h.score for h in answer.results] == pytest.approx([h.score for h in by_path.results], abs=1e-5)
    both = query(workspace, [_image(trained)], ids=[stored], k=3)
    assert [a.label for a in both.answers] == ["red_circle", "blue_triangle"]
    result = cli("query", "--id", str(stored), "-k", "2", "--json", workspace=workspace.root)
    assert result.exit_code == 0 and json.loads(result.stdout)[0]["results"][0]["id"] == stored
    result = cli("query", workspace=workspace.root)
    assert result.exit_code == 2 and "give IMAGE files or --id" in result.output


def test_a_stored_id_the_model_has_not_embedded_is_a_failure_line(trained, workspace, tmp_path):
    from indexer.api import catalog_images, ingest_directory, query
    from tests.conftest import draw_shape

    draw_shape(tmp_path / "late" / "red_circle" / "late.png", (220, 30, 30), "ellipse", size=40)
    ingest_directory(workspace, tmp_path / "late", progress=False)
    late = [row.id for row in catalog_images(workspace)
            if row.path.endswith("late.png")]
    outcome = query(workspace, ids=late, k=3)
    assert outcome.answers == [] and "not embedded by model 'tiny'" in outcome.failures[0]


def test_catalog_status_and_bench_reports_are_dicts_with_tables(workspace):
    from indexer.api import bench_catalog, catalog_status

    status = catalog_status(workspace)
    assert isinstance(status, dict) and json.loads(json.dumps(status))["images_ok"] == 24
    table = status.to_pandas()
    assert table.to_dict("records") == [{"split": "(none)", "ok": 24, "errors": 0}]
    report = bench_catalog(workspace, kinds=("flat", "hnsw"), split=None, k=3, progress=False)
    assert json.loads(json.dumps(report, default=float))["params"]["k"] == 3
    rows = report.to_pandas()
    assert rows["kind"].tolist() == ["flat", "hnsw"]
    assert rows.columns[0] == "kind" and rows["p_at_1"].between(0, 1).all()
    assert rows.columns.tolist() == list(report["results"][0])  # the report's own column order
    sweeps = report.sweeps_to_pandas()
    assert set(sweeps["kind"]) == {"hnsw"} and {"value", "recall", "p50_ms"} <= set(sweeps.columns)
    calibration = report["calibration"]  # what a min_score keeps, and how precise that is
    assert [row["threshold"] for row in calibration][:2] == [0.3, 0.35]
    kept = [row["results_per_query"] for row in calibration]
    assert kept == sorted(kept, reverse=True) and kept[0] <= 3
    assert all(row["precision"] is None or 0 <= row["precision"] <= 1 for row in calibration)
    from indexer.api import report_table

    assert "score calibration" in report_table(report) and "min_score" in report_table(report)


def test_without_pandas_to_pandas_says_how_to_get_it_in_one_line(trained, workspace, monkeypatch):
    from indexer.api import LIBRARY_ERRORS, MissingDependencyError, catalog_status, query

    answer = query(workspace, [_image(trained)], k=2).answers[0]
    monkeypatch.setitem(sys.modules, "pandas", None)
    for call in (answer.to_pandas, catalog_status(workspace).to_pandas):
        with pytest.raises(MissingDependencyError, match=r"pip install pandas") as caught:
            call()
        assert "\n" not in str(caught.value) and isinstance(caught.value, LIBRARY_ERRORS)


def test_flowers_subset_refuses_a_bad_class_count(workspace, cli):
    from indexer.api import InputError, ingest_flowers102

    with pytest.raises(InputError, match="between 1 and 102; got 0"):
        ingest_flowers102(workspace, "/nonexistent", classes=0)
    result = cli("data", "flowers102", "--classes", "103")
    assert result.exit_code == 2 and "103" in result.output
