"""A service over an external model (imported vectors): POST /points adds vectors, POST /query takes JSON."""

from __future__ import annotations

import csv
import json

import numpy as np

from tests.indexer.service.conftest import png_bytes, run

DIM = 8


def _vectors_folder(root, n: int = 30, seed: int = 0):
    """An npy folder as 'indexer export --format npy' writes it: ids.npy, vectors.npy, meta.csv."""
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    root.mkdir(parents=True)
    np.save(root / "ids.npy", np.arange(n, dtype=np.int64))
    np.save(root / "vectors.npy", x)
    with open(root / "meta.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "path", "label", "split"])
        for i in range(n):
            writer.writerow([i, f"sku-{i}", f"group{i % 3}", "train"])
    return x


def test_points_and_vector_queries_on_an_imported_model(make_client, ws, tmp_path):
    from indexer.api import Workspace

    x = _vectors_folder(tmp_path / "vectors")
    run(ws, "import", str(tmp_path / "vectors"), "--model", "ext")
    run(ws, "build", "--index", "flat", "--model", "ext", "--name", "extflat")
    client = make_client(index="extflat", flush_s=0)

    answer = client.post("/query", json={"vector": x[4].tolist(), "k": 3})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["results"][0]["path"] == "sku-4" and body["results"][0]["score"] == 1.0 and body["query"] == "vector"
    assert len(body["results"]) == 3

    new = np.roll(x[7], 1)
    added = client.post("/points", json={"path": "sku-new", "vector": (3 * new).tolist(), "label": "fresh"})
    assert added.status_code == 201, added.text
    new_id = added.json()["id"]
    assert added.json()["indexes"] == ["extflat"]
    first = client.post("/query", json={"vector": new.tolist(), "k": 1}).json()["results"][0]
    assert first["id"] == new_id and first["label"] == "fresh" and abs(first["score"] - 1.0) < 1e-5

    with Workspace.at(ws).catalog() as catalog:
        before = catalog.summary().images_total
    for bad, fragment in (({"path": "sku-new", "vector": new.tolist()}, "already in the catalog"),
                          ({"path": "x", "vector": [1.0, 2.0]}, "8-dim"),
                          ({"path": "y", "vector": [0.0] * DIM}, "all zeros"),
                          ({"path": "", "vector": new.tolist()}, "path")):
        refused = client.post("/points", json=bad)
        assert refused.status_code == 400 and fragment in refused.json()["detail"], refused.text
    nan = client.post("/points", content=json.dumps({"path": "z", "vector": [float("nan")] * DIM}),
                      headers={"content-type": "application/json"})
    assert nan.status_code in (400, 422) and "\n" not in nan.text, nan.text
    with Workspace.at(ws).catalog() as catalog:
        assert catalog.summary().images_total == before, "a refused point writes nothing"

    assert client.post("/query", json={"vector": [1.0] * 3}).status_code == 400
    assert client.post("/query", json={"k": 3}).status_code == 422
    picture = client.post("/query", files={"image": ("q.png", png_bytes(), "image/png")})
    assert picture.status_code == 400 and "takes vectors, not images" in picture.json()["detail"]
    gone = client.get(f"/images/{new_id}")
    assert gone.status_code == 404 and "imported vector" in gone.json()["detail"]
    assert client.delete(f"/images/{new_id}").status_code == 200
    after = client.post("/query", json={"vector": new.tolist(), "k": 1}).json()["results"][0]
    assert after["id"] != new_id


def test_points_are_refused_by_an_image_model(client):
    refused = client.post("/points", json={"path": "p", "vector": [0.1] * 128})
    assert refused.status_code == 400 and "POST /images" in refused.json()["detail"]
