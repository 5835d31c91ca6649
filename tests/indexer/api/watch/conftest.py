"""The watcher's fixtures: a copy of the API tests' trained workspace served by a LiveCatalog, a watched folder
ingested with folder labels, and pictures of seeded noise (each one distinct, so a query finds itself first)."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest

from tests.indexer.api.conftest import run, trained, ws  # noqa: F401 - fixtures used here

WAIT_S = 20.0  # every wait is bounded: a watcher that misses an event fails the test, it does not hang it


def noise_png(seed: int, size: int = 32) -> bytes:
    """A PNG of seeded coloured noise: distinct bytes and a distinct picture for each seed."""
    import numpy as np
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def eventually(check, timeout: float = WAIT_S, what="condition"):
    """Poll ``check()`` until it returns something truthy (returned), or fail after ``timeout`` seconds saying
    ``what`` (a string, or a function making it then)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what() if callable(what) else what}")
        time.sleep(0.02)


@pytest.fixture
def folder(ws, tmp_path) -> Path:  # noqa: F811 - the imported fixture
    """A watched folder with one image in sub-folder ``cats/``, ingested with folder labels (and embedded and
    indexed by the LiveCatalog's start)."""
    root = tmp_path / "photos"
    (root / "cats").mkdir(parents=True)
    (root / "cats" / "first.png").write_bytes(noise_png(1000))
    run(ws, "ingest", str(root), "--labels", "folders")
    return root


@pytest.fixture
def live(ws, folder):  # noqa: F811
    from indexer.api import LiveCatalog, Workspace

    catalog = LiveCatalog(Workspace.at(ws), "flat")
    yield catalog
    catalog.close()


@pytest.fixture
def start_watcher(live, folder):
    """``start_watcher(**config)``: a started Watcher over ``folder`` (stopped at the end of the test)."""
    from indexer.api import WatchConfig, Watcher

    started = []

    def start(**options):
        options.setdefault("quiet_s", 0.2)
        options.setdefault("batch_s", 0.05)
        watcher = Watcher(live, WatchConfig(folders=(str(folder),), **options))
        watcher.start()
        started.append(watcher)
        assert watcher.wait_idle(WAIT_S), "the first scan did not finish"
        return watcher

    yield start
    for watcher in started:
        watcher.stop()


def top_hit(live, data: bytes):
    """The first result of a query with these bytes."""
    return live.search_bytes(data, "query.png", k=3).results[0]


def catalog_rows(live, folder: Path) -> dict:
    """``{path: FileKey}`` of the catalog's rows under ``folder``."""
    with live.workspace.catalog() as catalog:
        return {row.path: row for row in catalog.files_under(str(folder.resolve()))}
