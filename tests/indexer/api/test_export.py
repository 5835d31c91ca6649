"""Vectors out: Parquet and .npy exports round-trip the embeddings exactly, streamed in batches."""

from __future__ import annotations

import csv
import sys

import numpy as np
import pytest

from tests.conftest import SHAPES, copy_workspace, draw_shape
from tests.indexer.api.conftest import run

EXTRA_PER_CLASS = 100  # 300 more images: a few hundred vectors over several batches


@pytest.fixture(scope="module")
def big(trained, tmp_path_factory):
    """The tiny workspace plus 300 more images, all embedded by model 'tiny' (324 vectors)."""
    root = tmp_path_factory.mktemp("export")
    copy_workspace(trained / "ws", root / "ws")
    for name, (colour, shape) in SHAPES.items():
        for i in range(EXTRA_PER_CLASS):
            draw_shape(root / "more" / name / f"{name}_{i}.png", colour, shape, offset=i % 9 - 4, size=24 + i % 17)
    run(root / "ws", "ingest", str(root / "more"), "--split", "extra")
    run(root / "ws", "embed", "--model", "tiny")
    return root / "ws"


def _expected(ws):
    from indexer.api.registry.indexes import catalog_vectors
    from indexer.api.workspace import Workspace

    workspace = Workspace.at(ws)
    ids, vectors = catalog_vectors(workspace, "tiny")
    order = np.argsort(ids)
    with workspace.catalog() as catalog:
        rows = catalog.images_by_ids(ids.tolist())
    return workspace, ids[order], vectors[order], rows


def test_parquet_round_trips_every_vector_exactly(big, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from indexer.api import export_vectors

    workspace, ids, vectors, rows = _expected(big)
    assert len(ids) >= 300
    outcome = export_vectors(workspace, tmp_path / "out" / "tiny.parquet", model_name="tiny", batch_rows=64)
    assert (outcome.rows, outcome.dim, outcome.not_embedded) == (len(ids), vectors.shape[1], 0)
    parquet = pq.ParquetFile(outcome.files[0])
    assert parquet.metadata.num_row_groups == -(-len(ids) // 64)  # one row group per batch: streamed
    table = parquet.read()
    assert table.schema.field("vector").type == pa.list_(pa.float32(), vectors.shape[1])
    assert table.schema.metadata[b"indexer.model"] == b"tiny"
    got_ids = table.column("id").to_numpy()
    got = np.stack(table.column("vector").to_numpy(zero_copy_only=False))
    assert np.array_equal(got_ids, ids)
    assert got.dtype == np.float32 and np.array_equal(got, vectors)  # bit-exact
    assert table.column("path").to_pylist() == [rows[i].path for i in ids.tolist()]
    assert table.column("label").to_pylist() == [rows[i].label for i in ids.tolist()]
    assert table.column("split").to_pylist() == [rows[i].split for i in ids.tolist()]
    assert {"extra", None} == set(table.column("split").to_pylist())
    assert not list((tmp_path / "out").glob(".*tmp*")), "no temporary file left behind"


def test_npy_round_trips_and_meta_lines_up(big, tmp_path, cli):
    workspace, ids, vectors, rows = _expected(big)
    result = cli("export", "--model", "tiny", "--format", "npy", "--batch-rows", "50", str(tmp_path / "npy"),
                 workspace=big)
    assert result.exit_code == 0, result.output
    assert f"{len(ids)} vectors of {vectors.shape[1]} dims written as npy" in result.output
    got_ids = np.load(tmp_path / "npy" / "ids.npy")
    got = np.load(tmp_path / "npy" / "vectors.npy")
    assert got_ids.dtype == np.int64 and np.array_equal(got_ids, ids)
    assert got.dtype == np.float32 and np.array_equal(got, vectors)
    with open(tmp_path / "npy" / "meta.csv", newline="", encoding="utf-8") as handle:
        meta = list(csv.DictReader(handle))
    assert [int(m["id"]) for m in meta] == ids.tolist()
    assert [m["path"] for m in meta] == [rows[i].path for i in ids.tolist()]
    assert [m["label"] for m in meta] == [rows[i].label for i in ids.tolist()]
    assert sorted(p.name for p in (tmp_path / "npy").iterdir()) == ["ids.npy", "meta.csv", "vectors.npy"]


def test_export_leaves_out_broken_and_unembedded_images_and_says_so(ws, tmp_path, cli):
    from indexer.api import export_vectors
    from indexer.api.workspace import Workspace

    workspace = Workspace.at(ws)
    with workspace.catalog(write=True) as catalog:
        broken = catalog.images()[0].id
        catalog.update_image(broken, status="error", error="broken on purpose")
    draw_shape(tmp_path / "new" / "red_circle" / "late.png", (220, 30, 30), "ellipse", size=40)  # not a copy
    run(ws, "ingest", str(tmp_path / "new"))  # catalogued, not embedded yet
    outcome = export_vectors(workspace, tmp_path / "v.parquet", model_name="tiny")
    import pyarrow.parquet as pq

    exported = pq.read_table(tmp_path / "v.parquet").column("id").to_pylist()
    assert broken not in exported and outcome.rows == len(exported) == 23
    assert outcome.not_embedded == 1
    result = cli("export", str(tmp_path / "w.parquet"), workspace=ws)
    assert result.exit_code == 0 and "1 catalog images are not embedded" in result.output


def test_export_errors_are_one_line(ws, tmp_path, cli):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("x")
    for args, message in [
        (("--model", "nope", str(tmp_path / "a.parquet")), "nope"),
        ((str(tmp_path / "folder"),), "is a folder"),
        (("--format", "npy", str(tmp_path / "file")), "is a file"),
    ]:
        result = cli("export", *args, workspace=ws)
        assert result.exit_code == 1, result.output
        assert result.output.startswith("Error:") and "Traceback" not in result.output
        assert message in result.output
    assert not (tmp_path / "a.parquet").exists()


def test_without_pyarrow_the_error_says_how_to_get_it(ws, tmp_path, monkeypatch):
    from indexer.api import MissingDependencyError, export_vectors
    from indexer.api.workspace import Workspace

    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(MissingDependencyError, match="pip install pyarrow"):
        export_vectors(Workspace.at(ws), tmp_path / "x.parquet")
