"""models.embedders: every model kind opens through one function; an external model refuses images clearly."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.embedders import EMBEDDER_KINDS, EXTERNAL, embedder_file, embedder_kind, open_embedder
from models.errors import ModelError

EXTERNAL_PARAMS = {"embedder": "external", "dim": 5, "source": "vectors.parquet", "name": "vecs"}
MESSAGE = (r"model 'vecs' takes vectors, not images: query it with a vector \(POST /query with JSON, or the Python "
           r"API's hits_for_vectors\)")


def test_the_kinds_are_named_and_an_unknown_one_is_refused():
    assert EXTERNAL in EMBEDDER_KINDS
    assert embedder_kind(EXTERNAL_PARAMS) == "external"
    assert embedder_kind({}) == "onnx"  # models registered before kinds existed
    with pytest.raises(ModelError, match="unknown embedder kind 'nope'"):
        embedder_kind({"embedder": "nope"})


def test_an_external_model_opens_with_its_dim_and_refuses_every_image(tmp_path):
    embedder = open_embedder(EXTERNAL_PARAMS, lambda stored: tmp_path / stored)  # no file is needed
    assert embedder.dim == 5
    for call in (lambda: embedder.load(Path("any.png")), lambda: embedder.load_bytes(b"\x89PNG", "a.png"),
                 lambda: embedder.embed_images([])):
        with pytest.raises(ModelError, match=f"^{MESSAGE}$"):
            call()
    with pytest.raises(ModelError, match=MESSAGE):
        embedder_file(EXTERNAL_PARAMS)  # it has no file to load
