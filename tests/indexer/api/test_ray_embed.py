"""``indexer embed --engine ray``: the same vectors as the local path, resumable, failure-tolerant, optional."""

from __future__ import annotations

import shutil
import sys

import numpy as np

from tests.indexer.api.conftest import run

MODEL = "tiny"


def _store(ws):
    from models.embedding_store import EmbeddingStore

    return EmbeddingStore(ws / "embeddings" / MODEL)


def _by_id(store) -> dict[int, np.ndarray]:
    return dict(zip(store.ids().tolist(), np.asarray(store.vectors(mmap=False))))


def test_ray_vectors_equal_the_local_paths(local_ray, ws):
    local = _by_id(_store(ws))  # the fixture's build embedded every image locally (the torch checkpoint)
    shutil.rmtree(ws / "embeddings" / MODEL)
    result = run(ws, "embed", "--engine", "ray", "--actors", "2", "--batch-size", "5")
    assert f"{len(local)} embedded, 0 already embedded, 0 failed" in result.output
    on_ray = _by_id(_store(ws))  # the ONNX export in two Ray actors
    assert sorted(on_ray) == sorted(local)
    for image_id, vector in local.items():
        cosine = float(vector @ on_ray[image_id] / (np.linalg.norm(vector) * np.linalg.norm(on_ray[image_id])))
        assert cosine >= 0.9999, (image_id, cosine)


def test_ray_embeds_only_what_the_store_lacks(local_ray, ws):
    from indexer.api import Workspace, embed

    store = _store(ws)
    ids = store.ids()
    removed = ids[::3]
    store.remove(removed)
    report = embed(Workspace.at(ws), MODEL, engine="ray", actors=1, batch_size=4, progress=False)
    assert (report.embedded, report.skipped_existing, report.failed) == (len(removed), len(ids) - len(removed), [])
    assert sorted(_store(ws).ids().tolist()) == sorted(ids.tolist())
    again = embed(Workspace.at(ws), MODEL, engine="ray", progress=False)
    assert (again.embedded, again.skipped_existing) == (0, len(ids))


def test_a_broken_image_is_reported_and_marked_not_fatal(local_ray, ws, tmp_path):
    from indexer.api import Workspace, catalog_images, embed
    from tests.conftest import SHAPES, draw_shape

    workspace = Workspace.at(ws)
    before = len(_store(ws))
    shape = SHAPES["red_circle"][1]  # a new colour: not copies of the catalog's circles
    new = [draw_shape(tmp_path / "more" / "red_circle" / f"late_{i}.png", (200, 120, 10), shape, offset=i)
           for i in range(3)]
    run(ws, "ingest", str(tmp_path / "more"))
    with open(new[1], "r+b") as handle:  # the file broke after ingestion
        handle.truncate(20)
    broken = next(row for row in catalog_images(workspace) if row.path.endswith("late_1.png"))
    report = embed(workspace, MODEL, engine="ray", actors=2, batch_size=2, progress=False)
    assert (report.embedded, report.skipped_existing) == (2, before)
    assert [f[:2] for f in report.failed] == [(broken.id, broken.path)] and "late_1.png" in report.failed[0][2]
    assert len(_store(ws)) == before + 2 and broken.id not in _store(ws).ids()
    statuses = {row.id: row.status for row in catalog_images(workspace, status=None)}
    assert statuses[broken.id] == "error"


def test_without_ray_the_engine_is_a_one_line_error(ws, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    result = run(ws, "embed", "--engine", "ray", ok=False)
    assert result.exit_code != 0
    assert result.output.strip().splitlines() == ['Error: embedding on Ray needs Ray Data: pip install "indexer[scale]"']


def test_ray_options_need_the_ray_engine(ws):
    result = run(ws, "embed", "--address", "auto", ok=False)
    assert result.exit_code != 0 and "--engine ray" in result.output and "Traceback" not in result.output
