"""Every model family answers through both faces (the CLI's one-shot query and the service), with one engine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.indexer.service.conftest import image_path, run
from tests.requirements import extra, require_module

FAMILIES = {
    # family: (train arguments, or None for the workspace's trained Siamese network, exported to ONNX)
    "onnx": None,
    "sift-vlad": ("--network", "sift-vlad", "--codebook", "8", "--dim", "8", "--image-size", "64"),
    "pretrained": ("--network", "mobilenet_v2", "--weights", "{weights}", "--image-size", "32", "--epochs", "0",
                   "--dim", "8"),  # --epochs 0: the backbone's pooled features, PCA-whitened, exported to ONNX
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_model_family_answers_through_the_cli_and_the_service(family, make_client, trained, ws, mnv2_weights):
    if family == "sift-vlad":
        require_module("cv2", extra("classical"))
    arguments = FAMILIES[family]
    model = "tiny"
    if arguments is not None:
        model = family.replace("-", "")
        run(ws, "train", *(arg.format(weights=mnv2_weights) for arg in arguments), "--name", model)
    run(ws, "build", "--index", "flat", "--model", model, "--name", f"{model}-flat")
    query = image_path(trained, "green_square", 2)

    cli = json.loads(run(ws, "query", query, "--index", f"{model}-flat", "-k", "5", "--json").stdout)[0]
    client = make_client(index=f"{model}-flat")
    served = client.post("/query?k=5", files={"image": ("q.png", Path(query).read_bytes(), "image/png")})
    assert served.status_code == 200, served.text
    served = served.json()

    assert [hit["id"] for hit in served["results"]] == [hit["id"] for hit in cli["results"]]
    assert cli["results"][0]["path"] == query and cli["results"][0]["score"] == pytest.approx(1.0, abs=1e-4)
    assert cli["query_id"] == cli["results"][0]["id"] and cli["label"] == "green_square"
    assert set(served) == set(cli), "one answer shape for both faces"
    similar = client.get(f"/images/{cli['query_id']}/similar?k=4").json()
    assert cli["query_id"] not in [hit["id"] for hit in similar["results"]]
    assert [hit["id"] for hit in similar["results"]] == [hit["id"] for hit in cli["results"][1:]]
