"""Engines, schema revision checks and migrations.

Read-only commands check the revision with one plain SELECT; Alembic (about a second
to import) is loaded only when a migration actually has to run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect, text

from storage.errors import CatalogError, SchemaError

HEAD_REVISION = "0004"
BUSY_TIMEOUT_MS = 30_000  # how long a SQLite writer waits for another one before failing
MIGRATION_LOCK_KEY = 0x696E6478  # "indx": the PostgreSQL advisory lock that serialises migrations
MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL journaling and enforced foreign keys."""
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        engine = create_engine(url)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise CatalogError(f"cannot use database URL {url!r}: {exc}") from None
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
            if url not in ("sqlite://", "sqlite:///:memory:"):
                _switch_to_wal(cursor)
            cursor.close()

    return engine


def _switch_to_wal(cursor) -> None:
    """Put a SQLite file in WAL mode (it stays so), retrying while another connection does the same.

    Two connections switching a new file at once can each hold a shared lock and want the exclusive
    one; SQLite then returns "database is locked" at once instead of calling the busy handler (it
    would deadlock). The one that failed has dropped its shared lock, so trying again succeeds.
    """
    import random
    import sqlite3
    import time

    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(delay * (1 + random.random()))
        delay = min(delay * 2, 0.2)


def current_revision(engine: Engine) -> str | None:
    """The database's Alembic revision, or None for a database with no catalog yet."""
    with engine.connect() as conn:
        return _revision_on(conn)


def check_revision(engine: Engine) -> None:
    """Raise :class:`SchemaError` unless the schema is exactly at :data:`HEAD_REVISION`."""
    revision = current_revision(engine)
    if revision == HEAD_REVISION:
        return
    if revision is None:
        raise SchemaError(f"no catalog in {engine.url!r}: run 'indexer ingest DIR' first")
    raise SchemaError(
        f"catalog schema is at revision {revision}, this code needs {HEAD_REVISION}: "
        "run 'indexer db upgrade'"
    )


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply Alembic migrations up to ``revision`` (no-op when already there).

    Serialised across processes, so any number of commands may start at once on a new or an
    old catalog: a file lock beside a SQLite database, PostgreSQL's advisory lock otherwise.
    Whoever gets the lock second finds the schema at head and does nothing.
    """
    at_head = revision in ("head", HEAD_REVISION)
    if at_head and current_revision(engine) == HEAD_REVISION:
        return
    with _migration_lock(engine):
        if at_head and current_revision(engine) == HEAD_REVISION:
            return
        from alembic import command

        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
                if at_head and _revision_on(conn) == HEAD_REVISION:
                    return
            config = _alembic_config()
            config.attributes["connection"] = conn
            command.upgrade(config, revision)


@contextlib.contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """An exclusive lock on ``<database>.migrate.lock`` for a SQLite file; nothing for other databases
    (PostgreSQL's advisory lock is taken inside the migration's transaction)."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    import fcntl

    lock_path = Path(database).with_name(Path(database).name + ".migrate.lock")
    with open(lock_path, "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _revision_on(conn) -> str | None:
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _alembic_config():
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def backup_sqlite(engine: Engine, target: Path) -> None:
    """Copy a SQLite catalog to ``target`` with SQLite's online backup API: one consistent snapshot,
    taken while other processes keep reading and writing (a writer is never blocked for long)."""
    if engine.dialect.name != "sqlite" or not engine.url.database or engine.url.database == ":memory:":
        raise CatalogError(f"only a SQLite file can be backed up this way, not {engine.url!r}")
    import sqlite3

    source = sqlite3.connect(engine.url.database, timeout=30)
    destination = sqlite3.connect(target)
    try:
        source.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        source.backup(destination, pages=1024, sleep=0.01)
        destination.execute("PRAGMA journal_mode=WAL")
    except sqlite3.Error as exc:
        raise CatalogError(f"could not back up {engine.url.database} to {target}: {exc}") from None
    finally:
        destination.close()
        source.close()


def is_transient(exc: BaseException) -> bool:
    """Whether a failed transaction may simply be run again: a PostgreSQL deadlock or serialization failure
    (another writer's rows were locked in the opposite order), or SQLite's lock wait running out."""
    from sqlalchemy.exc import DBAPIError

    if not isinstance(exc, DBAPIError):
        return False
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    if code in ("40P01", "40001"):
        return True
    return "database is locked" in str(exc.orig)
