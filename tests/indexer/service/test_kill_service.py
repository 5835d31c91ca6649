"""kill -9 of the service during a burst of writes and compactions, then a restart: every acknowledged add is
indexed, every acknowledged delete is gone, over seeded rounds."""

from __future__ import annotations

import random
import signal
import threading
import time

from tests.indexer.api.conftest import run
from tests.indexer.service.conftest import png_bytes

SEEDS = (1, 2, 3)


def test_a_killed_service_loses_no_acknowledged_write(ws, server_factory):
    import httpx

    from indexer.api import Workspace
    from indexer.api.registry.index_files import load_segmented
    from indexer.core.index_io import load_index
    from indexer.core.membership import indexed_ids

    run(ws, "build", "--index", "ivf")  # served beside flat: compacted in place, flat through a copy
    run(ws, "build", "--index", "hnsw", "--name", "graph")  # and a graph: a tail and marks, or rebuilt when large
    for seed in SEEDS:
        rng = random.Random(seed)
        server = server_factory(ws, "--index", "flat", "--save-every", "0.2")
        added, deleted, stop = [], [], threading.Event()

        def burst(server=server, rng=rng, added=added, deleted=deleted, stop=stop, seed=seed) -> None:
            i = 0
            while not stop.is_set():
                i += 1
                data = png_bytes(tuple(rng.randrange(256) for _ in range(3)), shape="ellipse", offset=rng.randrange(4))
                try:
                    response = httpx.post(server.url + "/images", timeout=10,
                                          files={"image": (f"k{seed}-{i}.png", data, "image/png")})
                    if response.status_code == 201:
                        added.append(response.json()["id"])
                except httpx.HTTPError:
                    return  # the server was killed mid-request: that write was not acknowledged
                if added and rng.random() < 0.3:
                    victim = added.pop(rng.randrange(len(added)))  # in flight: either outcome is right
                    try:
                        response = httpx.delete(f"{server.url}/images/{victim}", timeout=10)
                    except httpx.HTTPError:
                        return  # killed mid-delete: not acknowledged, so the image may or may not be there
                    (deleted if response.status_code == 200 else added).append(victim)

        writer = threading.Thread(target=burst)
        writer.start()
        time.sleep(rng.uniform(1.0, 3.0))
        server.kill(signal.SIGKILL)
        stop.set()
        writer.join(timeout=30)
        assert added or deleted, f"seed {seed}: the burst wrote nothing before the kill"

        restarted = server_factory(ws, "--index", "flat")
        restarted.process.send_signal(signal.SIGINT)  # a clean stop after the start-up replay: files saved
        assert restarted.process.wait(timeout=60) == 0
        restarted.process.stdout.close()
        restarted.process = None
        with Workspace.at(ws).catalog() as catalog:
            ok_ids = {row.id for row in catalog.images()}
        files = sorted((ws / "indexes").glob("*.faiss"))
        assert {path.stem for path in files} >= {"flat", "ivf", "graph"}, "IVF and HNSW indexes are served too"
        for path in files:
            index = load_segmented(path, *load_index(path))  # a graph's saved tail and marks with it
            held = set(indexed_ids(index).tolist())
            assert held == ok_ids, f"seed {seed}: {path.stem} and the catalog disagree"
            assert set(added) <= held, f"seed {seed}: {path.stem} lost acknowledged adds: {sorted(set(added) - held)}"
            assert not set(deleted) & held, f"seed {seed}: deleted images came back in {path.stem}"
