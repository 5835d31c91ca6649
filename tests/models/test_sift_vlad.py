"""SIFT-VLAD on generated images: codebook fitted, vectors of the right shape and norm, deterministic."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from models.errors import ModelError
from models.sift_vlad import SiftVladModel, SiftVladSpec, dense_root_sift, fit_sift_vlad, vlad
from tests.requirements import extra, require_module

SPEC = SiftVladSpec(codebook=8, dim=6, image_size=64, step=8, patch=16, seed=3)


@pytest.fixture(scope="module", autouse=True)
def classical_extra() -> None:
    """SIFT-VLAD needs OpenCV (opencv-python-headless, the 'classical' extra); before any module fixture runs."""
    require_module("cv2", extra("classical"))


def _images(n=16, seed=0):
    """n small pictures: two families (stripes, blobs) with random offsets and colours."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        img = Image.new("RGB", (48, 48), tuple(int(v) for v in rng.integers(150, 255, 3)))
        draw = ImageDraw.Draw(img)
        colour = tuple(int(v) for v in rng.integers(0, 120, 3))
        shift = int(rng.integers(0, 8))
        if i % 2:
            for x in range(shift, 48, 8):
                draw.rectangle([x, 0, x + 3, 47], fill=colour)
        else:
            for _ in range(4):
                x, y = rng.integers(0, 40, 2)
                draw.ellipse([int(x), int(y), int(x) + 10, int(y) + 10], fill=colour)
        out.append(img)
    return out


@pytest.fixture(scope="module")
def fitted():
    return fit_sift_vlad(_images(), SPEC)


def test_dense_grid_gives_the_same_number_of_root_sift_descriptors_per_image():
    a, b = (dense_root_sift(image, SPEC) for image in _images(2))
    assert a.shape == b.shape == (49, 128)  # 7 x 7 grid at 64 px, step 8, patch 16
    assert np.all(a >= 0) and np.allclose((a ** 2).sum(axis=1)[(a ** 2).sum(axis=1) > 0], 1.0, atol=1e-4)


def test_each_grid_descriptor_describes_its_own_patch_not_the_whole_image():
    from PIL import Image

    rng = np.random.default_rng(4)
    pixels = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    changed = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    changed[12:53, 12:53] = pixels[12:53, 12:53]  # pixels within 20 px of the grid point (32, 32) are kept
    a, b = (dense_root_sift(Image.fromarray(p), SPEC) for p in (pixels, changed))
    centre = 3 * 7 + 3  # the grid point at (32, 32): row 3, column 3 of the 7 x 7 grid
    assert np.array_equal(a[centre], b[centre])  # 16 px, plus SIFT's blur and interpolation margins
    assert not np.allclose(a[0], b[0])  # the corner patch, whose pixels changed, does


def test_vlad_is_power_and_intra_normalised():
    rng = np.random.default_rng(0)
    centroids = rng.random((4, 128), dtype=np.float32)
    v = vlad(rng.random((30, 128), dtype=np.float32), centroids)
    assert v.shape == (4 * 128,) and np.linalg.norm(v) == pytest.approx(1.0, abs=1e-5)
    blocks = np.linalg.norm(v.reshape(4, 128), axis=1)
    assert np.allclose(blocks[blocks > 0], blocks[blocks > 0][0], atol=1e-5)  # each used centroid weighs the same


def test_fit_gives_a_codebook_and_unit_vectors_of_dim(fitted):
    assert fitted.centroids.shape == (8, 128) and fitted.projection.shape == (8 * 128, 6)
    vectors = fitted.embed_images(_images(5, seed=9))
    assert vectors.shape == (5, 6) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_fit_is_deterministic_with_a_seed_and_survives_save_and_load(fitted, tmp_path):
    again = fit_sift_vlad(_images(), SPEC)
    assert np.array_equal(again.centroids, fitted.centroids)
    assert np.array_equal(again.projection, fitted.projection)
    loaded = SiftVladModel.load(fitted.save(tmp_path / "m.npz"))
    images = _images(3, seed=5)
    assert np.array_equal(loaded.embed_images(images), fitted.embed_images(images))
    assert loaded.spec == SPEC


def test_vlad_puts_the_same_family_closer_than_the_other(fitted):
    # Before whitening: 16 images are too few to whiten 6 dims reliably; Flowers measures the whole model.
    vectors = np.stack([vlad(dense_root_sift(image, SPEC), fitted.centroids) for image in _images(8, seed=11)])
    similarity = vectors @ vectors.T
    same = [similarity[i, j] for i in range(8) for j in range(i + 1, 8) if i % 2 == j % 2]
    other = [similarity[i, j] for i in range(8) for j in range(i + 1, 8) if i % 2 != j % 2]
    assert np.mean(same) > np.mean(other)


def test_bad_spec_and_too_few_images_are_refused():
    with pytest.raises(ModelError, match="codebook"):
        SiftVladSpec(codebook=1)
    with pytest.raises(ModelError, match="whitening"):
        SiftVladSpec(whitening=1.5)
    with pytest.raises(ModelError, match="dim"):
        fit_sift_vlad(_images(4), SiftVladSpec(codebook=4, dim=10, image_size=64))


def test_query_path_imports_no_torch(fitted, tmp_path):
    path = fitted.save(tmp_path / "m.npz")
    code = (
        "import sys; from PIL import Image; from models.embedders import open_embedder; from pathlib import Path; "
        f"e = open_embedder({{'embedder': 'sift-vlad', 'sift_vlad': {str(path)!r}}}, Path); "
        "v = e.embed_images([Image.new('RGB', (64, 64), 'red')]); "
        "assert v.shape == (1, 6), v.shape; assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
