"""kill -9 of the service at N vectors, in a write burst or in a compaction, then a restart: counted over rounds.

Starts from the workspace ``benchmarks/serve_million.py`` imported and built in ``--workdir`` (its ``ws-fresh``
copy), serves it with ``indexer serve`` and, in each seeded round:

1. a writer adds vectors (``POST /points``) and deletes some (``DELETE /images/{id}``: a vector added in an
   earlier round or one of the N imported ones), one at a time, keeping what the service acknowledged;
2. ``burst`` rounds kill the service (SIGKILL) 2–5 s into the burst; ``compaction`` rounds start
   ``POST /compact`` 2–4 s into it and kill the service while the compaction runs;
3. the service is started again (its start-up replays the journal), then stopped cleanly (files saved), and the
   index file, the catalog and every acknowledged write are compared: every acknowledged add present, every
   acknowledged delete absent, the index holding exactly the catalog's images.

A write cut by the kill was not acknowledged: either outcome is right, and it is left out of the counts.

Usage: python benchmarks/kill_million.py [--workdir /tmp/serve-million] [--rounds 6] [--seed 0] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's indexer, as the server it starts
from serve_million import free_port, log, start_service  # noqa: E402


class Service:
    """``indexer serve --index served`` on a free loopback port, waited for until it answers."""

    def __init__(self, workspace: Path) -> None:
        import httpx

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        started = time.perf_counter()
        self.process = start_service(workspace, self.port)
        while True:
            if self.process.poll() is not None:
                raise SystemExit(f"indexer serve exited with {self.process.returncode} while starting")
            try:
                if httpx.get(self.url + "/healthz", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        self.start_s = round(time.perf_counter() - started, 2)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        if self.process.wait(timeout=900) != 0:
            raise SystemExit(f"indexer serve stopped with {self.process.returncode} after SIGINT")


class Writer(threading.Thread):
    """Adds and deletes one at a time until stopped or the service goes away; records what was acknowledged."""

    def __init__(self, url: str, rng: random.Random, round_no: int, dim: int, present: set[int],
                 deletable: list[int]) -> None:
        super().__init__()
        self.url, self.rng, self.round_no, self.dim = url, rng, round_no, dim
        self.present, self.deletable = present, deletable  # shared with the caller, updated as acknowledged
        self.added, self.deleted, self.unknown = [], [], []
        self.stop = threading.Event()

    def run(self) -> None:
        import httpx

        vectors = np.random.default_rng(self.round_no).standard_normal((100_000, self.dim)).astype(np.float32)
        with httpx.Client(base_url=self.url, timeout=600) as client:
            for i in range(len(vectors)):
                if self.stop.is_set():
                    return
                try:
                    response = client.post("/points", json={"path": f"kill-{self.round_no}-{i}",
                                                            "vector": vectors[i].tolist()})
                except httpx.HTTPError:
                    return  # cut by the kill: not acknowledged
                if response.status_code == 201:
                    image_id = response.json()["id"]
                    self.added.append(image_id)
                    self.present.add(image_id)
                    self.deletable.append(image_id)
                if self.rng.random() < 0.4:
                    victim = self.deletable.pop(self.rng.randrange(len(self.deletable)))
                    self.present.discard(victim)
                    try:
                        response = client.delete(f"/images/{victim}")
                    except httpx.HTTPError:
                        self.unknown.append(victim)  # cut by the kill: either outcome is right
                        return
                    if response.status_code == 200:
                        self.deleted.append(victim)
                    else:
                        raise SystemExit(f"DELETE /images/{victim} answered {response.status_code}: {response.text}")


def held_ids(workspace: Path) -> tuple[set[int], set[int], int]:
    """(ids the served index file holds, ids of the catalog's images, the index's dimension)."""
    from indexer.api import Workspace
    from indexer.api.registry.index_files import load_segmented
    from indexer.core.index_io import load_index
    from indexer.core.membership import indexed_ids

    path = workspace / "indexes" / "served.faiss"
    index = load_segmented(path, *load_index(path))  # a graph's saved tail and marks with it
    with Workspace.at(workspace).catalog() as catalog:
        catalog_ids = {key.id for key in catalog.image_keys()}  # plain tuples: fast at a million
    return set(indexed_ids(index).tolist()), catalog_ids, int(index.d)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="/tmp/serve-million")
    parser.add_argument("--rounds", type=int, default=6, help="alternately a burst and a compaction kill")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    import httpx

    from indexer.core.files import write_json

    work = Path(args.workdir)
    if not (work / "ws-fresh" / "indexes" / "served.json").is_file():
        raise SystemExit(f"{work / 'ws-fresh'}: no built workspace; run benchmarks/serve_million.py "
                         f"--workdir {work} first")
    workspace = work / "ws-kill"
    shutil.rmtree(workspace, ignore_errors=True)
    shutil.copytree(work / "ws-fresh", workspace)
    held, catalog_ids, dim = held_ids(workspace)
    n = len(held)
    log(f"{n:,} vectors of {dim} dims held; {args.rounds} rounds")
    present: set[int] = set()
    deleted_all: set[int] = set()
    deletable = sorted(random.Random(args.seed).sample(sorted(held), 20_000))
    rounds = []
    for round_no in range(args.rounds):
        rng = random.Random(args.seed * 1000 + round_no)
        mode = "burst" if round_no % 2 == 0 else "compaction"
        service = Service(workspace)
        writer = Writer(service.url, rng, round_no, dim, present, deletable)
        writer.start()
        compaction = {"answered": False, "seconds": None}
        if mode == "burst":
            time.sleep(rng.uniform(2.0, 5.0))
        else:
            time.sleep(rng.uniform(2.0, 4.0))

            def compact(url=service.url, compaction=compaction) -> None:
                try:
                    answer = httpx.post(url + "/compact", timeout=600)
                    compaction["answered"], compaction["seconds"] = True, answer.json().get("seconds")
                except httpx.HTTPError:
                    pass  # cut by the kill, as intended

            thread = threading.Thread(target=compact)
            thread.start()
            time.sleep(rng.uniform(0.1, 1.0))
        service.kill()
        writer.stop.set()
        writer.join(timeout=60)
        if mode == "compaction":
            thread.join(timeout=60)
        deleted_all.update(writer.deleted)
        deleted_all.difference_update(writer.unknown)  # neither counted as gone nor as kept
        restarted = Service(workspace)
        restarted.stop()
        held, catalog_ids, _ = held_ids(workspace)
        lost = sorted(present - held)
        resurrected = sorted(deleted_all & held)
        row = {"round": round_no, "mode": mode, "acknowledged_adds": len(writer.added),
               "acknowledged_deletes": len(writer.deleted), "cut_deletes": len(writer.unknown),
               "compaction_answered_before_kill": compaction["answered"], "restart_s": restarted.start_s,
               "adds_held_so_far": len(present), "deletes_so_far": len(deleted_all), "lost": len(lost),
               "resurrected": len(resurrected), "index_equals_catalog": held == catalog_ids,
               "held": len(held)}
        rounds.append(row)
        log(json.dumps(row))
    report = {"n": n, "dim": dim, "rounds": rounds,
              "all_rounds_consistent": all(row["lost"] == 0 and row["resurrected"] == 0 and row["index_equals_catalog"]
                                           for row in rounds)}
    print(json.dumps(report, indent=2))
    if args.json:
        write_json(args.json, report)


if __name__ == "__main__":
    main()
