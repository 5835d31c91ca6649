"""Filters through the service: the query string, the JSON body, the multipart form, ``similar``; plans and 400s."""

from __future__ import annotations

import numpy as np
import pytest

from tests.indexer.service.conftest import image_path, run
from tests.indexer.service.test_app import assert_one_line_error, catalog_id, upload

RED = 'label = "red_circle"'


def labels(body: dict) -> set[str]:
    return {hit["label"] for hit in body["results"]}


def test_a_filter_keeps_every_face_to_the_matching_images(client, trained, ws):
    path = image_path(trained, "blue_triangle", 2)
    body = client.post("/query", params={"k": 20, "filter": RED}, files=upload(path)).json()
    assert labels(body) == {"red_circle"} and len(body["results"]) == 8, "only the 8 red circles pass"
    assert (body["plan"]["kind"], body["plan"]["selected"]) == ("exact", 8)
    form = client.post("/query?k=20", files=upload(path), data={"filter": RED}).json()
    assert [hit["id"] for hit in form["results"]] == [hit["id"] for hit in body["results"]]
    vector = np.random.default_rng(0).standard_normal(128).tolist()
    as_json = client.post("/query", json={"vector": vector, "k": 5, "filter": "label in ['green_square']"}).json()
    assert labels(as_json) == {"green_square"} and as_json["plan"]["selected"] == 8
    own = catalog_id(ws, image_path(trained, "green_square", 1))
    similar = client.get(f"/images/{own}/similar", params={"k": 30, "filter": 'label != "green_square"'}).json()
    assert labels(similar) == {"red_circle", "blue_triangle"} and len(similar["results"]) == 16
    unfiltered = client.post("/query?k=3", files=upload(path)).json()
    assert "plan" not in unfiltered or unfiltered["plan"] is None


def test_the_exact_plan_gathers_a_selections_vectors_once_then_again_after_a_write(client, trained, monkeypatch):
    """The next page (or the same filter again) reuses the stored vectors gathered for the selection; a delete
    makes a new selection, gathered again, without the deleted image."""
    from indexer.api.search.engine import Searcher

    gathered = []
    stored = Searcher._stored
    monkeypatch.setattr(Searcher, "_stored", lambda self, ids: gathered.append(len(ids)) or stored(self, ids))
    path = image_path(trained, "blue_triangle", 2)

    def page(k: int, offset: int = 0) -> list[int]:
        body = client.post("/query", params={"k": k, "offset": offset, "filter": RED}, files=upload(path)).json()
        assert body["plan"]["kind"] == "exact"
        return [hit["id"] for hit in body["results"]]

    first, second, whole = page(4), page(4, 4), page(8)
    assert first + second == whole and len(whole) == 8
    assert gathered == [8], "one gather for the three queries"
    assert client.delete(f"/images/{whole[0]}").status_code == 200
    after = page(8)
    assert whole[0] not in after and after == whole[1:] and gathered == [8, 7]


def test_a_filter_matching_nothing_answers_no_results(client, trained):
    body = client.post("/query", params={"filter": 'label = "violet"'},
                       files=upload(image_path(trained, "red_circle", 0))).json()
    assert body["results"] == [] and body["plan"]["selected"] == 0


@pytest.mark.parametrize("index", ["ivf", "hnsw"])
def test_a_wide_selection_searches_the_index_with_a_selector_and_a_widened_setting(make_client, ws, trained,
                                                                                   monkeypatch, index):
    run(ws, "build", "--index", index)
    monkeypatch.setenv("INDEXER_EXACT_MAX", "0")  # every selection takes the filtered index search
    client = make_client(index=index)
    path = image_path(trained, "red_circle", 3)
    body = client.post("/query", params={"k": 5, "filter": 'label != "red_circle"'}, files=upload(path)).json()
    assert body["plan"]["kind"] == "filtered" and body["plan"]["selected"] == 16
    assert ("nprobe" if index == "ivf" else "efSearch") in body["plan"]
    assert len(body["results"]) == 5 and "red_circle" not in labels(body)


