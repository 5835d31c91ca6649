"""`indexer backup DEST`: a consistent copy that `status` and `query` accept, taken while other commands write."""

from __future__ import annotations

import json
import subprocess

import pytest

from indexer.api import Workspace, backup_workspace, catalog_status
from indexer.core.errors import InputError
from tests.conftest import SHAPES, draw_shape
from tests.indexer.api.conftest import image_path, run
from tests.indexer.api.test_concurrency import indexer_command

COUNTS = ("images_total", "images_ok", "images_error", "duplicates", "labels", "splits", "models", "indexes")


def _counts(workspace_dir, db_url=None) -> dict:
    summary = catalog_status(Workspace.at(workspace_dir, db_url))
    assert summary["inconsistencies"] == []
    return {key: summary[key] for key in COUNTS}


def test_backup_has_the_same_counts_and_answers_queries(trained, ws, tmp_path):
    dest = tmp_path / "copy"
    result = run(ws, "backup", str(dest))
    assert "backup written to" in result.output and "sqlite online backup" in result.output
    assert _counts(dest) == _counts(ws)
    status = run(dest, "status", "--json")
    assert json.loads(status.output)["images_total"] == 24
    original = json.loads(run(ws, "query", image_path(trained), "--json").output)[0]["results"]
    copied = json.loads(run(dest, "query", image_path(trained), "--json").output)[0]["results"]
    assert [hit["id"] for hit in copied] == [hit["id"] for hit in original]
    assert not (tmp_path / "copy.partial").exists()


def test_backup_refuses_a_destination_with_files(ws, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="already exists"):
        backup_workspace(Workspace.at(ws), tmp_path / "full")
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    with pytest.raises(InputError, match="inside the workspace"):
        backup_workspace(Workspace.at(ws), ws / "backups" / "b1")


def test_an_interrupted_backup_leaves_no_destination(ws, tmp_path, monkeypatch):
    import indexer.api.admin.backup as module

    def broken(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(module, "_copy_store", broken)
    with pytest.raises(KeyboardInterrupt):
        backup_workspace(Workspace.at(ws), tmp_path / "copy")
    assert not (tmp_path / "copy").exists()
    monkeypatch.undo()
    backup_workspace(Workspace.at(ws), tmp_path / "copy")  # the next backup clears the leftover
    assert _counts(tmp_path / "copy") == _counts(ws)


def test_backups_taken_while_an_ingest_and_an_update_run_are_consistent(ws, tmp_path):
    more = tmp_path / "more"
    for name, (colour, shape) in SHAPES.items():
        for i in range(60):
            draw_shape(more / name / f"more_{name}_{i}.png", colour, shape, offset=i % 5 - 2, size=20 + i // 5)
    writers = [subprocess.Popen(indexer_command(ws, None, "ingest", str(more)), stderr=subprocess.PIPE, text=True),
               subprocess.Popen(indexer_command(ws, None, "build", "--update", "flat"), stderr=subprocess.PIPE,
                                text=True)]
    copies = []
    while any(writer.poll() is None for writer in writers) or not copies:
        dest = tmp_path / f"copy{len(copies)}"
        backup_workspace(Workspace.at(ws), dest)
        copies.append(dest)
    for writer in writers:
        assert writer.wait() == 0, writer.stderr.read()
    for dest in copies:  # every copy opens, and its index files match its catalog rows
        summary = catalog_status(Workspace.at(dest))
        problems = [p for p in summary["inconsistencies"] if "lacks" not in p]  # an index may trail the ingest
        assert problems == [], (dest, problems)
    run(ws, "build", "--update", "flat")  # the update may have run before the ingest ended
    final = tmp_path / "final"
    backup_workspace(Workspace.at(ws), final)
    assert _counts(final) == _counts(ws)


def test_backup_of_a_postgresql_catalog_says_to_use_pg_dump(tmp_path, postgres_url, image_tree):
    workspace_dir = tmp_path / "ws"
    result = subprocess.run(indexer_command(workspace_dir, postgres_url, "ingest", str(image_tree)),
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    outcome = backup_workspace(Workspace.at(workspace_dir, postgres_url), tmp_path / "copy")
    assert outcome.catalog.startswith("not copied")
    assert any("pg_dump" in note and "postgresql://" in note for note in outcome.notes)
    assert (tmp_path / "copy" / "indexes").is_dir()
    # the copied files with the same database give the same counts
    assert _counts(tmp_path / "copy", postgres_url) == _counts(workspace_dir, postgres_url)
