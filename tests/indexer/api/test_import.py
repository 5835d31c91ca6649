"""Vectors in: 'indexer import' turns what 'indexer export' writes into catalog rows and an external model's store.

Round trips (Parquet, npy, a trained model's export), resuming an interrupted import, then build and a vector
query over the imported model, and imported rows beside images. Bad files: test_import_refusals.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.indexer.api.conftest import run
from tests.requirements import extra, require_module

DIM = 8


@pytest.fixture(scope="module", autouse=True)
def pyarrow_extra() -> None:
    """Parquet needs pyarrow (the 'notebook' extra); before any module fixture runs."""
    require_module("pyarrow", extra("notebook"))


def clustered(n: int, dim: int = DIM, clusters: int = 6, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, dim) float32 unit vectors around ``clusters`` seeded centres, and each one's cluster."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    which = rng.integers(0, clusters, size=n)
    vectors = centres[which] + 0.15 * rng.normal(size=(n, dim))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32), which


def write_parquet(path: Path, paths, vectors, *, labels=None, splits=None, fixed: bool = True, other: bool = True,
                  vector_type=None) -> Path:
    """A Parquet file of the export's form (plus other scalar columns, an id column among them)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    vector_type = vector_type or pa.float32()
    if fixed:
        vector = pa.FixedSizeListArray.from_arrays(pa.array(np.asarray(vectors).reshape(-1), vector_type),
                                                   len(vectors[0]))
    else:
        vector = pa.array([None if v is None else list(v) for v in vectors], type=pa.list_(vector_type))
    columns = {"id": pa.array(np.arange(len(paths)) + 1000), "path": pa.array(paths, pa.string())}
    if labels is not None:
        columns["label"] = pa.array(labels, pa.string())
    if splits is not None:
        columns["split"] = pa.array(splits, pa.string())
    columns["vector"] = vector
    if other:
        columns["score"] = pa.array(np.linspace(0, 1, len(paths)))
        columns["note"] = pa.array([f"n{i}" for i in range(len(paths))])
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path, row_group_size=700)
    return path


def workspace_of(root: Path):
    from indexer.api.workspace import Workspace

    return Workspace.at(root)


def stored(root: Path, model: str) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vectors) the model's store holds, in id order."""
    from models.embedding_store import EmbeddingStore

    ids, vectors = EmbeddingStore(root / "embeddings" / model).items(mmap=False)
    order = np.argsort(ids)
    return ids[order], vectors[order]


def rows_by_id(root: Path, ids) -> list:
    with workspace_of(root).catalog() as catalog:
        found = catalog.images_by_ids([int(i) for i in ids])
    return [found[int(i)] for i in ids]


@pytest.fixture
def sample(tmp_path):
    """2,000 clustered 8-dim vectors with paths, labels and splits, as a Parquet file."""
    vectors, which = clustered(2000)
    paths = [f"items/{i:05d}" for i in range(2000)]
    labels = [f"c{w}" for w in which]
    splits = ["test" if i % 10 == 0 else "train" for i in range(2000)]
    file = write_parquet(tmp_path / "vecs.parquet", paths, vectors, labels=labels, splits=splits)
    return file, paths, vectors, labels, splits


def test_parquet_import_catalogues_every_row_and_stores_its_vector(sample, tmp_path):
    from indexer.api import import_vectors
    from indexer.api.registry.images import imported_sha256, is_imported

    file, paths, vectors, labels, splits = sample
    outcome = import_vectors(workspace_of(tmp_path / "ws"), file, batch_rows=300, progress=False)
    assert (outcome.model, outcome.rows, outcome.skipped_existing, outcome.dim) == ("vecs", 2000, 0, DIM)
    assert outcome.created and outcome.normalised == 0 and outcome.format == "parquet"
    ids, got = stored(tmp_path / "ws", "vecs")
    rows = rows_by_id(tmp_path / "ws", ids)
    assert [row.path for row in rows] == paths  # as given, not resolved against the file system
    assert got.dtype == np.float32 and np.array_equal(got, vectors)  # unit vectors are stored bit for bit
    assert [row.label for row in rows] == labels and [row.split for row in rows] == splits
    assert all(row.status == "ok" and is_imported(row) and row.sha256 == imported_sha256(row.path) for row in rows)
    assert {(row.width, row.height) for row in rows} == {(None, None)}
    with workspace_of(tmp_path / "ws").catalog() as catalog:
        model = catalog.model("vecs")
        assert catalog.first_images_with_hashes([imported_sha256(paths[0])]) == {imported_sha256(paths[0]): ids[0]}
    assert (model.kind, model.dim) == ("external", DIM)
    assert {key: model.params[key] for key in ("embedder", "dim", "source")} == {
        "embedder": "external", "dim": DIM, "source": "vecs.parquet"}
    assert (tmp_path / "ws" / model.path).is_file()  # models/vecs/external.json: where the vectors came from