@pytest.mark.parametrize(("value", "fragment"), [
    ('colour = "red"', "unknown field 'colour'"),
    ("label = 3", "label is text"),
    ("label = 'x' or", "ends too early"),
    ("width = 'wide'", "width is a number"),
    (" or ".join(f"width = {i}" for i in range(10_000)), "at most 20,000"),  # in the bodies (too long for a URL)
    (" or ".join(f"width = {i}" for i in range(1_001)), "1,001 terms; at most 1,000"),
    ("label = 'x'; DROP TABLE images", "unexpected"),
])
def test_bad_filters_are_a_400_naming_the_problem(client, trained, value, fragment):
    files = upload(image_path(trained, "red_circle", 0))
    assert_one_line_error(client.post("/query", files=files, data={"filter": value}), 400, fragment)
    vector = [0.1] * 128
    assert_one_line_error(client.post("/query", json={"vector": vector, "filter": value}), 400, fragment)
    if len(value) < 20_000:
        assert_one_line_error(client.post("/query", params={"filter": value}, files=files), 400, fragment)
        assert_one_line_error(client.get("/images/1/similar", params={"filter": value}), 400, fragment)
    assert client.get("/status").json()["images_ok"] == 24, "nothing changed"


def test_the_cli_takes_the_same_filter(ws, trained):
    import json

    path = image_path(trained, "green_square", 0)
    answer = json.loads(run(ws, "query", path, "-k", "30", "--where", RED, "--json").stdout)[0]
    assert {hit["label"] for hit in answer["results"]} == {"red_circle"} and answer["plan"]["selected"] == 8
    text = run(ws, "query", path, "--where", RED).stdout
    assert "filter: 8 images, exact search" in text
    failed = run(ws, "query", path, "--where", "label =", ok=False)
    assert failed.exit_code != 0 and "ends too early" in failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1 and "Traceback" not in failed.stderr


def test_page_two_of_ten_is_results_eleven_to_twenty(client, trained, ws):
    import json

    files = upload(image_path(trained, "green_square", 2))
    whole = client.post("/query?k=20", files=files).json()["results"]
    first = client.post("/query?k=10", files=files).json()
    second = client.post("/query", params={"k": 10, "page_token": first["next_page_token"]}, files=files).json()
    assert [hit["id"] for hit in first["results"] + second["results"]] == [hit["id"] for hit in whole]
    assert [hit["rank"] for hit in second["results"]] == list(range(11, 21))
    by_offset = client.post("/query", params={"k": 10, "offset": 10}, files=files).json()["results"]
    assert by_offset == second["results"]
    last = client.post("/query", params={"k": 10, "offset": 20}, files=files).json()
    assert len(last["results"]) == 4 and last["next_page_token"] is None, "24 images: the last page is short"
    own = catalog_id(ws, image_path(trained, "red_circle", 0))
    similar = client.get(f"/images/{own}/similar", params={"k": 5, "offset": 5}).json()["results"]
    assert similar == client.get(f"/images/{own}/similar?k=10").json()["results"][5:]
    cli = json.loads(run(ws, "query", image_path(trained, "green_square", 2), "-k", "10", "--offset", "10",
                         "--json").stdout)[0]["results"]
    assert [hit["id"] for hit in cli] == [hit["id"] for hit in whole[10:]]


def test_a_score_cutoff_drops_the_weaker_results(client, trained):
    files = upload(image_path(trained, "blue_triangle", 1))
    whole = client.post("/query?k=24", files=files).json()["results"]
    cutoff = whole[5]["score"] - 1e-6  # the JSON scores are rounded to 6 decimals
    kept = client.post("/query", params={"k": 24, "min_score": cutoff}, files=files).json()["results"]
    assert kept == [hit for hit in whole if hit["score"] >= cutoff] and 6 <= len(kept) < 24
    vector = {"vector": [0.1] * 128, "k": 5, "min_score": 2.0}
    assert client.post("/query", json=vector).json()["results"] == [], "no cosine reaches 2"


def test_bad_pages_are_refused_with_the_reason(client, trained):
    files = upload(image_path(trained, "blue_triangle", 1))
    assert_one_line_error(client.post("/query", params={"page_token": "not-a-token"}, files=files), 400,
                          "page_token", "not a token")
    assert_one_line_error(client.post("/query", params={"page_token": "eyJvZmZzZXQiOjIwfQ", "offset": 3},
                                      files=files), 422, "offset or page_token")
    assert_one_line_error(client.post("/query", params={"offset": 10_001}, files=files), 422, "offset")
    assert_one_line_error(client.post("/query", json={"vector": [0.1] * 128, "offset": -1}), 400, "offset")
