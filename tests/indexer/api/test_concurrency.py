"""Several processes on one catalog (SQLite and PostgreSQL): real `indexer` processes started together."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from indexer.api import Workspace
from tests.conftest import SHAPES, draw_shape

PER_CLASS = 20  # per part: 3 classes × 20 = 60 files, enough for the runs to overlap in time


def indexer_command(workspace: Path, db_url: str | None, *args: str) -> list[str]:
    """argv of a real ``indexer`` process on ``workspace`` (and ``db_url`` when given)."""
    db = ["--db", db_url] if db_url else []
    return [sys.executable, "-m", "cli", "--workspace", str(workspace), *db, *args]


def run_together(commands: list[list[str]], timeout: float = 300) -> list[subprocess.CompletedProcess]:
    """Start every command at once and wait for all of them."""
    started = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for argv in commands]
    results = []
    for argv, process in zip(commands, started):
        out, err = process.communicate(timeout=timeout)
        results.append(subprocess.CompletedProcess(argv, process.returncode, out, err))
    return results


def make_parts(root: Path, parts: int) -> list[Path]:
    """``root/part<p>/<class>/<class>_<p>_<i>.png``: the same class folders in every part, distinct pictures."""
    folders = []
    for part in range(parts):
        folder = root / f"part{part}"
        for name, (colour, shape) in SHAPES.items():
            for i in range(PER_CLASS):
                tint = tuple(min(255, c + part * 8) for c in colour[:2]) + (min(255, colour[2] + i),)
                draw_shape(folder / name / f"{name}_{part}_{i}.png", tint, shape, offset=i % 5 - 2, size=24)
        folders.append(folder)
    return folders


def catalog_rows(workspace: Workspace) -> tuple[list[tuple[str, str | None, str]], list[str]]:
    """((path, label, status) sorted, label names sorted) — the catalog's content, ids aside."""
    with workspace.catalog() as catalog:
        images = sorted((row.path, row.label, row.status) for row in catalog.images(status=None))
        labels = sorted(catalog.label_names().values())
    return images, labels


@pytest.mark.parametrize("existing", [False, True], ids=["new-workspace", "existing-workspace"])
def test_ingest_processes_started_together_catalogue_each_file_once(tmp_path, db_url, existing):
    folders = make_parts(tmp_path / "images", 3)
    workspace_dir = tmp_path / "ws"
    if existing:  # a catalog that already holds part 0 (so part 0 is overlapping with what is there)
        first = subprocess.run(indexer_command(workspace_dir, db_url, "ingest", str(folders[0])),
                               capture_output=True, text=True)
        assert first.returncode == 0, first.stderr
    # two processes per part (overlapping), three parts (disjoint), all creating the same labels
    commands = [indexer_command(workspace_dir, db_url, "ingest", str(folder)) for folder in folders for _ in range(2)]
    results = run_together(commands)
    for result in results:
        assert result.returncode == 0, f"{result.args}: {result.stderr[-2000:]}"
        assert "Traceback" not in result.stderr
    images, labels = catalog_rows(Workspace.at(workspace_dir, db_url))
    paths = [path for path, _, _ in images]
    assert len(paths) == len(set(paths)) == 3 * 3 * PER_CLASS, "every file catalogued exactly once"
    assert {status for _, _, status in images} == {"ok"}
    assert labels == sorted(SHAPES), "each label created once"
    assert all(label == Path(path).parent.name for path, label, _ in images)
    ingested = sum(int(result.stdout.split(" ingested")[0]) for result in results)
    assert ingested == (2 if existing else 3) * 3 * PER_CLASS, "each file is reported ingested by one process"


def test_embed_and_update_beside_an_ingest(trained, ws, tmp_path):
    """`embed` and `build --update` running while an ingest adds files: no error, and the next update
    indexes what the ingest added."""
    new_images = tmp_path / "more"
    for name, (colour, shape) in SHAPES.items():
        for i in range(40):
            draw_shape(new_images / name / f"more_{name}_{i}.png", colour, shape, offset=i % 5 - 2, size=20 + i // 5)
    results = run_together([
        indexer_command(ws, None, "ingest", str(new_images)),
        indexer_command(ws, None, "embed", "--model", "tiny"),
        indexer_command(ws, None, "build", "--update", "flat"),
        indexer_command(ws, None, "embed", "--model", "tiny"),
    ])
    for result in results:
        assert result.returncode == 0, f"{result.args}: {result.stderr[-2000:]}"
    final = subprocess.run(indexer_command(ws, None, "build", "--update", "flat"), capture_output=True, text=True)
    assert final.returncode == 0, final.stderr
    workspace = Workspace.at(ws)
    with workspace.catalog() as catalog:
        ok_ids = sorted(row.id for row in catalog.images())
    from indexer.core.index_io import load_index
    from indexer.core.membership import indexed_ids
    from models.embedding_store import EmbeddingStore

    index, _ = load_index(ws / "indexes" / "flat.faiss")
    assert sorted(indexed_ids(index).tolist()) == ok_ids == sorted(EmbeddingStore(ws / "embeddings" / "tiny").ids())
    assert len(ok_ids) == 3 * 8 + 3 * 40
