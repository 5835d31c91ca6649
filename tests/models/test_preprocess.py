import numpy as np
import pytest
from PIL import Image

from models.errors import ConfigError, ImageError
from models.preprocess import PreprocessSpec, load_and_preprocess, preprocess


def test_shape_dtype_and_normalisation():
    spec = PreprocessSpec(16)
    img = Image.new("RGB", (40, 20), (255, 0, 128))
    out = preprocess(img, spec)
    assert out.shape == (3, 16, 16) and out.dtype == np.float32
    expected = (np.array([255, 0, 128]) / 255 - np.array(spec.mean)) / np.array(spec.std)
    np.testing.assert_allclose(out[:, 8, 8], expected, atol=1e-5)


def test_dict_round_trip_and_validation():
    spec = PreprocessSpec(32)
    assert PreprocessSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ConfigError, match="image_size"):
        PreprocessSpec(0)


def test_bad_file_raises_image_error(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(ImageError, match="bad.png"):
        load_and_preprocess(bad, PreprocessSpec(16))


def test_the_normalise_table_gives_normalise_bit_for_bit():
    """The device looks pixels up in this table (models.embed): every uint8 value, every channel, exactly."""
    from models.preprocess import normalise, normalise_table

    spec = PreprocessSpec(16, mean=(0.5, 0.25, 0.125), std=(0.3, 0.2, 0.7))
    pixels = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    table = normalise_table(spec)
    assert table.shape == (3, 256) and table.dtype == np.float32
    looked_up = np.stack([table[c][pixels[..., c]] for c in range(3)])
    np.testing.assert_array_equal(looked_up, normalise(pixels, spec))
