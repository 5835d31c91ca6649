"""Removal from every index kind, and a removal killed halfway that the same command finishes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.indexer.api.conftest import image_path, run


def _held(ws, name: str) -> np.ndarray:
    from indexer.core.index_io import load_index
    from indexer.core.membership import indexed_ids

    index, _ = load_index(ws / "indexes" / f"{name}.faiss")
    return indexed_ids(index)


def _image_id(ws, path: str) -> int:
    from indexer.api.workspace import Workspace
    from indexer.datasets.folders import catalog_path

    with Workspace.at(ws).catalog() as catalog:
        return catalog.images_by_paths([catalog_path(path)])[catalog_path(path)].id


@pytest.mark.parametrize(("kind", "extra"), [("pca", ["--pca-dim", "8"]), ("pca-ivf", ["--pca-dim", "8"]),
                                             ("ivfpq", [])])
def test_remove_from_pca_pca_ivf_and_ivfpq(trained, ws, kind, extra):
    run(ws, "build", "--index", kind, *extra)
    gone = image_path(trained, "green_square", 2)
    gone_id = _image_id(ws, gone)
    assert gone_id in _held(ws, kind)
    result = run(ws, "remove", gone)
    assert f"{kind}: 1" in result.output and "flat: 1" in result.output
    held = _held(ws, kind)
    assert gone_id not in held and len(held) == 23
    answer = json.loads(run(ws, "query", image_path(trained, "green_square", 3), "--index", kind, "-k", "23",
                            "--json").stdout)[0]
    assert gone_id not in [hit["id"] for hit in answer["results"]] and len(answer["results"]) == 23
    assert json.loads(run(ws, "status", "--json").stdout)["inconsistencies"] == []


def test_an_interrupted_removal_is_finished_by_running_it_again(trained, ws, monkeypatch):
    from indexer.api import remove_images
    from indexer.api.workspace import Workspace
    from indexer.core import index_io
    from models.embedding_store import EmbeddingStore

    run(ws, "build", "--index", "ivf")
    gone = image_path(trained, "blue_triangle", 5)
    gone_id = _image_id(ws, gone)
    real_save, saves = index_io.save_index, []

    def killed_after_the_first_index(*args, **kwargs):
        if saves:
            raise KeyboardInterrupt("killed")
        saves.append(real_save(*args, **kwargs))
        return saves[-1]

    monkeypatch.setattr(index_io, "save_index", killed_after_the_first_index)
    with pytest.raises(KeyboardInterrupt):
        remove_images(Workspace.at(ws), [gone])
    monkeypatch.setattr(index_io, "save_index", real_save)
    # halfway: one index lost the image, the other index, the store and the catalog still hold it
    held = {name: gone_id in _held(ws, name) for name in ("flat", "ivf")}
    assert sorted(held.values()) == [False, True]
    status = json.loads(run(ws, "status", "--json").stdout)
    assert status["images_total"] == 24 and any("lacks 1 catalog image" in p for p in status["inconsistencies"])

    result = run(ws, "remove", gone)
    assert "1 images removed" in result.output
    assert all(gone_id not in _held(ws, name) for name in ("flat", "ivf"))
    assert gone_id not in EmbeddingStore(ws / "embeddings" / "tiny").ids()
    status = json.loads(run(ws, "status", "--json").stdout)
    assert status["images_total"] == 23 and status["inconsistencies"] == []


def test_a_removal_killed_between_saving_a_file_and_registering_it_is_finished_by_running_it_again(trained, ws,
                                                                                                 monkeypatch):
    """The kill harness found this window: the index file saved without the image, its catalog row still counting
    it. The rerun finds nothing left to take out of that file, and must still set its row right."""
    from indexer.api import remove_images
    from indexer.api.registry import index_files
    from indexer.api.workspace import Workspace

    run(ws, "build", "--index", "ivf")
    gone = image_path(trained, "blue_triangle", 6)
    gone_id = _image_id(ws, gone)
    real_register = index_files.register

    def killed_before_registering(*args, **kwargs):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(index_files, "register", killed_before_registering)
    with pytest.raises(KeyboardInterrupt):
        remove_images(Workspace.at(ws), [gone])
    monkeypatch.setattr(index_files, "register", real_register)
    status = json.loads(run(ws, "status", "--json").stdout)
    assert any("file holds 23 vectors, the catalog says 24" in p for p in status["inconsistencies"]), status

    result = run(ws, "remove", gone)
    assert "1 images removed" in result.output
    assert all(gone_id not in _held(ws, name) for name in ("flat", "ivf"))
    status = json.loads(run(ws, "status", "--json").stdout)
    assert status["images_total"] == 23 and status["inconsistencies"] == [], status