def test_variable_lists_of_doubles_and_non_unit_vectors_are_stored_normalised(tmp_path):
    import pyarrow as pa

    from indexer.api import import_vectors

    vectors = np.arange(1, 31, dtype=np.float64).reshape(10, 3)
    file = write_parquet(tmp_path / "raw.parquet", [f"r{i}" for i in range(10)], vectors, fixed=False,
                         vector_type=pa.float64(), other=False)
    outcome = import_vectors(workspace_of(tmp_path / "ws"), file, model_name="raw", progress=False)
    assert (outcome.rows, outcome.dim, outcome.normalised) == (10, 3, 10)
    _, got = stored(tmp_path / "ws", "raw")
    expected = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    assert np.allclose(got, expected, atol=1e-6) and np.allclose(np.linalg.norm(got, axis=1), 1, atol=1e-6)


def test_an_imported_model_exports_and_imports_again_unchanged(sample, tmp_path, cli):
    """Parquet and npy: export of the imported model, imported into a fresh workspace, gives the same rows."""
    from indexer.api import export_vectors, import_vectors

    file, paths, vectors, labels, splits = sample
    first = workspace_of(tmp_path / "ws")
    import_vectors(first, file, progress=False)
    export_vectors(first, tmp_path / "out" / "again.parquet", model_name="vecs", batch_rows=512)
    result = cli("export", "--model", "vecs", "--format", "npy", str(tmp_path / "out" / "again-npy"),
                 workspace=tmp_path / "ws")
    assert result.exit_code == 0, result.output
    for source, model in ((tmp_path / "out" / "again.parquet", "again"), (tmp_path / "out" / "again-npy", "again-npy")):
        fresh = tmp_path / f"fresh-{model}"
        result = cli("import", str(source), workspace=fresh)
        assert result.exit_code == 0, result.output
        assert f"model {model!r}: 2000 vectors of {DIM} dims imported" in result.output
        ids, got = stored(fresh, model)
        rows = rows_by_id(fresh, ids)
        assert np.array_equal(got, vectors) and [row.path for row in rows] == paths
        assert [row.label for row in rows] == labels and [row.split for row in rows] == splits


def test_a_trained_models_export_round_trips_into_a_fresh_workspace(ws, tmp_path):
    from indexer.api import export_vectors, import_vectors
    from indexer.api.registry.images import served_image
    from indexer.api.registry.indexes import catalog_vectors

    original = workspace_of(ws)
    export_vectors(original, tmp_path / "tiny.parquet", model_name="tiny")
    fresh = workspace_of(tmp_path / "fresh")
    outcome = import_vectors(fresh, tmp_path / "tiny.parquet", progress=False)
    assert (outcome.model, outcome.rows, outcome.normalised) == ("tiny", 24, 0)
    ids, vectors = catalog_vectors(original, "tiny")
    order = np.argsort(ids)
    new_ids, new_vectors = stored(tmp_path / "fresh", "tiny")
    assert np.array_equal(new_vectors, vectors[order])  # bit for bit
    before, after = rows_by_id(ws, ids[order]), rows_by_id(tmp_path / "fresh", new_ids)
    assert [(r.path, r.label, r.split) for r in after] == [(r.path, r.label, r.split) for r in before]
    assert served_image(fresh, int(new_ids[0])).path == before[0].path  # the path is a real PNG: it may be served


def test_without_pyarrow_a_parquet_import_says_how_to_get_it(sample, tmp_path, monkeypatch):
    import sys

    from indexer.api import MissingDependencyError, import_vectors

    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(MissingDependencyError, match="pip install pyarrow"):
        import_vectors(workspace_of(tmp_path / "ws"), sample[0])


