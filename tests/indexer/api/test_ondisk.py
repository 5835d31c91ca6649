"""indexer build --on-disk: built from the embedding store in shards; query, remove, --update and the status
checks work on it, and the CLI says what it made."""

from __future__ import annotations

import json

from tests.conftest import draw_shape
from tests.indexer.api.conftest import image_path, run


def test_on_disk_index_answers_like_the_in_memory_one_and_takes_removals_and_updates(ws, trained, tmp_path):
    out = run(ws, "build", "--index", "ivf", "--on-disk", "--shards", "3", "--name", "disk", "--nlist", "3", "--nprobe", "3").output
    assert "note: lists on disk in disk." in out and "24 vectors" in out
    run(ws, "build", "--index", "ivf", "--name", "mem", "--nlist", "3", "--nprobe", "3")
    data_files = list((ws / "indexes").glob("disk.*.ivfdata"))
    assert len(data_files) == 1
    query = image_path(trained, "blue_triangle", 1)
    answers = {name: json.loads(run(ws, "query", query, "--index", name, "-k", "5", "--json").stdout)[0]["results"]
               for name in ("disk", "mem")}
    assert [hit["id"] for hit in answers["disk"]] == [hit["id"] for hit in answers["mem"]]
    victim = answers["disk"][0]["id"]
    run(ws, "remove", "--id", str(victim))
    hits = json.loads(run(ws, "query", query, "--index", "disk", "-k", "24", "--json").stdout)[0]["results"]
    assert victim not in [hit["id"] for hit in hits] and len(hits) == 23
    assert [p.name for p in (ws / "indexes").glob("disk.*.ivfdata")] != [data_files[0].name], "rewritten, old swept"
    late = draw_shape(tmp_path / "late" / "green_square" / "late.png", (40, 170, 50), "rectangle", offset=2)
    run(ws, "ingest", str(tmp_path / "late"))
    assert "24 vectors" in run(ws, "build", "--update", "disk").output
    hits = json.loads(run(ws, "query", str(late), "--index", "disk", "-k", "1", "--json").stdout)[0]["results"]
    assert hits[0]["path"].endswith("late.png")
    status = json.loads(run(ws, "status", "--json").stdout)
    assert not [line for line in status["inconsistencies"] if "'disk'" in line]


def test_on_disk_refuses_what_it_cannot_do(ws):
    assert "--on-disk needs an IVF kind" in run(ws, "build", "--index", "hnsw", "--on-disk", ok=False).output
    # without --on-disk, --shards lays out an IVF kind's shard files (tests/indexer/api/test_shards.py); others: no
    assert "--shards lays out IVF kinds" in run(ws, "build", "--index", "hnsw", "--shards", "2", ok=False).output
    assert "--on-disk builds take an IVF kind" in run(ws, "build", "--index", "auto", "--on-disk", ok=False).output


def test_a_backup_carries_the_lists_file_of_an_on_disk_index(ws, trained, tmp_path):
    run(ws, "build", "--index", "ivf", "--on-disk", "--name", "disk", "--nlist", "3", "--nprobe", "3")
    dest = tmp_path / "copy"
    run(ws, "backup", str(dest))
    assert len(list((dest / "indexes").glob("disk.*.ivfdata"))) == 1
    query = image_path(trained, "red_circle", 2)
    original = json.loads(run(ws, "query", query, "--index", "disk", "--json").stdout)[0]["results"]
    copied = json.loads(run(dest, "query", query, "--index", "disk", "--json").stdout)[0]["results"]
    assert [hit["id"] for hit in copied] == [hit["id"] for hit in original]
