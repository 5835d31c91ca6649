"""``indexer serve --ray`` on a real local Ray cluster: a head node and a worker node started with ``ray start``
(one CPU each, as two machines would have) and stopped by this module; the sharded index of test_shards.py.

The router answers what plain ``indexer serve`` answers (the same requests, the same bodies and errors; the merged
top 10 equal, ids and scores), a killed shard replica gives partial answers (or 503 with complete=true) until
Ray Serve has restarted it, and a write lands in its shard and survives a restart of the whole service.
Without Ray Serve the module skips and says why; under CI=true it fails."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import copy_workspace
from tests.indexer.api.test_shards import SHARDS, N, clustered, imported_workspace
from tests.indexer.service.conftest import Server
from tests.requirements import extra, require_module

START_S = 180
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def cluster():
    require_module("ray", extra("scale"))
    require_module("ray.serve", extra("scale"))
    from indexer.service.cluster.local import LocalRayCluster

    started = LocalRayCluster(cpus=1, root=ROOT).start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def sharded(tmp_path_factory) -> Path:
    return imported_workspace(tmp_path_factory.mktemp("cluster"))


@pytest.fixture(scope="module")
def services(cluster, sharded, tmp_path_factory):
    """(the router on Ray over ``sharded``, plain ``indexer serve`` over a copy made first)."""
    plain_ws = tmp_path_factory.mktemp("plain") / "ws"
    copy_workspace(sharded, plain_ws)
    from indexer.service.cluster.local import ENV

    saved = {key: os.environ.get(key) for key in ENV}
    os.environ.update(ENV)
    router = Server(sharded, "--ray", "--address", cluster.address, "--index", "ivf", "--shard-timeout", "5",
                    ).start(timeout_s=START_S)  # 5 s: two busy cores may delay a healthy shard past 1 s
    plain = Server(plain_ws, "--index", "ivf").start()
    yield router, plain
    router.kill(signal.SIGTERM)
    plain.kill(signal.SIGTERM)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def replica_pids(server: Server, deployment: str) -> list[int]:
    from indexer.service.cluster.local import replica_pids as pids

    return pids(f"indexer-{server.port}", deployment)


def query(server: Server, vector, *, k: int = 10, complete: bool = False):
    import httpx

    return httpx.post(f"{server.url}/query", params={"complete": str(complete).lower()},
                      json={"vector": [float(x) for x in vector], "k": k}, timeout=30)


def first_complete(server: Server, vector, wait_s: float = 30):
    """The first complete answer (a fresh router's first calls to its shards may pass --shard-timeout)."""
    deadline = time.monotonic() + wait_s
    while True:
        answer = query(server, vector, k=1, complete=True)
        if answer.status_code == 200 or time.monotonic() > deadline:
            assert answer.status_code == 200, answer.text
            return answer
        time.sleep(0.5)


def without_timing(body):
    if isinstance(body, dict):
        return {key: without_timing(value) for key, value in body.items() if key != "took_ms"}
    if isinstance(body, list):
        return [without_timing(item) for item in body]
    return body


def test_the_router_answers_what_plain_serve_answers(services):
    import httpx

    router, plain = services
    first_complete(router, clustered(1, seed=20)[0])
    for vector in clustered(20, seed=21):  # the merged top 10 at the index's nprobe: ids and scores
        ours, theirs = query(router, vector).json(), query(plain, vector).json()
        assert "results" in ours, ours
        assert [(h["id"], h["score"]) for h in ours["results"]] == [(h["id"], h["score"]) for h in theirs["results"]]
        assert ours["partial"] is False and ours["missing_shards"] == []
    one = clustered(1, seed=22)[0].tolist()
    requests = [  # the same routes, answers and errors
        ("GET", "/healthz", None, None), ("GET", "/indexes", None, None), ("GET", "/fields", None, None),
        ("GET", "/images/5/similar", {"k": 4}, None), ("GET", "/images/999999/similar", None, None),
        ("POST", "/query", {"k": 3, "offset": 3}, {"vector": one}),
        ("POST", "/query", {"filter": 'label = "c2"', "k": 5}, {"vector": one}),
        ("POST", "/query", {"filter": "nonsense = ="}, {"vector": one}),
        ("POST", "/query", None, {"vector": one[:3]}), ("POST", "/query", {"k": 0}, {"vector": one}),
        ("POST", "/query", None, {"vector": [0.0] * len(one)}), ("POST", "/query", {"index": "nope"}, {"vector": one}),
        ("GET", "/images/3", None, None),
    ]
    for method, path, params, body in requests:
        ours = httpx.request(method, router.url + path, params=params, json=body, timeout=30)
        theirs = httpx.request(method, plain.url + path, params=params, json=body, timeout=30)
        assert ours.status_code == theirs.status_code, (path, params, ours.text, theirs.text)
        if path == "/indexes":  # the router's index is its shards: the same name, kind, model, count and dims
            keys = ("name", "kind", "model", "ntotal", "dim")
            assert [{key: row[key] for key in keys} for row in ours.json()] == \
                   [{key: row[key] for key in keys} for row in theirs.json()]
        else:
            assert without_timing(ours.json()) == without_timing(theirs.json()), (path, params)


def test_a_killed_shard_replica_gives_partial_answers_then_ray_restarts_it(services):
    router, _ = services
    vector = clustered(1, seed=23)[0]
    whole = query(router, vector).json()["results"]
    (victim,) = replica_pids(router, "shard-1")
    os.kill(victim, signal.SIGKILL)
    seen_partial = seen_refused = False
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        with ThreadPoolExecutor(2) as pool:  # at once: both see the shard missing, or both see it back
            loose_call = pool.submit(query, router, vector)
            strict = query(router, vector, complete=True)
            answer = loose_call.result()
        body = answer.json()
        assert answer.status_code == 200, answer.text
        if body["partial"]:
            seen_partial = True
            assert body["missing_shards"] == [1] and len(body["results"]) == 10
            scores = {h["id"]: h["score"] for h in whole}  # the other shards' hits, as in the whole answer
            assert all(scores.get(hit["id"], hit["score"]) == hit["score"] for hit in body["results"])
        if strict.status_code == 503:
            seen_refused = True
            assert "shards 1 of index 'ivf' did not answer" in strict.json()["detail"]
        elif seen_partial and not body["partial"]:
            break
        time.sleep(0.3)
    else:
        raise AssertionError("complete answers did not come back within 90 s of the kill")
    assert seen_partial and seen_refused
    assert [(h["id"], h["score"]) for h in query(router, vector).json()["results"]] == \
           [(h["id"], h["score"]) for h in whole]
    assert replica_pids(router, "shard-1") and replica_pids(router, "shard-1") != [victim]


def test_a_write_lands_in_its_shard_and_survives_a_kill_and_a_restart(services, sharded, cluster):
    import httpx

    from indexer.api import Workspace, read_manifest

    router, _ = services
    vector = clustered(1, seed=24)[0]
    added = httpx.post(f"{router.url}/points", json={"path": "late/ray.vec", "vector": vector.tolist()}, timeout=60)
    assert added.status_code == 201, added.text
    new_id = added.json()["id"]
    assert query(router, vector, k=1).json()["results"][0]["id"] == new_id
    last = f"shard-{SHARDS - 1}"
    os.kill(replica_pids(router, last)[0], signal.SIGKILL)  # before its save (every 5 s): the catalog has it
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        body = query(router, vector, k=1, complete=True)
        if body.status_code == 200:
            assert body.json()["results"][0]["id"] == new_id  # the restarted replica reconciled it back
            break
        time.sleep(0.5)
    else:
        raise AssertionError("the killed shard did not come back within 90 s")
    router.kill(signal.SIGTERM)  # the whole service stops (the shards save), then starts again
    router.start(timeout_s=START_S)
    again = first_complete(router, vector)
    assert again.json()["results"][0]["id"] == new_id
    assert np.isclose(again.json()["results"][0]["score"], 1.0, atol=1e-5)
    assert httpx.post(f"{router.url}/compact", timeout=60).json()["saved"] == ["ivf"]  # every shard saves now
    manifest = read_manifest(Workspace.at(sharded), "ivf")
    assert manifest.count == N + 1 and manifest.shards[-1].id_hi is None  # the new id went to the open range
