"""Migrations: head equals the ORM, and an old database upgrades without losing rows."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import text

from storage.database import (
    HEAD_REVISION,
    MIGRATIONS_DIR,
    check_revision,
    current_revision,
    make_engine,
    upgrade,
)
from storage.errors import SchemaError
from storage.schema import Base


def test_head_revision_constant_matches_scripts():
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD_REVISION


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request, tmp_path) -> str:
    """A new, empty catalog database of each kind the catalog supports."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'c.db'}"
    return request.getfixturevalue("postgres_url")


def test_migrating_empty_database_gives_exactly_the_orm_schema(catalog_url):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = make_engine(catalog_url)
    upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    assert current_revision(engine) == HEAD_REVISION


def test_database_from_older_revision_upgrades_without_losing_rows(catalog_url):
    engine = make_engine(catalog_url)
    upgrade(engine, "0001")
    assert current_revision(engine) == "0001"
    now = datetime.now(timezone.utc)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO labels (id, name) VALUES (7, 'rose')"))
        for i in range(3):
            conn.execute(
                text(
                    "INSERT INTO images (path, sha256, label_id, split, status, created_at, updated_at) "
                    "VALUES (:p, :s, 7, 'train', 'ok', :t, :t)"
                ),
                {"p": f"/data/{i}.jpg", "s": f"{i:064d}", "t": now},
            )
    with pytest.raises(SchemaError, match="revision 0001"):
        check_revision(engine)
    upgrade(engine)
    check_revision(engine)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT path, label_id FROM images ORDER BY id")).all()
        assert rows == [(f"/data/{i}.jpg", 7) for i in range(3)]
        assert conn.execute(text("SELECT count(*) FROM models")).scalar() == 0


def test_sqlite_pragmas_wal_and_foreign_keys(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'p.db'}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000, "a writer waits instead of failing"


def test_new_sqlite_file_opened_by_many_connections_at_once(tmp_path):
    """Connections switching a new file to WAL together: SQLite answers "database is locked" at once to
    all but one (no busy wait, it would deadlock); make_engine tries again. Without the retry about one
    round in five failed here; 40 rounds."""
    import threading

    for round_ in range(40):
        path = tmp_path / f"r{round_}.db"
        engines = [make_engine(f"sqlite:///{path}") for _ in range(6)]
        barrier, errors = threading.Barrier(len(engines)), []

        def connect(engine, barrier=barrier, errors=errors):
            barrier.wait()
            try:
                with engine.connect() as conn:
                    assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            except Exception as exc:  # noqa: BLE001 - collected and reported below
                errors.append(repr(exc))

        threads = [threading.Thread(target=connect, args=(engine,)) for engine in engines]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for engine in engines:
            engine.dispose()
        assert not errors, f"round {round_}: {errors[0]}"


def test_check_revision_on_empty_database_says_what_to_do(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'e.db'}")
    with pytest.raises(SchemaError, match="indexer ingest"):
        check_revision(engine)


def test_migrations_started_together_by_many_processes_run_once(catalog_url, tmp_path):
    """The flock (SQLite) / pg_advisory_xact_lock (PostgreSQL) in upgrade(): every process succeeds."""
    import subprocess
    import sys

    argv = [sys.executable, "-m", "cli", "--workspace", str(tmp_path / "ws"), "--db", catalog_url, "db", "upgrade"]
    processes = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(6)]
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        assert f"revision {HEAD_REVISION}" in out
    assert current_revision(make_engine(catalog_url)) == HEAD_REVISION
