"""indexer train --network sift-vlad: registered like a model; embed, build and query work with it."""

from __future__ import annotations

import json

import pytest

from tests.indexer.api.conftest import image_path as _image
from tests.indexer.api.conftest import run
from tests.requirements import extra, require_module


@pytest.fixture(scope="module", autouse=True)
def classical_extra() -> None:
    """SIFT-VLAD needs OpenCV (opencv-python-headless, the 'classical' extra); before any module fixture runs."""
    require_module("cv2", extra("classical"))


def test_sift_vlad_trains_builds_and_answers_queries(trained, ws):
    result = run(ws, "train", "--network", "sift-vlad", "--codebook", "8", "--dim", "8", "--image-size", "64",
                 "--name", "sv")
    assert "model 'sv': fitted in" in result.output and "epochs" not in result.output
    run(ws, "build", "--index", "flat", "--model", "sv", "--name", "svflat")
    answers = json.loads(run(ws, "query", _image(trained, "green_square", 2), "--index", "svflat", "-k", "3",
                             "--json").stdout)
    assert answers[0]["results"][0]["path"].endswith("green_square_2.png")
    assert answers[0]["results"][0]["score"] == pytest.approx(1.0, abs=1e-4)
    status = json.loads(run(ws, "status", "--json").stdout)
    assert "sv" in status["models"]


def test_sift_vlad_refuses_network_flags(ws):
    result = run(ws, "train", "--network", "sift-vlad", "--epochs", "3", ok=False)
    assert result.exit_code == 2 and "--epochs" in result.output
