"""The wired pipeline on a tiny catalog: train → embed → build → query / update / remove → bench."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cli import main
from tests.conftest import draw_shape
from tests.indexer.api.conftest import image_path as _image
from tests.indexer.api.conftest import run

REQUIRED_BENCH_KEYS = {
    "kind", "p_at_1", "p_at_k", "r_at_k", "f1_at_k", "map_at_r", "ann_recall_at_k", "search_ms_p50",
    "search_ms_p95", "search_ms_p99", "qps", "query_ms_p50", "build_s", "bytes_per_vector",
}


def test_query_finds_the_image_itself_first_as_json(trained, ws, tmp_path):
    result = run(ws, "query", _image(trained), "-k", "5", "--json", "--grid", str(tmp_path / "g.png"))
    answers = json.loads(result.stdout)
    assert answers[0]["query"] == _image(trained)
    hits = answers[0]["results"]
    assert [h["rank"] for h in hits] == [1, 2, 3, 4, 5]
    assert hits[0]["path"] == str(Path(_image(trained)).resolve())
    assert set(hits[0]) == {"rank", "id", "path", "label", "score"}
    from PIL import Image

    assert Image.open(tmp_path / "g.png").size[0] > 5 * 64


def test_flat_index_equals_brute_force_over_the_embeddings(trained, ws):
    from indexer.api import query
    from indexer.api.registry.indexes import catalog_vectors
    from indexer.api.workspace import Workspace
    from models.images import open_rgb
    from models.onnx_embedder import OnnxEmbedder
    from models.preprocess import PreprocessSpec

    workspace = Workspace.at(ws)
    ids, vectors = catalog_vectors(workspace, "tiny")
    with workspace.catalog() as catalog:
        model = catalog.model("tiny")
    embedder = OnnxEmbedder(workspace.resolve(model.params["onnx"]), PreprocessSpec.from_dict(model.params["preprocess"]))
    q = embedder.embed_images([open_rgb(_image(trained, "blue_triangle", 3))])
    expected = np.sort(vectors @ q[0])[::-1][:8]
    answer = query(workspace, [_image(trained, "blue_triangle", 3)], index_name="flat", k=8).answers[0]
    assert np.allclose([h.score for h in answer.results], expected, atol=1e-4)


def test_ivf_build_tunes_and_registers(ws):
    result = run(ws, "build", "--index", "ivf", "--name", "ivf")
    assert "recall@10" in result.output
    status = json.loads(run(ws, "status", "--json").stdout)
    assert set(status["indexes"]) == {"flat", "ivf"}
    sidecar = json.loads((ws / "indexes" / "ivf.json").read_text())
    assert sidecar["model"] == "tiny" and sidecar["ntotal"] == 24 and sidecar["tuning"]["reached"]
    from indexer.api.workspace import Workspace

    with Workspace.at(ws).catalog() as catalog:
        row = catalog.index("ivf")
    assert (row.model_name, row.dim, row.ntotal) == ("tiny", 128, 24)
    assert row.params["seed"] == 0 and row.params["faiss_version"] and row.params["search_params"]["nprobe"] >= 1


def test_update_adds_new_images_without_retraining_and_remove_removes(trained, ws, tmp_path):
    from indexer.core.index_io import load_index
    from indexer.core.membership import indexed_ids

    run(ws, "build", "--index", "ivf")
    before, _ = load_index(ws / "indexes" / "ivf.faiss")
    extra = draw_shape(tmp_path / "more" / "red_circle" / "new.png", (210, 40, 40), "ellipse", offset=1)
    run(ws, "ingest", str(tmp_path / "more"))
    run(ws, "build", "--update", "ivf")
    after, _ = load_index(ws / "indexes" / "ivf.faiss")
    assert after.ntotal == before.ntotal + 1
    centroids = [np.empty((ix.nlist, ix.d), dtype=np.float32) for ix in (before, after)]
    for ix, out in zip((before, after), centroids):  # an explicit output array: torch may patch reconstruct_n
        ix.quantizer.reconstruct_n(0, ix.nlist, out)
    assert np.array_equal(*centroids), "update must not retrain the coarse quantizer"

    result = run(ws, "remove", str(extra), _image(trained, "green_square", 1))
    assert "2 images removed" in result.output
    index, _ = load_index(ws / "indexes" / "ivf.faiss")
    flat, _ = load_index(ws / "indexes" / "flat.faiss")
    assert index.ntotal == flat.ntotal == 23
    status = json.loads(run(ws, "status", "--json").stdout)
    assert status["images_total"] == 23
    assert len(indexed_ids(index)) == 23


def test_query_bad_inputs_are_one_line_errors(trained, ws, tmp_path):
    text = tmp_path / "note.jpg"
    text.write_text("not an image")
    result = run(ws, "query", str(tmp_path / "missing.jpg"), str(text), _image(trained), ok=False)
    assert result.exit_code == 1
    assert "missing.jpg: no such file" in result.stderr
    assert "note.jpg: not an image" in result.stderr
    assert _image(trained) in result.stdout, "the good query is still answered"
    unknown = run(ws, "query", _image(trained), "--index", "nope", ok=False)
    assert unknown.exit_code == 1 and "no index named 'nope'" in unknown.output
    (ws / "indexes" / "flat.faiss").write_bytes(b"garbage")
    corrupt = run(ws, "query", _image(trained), "--index", "flat", ok=False)
    assert corrupt.exit_code == 1
    assert "corrupt" in corrupt.output or "does not match" in corrupt.output
    assert len(corrupt.output.strip().splitlines()) == 1, "one line, no traceback"


def test_query_when_model_is_gone_or_dimensions_differ(trained, ws):
    import sqlite3

    with sqlite3.connect(ws / "catalog.db") as db:
        db.execute("UPDATE indexes SET dim = 64 WHERE name = 'flat'")
    mismatch = run(ws, "query", _image(trained), ok=False)
    assert mismatch.exit_code == 1 and "128-dim" in mismatch.output and "64-dim" in mismatch.output
    with sqlite3.connect(ws / "catalog.db") as db:
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("DELETE FROM models")
    gone = run(ws, "query", _image(trained), ok=False)
    assert gone.exit_code == 1 and "model that no longer exists" in gone.output


def test_rebuild_killed_before_rename_keeps_old_index(trained, ws, monkeypatch):
    import os

    from indexer.api import build_index, query
    from indexer.api.workspace import Workspace
    from indexer.core.errors import IndexFileError

    workspace = Workspace.at(ws)
    real_replace = os.replace

    def crash(src, dst):
        if str(dst).endswith(".faiss"):
            raise OSError("killed")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(IndexFileError):
        build_index(workspace, "flat", progress=False)
    monkeypatch.setattr(os, "replace", real_replace)
    assert query(workspace, [_image(trained)], index_name="flat", k=1).answers[0].results[0].path.endswith("red_circle_0.png")


def test_query_path_imports_neither_torch_nor_alembic(trained, ws):
    code = (
        "import sys, cli\n"
        "try:\n    cli.main(['--workspace', sys.argv[1], 'query', sys.argv[2], '--json'])\n"
        "except SystemExit:\n    pass\n"
        "print([m for m in ('torch', 'torchvision', 'alembic') if m in sys.modules], file=sys.stderr)"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(ws), _image(trained)], capture_output=True, text=True)
    assert json.loads(proc.stdout)[0]["results"]
    assert proc.stderr.strip().splitlines()[-1] == "[]"


def test_bench_produces_every_field(ws, tmp_path):
    out = tmp_path / "bench.json"
    result = run(ws, "bench", "--indexes", "flat,ivf,hnsw", "--split", "all", "--json", str(out),
                 "--plot", str(tmp_path / "curve.png"), "--markdown", str(tmp_path / "b.md"))
    assert "MAP@R" in result.output
    report = json.loads(out.read_text())
    assert set(report) >= {"params", "results", "sweeps"}
    assert [row["kind"] for row in report["results"]] == ["flat", "ivf", "hnsw"]
    for row in report["results"]:
        assert REQUIRED_BENCH_KEYS <= set(row)
    flat = report["results"][0]
    assert flat["ann_recall_at_k"] == 1.0 and 0 <= flat["p_at_1"] <= 1
    assert set(report["sweeps"]) == {"ivf", "hnsw"}
    assert (tmp_path / "curve.png").stat().st_size > 0
    assert (tmp_path / "b.md").read_text().count("|") > 10


def test_synthetic_bench_json(tmp_path):
    out = tmp_path / "s.json"
    run(tmp_path / "ws", "bench", "--synthetic", "3000", "--dim", "16", "--indexes", "flat,ivf", "--queries", "50",
        "--json", str(out))
    report = json.loads(out.read_text())
    keys = REQUIRED_BENCH_KEYS - {"p_at_1", "p_at_k", "r_at_k", "f1_at_k", "map_at_r", "query_ms_p50"}
    for row in report["results"]:
        assert keys <= set(row)


def test_status_reports_catalog_index_inconsistencies(trained, ws, tmp_path):
    assert json.loads(run(ws, "status", "--json").stdout)["inconsistencies"] == []
    draw_shape(tmp_path / "late" / "blue_triangle" / "late.png", (20, 50, 230), "polygon", offset=2)
    run(ws, "ingest", str(tmp_path / "late"))
    problems = json.loads(run(ws, "status", "--json").stdout)["inconsistencies"]
    assert problems == [
        "index 'flat' lacks 1 catalog image(s) (e.g. id 25); run 'indexer build --update flat'"
    ]
    assert "warning: index 'flat' lacks 1" in run(ws, "status").stderr
    run(ws, "build", "--update", "flat")
    assert json.loads(run(ws, "status", "--json").stdout)["inconsistencies"] == []


def test_status_flags_indexes_older_than_their_retrained_model(trained, ws):
    run(ws, "train", "--network", "siamese", "--image-size", "32", "--epochs", "1",
        "--batch-classes", "3", "--batch-per-class", "2", "--name", "tiny")
    problems = json.loads(run(ws, "status", "--json").stdout)["inconsistencies"]
    assert any("was built before model 'tiny' was retrained" in line for line in problems)
    stale_query = run(ws, "query", _image(trained), "--index", "flat")
    assert "warning: index 'flat' was built before model 'tiny' was retrained" in stale_query.stderr
    run(ws, "build", "--index", "flat", "--model", "tiny")
    assert json.loads(run(ws, "status", "--json").stdout)["inconsistencies"] == []


def test_names_and_options_that_do_not_apply_are_refused(ws):
    bad_name = run(ws, "train", "--network", "siamese", "--name", "../indexes", ok=False)
    assert bad_name.exit_code == 1 and "model name '../indexes' is invalid" in bad_name.output
    assert (ws / "indexes" / "flat.faiss").is_file()
    wrong_knob = run(ws, "build", "--index", "ivf", "--efSearch", "64", ok=False)
    assert wrong_knob.exit_code == 1 and "--efSearch applies to hnsw" in wrong_knob.output


def test_remove_from_hnsw_rebuilds_from_its_own_vectors(trained, ws, tmp_path):
    from indexer.core.index_io import load_index

    run(ws, "build", "--index", "hnsw")
    draw_shape(tmp_path / "more" / "red_circle" / "extra.png", (200, 30, 40), "ellipse", offset=3)
    run(ws, "ingest", str(tmp_path / "more"))
    run(ws, "embed")  # embedded, but never added to the hnsw index
    result = run(ws, "remove", _image(trained, "blue_triangle", 2))
    assert "hnsw: 1" in result.output and "flat: 1" in result.output
    index, _ = load_index(ws / "indexes" / "hnsw.faiss")
    assert index.ntotal == 23, "the image embedded after the build is not slipped in"


def test_bench_creates_output_folders_and_bad_db_url_is_one_line(tmp_path):
    out = tmp_path / "new" / "folder" / "s.json"
    run(tmp_path / "ws", "bench", "--synthetic", "2000", "--dim", "8", "--indexes", "flat", "--queries", "20",
        "--json", str(out))
    assert out.is_file()
    result = CliRunner().invoke(main, ["--workspace", str(tmp_path / "w2"), "--db", "nonsense", "status"])
    assert result.exit_code == 1 and "cannot use database URL 'nonsense'" in result.output
    foreign = tmp_path / "foreign.db"
    foreign.write_text("not a database at all, just text " * 100)
    result = CliRunner().invoke(main, ["--workspace", str(tmp_path / "w3"), "--db", f"sqlite:///{foreign}", "status"])
    assert result.exit_code == 1 and result.output.startswith("Error: database error:")


def test_update_after_the_model_was_retrained_is_refused(trained, ws, tmp_path):
    run(ws, "train", "--network", "siamese", "--image-size", "32", "--epochs", "1",
        "--batch-classes", "3", "--batch-per-class", "2", "--name", "tiny")
    draw_shape(tmp_path / "new" / "red_circle" / "late.png", (215, 35, 30), "ellipse", offset=2)
    run(ws, "ingest", str(tmp_path / "new"))
    refused = run(ws, "build", "--update", "flat", ok=False)
    assert refused.exit_code == 1 and len(refused.output.strip().splitlines()) == 1
    assert "cannot update: index 'flat' was built before model 'tiny' was retrained" in refused.output
    assert "indexer build --index flat --name flat --model tiny" in refused.output
    from indexer.core.index_io import load_index

    assert load_index(ws / "indexes" / "flat.faiss")[0].ntotal == 24, "nothing was added"
    run(ws, "build", "--index", "flat", "--name", "flat", "--model", "tiny")
    run(ws, "build", "--update", "flat")


def test_a_command_opens_one_engine_and_checks_the_schema_once(trained, ws, monkeypatch):
    import storage.database as database
    from indexer.api import Searcher, Workspace, build_index

    calls = {"make_engine": 0, "check_revision": 0, "upgrade": 0}
    for name in calls:
        real = getattr(database, name)

        def counted(*args, _real=real, _name=name, **kwargs):
            calls[_name] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(database, name, counted)
    workspace = Workspace.at(ws)
    build_index(workspace, "ivf", progress=False)  # reads, embeds, writes, registers: many catalog calls
    searcher = Searcher(workspace, "ivf")
    for _ in range(3):
        searcher.answer([_image(trained)], k=3)
    assert calls["make_engine"] == 1
    assert calls["check_revision"] + calls["upgrade"] == 1, calls


def test_a_graph_build_tunes_on_vectors_it_withheld_and_then_holds_them_all(tmp_path):
    """``indexer build --index hnsw`` over 1,500 vectors: tuned on 75 it had not yet added, every one indexed."""
    import numpy as np

    from indexer.api.registry.indexes import catalog_vectors
    from indexer.api.workspace import Workspace
    from indexer.core.index_io import load_index
    from indexer.core.membership import indexed_ids
    from tests.indexer.api.test_shards import clustered

    source = tmp_path / "source"
    source.mkdir()
    np.save(source / "vectors.npy", clustered(1_500))
    (source / "meta.csv").write_text("path,label\n" + "".join(f"item/{i}.vec,c{i % 5}\n" for i in range(1_500)))
    ws = tmp_path / "ws"
    run(ws, "import", str(source), "--model", "vecs")
    run(ws, "build", "--index", "hnsw")
    sidecar = json.loads((ws / "indexes" / "hnsw.json").read_text())
    assert sidecar["ntotal"] == 1_500 and sidecar["tuning"]["queries"] == "held out"
    assert sidecar["tuning"]["reached"] and sidecar["search_params"]["efSearch"] == sidecar["tuning"]["value"]
    stored, _ = catalog_vectors(Workspace.at(ws), "vecs")
    held = indexed_ids(load_index(ws / "indexes" / "hnsw.faiss")[0])
    assert len(held) == 1_500 and np.array_equal(np.sort(held), np.sort(stored))
    run(ws, "build", "--index", "hnsw", "--efSearch", "40", "--name", "given")  # a given setting: nothing withheld
    given = json.loads((ws / "indexes" / "given.json").read_text())
    assert given["ntotal"] == 1_500 and given["tuning"] == {} and given["search_params"]["efSearch"] == 40
