"""Every endpoint and every bad input, through FastAPI's TestClient (start-up and shutdown included)."""

from __future__ import annotations

import struct
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest

from indexer import api
from tests.indexer.service.conftest import image_path, png_bytes, run

HIT_KEYS = {"rank", "id", "path", "label", "score"}


def upload(path: str, name: str | None = None) -> dict:
    return {"image": (name or Path(path).name, Path(path).read_bytes(), "image/png")}


def catalog_id(ws: Path, path: str) -> int:
    from indexer.api.workspace import Workspace

    with Workspace.at(ws).catalog() as catalog:
        return catalog.images_by_paths([str(Path(path).resolve())])[str(Path(path).resolve())].id


def assert_one_line_error(response, status: int, *fragments: str) -> None:
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and detail
    for fragment in fragments:
        assert fragment in detail, detail


def test_health_indexes_status_and_page(client, ws):
    assert client.get("/healthz").json() == {"ok": True}
    assert client.get("/indexes").json() == [{"name": "flat", "kind": "flat", "model": "tiny", "ntotal": 24, "dim": 128,
                                               "segments": {"sealed": 24, "tail": 0, "growing": 0, "deleted": 0}}]
    status = client.get("/status").json()
    assert status["images_ok"] == 24 and status["indexes"] == ["flat"] and status["inconsistencies"] == []
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'type="file"' in page.text and 'id="results"' in page.text
    for name in ("app.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200
    static = Path(__file__).resolve().parents[3] / "indexer" / "service" / "static"
    for file in static.iterdir():  # nothing is loaded from outside the machine
        assert "http://" not in file.read_text() and "https://" not in file.read_text(), file
    assert client.get("/docs").status_code == 200
    assert "/query" in client.get("/openapi.json").json()["paths"]


def test_query_finds_the_image_itself_first(client, trained):
    path = image_path(trained, "blue_triangle", 2)
    response = client.post("/query?k=5", files=upload(path))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["query"] == "blue_triangle_2.png" and body["index"] == "flat" and body["took_ms"] > 0
    assert [hit["rank"] for hit in body["results"]] == [1, 2, 3, 4, 5]
    assert set(body["results"][0]) == HIT_KEYS
    assert body["results"][0]["path"] == str(Path(path).resolve())
    assert body["results"][0]["score"] == pytest.approx(1.0, abs=1e-3)
    assert body["results"][0]["label"] == "blue_triangle"
    assert {"decode", "embed", "search", "catalog"} <= {
        part.split(";")[0].strip() for part in response.headers["server-timing"].split(",")}


def test_query_answers_match_the_cli(client, trained, ws):
    import json

    path = image_path(trained, "green_square", 3)
    cli = json.loads(run(ws, "query", path, "--index", "flat", "-k", "6", "--json").stdout)[0]["results"]
    served = client.post("/query?k=6&index=flat", files=upload(path)).json()["results"]
    assert [h["id"] for h in served] == [h["id"] for h in cli]
    assert np.allclose([h["score"] for h in served], [h["score"] for h in cli], atol=1e-5)


def test_similar_excludes_the_image_itself(client, trained, ws):
    path = image_path(trained, "red_circle", 1)
    image_id = catalog_id(ws, path)
    body = client.get(f"/images/{image_id}/similar?k=4").json()
    assert len(body["results"]) == 4 and image_id not in [h["id"] for h in body["results"]]
    assert body["results"][0]["label"] == "red_circle"
    assert [h["rank"] for h in body["results"]] == [1, 2, 3, 4]
    assert_one_line_error(client.get("/images/999999/similar"), 404, "999999")


def test_image_bytes_come_from_the_catalog_only(client, trained, ws):
    path = image_path(trained, "green_square", 0)
    response = client.get(f"/images/{catalog_id(ws, path)}")
    assert response.status_code == 200 and response.content == Path(path).read_bytes()
    assert response.headers["content-type"] == "image/png"
    assert_one_line_error(client.get("/images/424242"), 404, "424242")
    assert client.get("/images/..%2F..%2Fetc%2Fpasswd").status_code in (404, 422)
    assert_one_line_error(client.get("/images/abc"), 422, "image_id")


def test_add_query_duplicate_and_delete(make_client, ws, trained):
    run(ws, "build", "--index", "ivf")
    run(ws, "build", "--index", "hnsw")
    client = make_client(index="ivf")
    assert {row["name"] for row in client.get("/indexes").json()} == {"flat", "ivf", "hnsw"}
    data = png_bytes((250, 120, 0), shape="rectangle", offset=2)
    added = client.post("/images", files={"image": ("orange.png", data, "image/png")},
                        data={"label": "orange_square", "split": "extra"})
    assert added.status_code == 201, added.text
    body = added.json()
    assert body["duplicate_of"] is None and set(body["indexes"]) == {"flat", "ivf", "hnsw"}
    new_id = body["id"]
    stored = Path(body["path"])
    assert stored.parent == (ws / "uploads").resolve() and stored.read_bytes() == data
    assert {row["name"]: row["ntotal"] for row in client.get("/indexes").json()} == {"flat": 25, "ivf": 25, "hnsw": 25}
    for index in ("flat", "ivf", "hnsw"):
        hits = client.post(f"/query?k=3&index={index}", files={"image": ("q.png", data, "image/png")}).json()["results"]
        assert hits[0]["id"] == new_id and hits[0]["label"] == "orange_square", index
    assert client.get(f"/images/{new_id}").content == data
    again = client.post("/images", files={"image": ("copy.png", data, "image/png")})
    assert again.status_code == 200 and again.json()["id"] == new_id and again.json()["duplicate_of"] == new_id
    existing = client.post("/images", files=upload(image_path(trained, "red_circle", 2)))
    assert existing.json()["duplicate_of"] == catalog_id(ws, image_path(trained, "red_circle", 2))
    files = {name: (ws / "indexes" / f"{name}.faiss").stat().st_mtime_ns for name in ("flat", "ivf", "hnsw")}
    status = client.get("/status").json()  # a read: it lists the unsaved indexes and saves nothing
    assert status["images_ok"] == 25 and status["unsaved_indexes"] == ["flat", "hnsw", "ivf"]
    assert sorted(status["inconsistencies"]) == [
        f"index {name!r} lacks 1 catalog image(s) (e.g. id {new_id}); run 'indexer build --update {name}'"
        for name in ("flat", "hnsw", "ivf")]
    assert {name: (ws / "indexes" / f"{name}.faiss").stat().st_mtime_ns for name in files} == files

    assert client.delete(f"/images/{new_id}").json() == {"id": new_id, "removed": True}
    assert not stored.exists()
    assert_one_line_error(client.delete(f"/images/{new_id}"), 404, str(new_id))
    assert_one_line_error(client.get(f"/images/{new_id}"), 404)
    for index in ("flat", "ivf", "hnsw"):
        hits = client.post(f"/query?k=24&index={index}", files={"image": ("q.png", data, "image/png")}).json()
        assert new_id not in [h["id"] for h in hits["results"]], index
    old = catalog_id(ws, image_path(trained, "blue_triangle", 0))
    assert client.delete(f"/images/{old}").status_code == 200
    assert {row["name"]: row["ntotal"] for row in client.get("/indexes").json()} == {"flat": 23, "ivf": 23, "hnsw": 23}
    status = client.get("/status").json()
    assert status["images_ok"] == 23 and status["unsaved_indexes"] == ["flat", "hnsw", "ivf"]
    from models.embedding_store import EmbeddingStore

    assert old not in EmbeddingStore(ws / "embeddings" / "tiny").ids().tolist()


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width × height pixels (a decompression bomb as Pillow sees it)."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def _truncated_jpeg() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 200, 30)).save(buffer, format="JPEG")
    return buffer.getvalue()[:300]


BAD_UPLOADS = {
    "empty": (b"", 400, "empty upload"),
    "text named .jpg": (b"this is not an image", 400, "not an image"),
    "truncated jpeg": (_truncated_jpeg(), 400, "cannot decode"),
    "decompression bomb": (_png_header_only(20000, 20000), 400, "decompression bomb"),
}


@pytest.mark.parametrize("endpoint", ["/query", "/images"])
@pytest.mark.parametrize("case", sorted(BAD_UPLOADS))
def test_bad_uploads_are_one_line_4xx(client, endpoint, case):
    data, status, fragment = BAD_UPLOADS[case]
    response = client.post(endpoint, files={"image": ("photo.jpg", data, "image/jpeg")})
    assert_one_line_error(response, status, fragment, "photo.jpg")
    assert client.get("/indexes").json()[0]["ntotal"] == 24, "nothing was added"


def test_upload_over_the_limit_is_413(make_client):
    client = make_client(max_upload_mb=0.01)
    big = png_bytes(size=200) + b"\0" * 20_000
    assert_one_line_error(client.post("/query", files={"image": ("big.png", big, "image/png")}), 413, "max-upload-mb")
    assert_one_line_error(client.post("/images", files={"image": ("big.png", big, "image/png")}), 413)
    huge = b"\0" * 200_000  # announced by Content-Length: refused before the body is parsed
    assert_one_line_error(client.post("/images", files={"image": ("huge.png", huge, "image/png")}), 413)
    assert client.post("/query", files={"image": ("ok.png", png_bytes(), "image/png")}).status_code == 200


def test_missing_field_unknown_index_and_k_out_of_range(client, trained):
    files = upload(image_path(trained))
    assert_one_line_error(client.post("/query"), 422, "image")
    assert_one_line_error(client.post("/query", data={"picture": "x"}), 422, "image")
    assert_one_line_error(client.post("/images"), 422, "image")
    assert_one_line_error(client.post("/query?index=nope", files=files), 404, "nope")
    assert_one_line_error(client.get("/images/1/similar?index=nope"), 404, "nope")
    for k in ("0", str(api.MAX_K + 1), "-3", "ten"):
        assert_one_line_error(client.post(f"/query?k={k}", files=files), 422, "k")
        assert_one_line_error(client.get(f"/images/1/similar?k={k}"), 422, "k")


def test_writes_beyond_loopback_need_the_token(make_client, trained):
    files = {"image": ("new.png", png_bytes((10, 10, 250)), "image/png")}
    public = make_client(host="0.0.0.0")
    assert_one_line_error(public.post("/images", files=files), 403, "--token")
    assert_one_line_error(public.delete("/images/1"), 403)
    assert public.post("/query", files=files).status_code == 200, "reads stay open"
    guarded = make_client(host="0.0.0.0", token="s3cret")
    assert_one_line_error(guarded.post("/images", files=files, headers={"Authorization": "Bearer wrong"}), 403)
    assert guarded.post("/images", files=files, headers={"Authorization": "Bearer s3cret"}).status_code == 201


def test_readers_and_a_writer_together_see_consistent_answers(make_client, trained, ws):
    """8 reader threads query while a writer adds and deletes; every answer is whole and consistent."""
    run(ws, "build", "--index", "ivf")
    client = make_client(index="ivf", flush_s=0)  # every write saves its indexes before it answers
    anchor = image_path(trained, "green_square", 5)
    anchor_id = catalog_id(ws, anchor)
    anchor_bytes = Path(anchor).read_bytes()
    errors: list[str] = []
    answers = []
    stop = threading.Event()

    def reader(index: str) -> None:
        while not stop.is_set():
            response = client.post(f"/query?k=8&index={index}", files={"image": ("a.png", anchor_bytes, "image/png")})
            if response.status_code != 200:
                errors.append(response.text)
                continue
            answers.append(response.json()["results"])

    def writer() -> None:
        for i in range(6):
            data = png_bytes((20 * i, 240 - 30 * i, 90), shape="rectangle", offset=i % 3)
            added = client.post("/images", files={"image": (f"w{i}.png", data, "image/png")}, data={"label": "w"})
            if added.status_code != 201:
                errors.append(added.text)
                continue
            if i % 2 == 0 and client.delete(f"/images/{added.json()['id']}").status_code != 200:
                errors.append(f"delete {added.json()['id']} failed")
        stop.set()

    threads = [threading.Thread(target=reader, args=(name,)) for name in ("ivf", "flat") * 4]
    threads.append(threading.Thread(target=writer))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert len(answers) > 10
    for hits in answers:
        assert len(hits) == 8 and [h["rank"] for h in hits] == list(range(1, 9))
        assert hits[0]["id"] == anchor_id, "the anchor is always its own nearest neighbour"
        assert len({h["id"] for h in hits}) == 8
        scores = [h["score"] for h in hits]
        assert scores == sorted(scores, reverse=True)
    assert {row["name"]: row["ntotal"] for row in client.get("/indexes").json()} == {"ivf": 27, "flat": 27}
    status = client.get("/status").json()
    assert status["inconsistencies"] == [] and status["unsaved_indexes"] == []


def test_serve_warns_beyond_loopback_and_fails_in_one_line_without_an_index(ws, tmp_path, monkeypatch):
    import uvicorn

    from indexer.service import ServiceConfig, serve

    started = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **options: started.append(options))
    lines: list[str] = []
    serve(ServiceConfig(workspace=str(ws), host="0.0.0.0", port=8123), announce=lines.append)
    assert lines[0].startswith("warning: listening on 0.0.0.0") and "writes are refused" in lines[0]
    assert any("http://0.0.0.0:8123/" in line for line in lines)
    assert started == [{"host": "0.0.0.0", "port": 8123, "log_level": "warning", "access_log": False}]
    lines.clear()
    serve(ServiceConfig(workspace=str(ws)), announce=lines.append)
    assert not any(line.startswith("warning") for line in lines)

    run(tmp_path / "empty", "ingest", str(tmp_path))  # a catalog with no model and no index
    result = run(tmp_path / "empty", "serve", "--port", "0", ok=False)
    assert result.exit_code == 1 and result.output.strip().splitlines() == [
        "Error: the catalog has no index yet: run 'indexer build --index ivf' first"]
    bad_k = run(ws, "serve", "-k", "0", ok=False)
    assert bad_k.exit_code == 2 and "-k" in bad_k.output


