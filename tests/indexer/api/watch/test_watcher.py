"""A real watcher over a real folder and a served catalog: every change to the folder reaches the indexes."""

from __future__ import annotations

import os
import time

from tests.indexer.api.watch.conftest import WAIT_S, catalog_rows, eventually, noise_png, top_hit


def test_a_new_file_is_searchable_with_itself_first_and_labelled_by_its_sub_folder(live, folder, start_watcher):
    watcher = start_watcher()
    assert watcher.status().mode == "events" and watcher.status().labels == {str(folder): "folders"}
    data = noise_png(1)
    (folder / "dogs").mkdir()
    (folder / "dogs" / "rex.png").write_bytes(data)
    path = str(folder / "dogs" / "rex.png")
    hit = eventually(lambda: (h := top_hit(live, data)).path == path and h,
                     what=lambda: f"the new file to be searchable ({watcher.status()}, {watcher.problems})")
    assert hit.label == "dogs" and hit.score > 0.999
    status = watcher.status()
    assert (status.added, status.embedded, status.refused) == (1, 1, 0) and status.events_seen > 0


def test_a_changed_file_is_embedded_again_and_a_deleted_one_removed(live, folder, start_watcher):
    watcher = start_watcher()
    target = folder / "cats" / "first.png"
    old_id = catalog_rows(live, folder)[str(target)].id
    live.set_fields(old_id, {"rating": 4, "album": "summer"}, types={"rating": "number", "album": "text"})
    changed = noise_png(2)
    target.write_bytes(changed)
    eventually(lambda: watcher.status().changed == 1, what="the change to be applied")
    hit = top_hit(live, changed)
    assert hit.path == str(target) and hit.score > 0.999
    new_row = catalog_rows(live, folder)[str(target)]
    assert new_row.id != old_id and new_row.label == "cats"
    with live.workspace.catalog() as catalog:
        assert catalog.image_fields([new_row.id]) == {new_row.id: {"rating": 4, "album": "summer"}}, \
            "an edited photo keeps its user fields"
    assert old_id not in live.engine.rows and watcher.status().changed == 1 and watcher.status().embedded == 1
    target.unlink()
    eventually(lambda: str(target) not in catalog_rows(live, folder), what="the deleted file's row to go")
    assert top_hit(live, changed).path != str(target) and new_row.id not in live.engine.rows
    # the batch counts its removal after the catalog commit that made the row go: wait for the count too
    eventually(lambda: watcher.status().removed >= 1, what="the removal to be counted")
    assert watcher.status().removed == 1


def test_a_moved_file_keeps_its_id_and_vector_and_is_not_embedded_again(live, folder, start_watcher):
    watcher = start_watcher()
    data = noise_png(3)
    (folder / "cats" / "tom.png").write_bytes(data)
    eventually(lambda: watcher.status().embedded == 1, what="the first embedding")
    image_id = catalog_rows(live, folder)[str(folder / "cats" / "tom.png")].id
    (folder / "dogs").mkdir()
    os.rename(folder / "cats" / "tom.png", folder / "dogs" / "tom.png")
    moved = str(folder / "dogs" / "tom.png")
    eventually(lambda: top_hit(live, data).path == moved, what="the moved file under its new path")
    row = catalog_rows(live, folder)[moved]
    assert (row.id, row.label) == (image_id, "dogs")
    status = watcher.status()
    assert (status.moved, status.embedded, status.removed, status.added) == (1, 1, 0, 1), status


def test_a_file_written_slowly_is_read_once_whole(live, folder, start_watcher):
    watcher = start_watcher()
    data = noise_png(4, size=64)
    path = folder / "slow.png"
    pieces = [data[i:i + len(data) // 5 + 1] for i in range(0, len(data), len(data) // 5 + 1)]
    with open(path, "wb") as handle:  # one writer, pauses longer than the quiet time between pieces
        for piece in pieces:
            handle.write(piece)
            handle.flush()
            time.sleep(0.3)
    eventually(lambda: top_hit(live, data).path == str(path), what="the slow file to be searchable")
    assert watcher.wait_idle(WAIT_S)
    status = watcher.status()
    assert (status.added, status.refused, status.embedded) == (1, 0, 1), status
    assert catalog_rows(live, folder)[str(path)].status == "ok"


def test_a_truncated_file_is_recorded_as_an_error_and_the_watcher_goes_on(live, folder, start_watcher):
    watcher = start_watcher()
    (folder / "broken.png").write_bytes(noise_png(5)[:200])
    eventually(lambda: watcher.status().refused == 1, what="the truncated file to be refused")
    row = catalog_rows(live, folder)[str(folder / "broken.png")]
    assert row.status == "error" and "broken.png" in (watcher.status().last_error or "")
    good = noise_png(6)
    (folder / "good.png").write_bytes(good)
    eventually(lambda: top_hit(live, good).path == str(folder / "good.png"), what="a good file after the bad one")


def test_temporary_names_are_ignored_until_renamed(live, folder, start_watcher):
    watcher = start_watcher()
    for name in ("shot.png.part", ".hidden.png", "shot.png~", "copy.tmp", "notes.txt"):
        (folder / name).write_bytes(noise_png(7))
    time.sleep(1.0)  # several quiet times: long enough for a wrongly watched name to be read
    assert watcher.wait_idle(WAIT_S)
    assert set(catalog_rows(live, folder)) == {str(folder / "cats" / "first.png")}
    os.rename(folder / "shot.png.part", folder / "shot.png")
    eventually(lambda: top_hit(live, noise_png(7)).path == str(folder / "shot.png"), what="the renamed file")


def test_a_start_reconciles_what_changed_while_nobody_watched(live, folder, start_watcher):
    first = start_watcher()
    keep, move = noise_png(8), noise_png(9)
    (folder / "keep.png").write_bytes(keep)
    (folder / "move.png").write_bytes(move)
    eventually(lambda: first.status().embedded == 2, what="two embeddings")
    move_id = catalog_rows(live, folder)[str(folder / "move.png")].id
    first.stop()
    (folder / "keep.png").unlink()  # while stopped: a delete, a move, a new file, a changed file
    os.rename(folder / "move.png", folder / "cats" / "moved.png")
    (folder / "new.png").write_bytes(noise_png(10))
    (folder / "cats" / "first.png").write_bytes(noise_png(11))
    second = start_watcher()
    rows = catalog_rows(live, folder)
    assert sorted(rows) == sorted(str(folder / p) for p in ("cats/first.png", "cats/moved.png", "new.png"))
    assert rows[str(folder / "cats" / "moved.png")].id == move_id
    assert rows[str(folder / "cats" / "moved.png")].label == "cats"
    status = second.status()
    assert (status.removed, status.moved, status.added, status.changed, status.embedded) == (1, 1, 1, 1, 2), status
    assert top_hit(live, noise_png(10)).path == str(folder / "new.png")


def test_polling_mode_follows_the_folder_too(live, folder, start_watcher):
    watcher = start_watcher(mode="polling", poll_s=0.2)
    assert watcher.status().mode == "polling" and "scan every" in watcher.status().mode_reason
    data = noise_png(12)
    (folder / "polled.png").write_bytes(data)
    eventually(lambda: top_hit(live, data).path == str(folder / "polled.png"), what="the polled file")
    (folder / "polled.png").unlink()
    eventually(lambda: str(folder / "polled.png") not in catalog_rows(live, folder), what="the polled delete")
