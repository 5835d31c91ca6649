"""The one image loader: decoded no larger than needed, whole, oriented; phone formats; a pixel budget."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from models.errors import ImageError
from models.images import missing_plugin_hint, open_rgb


def _photo(path, size=(2000, 1500), fmt=None, **save):
    """A smooth picture with a shape, so downscaled versions stay comparable."""
    img = Image.linear_gradient("L").resize(size).convert("RGB")
    ImageDraw.Draw(img).ellipse([size[0] // 4, size[1] // 4, size[0] // 2, size[1] // 2], fill=(200, 40, 40))
    img.save(path, format=fmt, **save)
    return path


def test_a_large_jpeg_is_decoded_at_the_smallest_scale_that_keeps_the_needed_side(tmp_path):
    path = _photo(tmp_path / "big.jpg", quality=90)
    image = open_rgb(path, min_side=256)
    assert 256 <= min(image.size) < 512, image.size  # DCT scaling 1/4: 500 x 375
    assert image.info["original_size"] == (2000, 1500) and image.info["format"] == "JPEG"
    full = open_rgb(path)
    assert full.size == (2000, 1500)
    small_of_full = np.asarray(full.resize(image.size, Image.Resampling.BOX), dtype=np.float32)
    assert np.abs(small_of_full - np.asarray(image, dtype=np.float32)).mean() < 4, "the same picture"


def test_other_formats_are_reduced_after_decoding(tmp_path):
    path = _photo(tmp_path / "big.png", size=(1800, 1200))
    image = open_rgb(path, min_side=256)
    assert 256 <= min(image.size) < 512 and image.info["original_size"] == (1800, 1200)


def test_exif_orientation_is_applied_with_draft_decoding(tmp_path):
    img = Image.new("RGB", (2000, 1000), (10, 120, 200))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when shown
    img.save(tmp_path / "rotated.jpg", exif=exif.tobytes())
    image = open_rgb(tmp_path / "rotated.jpg", min_side=200)
    assert image.height > image.width and min(image.size) >= 200
    assert image.info["original_size"] == (1000, 2000)


def test_a_truncated_large_jpeg_is_still_caught_at_the_reduced_size(tmp_path):
    data = _photo(tmp_path / "whole.jpg", quality=95).read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="cut.jpg: cannot decode"):
        open_rgb(tmp_path / "cut.jpg", min_side=64)


def test_the_decoded_pixel_budget_is_a_clear_error_and_jpeg_draft_stays_under_it(tmp_path):
    png = _photo(tmp_path / "big.png", size=(1000, 1000))
    with pytest.raises(ImageError, match="per-image budget of 500,000"):
        open_rgb(png, min_side=100, max_decoded_pixels=500_000)
    jpeg = _photo(tmp_path / "big.jpg", size=(1000, 1000))
    assert open_rgb(jpeg, min_side=100, max_decoded_pixels=500_000).size == (125, 125)


@pytest.mark.parametrize(("suffix", "fmt"), [(".heic", "HEIF"), (".avif", "AVIF")])
def test_phone_formats_are_read(tmp_path, suffix, fmt):
    if suffix == ".heic":
        import pillow_heif

        pillow_heif.register_heif_opener()
    path = _photo(tmp_path / f"phone{suffix}", size=(640, 480), fmt=fmt, quality=90)
    image = open_rgb(path, min_side=128)
    assert image.mode == "RGB" and min(image.size) >= 128 and image.info["original_size"] == (640, 480)


def test_a_missing_plugin_is_named(monkeypatch, tmp_path):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "pillow_heif" else real_find_spec(name, *a))
    assert "pip install pillow-heif" in missing_plugin_hint(".HEIC")
    assert missing_plugin_hint(".png") is None


def test_a_heic_thumbnail_serves_the_model_but_never_proves_the_file_whole(tmp_path):
    import pillow_heif

    pillow_heif.register_heif_opener()
    path = _photo(tmp_path / "phone.heic", size=(1600, 1200), fmt="HEIF", quality=80, thumbnails=[500])
    for_model = open_rgb(path, min_side=256, thumbnails=True)
    assert for_model.size[0] == 500 and for_model.info["original_size"] == (1600, 1200)  # 500 x 374
    whole = open_rgb(path, min_side=256)  # what ingest does: the main image decoded, then reduced by 4
    assert whole.size == (400, 300)
