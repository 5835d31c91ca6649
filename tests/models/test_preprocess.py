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
