"""The service's fixtures: the API tests' trained tiny workspace, an app over a copy of it, a real server."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.indexer.api.conftest import image_path, run, trained, ws  # noqa: F401 - fixtures used here
from tests.requirements import extra, require_module

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module", autouse=True)
def serve_extra() -> None:
    """The service (FastAPI, uvicorn) and its clients (TestClient, the process tests) need httpx: the 'serve' extra.

    Module scope and autouse, so it runs before the module-scoped ``trained`` workspace is made."""
    for module in ("fastapi", "uvicorn", "httpx"):
        require_module(module, extra("serve"))


@pytest.fixture
def make_client(ws):  # noqa: F811 - the imported fixture
    """``make_client(**config)``: a TestClient (start-up and shutdown run) over the workspace copy ``ws``."""
    from fastapi.testclient import TestClient

    from indexer.service import ServiceConfig, create_app

    clients = []

    def make(**options):
        options.setdefault("index", "flat")
        options.setdefault("watch_s", 0.2)
        client = TestClient(create_app(ServiceConfig(workspace=str(ws), **options)))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client):
    return make_client()


def png_bytes(colour=(200, 40, 40), size=32, shape="ellipse", offset=0) -> bytes:
    """A small PNG of one coloured shape, made in memory."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size), (240, 240, 235))
    draw = ImageDraw.Draw(img)
    getattr(draw, shape)([4 + offset, 4 + offset, size - 6 + offset, size - 6 + offset], fill=colour)
    buffer = io.BytesIO()
    img.save(buffer, format="PNG")
    return buffer.getvalue()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """``indexer serve`` as a real process on a free loopback port."""

    def __init__(self, workspace: Path, *args: str) -> None:
        self.workspace, self.args = workspace, args
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self, timeout_s: float = 60) -> Server:
        import httpx

        command = [sys.executable, str(ROOT / "cli.py"), "--workspace", str(self.workspace), "serve",
                   "--port", str(self.port), *self.args]
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited: {self.process.stdout.read().decode()}")
            try:
                answer = httpx.get(self.url + "/healthz", timeout=1)
                if answer.status_code == 200 and answer.json() == {"ok": True}:  # (Ray Serve's proxy says 404 first)
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.kill()
        raise AssertionError("server did not answer /healthz in time")

    def kill(self, sig: int = signal.SIGKILL) -> int:
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self.process.stdout.close()
        self.process = None
        return code


@pytest.fixture
def server_factory():
    """``server_factory(workspace, *args)``: a started :class:`Server`; every one is killed at the end."""
    servers: list[Server] = []

    def start(workspace: Path, *args: str) -> Server:
        server = Server(workspace, *args).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.kill()
