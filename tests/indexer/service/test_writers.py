"""Writers in two processes on one index: the service (saving on every write) and 'indexer build --update'.

Every writer takes the index's lock for its whole load → change → save → register sequence, so their
saves never interleave and nothing is lost: after the rounds, the index holds exactly the ok catalog images.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import textwrap

import numpy as np

from tests.conftest import draw_shape
from tests.indexer.service.conftest import ROOT, png_bytes

ROUNDS = 3
WRITES_PER_ROUND = 6

UPDATER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from indexer.api import Workspace, ingest_directory, update_index

    workspace = Workspace.at(sys.argv[1])
    for folder in sys.argv[2:]:
        ingest_directory(workspace, folder, labels="none", progress=False)
        outcome = update_index(workspace, "flat", progress=False)
        print(f"updated {folder}: {outcome.ntotal}", flush=True)
""")


def _folders(root, seed: int) -> list[str]:
    """ROUNDS folders of 3 new images each, drawn from ``seed``."""
    rng = random.Random(seed)
    folders = []
    for round_ in range(ROUNDS):
        folder = root / f"new-{seed}-{round_}"
        for i in range(3):
            colour = tuple(rng.randrange(256) for _ in range(3))
            draw_shape(folder / f"n{i}.png", colour, rng.choice(["ellipse", "rectangle"]), offset=rng.randrange(-4, 5))
        folders.append(str(folder))
    return folders


def test_service_saves_and_build_update_in_another_process_lose_nothing(ws, tmp_path, server_factory):
    import httpx

    from indexer.api import Workspace
    from indexer.core.index_io import load_index
    from indexer.core.membership import indexed_ids

    for seed in (1, 2):
        rng = random.Random(seed)
        server = server_factory(ws, "--index", "flat", "--save-every", "0")
        updater = subprocess.Popen([sys.executable, "-c", UPDATER, str(ws), *_folders(tmp_path, seed)], cwd=ROOT,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        added: list[int] = []
        for i in range(ROUNDS * WRITES_PER_ROUND):
            data = png_bytes(tuple(rng.randrange(256) for _ in range(3)), shape="ellipse", offset=rng.randrange(4))
            response = httpx.post(server.url + "/images", files={"image": (f"s{seed}-{i}.png", data, "image/png")},
                                  timeout=60)
            assert response.status_code in (200, 201), response.text
            added.append(response.json()["id"])
            if added and rng.random() < 0.3:
                victim = added.pop(rng.randrange(len(added)))
                deleted = httpx.delete(f"{server.url}/images/{victim}", timeout=60)
                assert deleted.status_code == 200, deleted.text
        output, _ = updater.communicate(timeout=300)
        assert updater.returncode == 0, output
        server.process.send_signal(signal.SIGINT)  # a clean stop: the service takes in the update and saves
        assert server.process.wait(timeout=60) == 0
        log = server.process.stdout.read().decode()
        server.process.stdout.close()
        server.process = None
        assert "failed" not in log and "could not" not in log, log

        workspace = Workspace.at(ws)
        with workspace.catalog() as catalog:
            ok_ids = sorted(row.id for row in catalog.images())
        index, _ = load_index(ws / "indexes" / "flat.faiss")
        assert sorted(indexed_ids(index).tolist()) == ok_ids, f"seed {seed}: the index lost or kept a write"
        assert set(added) <= set(ok_ids)
        assert len(ok_ids) == len(np.unique(ok_ids))