def test_query_and_similar_rerank_as_the_cli_does(client, trained, ws):
    import json

    path = image_path(trained, "green_square", 3)
    plain = client.post("/query?k=6&index=flat", files=upload(path)).json()["results"]
    cli = json.loads(run(ws, "query", path, "--index", "flat", "-k", "6", "--rerank", "qe", "--json").stdout)
    served = client.post("/query?k=6&index=flat&rerank=qe", files=upload(path)).json()["results"]
    assert [h["id"] for h in served] == [h["id"] for h in cli[0]["results"]]
    assert np.allclose([h["score"] for h in served], [h["score"] for h in cli[0]["results"]], atol=1e-5)
    assert [h["score"] for h in served] != [h["score"] for h in plain]  # the expanded query is another vector
    image_id = catalog_id(ws, path)
    similar = client.get(f"/images/{image_id}/similar?k=4&rerank=qe").json()["results"]
    assert len(similar) == 4 and image_id not in [h["id"] for h in similar]
    assert_one_line_error(client.post("/query?rerank=dba", files=upload(path)), 400, "database-side augmentation")
    assert client.post("/query?rerank=magic", files=upload(path)).status_code == 422


def test_metrics_parse_and_count_routes_segments_and_memory(make_client, trained):
    from prometheus_client.parser import text_string_to_metric_families

    client = make_client(flush_s=3600)
    files = {"image": ("new.png", png_bytes((10, 200, 250)), "image/png")}
    assert client.post("/query?k=3", files=files).status_code == 200
    added = client.post("/images", files=files).json()["id"]
    assert client.delete(f"/images/{catalog_id_of_first(client)}").status_code == 200
    assert client.get("/images/999999/similar").status_code == 404
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(response.text) for s in family.samples}
    assert samples[("indexer_requests_total", (("method", "POST"), ("route", "/query"), ("status", "200")))] == 1
    assert samples[("indexer_errors_total", (("method", "GET"), ("route", "/images/{image_id}/similar")))] == 1
    assert samples[("indexer_request_seconds_count", (("method", "POST"), ("route", "/images")))] == 1
    assert samples[("indexer_index_vectors", (("index", "flat"), ("segment", "growing")))] == 1
    assert samples[("indexer_index_deletions_pending", (("index", "flat"),))] == 1
    assert samples[("indexer_index_live_vectors", (("index", "flat"),))] == 24
    assert samples[("indexer_index_unsaved", (("index", "flat"),))] == 1
    assert samples[("indexer_last_compaction_timestamp_seconds", ())] == 0
    assert samples[("process_resident_memory_bytes", ())] > 10_000_000
    assert added > 0
    compacted = client.post("/compact").json()
    assert compacted["saved"] == ["flat"]
    assert client.get("/indexes").json()[0]["segments"] == {"sealed": 24, "tail": 0, "growing": 0, "deleted": 0}
    after = {s.name: s.value for family in text_string_to_metric_families(client.get("/metrics").text)
             for s in family.samples if not s.labels}
    assert after["indexer_last_compaction_timestamp_seconds"] > 0
    assert after["indexer_last_compaction_in_place"] == 0, "a flat index folds into a copy"


def catalog_id_of_first(client) -> int:
    """The id of the first result for a stored image (some catalogued image)."""
    return client.get("/images/1/similar?k=1").json()["results"][0]["id"]
