"""Several weighted examples in one query: JSON ids and vectors, several uploads, the CLI; what is refused."""

from __future__ import annotations

import json

import numpy as np

from tests.indexer.service.conftest import image_path, run
from tests.indexer.service.test_app import assert_one_line_error, catalog_id


def test_examples_combine_and_a_negative_weight_pushes_away(client, trained, ws):
    red = [catalog_id(ws, image_path(trained, "red_circle", i)) for i in (0, 1)]
    green = catalog_id(ws, image_path(trained, "green_square", 0))
    both = client.post("/query", json={"examples": [{"id": red[0]}, {"id": red[1]}], "k": 24}).json()
    ids = [hit["id"] for hit in both["results"]]
    assert not set(red) & set(ids) and len(ids) == 22, "catalogued examples are left out"
    assert both["results"][0]["label"] == "red_circle" and both["query"] == f"+id {red[0]} +id {red[1]}"

    def green_scores(examples):
        body = client.post("/query", json={"examples": examples, "k": 24}).json()
        return np.mean([hit["score"] for hit in body["results"] if hit["label"] == "green_square"])

    alone = green_scores([{"id": red[0]}])
    pushed = green_scores([{"id": red[0]}, {"id": green, "weight": -1}])
    assert pushed < alone - 0.05, (alone, pushed)
    vector = np.random.default_rng(0).standard_normal(128).tolist()
    mixed = client.post("/query", json={"examples": [{"vector": vector}, {"id": red[0], "weight": 0.5}],
                                        "filter": "label = 'red_circle'", "k": 3}).json()
    assert {hit["label"] for hit in mixed["results"]} == {"red_circle"} and mixed["plan"]["selected"] == 8


def test_several_uploads_are_one_query(client, trained):
    files = [("image", (f"red_circle_{i}.png", open(image_path(trained, "red_circle", i), "rb").read(), "image/png"))
             for i in (1, 2)]
    body = client.post("/query?k=3", files=files).json()
    assert body["query"] == "+red_circle_1.png +red_circle_2.png" and body["results"][0]["label"] == "red_circle"
    weighted = client.post("/query?k=3", files=files, data={"weights": "1,-0.5"}).json()
    assert weighted["query"] == "+red_circle_1.png -red_circle_2.png*0.5"


def test_bad_examples_are_refused_with_the_reason(client, trained, ws):
    red = catalog_id(ws, image_path(trained, "red_circle", 0))
    assert_one_line_error(client.post("/query", json={"examples": [{"id": red, "weight": -1}]}), 400,
                          "positive weight")
    assert_one_line_error(client.post("/query", json={"examples": [{"id": red, "weight": 0}]}), 400, "weight")
    assert_one_line_error(client.post("/query", json={"examples": [{"id": 999_999}]}), 404, "999999")
    assert_one_line_error(client.post("/query", json={"examples": []}), 400, "at least one example")
    assert_one_line_error(client.post("/query", json={"examples": [{"id": red}], "vector": [0.1] * 128}), 422,
                          "vector or examples")
    assert_one_line_error(client.post("/query", json={"examples": [{"id": red}, {"id": red, "weight": -1}]}), 400,
                          "cancel out")
    files = [("image", ("a.png", open(image_path(trained, "red_circle", 1), "rb").read(), "image/png"))]
    assert_one_line_error(client.post("/query", files=files, data={"weights": "1,2"}), 422, "2 given for 1")
    assert_one_line_error(client.post("/query", files=files, data={"weights": "x"}), 422, "weights")


def test_the_cli_combines_images_with_weights_and_nots(ws, trained):
    a, b, c = (image_path(trained, "blue_triangle", i) for i in (0, 1, 2))
    answers = json.loads(run(ws, "query", a, b, "--weights", "1,1", "--not", c, "-k", "5", "--json").stdout)
    assert len(answers) == 1 and answers[0]["query"] == f"+{a} +{b} -{c}"
    ids = {hit["id"] for hit in answers[0]["results"]}
    assert not ids & {catalog_id(ws, p) for p in (a, b, c)}, "catalogued examples are left out"
    failed = run(ws, "query", a, b, "--weights", "1", ok=False)
    assert failed.exit_code != 0 and "--weights: 1 given for 2 examples" in failed.stderr