# -- resuming ----------------------------------------------------------------------------------------------------


def test_a_prefix_then_the_whole_file_imports_the_rest_and_says_resumed(sample, tmp_path, cli):
    file, paths, vectors, labels, splits = sample
    prefix = write_parquet(tmp_path / "prefix.parquet", paths[:700], vectors[:700], labels=labels[:700],
                           splits=splits[:700])
    assert cli("import", str(prefix), "--model", "vecs", workspace=tmp_path / "ws").exit_code == 0
    result = cli("import", str(file), "--batch-rows", "256", workspace=tmp_path / "ws")
    assert result.exit_code == 0, result.output
    assert "resumed: 700 already imported" in result.output
    assert "model 'vecs': 1300 vectors of 8 dims imported" in result.output
    ids, got = stored(tmp_path / "ws", "vecs")
    assert [row.path for row in rows_by_id(tmp_path / "ws", ids)] == paths and np.array_equal(got, vectors)
    again = cli("import", str(file), workspace=tmp_path / "ws")
    assert "resumed: 2000 already imported" in again.output and "0 vectors" in again.output


def test_an_import_killed_between_its_catalog_commit_and_its_store_append_finishes_when_run_again(
        sample, tmp_path, monkeypatch):
    from indexer.api import import_vectors
    from models.embedding_store import EmbeddingStore

    file, paths, vectors, *_ = sample
    workspace = workspace_of(tmp_path / "ws")
    real_append, calls = EmbeddingStore.append, []

    def dies_on_the_second_chunk(self, ids, chunk):
        calls.append(len(ids))
        if len(calls) == 2:
            raise KeyboardInterrupt  # the second chunk's rows are committed, its vectors never stored
        real_append(self, ids, chunk)

    monkeypatch.setattr(EmbeddingStore, "append", dies_on_the_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        import_vectors(workspace, file, batch_rows=800, progress=False)
    monkeypatch.setattr(EmbeddingStore, "append", real_append)
    with workspace.catalog() as catalog:
        assert catalog.summary().images_total == 1600
    assert len(stored(tmp_path / "ws", "vecs")[0]) == 800
    outcome = import_vectors(workspace, file, batch_rows=800, progress=False)
    assert (outcome.rows, outcome.skipped_existing, outcome.created) == (1200, 800, False)
    ids, got = stored(tmp_path / "ws", "vecs")
    with workspace.catalog() as catalog:
        assert catalog.summary().images_total == 2000
    assert [row.path for row in rows_by_id(tmp_path / "ws", ids)] == paths and np.array_equal(got, vectors)


def test_a_large_import_holds_about_one_batch(tmp_path):
    """40,000 x 64 (10 MB of float32) in batches of 1,000: the import's own Python and numpy memory peaks far
    below the whole file's vectors."""
    import tracemalloc

    from indexer.api import import_vectors

    n, dim = 40_000, 64
    vectors, _ = clustered(n, dim=dim, seed=5)
    file = write_parquet(tmp_path / "big.parquet", [f"big/{i}" for i in range(n)], vectors, other=False)
    whole = vectors.nbytes
    del vectors
    workspace = workspace_of(tmp_path / "ws")
    small = write_parquet(tmp_path / "small.parquet", ["small/0", "small/1"], clustered(2, dim=dim)[0])
    import_vectors(workspace, small, progress=False)  # the catalog made and every module imported before measuring
    tracemalloc.start()
    try:
        outcome = import_vectors(workspace, file, batch_rows=1000, progress=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert outcome.rows == n
    assert peak < whole / 2, f"peak {peak / 1e6:.1f} MB for {whole / 1e6:.1f} MB of vectors"


# -- using what was imported -------------------------------------------------------------------------------------


def test_build_then_a_vector_query_over_the_imported_model(sample, tmp_path, cli):
    from indexer.api import InputError, Searcher

    file, paths, vectors, labels, _ = sample
    root = tmp_path / "ws"
    assert cli("import", str(file), workspace=root).exit_code == 0
    result = cli("embed", "--model", "vecs", workspace=root)
    assert result.exit_code == 0 and "nothing to embed" in result.output and "0 embedded" in result.output
    result = cli("build", "--index", "ivf", "--model", "vecs", workspace=root)
    assert result.exit_code == 0, result.output
    searcher = Searcher(workspace_of(root), "ivf")
    hits = searcher.hits_for_vectors(vectors[:20], k=5)
    assert [answer[0].path for answer in hits] == paths[:20]  # each vector finds its own row first
    same_label = np.mean([hit.label == labels[i] for i, answer in enumerate(hits) for hit in answer])
    assert same_label > 0.9
    with pytest.raises(InputError, match="model 'vecs' takes vectors, not images: query it with a vector"):
        searcher.answer([str(file)])
    status = cli("status", "--json", workspace=root)
    assert '"inconsistencies": []' in status.output


def test_imported_rows_beside_images_are_never_embedded_or_counted_missing(ws, tmp_path, cli):
    """A trained workspace plus imported vectors: the image model leaves them alone, each index holds its own."""
    from indexer.api import export_vectors, import_vectors

    vectors, _ = clustered(30, seed=3)
    file = write_parquet(tmp_path / "ext.parquet", [f"ext/{i}" for i in range(30)], vectors)
    import_vectors(workspace_of(ws), file, progress=False)
    result = cli("embed", "--model", "tiny", workspace=ws)
    assert result.exit_code == 0 and "0 embedded, 24 already embedded, 0 failed" in result.output
    with workspace_of(ws).catalog() as catalog:
        summary = catalog.summary()
    assert (summary.images_ok, summary.images_error) == (54, 0)  # the imported rows were not marked error
    assert cli("build", "--index", "flat", "--model", "ext", "--name", "ext-flat", workspace=ws).exit_code == 0
    assert '"inconsistencies": []' in cli("status", "--json", workspace=ws).output
    assert export_vectors(workspace_of(ws), tmp_path / "t.parquet", model_name="tiny").not_embedded == 0


def test_served_image_says_an_imported_row_has_no_file(sample, tmp_path):
    from indexer.api import NotFoundError, import_vectors
    from indexer.api.registry.images import served_image
    from tests.conftest import draw_shape

    picture = draw_shape(tmp_path / "pictures" / "a.png", (220, 30, 30), "ellipse")
    text = tmp_path / "secret.txt"
    text.write_text("not for the service")
    vectors, _ = clustered(3, seed=4)
    file = write_parquet(tmp_path / "mixed.parquet", ["no/such/file", str(picture), str(text)], vectors)
    workspace = workspace_of(tmp_path / "ws")
    import_vectors(workspace, file, model_name="vecs", progress=False)
    ids, _ = stored(tmp_path / "ws", "vecs")
    with pytest.raises(NotFoundError, match=rf"^image {ids[0]} is an imported vector \(model 'vecs'\): it has no "
                                            "image file$"):
        served_image(workspace, int(ids[0]))
    assert served_image(workspace, int(ids[1])).path == str(picture)  # an image file: served
    with pytest.raises(NotFoundError, match="is an imported vector"):  # any other file is not
        served_image(workspace, int(ids[2]))
    with pytest.raises(NotFoundError, match="no image with id 999"):
        served_image(workspace, 999)


def test_an_imported_model_travels_with_a_copy_and_a_backup_of_the_workspace(sample, tmp_path, cli):
    """The model's record and store are copied by cp -r and by 'indexer backup', like every other artifact."""
    file = sample[0]
    assert cli("import", str(file), workspace=tmp_path / "ws").exit_code == 0
    shutil.copytree(tmp_path / "ws", tmp_path / "copy")
    assert cli("backup", str(tmp_path / "backup"), workspace=tmp_path / "ws").exit_code == 0
    for copy in (tmp_path / "copy", tmp_path / "backup"):
        result = cli("import", str(file), workspace=copy)
        assert result.exit_code == 0 and "resumed: 2000 already imported" in result.output
        assert (copy / "models" / "vecs" / "external.json").is_file()
        run(copy, "build", "--index", "flat", "--model", "vecs")
        assert '"inconsistencies": []' in cli("status", "--json", workspace=copy).output


def test_import_resume_and_the_catalogs_widths_on_each_database(tmp_path, db_url):
    """SQLite and PostgreSQL alike: ids come back in row order, a rerun skips, a split wider than the catalog's
    column (PostgreSQL would refuse it mid-import) is refused before anything is written."""
    from indexer.api import InputError, Workspace, import_vectors

    vectors, which = clustered(900, seed=6)
    paths = [f"db/{i}" for i in range(900)]
    file = write_parquet(tmp_path / "db.parquet", paths, vectors, labels=[f"c{w}" for w in which],
                         splits=["train"] * 900)
    workspace = Workspace.at(tmp_path / "ws", db_url)
    assert import_vectors(workspace, file, batch_rows=400, progress=False).rows == 900
    assert import_vectors(workspace, file, batch_rows=400, progress=False).skipped_existing == 900
    ids, got = stored(tmp_path / "ws", "db")
    with workspace.catalog() as catalog:
        rows = catalog.images_by_ids(ids.tolist())
    assert [rows[int(i)].path for i in ids] == paths and np.array_equal(got, vectors)
    wide = write_parquet(tmp_path / "wide.parquet", ["w/0", "w/1"], vectors[:2], splits=["train", "s" * 33])
    with pytest.raises(InputError, match=r"wide.parquet: row 1: split longer than 32 characters"):
        import_vectors(workspace, wide, progress=False)
    with workspace.catalog() as catalog:
        assert catalog.summary().images_total == 900


def test_other_parquet_columns_become_typed_fields(sample, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from indexer.api import import_vectors
    from indexer.core.errors import InputError

    file, paths, vectors, labels, splits = sample
    workspace = workspace_of(tmp_path / "ws")
    import_vectors(workspace, file, batch_rows=300, progress=False)
    with workspace.catalog() as catalog:
        assert catalog.fields() == {"note": "text", "score": "number"}, "id is not a field"
        matched = catalog.matching_ids(catalog.parse_filter('score < 0.01 or note = "n1999"'))
        got = [row.path for row in catalog.images_by_ids(matched).values()]
    expected = {paths[i] for i in range(2000) if i / 1999 < 0.01} | {paths[1999]}
    assert set(got) == expected and len(got) == len(expected)
    clash = tmp_path / "clash.parquet"
    table = pq.read_table(file).drop_columns(["score"]).append_column("score", pa.array(["high"] * 2000))
    pq.write_table(table.drop_columns(["path"]).append_column("path", pa.array([f"x/{i}" for i in range(2000)])),
                   clash)
    before = len(matched)
    with pytest.raises(InputError, match="clash.parquet: field 'score' is number; got a text value"):
        import_vectors(workspace, clash, model_name="other", progress=False)
    with workspace.catalog() as catalog:
        assert catalog.count_images() == 2000 and len(catalog.matching_ids(catalog.parse_filter("score < 0.01"))) \
            == before - 1, "nothing of the refused file was written"


def test_user_fields_travel_through_export_and_import(sample, tmp_path):
    from indexer.api import export_vectors, image_fields, import_vectors, set_image_fields

    file, paths, *_ = sample
    first = workspace_of(tmp_path / "ws")
    import_vectors(first, file, batch_rows=500, progress=False)
    ids, _ = stored(tmp_path / "ws", "vecs")
    set_image_fields(first, int(ids[0]), {"taken": "2024-06-01"}, types={"taken": "date"})
    export_vectors(first, tmp_path / "out.parquet", model_name="vecs", batch_rows=700)
    export_vectors(first, tmp_path / "npy", model_name="vecs", format="npy")
    header = (tmp_path / "npy" / "meta.csv").read_text().splitlines()[0]
    assert header == "id,path,label,split,note,score,taken"
    second = workspace_of(tmp_path / "ws2")
    import_vectors(second, tmp_path / "out.parquet", progress=False)
    with second.catalog() as catalog:
        assert catalog.fields() == {"note": "text", "score": "number", "taken": "date"}
        new_ids = sorted(catalog.matching_ids(catalog.parse_filter('taken >= "2024-01-01"')))
    assert len(new_ids) == 1
    moved = image_fields(second, new_ids[0])
    assert moved["note"] == "n0" and moved["score"] == 0.0 and moved["taken"].year == 2024
