"""Vectors in, refused: every bad file 'indexer import' is given (a bad column, a NaN, a duplicate path, another
model's width, a short npy folder, ...) is refused in one line naming the file and the row, and nothing is written:
the catalog, the workspace's files and every store are as they were."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest

from tests.indexer.api.test_import import DIM, clustered, workspace_of, write_parquet
from tests.requirements import extra, require_module


@pytest.fixture(scope="module", autouse=True)
def pyarrow_extra() -> None:
    """Parquet needs pyarrow (the 'notebook' extra); before any module fixture runs."""
    require_module("pyarrow", extra("notebook"))


def snapshot(root: Path) -> tuple:
    """What an import could change: the catalog's counts, labels and models, every file and folder but the
    catalog database's own, and each store's ids and vectors."""
    workspace = workspace_of(root)
    with workspace.catalog() as catalog:
        summary, labels = catalog.summary(), catalog.label_names()
    entries = sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.name.startswith("catalog.db"))
    stores = {p.parent.name: _read_only(p.parent) for p in (root / "embeddings").glob("*/store.json")}
    return summary, labels, entries, stores


def _read_only(directory: Path) -> tuple[bytes, bytes]:
    """A store's ids and vectors read without consolidating its parts (which would change its files)."""
    from models.embedding_store import EmbeddingStore

    store = EmbeddingStore(directory)
    ids = store.ids()
    return ids.tobytes(), store.lookup(ids)[1].tobytes()


@pytest.fixture
def base(tmp_path):
    """A workspace holding an import of 10 rows (model 'prior', paths prior/0..9) and a trained model row."""
    from indexer.api import import_vectors

    vectors, _ = clustered(10, seed=1)
    file = write_parquet(tmp_path / "prior.parquet", [f"prior/{i}" for i in range(10)], vectors)
    workspace = workspace_of(tmp_path / "ws")
    import_vectors(workspace, file, progress=False)
    with workspace.catalog(write=True) as catalog:
        catalog.register_model(name="net", kind="siamese", params={"onnx": "models/net/model.onnx"}, metrics={},
                               path="models/net/model.pt", dim=DIM)
    return tmp_path / "ws"


def _bad(tmp_path: Path, case: str) -> tuple[Path, dict, str]:
    """A bad source for ``case``: (its path, import options, the message expected after the file's name)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    vectors, _ = clustered(2000, seed=2)
    paths = [f"new/{i}" for i in range(2000)]
    file = tmp_path / f"{case}.parquet"
    options: dict = {}
    if case == "missing-column":
        pq.write_table(pa.table({"path": paths, "embedding": list(vectors)}), file)
        return file, options, r": no 'vector' column \(columns: path, embedding\)"
    if case == "not-parquet":
        file.write_text("path,vector\na,1\n")
        return file, options, r": not a Parquet file"
    if case == "wrong-dim":
        rows = [list(v) for v in vectors]
        rows[1500] = rows[1500][:5]
        write_parquet(file, paths, rows, fixed=False)
        return file, options, rf": row 1500: the vector has 5 values; the rows before it have {DIM}"
    if case == "nan":
        vectors[1234, 3] = np.nan
    elif case == "inf":
        vectors[1999, 0] = np.inf
    elif case == "zero":
        vectors[1100] = 0
    elif case == "duplicate-path":
        paths[1700] = paths[3]
    elif case == "empty-path":
        paths[1300] = ""
    elif case == "catalogued-path":
        paths[1042] = "prior/5"
    elif case == "other-dim":
        vectors = np.hstack([vectors, vectors])
        options = {"model_name": "prior"}
    elif case == "trained-model":
        options = {"model_name": "net"}
    write_parquet(file, paths, vectors)
    return file, options, {
        "nan": r": row 1234: the vector is not finite",
        "inf": r": row 1999: the vector is not finite",
        "zero": r": row 1100: the vector is all zeros",
        "duplicate-path": r": row 1700: path 'new/3' appears twice \(first at row 3\)",
        "empty-path": r": row 1300: empty path",
        "catalogued-path": r": row 1042: path 'prior/5' is already in the catalog \(image 6\)",
        "other-dim": rf": vectors of {2 * DIM} dims; model 'prior' holds {DIM}-dim vectors",
        "trained-model": r"model 'net' is a trained model \(siamese\), not imported vectors",
    }[case]


BAD_CASES = ["missing-column", "not-parquet", "wrong-dim", "nan", "inf", "zero", "duplicate-path", "empty-path",
             "catalogued-path", "other-dim", "trained-model"]


@pytest.mark.parametrize("case", BAD_CASES)
def test_a_bad_file_is_refused_in_one_line_and_nothing_is_written(base, tmp_path, case):
    from indexer.api import InputError, import_vectors

    file, options, message = _bad(tmp_path, case)
    before = snapshot(base)
    with pytest.raises(InputError) as caught:
        import_vectors(workspace_of(base), file, batch_rows=1000, progress=False, **options)
    text = str(caught.value)
    assert "\n" not in text
    if case != "trained-model":
        assert text.startswith(str(file)), text
    assert re.search(message, text), text
    assert snapshot(base) == before


def test_bad_npy_folders_are_refused_and_the_cli_says_so_in_one_line(base, tmp_path, cli):
    folder = tmp_path / "short"
    folder.mkdir()
    np.save(folder / "vectors.npy", clustered(5)[0])
    with open(folder / "meta.csv", "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([("id", "path", "label", "split"), *((i, f"s/{i}", "", "") for i in range(4))])
    before = snapshot(base)
    for source, options, message in [
        (folder, (), f"{folder / 'meta.csv'}: 4 rows; vectors.npy has 5"),
        (folder, ("--format", "parquet"), "is a folder"),
        (tmp_path / "prior.parquet", ("--format", "npy"), "reads a folder"),
    ]:
        result = cli("import", str(source), *options, workspace=base)
        assert result.exit_code == 1, result.output
        assert result.output.startswith("Error:") and "Traceback" not in result.output, result.output
        assert message in result.output
    (folder / "vectors.npy").unlink()
    result = cli("import", str(folder), workspace=base)
    assert result.exit_code == 1 and "no vectors.npy" in result.output
    assert snapshot(base) == before
