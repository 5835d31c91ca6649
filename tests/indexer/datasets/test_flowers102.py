"""Flowers-102: checksums agree with torchvision, offline errors help, the real set ingests exactly."""

from __future__ import annotations

import os
import urllib.error
from pathlib import Path

import pytest

from indexer.api import catalog_status, ingest_flowers102
from indexer.core.errors import InputError
from indexer.datasets import flowers102 as flowers
from tests.requirements import FLOWERS_HOW, require

FLOWERS102_DIR = os.environ.get("FLOWERS102_DIR")


def test_checksums_equal_torchvisions_own():
    from torchvision.datasets import Flowers102

    assert Flowers102._file_dict["label"] == flowers.LABELS_FILE
    assert Flowers102._file_dict["setid"] == flowers.SETID_FILE


def test_offline_without_local_copy_says_how_to_supply_one(workspace, monkeypatch):
    import torchvision.datasets.flowers102 as module

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(module, "download_and_extract_archive", no_network)
    with pytest.raises(InputError, match="cannot obtain Flowers-102.*--root.*FLOWERS102_DIR"):
        ingest_flowers102(workspace, None, progress=False)


def test_root_without_the_official_files_is_refused(workspace, tmp_path):
    (tmp_path / "fake" / "jpg").mkdir(parents=True)
    (tmp_path / "fake" / "imagelabels.mat").write_bytes(b"not the official file")
    with pytest.raises(InputError, match="no Flowers-102 copy there"):
        ingest_flowers102(workspace, tmp_path / "fake", progress=False)


def test_real_flowers102_ingests_with_official_labels_and_split(tmp_path, db_url):
    """On SQLite and on PostgreSQL (db_url)."""
    from indexer.api import Workspace

    require(FLOWERS102_DIR, "FLOWERS102_DIR (a local Flowers-102 copy)", FLOWERS_HOW)

    workspace = Workspace.at(tmp_path / "ws", db_url)
    root = Path(FLOWERS102_DIR)
    before = sorted(p.name for p in root.iterdir())
    report = ingest_flowers102(workspace, root, progress=False)
    assert sorted(p.name for p in root.iterdir()) == before, "nothing is written into the local copy"
    assert report.errors == 0 and report.duplicates >= 4
    summary = catalog_status(workspace)
    assert summary["images_total"] == summary["images_ok"] == 8189
    assert summary["labels"] == 102
    assert summary["splits"] == {"train": 1020, "val": 1020, "test": 6149}
    with workspace.catalog() as catalog:
        rows = {Path(r.path).name: r for r in catalog.images()}
    assert (rows["image_00001.jpg"].label_id, rows["image_00001.jpg"].label) == (77, "passion flower")
    assert rows["image_00001.jpg"].split == "test"
    # torchvision's layout (DIR/flowers-102/jpg) is accepted too, and a rerun adds nothing
    (tmp_path / "tv").mkdir()
    (tmp_path / "tv" / "flowers-102").symlink_to(root.resolve())
    assert flowers.find_local_copy(tmp_path / "tv") == root.resolve()
    assert ingest_flowers102(workspace, tmp_path / "tv", progress=False).already_catalogued == 8189
