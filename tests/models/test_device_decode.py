"""JPEG decoding on the model's device (``decode="device"``), run here with torch on the CPU: the same code path
as on CUDA but the device. Its vectors must agree with the CPU loader's (cosine >= 0.999), every file the CPU
path takes must be taken, and every failure reported with the CPU path's reason."""

import numpy as np
import pytest
from PIL import Image

from models.checkpoint import load_model
from models.device_decode import DECODE_MODES, Encoded, check_decode, square_on_device, worker_load
from models.embed import embed_model, measure_loader_rate
from models.embedding_store import EmbeddingStore
from models.errors import ConfigError
from models.preprocess import PreprocessSpec, load_square_pixels, resize_and_crop


def _photo(width: int, height: int, seed: int) -> Image.Image:
    """A photo-like RGB image: smooth gradients and a few soft blobs."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    out = np.zeros((height, width, 3), np.float32)
    for channel in range(3):
        out[..., channel] = 80 + 60 * np.sin(xx / width * rng.uniform(2, 6) + rng.uniform(0, 3)) \
            + 50 * np.cos(yy / height * rng.uniform(2, 6))
    for _ in range(4):
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(0.1, 0.3) * min(width, height)
        out += (rng.uniform(-60, 60, 3) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))[..., None])
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))


@pytest.fixture
def jpegs(tmp_path):
    """(id, path) of JPEGs the device decodes (small, large, a turned phone photo, grey) and files it leaves to
    the CPU loader (PNG, CMYK JPEG)."""
    paths = []
    for number, (width, height) in enumerate([(64, 64), (300, 200), (1200, 900), (90, 160)]):
        path = tmp_path / f"photo{number}.jpg"
        _photo(width, height, number).save(path, quality=92)
        paths.append(path)
    turned = tmp_path / "turned.jpg"  # stored landscape, EXIF says: turn it to portrait
    exif = Image.Exif()
    exif[0x0112] = 6
    _photo(400, 300, 7).save(turned, quality=92, exif=exif)
    grey = tmp_path / "grey.jpg"
    _photo(200, 150, 8).convert("L").save(grey, quality=92)
    png = tmp_path / "still.png"
    _photo(120, 100, 9).save(png)
    cmyk = tmp_path / "print.jpg"
    _photo(150, 120, 10).convert("CMYK").save(cmyk, quality=92)
    paths += [turned, grey, png, cmyk]
    return [(i, str(path)) for i, path in enumerate(paths)]


def test_workers_send_bytes_only_for_jpegs_the_device_decodes(jpegs):
    spec = PreprocessSpec(image_size=32)
    sent = {path.rsplit("/", 1)[1]: worker_load(path, spec) for _, path in jpegs}
    assert all(isinstance(sent[name], Encoded) for name in ("photo0.jpg", "photo2.jpg", "turned.jpg", "grey.jpg"))
    for name in ("still.png", "print.jpg"):  # the CPU loader's pixels, exactly
        path = next(p for _, p in jpegs if p.endswith(name))
        np.testing.assert_array_equal(sent[name], load_square_pixels(path, spec))


@pytest.mark.parametrize(("size", "to"), [((64, 64), (128, 128)), ((64, 64), (160, 160)), ((160, 120), (64, 48)),
                                         ((300, 200), (137, 100)), ((1200, 900), (48, 36)), ((90, 160), (200, 356))])
def test_the_device_resize_is_pillows_pixel_for_pixel(size, to):
    """Pillow's bilinear resize reproduced: upsampling, downsampling, odd ratios, both axes."""
    import torch


    image = _photo(*size, seed=size[0])
    side = min(to)
    ours = square_on_device(torch.from_numpy(np.array(image)).permute(2, 0, 1).contiguous(), side).numpy()
    np.testing.assert_array_equal(ours, np.asarray(resize_and_crop(image, side)))


