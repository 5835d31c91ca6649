"""Your own photos: a catalog with no labels (or labels on some) trains, embeds, builds, answers and serves."""

from __future__ import annotations

import json

import pytest

from tests.conftest import SHAPES, copy_workspace, draw_shape
from tests.indexer.api.conftest import run


def _draw(folder, per_shape: int, labelled: int = 0):
    """``per_shape`` images of each shape; the first ``labelled`` of each in a sub-folder named after it."""
    for name, (colour, shape) in SHAPES.items():
        for i in range(per_shape):
            where = folder / name if i < labelled else folder
            draw_shape(where / f"{name}_{i}.png", colour, shape, offset=i - per_shape // 2)
    return folder


@pytest.fixture(scope="module")
def photos(tmp_path_factory, mnv2_weights):
    """A catalog of 18 unlabelled images (3 shapes x 6) and the options that train on a stand-in backbone."""
    root = tmp_path_factory.mktemp("photos")
    _draw(root / "photos", 6)
    run(root / "ws", "ingest", str(root / "photos"), "--labels", "none")
    return root, ["--network", "mobilenet_v2", "--weights", mnv2_weights, "--image-size", "32"]


@pytest.fixture
def ws(photos, tmp_path):
    copy_workspace(photos[0] / "ws", tmp_path / "ws")
    return tmp_path / "ws"


def _query(ws, image, index):
    return json.loads(run(ws, "query", str(image), "--index", index, "-k", "3", "--json").stdout)[0]["results"]


def test_epochs_zero_registers_the_backbone_and_every_face_works(photos, ws, tmp_path):
    root, network = photos
    trained = run(ws, "train", *network, "--epochs", "0", "--dim", "8", "--name", "pre")
    assert "model 'pre': fitted in" in trained.output and "on 18 images" in trained.output
    status = json.loads(run(ws, "status", "--json").stdout)
    assert "pre" in status["models"]
    embedded = run(ws, "embed", "--model", "pre", "--engine", "onnx")
    assert "18 embedded" in embedded.output
    run(ws, "build", "--index", "flat", "--model", "pre", "--name", "pre-flat")
    image = root / "photos" / "green_square_2.png"
    results = _query(ws, image, "pre-flat")
    assert results[0]["path"].endswith("green_square_2.png") and results[0]["score"] == pytest.approx(1.0, abs=1e-4)
    assert json.loads(run(ws, "dupes", "--model", "pre", "--json").stdout)["n_images"] == 18
    run(ws, "export", str(tmp_path / "vectors"), "--model", "pre", "--format", "npy")
    assert (tmp_path / "vectors" / "vectors.npy").is_file()

    pytest.importorskip("fastapi", reason="the service needs the 'serve' extra")
    pytest.importorskip("httpx", reason="TestClient needs httpx (the 'serve' extra)")
    from fastapi.testclient import TestClient

    from indexer.service import ServiceConfig, create_app

    with TestClient(create_app(ServiceConfig(workspace=str(ws), index="pre-flat", watch_s=0.2))) as client:
        answer = client.post("/query?k=3", files={"image": ("q.png", image.read_bytes(), "image/png")})
    assert answer.status_code == 200, answer.text
    assert answer.json()["results"][0]["path"].endswith("green_square_2.png")


def test_training_without_labels_is_the_default_here_and_says_so(photos, ws):
    root, network = photos
    trained = run(ws, "train", *network, "--epochs", "1", "--name", "free")
    assert trained.output.count("training without labels (--labels none)") == 1
    assert "no usable labels (0 of 18 images labelled" in trained.output
    assert "model 'free': 1 epochs" in trained.output and "on 18 images" in trained.output
    run(ws, "build", "--index", "flat", "--model", "free", "--name", "free-flat")
    results = _query(ws, root / "photos" / "red_circle_1.png", "free-flat")
    assert results[0]["path"].endswith("red_circle_1.png")


def test_a_half_labelled_catalog_trains_on_its_labelled_half_and_says_so(tmp_path, mnv2_weights):
    _draw(tmp_path / "photos", 6, labelled=3)
    ws = tmp_path / "ws"
    run(ws, "ingest", str(tmp_path / "photos"))  # labels from sub-folders: 9 labelled, 9 at the top level
    network = ["--network", "mobilenet_v2", "--weights", mnv2_weights, "--image-size", "32", "--epochs", "1",
               "--freeze-backbone", "--batch-per-class", "2"]
    trained = run(ws, "train", *network, "--name", "half")
    assert "trained on the 9 labelled images; 9 unlabelled images left out" in trained.output
    assert "training without labels" not in trained.output
    every = run(ws, "train", *network, "--labels", "none", "--name", "all")
    assert "on 18 images" in every.output and "left out" not in every.output
    assert {"half", "all"} <= set(json.loads(run(ws, "status", "--json").stdout)["models"])


def test_no_labels_error_names_the_cause_and_the_ways_out(ws):
    result = run(ws, "train", "--network", "siamese", "--image-size", "32", ok=False)
    assert result.exit_code == 1
    message = result.output
    assert "no labelled images to train on: run 'indexer ingest DIR' first" not in message
    assert "the catalog has no labels to train 'siamese' on: 0 of the 18 images" in message
    for way_out in ("--labels none", "--epochs 0", "--network sift-vlad", "--labels folders", "--labels FILE.csv"):
        assert way_out in message
    refused = run(ws, "train", "--network", "siamese", "--epochs", "0", ok=False)
    assert "epochs: 0 is invalid; expected an integer >= 1 here: 0 registers a pretrained backbone" in refused.output


def test_labels_catalog_refuses_a_catalog_without_labels(photos, ws):
    _, network = photos
    result = run(ws, "train", *network, "--labels", "catalog", "--epochs", "1", ok=False)
    assert result.exit_code == 1 and "--labels none" in result.output


def test_index_is_one_command_and_resumes_after_an_interruption(photos, tmp_path, monkeypatch):
    import indexer.api.pipeline.training as model_api

    root, network = photos
    ws = tmp_path / "ws"
    options = ["--weights", network[3], "--image-size", "32", "--dim", "8"]

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(model_api, "embed", interrupted)  # killed after the model was made, before embedding
        cut = run(ws, "index", str(root / "photos"), *options, ok=False)
    assert cut.exit_code == 1 and "run the same command again" in cut.output
    again = run(ws, "index", str(root / "photos"), *options)
    assert "18 already catalogued" in again.output and "model 'photos': kept" in again.output
    assert "embedded 18 (0 already)" in again.output and "index 'photos' (Flat): 18 vectors" in again.output
    results = _query(ws, root / "photos" / "blue_triangle_3.png", "photos")
    assert results[0]["path"].endswith("blue_triangle_3.png")
