"""``serve --watch``: the watcher runs in the app's lifespan, and /status and /metrics show it."""

from __future__ import annotations

from tests.indexer.api.conftest import run
from tests.indexer.api.watch.conftest import eventually, noise_png


def test_a_watched_folder_is_searchable_and_shown_by_status_and_metrics(make_client, ws, tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "old.png").write_bytes(noise_png(20))
    run(ws, "ingest", str(folder), "--labels", "none")
    client = make_client(watch=(str(folder),), watch_labels="none")
    data = noise_png(21)
    (folder / "new.png").write_bytes(data)

    def found():
        answer = client.post("/query?k=1", files={"image": ("q.png", data, "image/png")}).json()
        return answer["results"][0]["path"] == str(folder / "new.png")

    eventually(found, what="the new file in /query")
    (folder / "bad.png").write_bytes(data[:100])
    eventually(lambda: client.get("/status").json()["watch"]["refused"] == 1, what="the bad file to be refused")
    watch = client.get("/status").json()["watch"]
    assert watch["folders"] == [str(folder)] and watch["mode"] == "events" and watch["running"]
    assert watch["labels"] == {str(folder): "none"} and watch["added"] == 1 and watch["embedded"] >= 1
    assert watch["events_seen"] >= 2 and "bad.png" in watch["last_error"] and watch["pending"] >= 0
    metrics = client.get("/metrics").text
    assert f'indexer_watch_info{{folder="{folder}",labels="none",mode="events"}} 1.0' in metrics
    assert 'indexer_watch_files_total{outcome="added"} 1.0' in metrics
    assert 'indexer_watch_files_total{outcome="refused"} 1.0' in metrics
    assert "indexer_watch_pending_files" in metrics and "indexer_watch_last_error 1.0" in metrics


def test_without_watch_the_status_says_null(client):
    assert client.get("/status").json()["watch"] is None
    assert "indexer_watch_info" not in client.get("/metrics").text