@pytest.mark.parametrize("tta", ["none", "flip"])
def test_vectors_agree_with_the_cpu_loaders(trained, jpegs, tmp_path, tta):
    from models.checkpoint import write_variant

    result, _ = trained
    checkpoint = write_variant(result.checkpoint_path, tmp_path / tta / "model.pt", name=f"tiny-{tta}", tta=tta)
    model, spec, _ = load_model(checkpoint)
    stores = {}
    for decode in DECODE_MODES:
        stores[decode] = EmbeddingStore(tmp_path / decode)
        report = embed_model(model, spec, jpegs, stores[decode], batch_size=3, progress=False, num_workers=1,
                             decode=decode)
        assert report.embedded == len(jpegs) and not report.failed, report.failed
    (cpu_ids, cpu), (dev_ids, dev) = stores["cpu"].items(), stores["device"].items()
    cpu, dev = cpu[np.argsort(cpu_ids)], dev[np.argsort(dev_ids)]
    np.testing.assert_array_equal(np.sort(cpu_ids), np.sort(dev_ids))
    cosines = np.sum(cpu * dev, axis=1) / (np.linalg.norm(cpu, axis=1) * np.linalg.norm(dev, axis=1))
    assert cosines.min() >= 0.999, cosines
    assert np.sum(cosines > 0.999999) >= 2  # the PNG and the CMYK JPEG took the CPU loader: the same vectors


def test_a_broken_jpeg_is_reported_with_the_cpu_loaders_reason_and_the_rest_embedded(trained, jpegs, tmp_path):
    result, _ = trained
    model, spec, _ = load_model(result.checkpoint_path)
    broken = tmp_path / "broken.jpg"
    data = open(jpegs[2][1], "rb").read()
    broken.write_bytes(data[: len(data) // 2])  # the header is whole: the worker sends it to the device
    assert isinstance(worker_load(str(broken), spec), Encoded)
    items = jpegs + [(99, str(broken))]
    store = EmbeddingStore(tmp_path / "store")
    report = embed_model(model, spec, items, store, batch_size=4, progress=False, num_workers=0, decode="device")
    assert report.embedded == len(jpegs)
    assert [(image_id, path) for image_id, path, _ in report.failed] == [(99, str(broken))]
    assert "broken.jpg" in report.failed[0][2] and "decode" in report.failed[0][2]
    rate = measure_loader_rate(items, spec, batch_size=4, num_workers=0, decode="device")
    assert rate.images == len(items)


def test_an_unknown_decode_mode_is_refused_by_name():
    with pytest.raises(ConfigError, match="'gpu'"):
        check_decode("gpu")


@pytest.mark.parametrize("side", [32, 128])
def test_each_image_gets_the_cpu_loaders_pixels_to_a_grey_level_or_two(jpegs, side):
    """Pixel by pixel (a vector's cosine hides a turned or shifted image): the device's square against the CPU
    loader's, for every file, including the large JPEG the CPU decodes at a reduced size."""
    from models.device_decode import DeviceBatch, DeviceDecoder

    spec = PreprocessSpec(image_size=side)
    batch = DeviceBatch()
    for item_id, path in jpegs:
        sent = worker_load(path, spec)
        if isinstance(sent, Encoded):
            batch.add(sent, item_id, path)
    pixels, ids, failed = DeviceDecoder(spec, "cpu")(batch)
    assert not failed and len(ids) == 6
    for item_id, square in zip(ids, pixels.numpy()):
        expected = load_square_pixels(jpegs[item_id][1], spec).astype(int)
        with Image.open(jpegs[item_id][1]) as img:
            whole = min(img.size) <= spec.decode_side  # the CPU loader decodes it whole too
        if whole:  # the same decoded pixels, the same resize
            np.testing.assert_array_equal(square, expected, err_msg=jpegs[item_id][1])
            continue
        difference = np.abs(square.astype(int) - expected)  # the CPU decoded it smaller (DCT scaling)
        # measured: the 1200 x 900 JPEG at 32 px (decoded at 1/8 by the CPU): mean 1.4, 99th percentile 6
        assert difference.mean() <= 2 and np.percentile(difference, 99) <= 8, (jpegs[item_id][1], difference.mean())


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_is_turned_as_pillow_turns_it(tmp_path, orientation):
    """torchvision leaves EXIF orientation to the caller on CUDA: the decoder turns each image itself."""
    from models.device_decode import DeviceBatch, DeviceDecoder

    path = tmp_path / f"o{orientation}.jpg"
    exif = Image.Exif()
    exif[0x0112] = orientation
    _photo(96, 64, orientation).save(path, quality=95, exif=exif)
    spec = PreprocessSpec(image_size=48)
    sent = worker_load(str(path), spec)
    assert isinstance(sent, Encoded) and sent.orientation == orientation
    batch = DeviceBatch(encoded=[sent.data], orientations=[sent.orientation], encoded_ids=[0],
                        encoded_paths=[str(path)])
    pixels, _, failed = DeviceDecoder(spec, "cpu")(batch)
    assert not failed
    np.testing.assert_array_equal(pixels[0].numpy(), load_square_pixels(path, spec))
