"""`indexer model derive --tta flip`: a trained model's flip variant is registered like any model, and embed,
build and query work with it, catalog and query applying the same flip."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from tests.indexer.api.conftest import image_path as _image
from tests.indexer.api.conftest import run


def test_a_derived_flip_model_embeds_builds_and_finds_each_image_itself(trained, ws):
    from indexer.api.registry.indexes import catalog_vectors
    from indexer.api.workspace import Workspace

    result = run(ws, "model", "derive", "tiny", "--name", "tiny-flip", "--tta", "flip")
    assert "model 'tiny-flip'" in result.output and "indexer embed --model tiny-flip" in result.output
    embedded = run(ws, "embed", "--model", "tiny-flip", "--batch-size", "4")
    assert re.search(r"embedded, 0 already embedded, 0 failed \(\d+ images/s; \d+ after a start-up of [\d.]+ s\)",
                     embedded.output), embedded.output
    run(ws, "build", "--index", "flat", "--model", "tiny-flip", "--name", "flipflat")
    answers = json.loads(run(ws, "query", _image(trained, "green_square", 2), "--index", "flipflat", "-k", "3",
                             "--json").stdout)
    assert answers[0]["results"][0]["path"].endswith("green_square_2.png")
    assert answers[0]["results"][0]["score"] == pytest.approx(1.0, abs=1e-4)  # the query path flipped as well

    workspace = Workspace.at(ws)
    plain_ids, plain = catalog_vectors(workspace, "tiny")
    flip_ids, flipped = catalog_vectors(workspace, "tiny-flip")
    assert plain_ids.tolist() == flip_ids.tolist() and not np.allclose(plain, flipped, atol=1e-5)
    with workspace.catalog() as catalog:
        model = catalog.model("tiny-flip")
    assert model.params["preprocess"]["tta"] == "flip" and model.params["derived_from"] == "tiny"
    assert model.dim == 128 and model.metrics == {}
    status = json.loads(run(ws, "status", "--json").stdout)
    assert {"tiny", "tiny-flip"} <= set(status["models"])


def test_derive_refuses_what_it_cannot_do_in_one_line(ws):
    from indexer.api import InputError, Workspace, derive_model

    workspace = Workspace.at(ws)
    with workspace.catalog(write=True) as catalog:  # a sift-vlad model needs only its row to be refused
        catalog.register_model(name="sv", kind="sift-vlad", params={"embedder": "sift-vlad", "sift_vlad": "x.npz"},
                               metrics={}, path="x.npz", dim=8)
    for args, expected in [(("sv", "--name", "sv-flip"), "not a network"),
                           (("tiny", "--name", "tiny"), "other than its source"),
                           (("nope", "--name", "nope-flip"), "no model named 'nope'"),
                           (("tiny", "--name", "../up"), "invalid")]:
        result = run(ws, "model", "derive", *args, "--tta", "flip", ok=False)
        assert result.exit_code == 1 and expected in result.output, result.output
        assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert run(ws, "model", "derive", "tiny", "--name", "t2", "--tta", "rotate", ok=False).exit_code == 2
    with pytest.raises(InputError, match=r"tta: 'rotate' is invalid; expected one of none, flip"):
        derive_model(workspace, "tiny", "t2", tta="rotate")
    assert not (ws / "models" / "t2").exists()


def test_sift_vlad_training_refuses_tta(ws):
    result = run(ws, "train", "--network", "sift-vlad", "--tta", "flip", ok=False)
    assert result.exit_code == 2 and "--tta" in result.output
