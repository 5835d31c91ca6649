"""Shared fixtures: tiny images of coloured shapes made in code, a fresh workspace, a CLI runner."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from tests.requirements import extra, require, require_module

SHAPES = {
    "red_circle": ((220, 30, 30), "ellipse"),
    "green_square": ((30, 180, 40), "rectangle"),
    "blue_triangle": ((30, 60, 220), "polygon"),
}


def draw_shape(path: Path, colour, shape: str, offset: int = 0, size: int = 32) -> Path:
    """Write a small PNG/JPEG of one coloured shape on a light background."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size), (240, 240, 235))
    draw = ImageDraw.Draw(img)
    lo, hi = 4 + offset, size - 6 + offset
    if shape == "polygon":
        draw.polygon([(size // 2 + offset, lo), (lo, hi), (hi, hi)], fill=colour)
    else:
        getattr(draw, shape)([lo, lo, hi, hi], fill=colour)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def _copy_file(source: str, destination: str) -> str:
    """shutil.copy2, except that an SQLite database is copied through SQLite's backup API."""
    if source.endswith(".db"):
        with open(source, "rb") as handle:
            is_sqlite = handle.read(16) == b"SQLite format 3\x00"
        if is_sqlite:
            with sqlite3.connect(source) as src, sqlite3.connect(destination) as dst:
                src.backup(dst)
            src.close()
            dst.close()
            return destination
    return shutil.copy2(source, destination)


def copy_workspace(source: Path, destination: Path) -> Path:
    """A consistent copy of a workspace a module-scoped fixture shares.

    A connection left open by an earlier test may checkpoint and delete ``catalog.db-wal`` while a plain
    copytree walks the folder; the backup API copies each database as one snapshot, WAL included.
    """
    shutil.copytree(source, destination, copy_function=_copy_file,
                    ignore=shutil.ignore_patterns("*.db-wal", "*.db-shm", "*.db-journal"))
    return destination


@pytest.fixture
def image_tree(tmp_path: Path) -> Path:
    """``tmp/images/<class>/<class>_<i>.png``: 3 classes × 4 distinct images."""
    root = tmp_path / "images"
    for name, (colour, shape) in SHAPES.items():
        for i in range(4):
            draw_shape(root / name / f"{name}_{i}.png", colour, shape, offset=i - 1)
    return root


@pytest.fixture(scope="session")
def mnv2_weights(tmp_path_factory) -> str:
    """A MobileNetV2 state dict file with seeded random weights: a stand-in for the ImageNet checkpoint, which
    the tests cannot download (pass it as ``--weights PATH``)."""
    import torch
    import torchvision

    path = tmp_path_factory.mktemp("weights") / "mobilenet_v2-random.pth"
    torch.manual_seed(0)
    torch.save(torchvision.models.mobilenet_v2(weights=None).state_dict(), path)
    return str(path)


@pytest.fixture
def workspace(tmp_path: Path):
    from indexer.api.workspace import Workspace

    return Workspace.at(tmp_path / "ws")


@pytest.fixture
def cli(tmp_path: Path):
    """Run the CLI in-process against a workspace in tmp_path; returns the click Result."""
    from click.testing import CliRunner

    from cli import main

    runner = CliRunner()

    def invoke(*args: str, workspace: Path | None = None):
        ws = workspace or tmp_path / "ws"
        return runner.invoke(main, ["--workspace", str(ws), *args], catch_exceptions=False)

    return invoke


@pytest.fixture(scope="session")
def postgres_cluster():
    """A throw-away PostgreSQL cluster for the whole run (skipped with a reason when none can start;
    under CI=true failed instead: tests/requirements.py)."""
    from tests.postgres import missing_reason, start_cluster

    reason = missing_reason()
    require(reason is None, f"a PostgreSQL server to start ({reason})",
            "'make postgres' installs the server; the 'postgres' extra, psycopg")
    cluster = start_cluster()
    yield cluster
    cluster.stop()


@pytest.fixture
def postgres_url(postgres_cluster) -> str:
    """The SQLAlchemy URL of a new, empty PostgreSQL database."""
    return postgres_cluster.new_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path: Path) -> str | None:
    """Each database the catalog supports: None (the workspace's own SQLite file) or a new PostgreSQL database."""
    if request.param == "sqlite":
        return None
    return request.getfixturevalue("postgres_url")


@pytest.fixture(scope="session")
def local_ray():
    """One small local Ray (`ray.init(num_cpus=2)`) shared by every Ray test: it takes seconds to start; the API reuses it.

    Without the 'scale' extra the Ray tests skip and say why; under CI=true (which installs it) they fail."""
    ray = require_module("ray", extra("scale"))
    require_module("ray.data", extra("scale"))
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=256 * 1024**2, log_to_driver=False)
    yield ray
    ray.shutdown()
