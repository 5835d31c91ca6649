"""Every command on a PostgreSQL catalog: the same schema and migrations, no SQLite-only SQL."""

from __future__ import annotations

import json

from click.testing import CliRunner

from cli import main
from indexer.api import Workspace, catalog_status
from tests.conftest import SHAPES, draw_shape


def run_pg(workspace, db_url, *args, ok: bool = True):
    result = CliRunner().invoke(main, ["--workspace", str(workspace), "--db", db_url, *args], catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def test_the_whole_pipeline_on_postgresql(tmp_path, postgres_url):
    images = tmp_path / "images"
    for name, (colour, shape) in SHAPES.items():
        for i in range(8):
            draw_shape(images / name / f"{name}_{i}.png", colour, shape, offset=i - 4)
    (images / "red_circle" / "broken.png").write_bytes(b"not an image")
    ws = tmp_path / "ws"
    assert "24 ingested" in run_pg(ws, postgres_url, "ingest", str(images)).output
    assert "already catalogued" in run_pg(ws, postgres_url, "ingest", str(images)).output
    run_pg(ws, postgres_url, "train", "--network", "siamese", "--image-size", "32", "--epochs", "1",
           "--batch-classes", "3", "--batch-per-class", "2", "--name", "tiny")
    run_pg(ws, postgres_url, "build", "--index", "flat")
    run_pg(ws, postgres_url, "build", "--index", "ivf", "--nlist", "2")
    query = str(images / "red_circle" / "red_circle_0.png")
    answers = json.loads(run_pg(ws, postgres_url, "query", query, "-k", "3", "--json").output)
    assert answers[0]["results"][0]["path"] == query
    bench = run_pg(ws, postgres_url, "bench", "--indexes", "flat,ivf", "--split", "all", "--json",
                   str(tmp_path / "bench.json"))
    assert "flat" in bench.output and (tmp_path / "bench.json").is_file()
    extra = draw_shape(tmp_path / "extra" / "blue_triangle" / "new.png", (10, 10, 250), "polygon", size=30)
    run_pg(ws, postgres_url, "ingest", str(tmp_path / "extra"))
    assert "25 vectors" in run_pg(ws, postgres_url, "build", "--update", "flat").output
    assert "1 images removed" in run_pg(ws, postgres_url, "remove", str(extra)).output
    summary = catalog_status(Workspace.at(ws, postgres_url))
    assert summary["inconsistencies"] == []
    assert (summary["images_ok"], summary["images_error"], summary["labels"]) == (24, 1, 3)
    assert summary["models"] == ["tiny"] and sorted(summary["indexes"]) == ["flat", "ivf"]
    status = run_pg(ws, postgres_url, "status")
    assert "postgresql+psycopg://" in status.output


def test_label_ids_from_an_official_list_and_new_ones_mix_on_postgresql(postgres_url, tmp_path):
    """Explicit ids (Flowers-102's official codes) do not advance PostgreSQL's sequence: new labels still get ids."""
    workspace = Workspace.at(tmp_path / "ws", postgres_url)
    with workspace.catalog(write=True) as catalog:
        assert [catalog.label_id(f"official {i}", preferred_id=i) for i in (1, 2, 3)] == [1, 2, 3]
        fresh = catalog.label_id("new label")
        taken = catalog.label_id("wants 2", preferred_id=2)
    assert len({1, 2, 3, fresh, taken}) == 5
    with workspace.catalog() as catalog:
        assert catalog.label_names()[fresh] == "new label"
