"""examples/flowers.ipynb runs from top to bottom on a small Flowers-102 subset and shows its pictures.

Needs FLOWERS102_DIR (``.ci/run`` sets it when ../shared is beside the clone); WEIGHTS or the torch cache
decide between MobileNetV2 and the Siamese network. ``-m "not notebook"`` leaves it out of a quick run.
"""

from __future__ import annotations

import base64
import io
import os
from pathlib import Path

import pytest

from tests.requirements import FLOWERS_HOW, require

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "flowers.ipynb"
FLOWERS102_DIR = os.environ.get("FLOWERS102_DIR")
CELL_TIMEOUT_S = 600


def _cells_tagged(notebook, tag: str):
    cells = [cell for cell in notebook.cells if tag in cell.get("metadata", {}).get("tags", [])]
    assert cells, f"no cell tagged {tag!r}"
    return cells[0]


def _png(cell):
    from PIL import Image

    pictures = [output["data"]["image/png"] for output in cell.get("outputs", [])
                if "image/png" in output.get("data", {})]
    assert pictures, f"cell {cell.source[:60]!r} displayed no picture"
    return Image.open(io.BytesIO(base64.b64decode(pictures[0])))


def test_the_committed_notebook_has_no_outputs():
    import nbformat

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)


@pytest.mark.notebook
def test_the_flowers_notebook_runs_and_shows_the_grid_the_table_and_the_plot(tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    require(FLOWERS102_DIR, "FLOWERS102_DIR (a local Flowers-102 copy) for the notebook", FLOWERS_HOW)
    monkeypatch.setenv("NOTEBOOK_WORKSPACE", str(tmp_path / "ws"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()  # raises on any cell error

    errors = [output for cell in notebook.cells for output in cell.get("outputs", [])
              if output.get("output_type") == "error"]
    assert not errors
    assert "431 ingested" in "".join(o.get("text", "") for o in _cells_tagged(notebook, "catalog").outputs)
    grid = _png(_cells_tagged(notebook, "grid"))
    assert grid.width > 5 * 128 and grid.height > 2 * 128  # query + 5 columns, 2 rows of results
    bench_html = _cells_tagged(notebook, "bench-table").outputs[0]["data"]["text/html"]
    assert all(kind in bench_html for kind in ("flat", "ivf", "hnsw"))
    assert _png(_cells_tagged(notebook, "plot")).width > 300
    assert "431 vectors" in "".join(o.get("text", "") for o in _cells_tagged(notebook, "export").outputs)
    assert (tmp_path / "ws" / "notebook-output" / "flowers.parquet").is_file()
