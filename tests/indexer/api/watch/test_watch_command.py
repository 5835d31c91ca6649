"""``indexer watch DIR --once``: the folder reconciled with the catalog and the indexes, then exit."""

from __future__ import annotations

from tests.indexer.api.conftest import run
from tests.indexer.api.watch.conftest import noise_png


def test_watch_once_catches_up_with_a_folder_and_saves_the_index(ws, folder):
    (folder / "cats" / "second.png").write_bytes(noise_png(30))
    (folder / "cats" / "first.png").unlink()
    result = run(ws, "watch", str(folder), "--once")
    assert "1 added, 0 changed, 1 removed, 0 moved" in result.output, result.output
    assert "watching" in result.output and "labels folders" in result.output
    again = run(ws, "watch", str(folder), "--once")  # nothing left to do
    assert "0 added, 0 changed, 0 removed" in again.output
    hits = run(ws, "query", str(folder / "cats" / "second.png"), "-k", "1", "--json").output
    assert str(folder / "cats" / "second.png") in hits
