"""User fields: indexer tag (--set, --csv), PATCH /images/{id}, and filters over them in both faces."""

from __future__ import annotations

import json

from tests.indexer.service.conftest import image_path, run
from tests.indexer.service.test_app import assert_one_line_error, catalog_id, upload


def test_patch_sets_typed_fields_that_filters_see_at_once(client, trained, ws):
    red = [catalog_id(ws, image_path(trained, "red_circle", i)) for i in range(3)]
    for i, image_id in enumerate(red):
        response = client.patch(f"/images/{image_id}", json={"fields": {"price": 10 * (i + 1), "sku": f"R-{i}"}})
        assert response.status_code == 200, response.text
    assert response.json() == {"id": red[2], "fields": {"price": 30.0, "sku": "R-2"}}
    files = upload(image_path(trained, "blue_triangle", 0))
    body = client.post("/query", params={"k": 24, "filter": "price <= 20"}, files=files).json()
    assert {hit["id"] for hit in body["results"]} == set(red[:2]) and body["plan"]["selected"] == 2
    client.patch(f"/images/{red[0]}", json={"fields": {"price": None}})
    body = client.post("/query", params={"k": 24, "filter": "price <= 20"}, files=files).json()
    assert {hit["id"] for hit in body["results"]} == {red[1]}, "a change is seen by the next query"
    dated = client.patch(f"/images/{red[1]}", json={"fields": {"shot": "2024-05-01"}, "types": {"shot": "date"}})
    assert dated.json()["fields"]["shot"].startswith("2024-05-01")
    assert_one_line_error(client.patch(f"/images/{red[1]}", json={"fields": {"price": "cheap"}}), 400,
                          "field 'price' is a number; got 'cheap'")
    assert_one_line_error(client.patch("/images/999999", json={"fields": {"price": 1}}), 404, "999999")
    assert_one_line_error(client.patch(f"/images/{red[1]}", json={"fields": {"bad name": 1}}), 400, "field name")
    assert_one_line_error(client.post("/query", params={"filter": "price = 'x'"}, files=files), 400,
                          "price is a number")


def test_tag_sets_fields_from_the_command_line_and_a_csv(ws, trained, tmp_path):
    path = image_path(trained, "green_square", 0)
    out = json.loads(run(ws, "tag", path, "--set", "price=12.5", "--set", "brand=acme").stdout)
    assert out["fields"] == {"price": 12.5, "brand": "acme"}
    sheet = tmp_path / "fields.csv"
    rows = ["filename,price,brand,added"] + [f"green_square/green_square_{i}.png,{i},b{i},2025-0{i + 1}-01"
                                            for i in range(1, 4)] + ["nope.png,1,x,2025-01-01"]
    sheet.write_text("\n".join(rows) + "\n")
    (tmp_path / "green_square").symlink_to(trained / "images" / "green_square")
    result = run(ws, "tag", "--csv", str(sheet))
    assert "3 images tagged, 1 rows skipped; fields declared: added (date)" in result.stdout
    assert "nope.png" in result.stderr
    answer = json.loads(run(ws, "query", path, "-k", "24", "--where", 'added >= "2025-02-01" and price >= 2',
                            "--json").stdout)[0]
    assert sorted(hit["path"].rsplit("_", 1)[-1] for hit in answer["results"]) == ["2.png", "3.png"]
    elsewhere = tmp_path / "sheets" / "more.csv"
    elsewhere.parent.mkdir()
    elsewhere.write_text("filename,price\ngreen_square/green_square_5.png,7\n")
    assert "1 images tagged" in run(ws, "tag", "--csv", str(elsewhere), "--root", str(trained / "images")).stdout
    bad = run(ws, "tag", path, "--set", "price=cheap", ok=False)
    assert bad.exit_code != 0 and "field 'price' is a number; got 'cheap'" in bad.stderr
