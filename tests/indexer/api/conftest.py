"""A trained tiny workspace shared by the API tests: 3 classes × 8 images, a Siamese model, a flat index."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from tests.conftest import SHAPES, copy_workspace, draw_shape


def run(workspace: Path, *args: str, ok: bool = True):
    result = CliRunner().invoke(main, ["--workspace", str(workspace), *args], catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A workspace with 3 classes × 8 images, a trained Siamese model and a flat index."""
    root = tmp_path_factory.mktemp("pipeline")
    images = root / "images"
    for name, (colour, shape) in SHAPES.items():
        for i in range(8):
            draw_shape(images / name / f"{name}_{i}.png", colour, shape, offset=i - 4)
    workspace = root / "ws"
    run(workspace, "ingest", str(images))
    run(workspace, "train", "--network", "siamese", "--image-size", "32", "--epochs", "2",
        "--batch-classes", "3", "--batch-per-class", "2", "--name", "tiny")
    run(workspace, "build", "--index", "flat")
    return root


@pytest.fixture
def ws(trained, tmp_path):
    """A private copy of the trained workspace (workspaces survive cp -r)."""
    copy_workspace(trained / "ws", tmp_path / "ws")
    return tmp_path / "ws"


def image_path(trained, name="red_circle", i=0) -> str:
    """One of the trained workspace's source images."""
    return str(trained / "images" / name / f"{name}_{i}.png")


