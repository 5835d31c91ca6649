"""indexer dupes on generated images: byte-identical copies (known to the catalog) and a re-encoded copy.

The model is a small SIFT-VLAD fit: the two-epoch Siamese net of the shared fixture maps each class
to almost one point, so it could not tell a near copy from a sibling.
"""

from __future__ import annotations

import json
import shutil

import pytest

from tests.indexer.api.conftest import image_path as _image
from tests.indexer.api.conftest import run
from tests.requirements import extra, require_module


@pytest.fixture(scope="module", autouse=True)
def classical_extra() -> None:
    """SIFT-VLAD needs OpenCV (opencv-python-headless, the 'classical' extra); before any module fixture runs."""
    require_module("cv2", extra("classical"))


@pytest.fixture
def with_copies(trained, ws, tmp_path):
    """The trained workspace plus an exact copy and a JPEG re-encode (quality 95) of red_circle_0."""
    from PIL import Image

    original = _image(trained, "red_circle", 0)
    extra = tmp_path / "copies" / "red_circle"
    extra.mkdir(parents=True)
    shutil.copyfile(original, extra / "exact.png")
    Image.open(original).convert("RGB").save(extra / "reencoded.jpg", quality=95)
    run(ws, "ingest", str(tmp_path / "copies"))
    run(ws, "train", "--network", "sift-vlad", "--codebook", "8", "--dim", "4", "--image-size", "64", "--name", "sv")
    return ws, original, extra


def _paths(group):
    return {image["path"].rsplit("/", 1)[-1] for image in group["images"]}


def test_dupes_groups_copies_and_near_copies(with_copies, tmp_path):
    ws, _, _ = with_copies
    result = run(ws, "dupes", "--model", "sv", "--threshold", "0.95", "--json", "--grid", str(tmp_path / "d.png"))
    report = json.loads(result.stdout)
    assert report["threshold"] == 0.95
    groups = [g for g in report["groups"] if "exact.png" in _paths(g)]
    assert len(groups) == 1 and {"red_circle_0.png", "exact.png", "reencoded.jpg"} <= _paths(groups[0])
    assert groups[0]["exact_copies"] is False  # the re-encode has other bytes
    assert set(groups[0]["images"][0]) >= {"id", "path", "label", "split"}
    assert (tmp_path / "d.png").stat().st_size > 0


def test_threshold_one_finds_only_the_byte_identical_copy(with_copies):
    ws, _, _ = with_copies
    report = json.loads(run(ws, "dupes", "--model", "sv", "--threshold", "1.0", "--json").stdout)
    assert [_paths(g) for g in report["groups"]] == [{"red_circle_0.png", "exact.png"}]
    assert report["groups"][0]["exact_copies"] is True


def test_dupes_text_and_bad_threshold(with_copies):
    ws, _, _ = with_copies
    assert "byte-identical pairs" in run(ws, "dupes", "--model", "sv", "--threshold", "1.0").output
    result = run(ws, "dupes", "--model", "sv", "--threshold", "1.5", ok=False)
    assert result.exit_code == 2 and "Traceback" not in result.output
