"""A throw-away PostgreSQL cluster for tests: initdb in a temporary folder, a free loopback port, stopped at the end.

Debian's server binaries live in /usr/lib/postgresql/<version>/bin. PostgreSQL refuses to run as root, so
when the tests run as root (CI) the cluster is created and started as the ``postgres`` user (``runuser``).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

SERVER_USER = "postgres"


def server_bin_dir() -> Path | None:
    """The newest installed server's bin folder, or None when no PostgreSQL server is installed."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=_version_key)
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("pg_ctl")
    return Path(found).parent if found else None


def missing_reason() -> str | None:
    """Why a cluster cannot be started here, or None when it can."""
    if server_bin_dir() is None:
        return "no PostgreSQL server binaries (apt-get install postgresql, or 'make postgres')"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install 'indexer[postgres]')"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser to start the server as another user"
    return None


@dataclass
class Cluster:
    """A running cluster; :meth:`new_database` gives each test its own empty database."""

    data_dir: Path
    port: int
    user: str
    bin_dir: Path

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """Create an empty database and return its SQLAlchemy URL."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user={self.user} dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        _as_server_user([str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "-w", "stop"],
                        check=False)
        shutil.rmtree(self.data_dir.parent, ignore_errors=True)


def start_cluster() -> Cluster:
    """initdb + pg_ctl start on a free loopback port; trust authentication, fsync off (tests only)."""
    bin_dir = server_bin_dir()
    if bin_dir is None:
        raise RuntimeError(missing_reason())
    parent = Path(tempfile.mkdtemp(prefix="indexer-pg-"))
    data_dir = parent / "data"
    if os.geteuid() == 0:
        shutil.chown(parent, SERVER_USER, SERVER_USER)
        user = SERVER_USER
    else:
        import getpass

        user = getpass.getuser()
    _as_server_user([str(bin_dir / "initdb"), "-D", str(data_dir), "-U", user, "--auth=trust", "-E", "UTF8",
                     "--no-sync"])
    port = _free_port()
    options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={parent} -c fsync=off " \
              "-c max_connections=200"
    _as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-o", options, "-l", str(parent / "log"),
                     "-w", "start"])
    return Cluster(data_dir=data_dir, port=port, user=user, bin_dir=bin_dir)


def _as_server_user(argv: list[str], check: bool = True) -> subprocess.CompletedProcess:
    if os.geteuid() == 0:
        argv = ["runuser", "-u", SERVER_USER, "--", *argv]
    result = subprocess.run(argv, capture_output=True, text=True, cwd="/")
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    return result


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _version_key(path: str) -> tuple[int, ...]:
    version = Path(path).parent.parent.name
    return tuple(int(part) for part in version.split(".") if part.isdigit())
