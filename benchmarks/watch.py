"""Folders that stay indexed, measured: `indexer serve --watch DIR` driven from this process while 4 clients query.

It makes its own workspace (seeded noise PNGs, a tiny Siamese model, a flat index), starts the service with
--watch on an empty folder, then measures, with the query clients running throughout:
(1) one image copied in: time from the copy's close until `/query` with its bytes returns it first (p50, p95 over
--singles copies); (2) --burst images copied at once: all searchable, none twice, time until the last one is, and
the clients' query p50 during the burst against before it; (3) a deleted image no longer returned (p50, p95);
(4) a moved image returned under its new path, and the service's embedding count before and after (unchanged);
(5) a file written slowly over --slow-s seconds: ingested once, whole; (6) a truncated file: recorded as refused
and the watcher goes on; (7) `kill -9` of the service in the middle of a second burst, then a restart: the
catalog's rows under the folder and the index converge to the folder's files, no path twice.

Usage: python benchmarks/watch.py [--burst 1000] [--singles 20] [--out DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.serve_load import _free_port, _multipart  # noqa: E402 - the repository's own helpers

CLIENTS = 4


def noise_png(seed: int, size: int = 48) -> bytes:
    """A seeded PNG: a random 6 x 6 colour layout blown up smoothly, plus light noise (pure noise images all
    look alike to a small network, so their embeddings tie and "itself first" would test the ties)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    layout = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)).resize((size, size), Image.BILINEAR)
    pixels = np.clip(np.asarray(layout, np.int16) + rng.integers(-12, 13, (size, size, 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def indexer(workspace: Path, *args: str) -> None:
    subprocess.run([sys.executable, str(ROOT / "cli.py"), "--workspace", str(workspace), *args], check=True,
                   stdout=subprocess.DEVNULL)


class Service:
    def __init__(self, workspace: Path, folder: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(workspace.parent / "serve.log", "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "cli.py"), "--workspace", str(workspace), "serve", "--index", "flat",
             "--port", str(self.port), "--watch", str(folder)], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if self.status()["watch"]["running"]:
                    return
            except Exception:  # noqa: BLE001 - not listening yet
                time.sleep(0.1)
        raise SystemExit("the service did not start; see serve.log")

    def get(self, path: str) -> dict:
        with urllib.request.urlopen(self.url + path, timeout=30) as answer:
            return json.loads(answer.read())

    def status(self) -> dict:
        return self.get("/status")

    def top(self, data: bytes) -> tuple[str | None, float]:
        body, content_type = _multipart("image", data)
        request = urllib.request.Request(self.url + "/query?k=1", data=body, headers={"Content-Type": content_type})
        with urllib.request.urlopen(request, timeout=30) as answer:
            results = json.loads(answer.read())["results"]
        return (results[0]["path"], results[0]["score"]) if results else (None, 0.0)

    def stop(self, kill: bool = False) -> None:
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGINT)
        self.process.wait(timeout=60)
        self.log.close()


class Clients:
    """CLIENTS threads querying with catalogued bytes; latencies recorded with their start time."""

    def __init__(self, service: Service, queries: list[bytes]) -> None:
        self.service, self.queries, self.stop = service, queries, threading.Event()
        self.samples: list[tuple[float, float]] = []
        self.threads = [threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(CLIENTS)]
        for thread in self.threads:
            thread.start()

    def run(self, number: int) -> None:
        i = number
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                self.service.top(self.queries[i % len(self.queries)])
                self.samples.append((started, time.monotonic() - started))
            except Exception:  # noqa: BLE001 - a killed service: the kill phase expects failures
                time.sleep(0.05)
            i += CLIENTS

    def p50_ms(self, start: float, end: float) -> float:
        window = [s for t, s in self.samples if start <= t < end]
        return round(1000 * float(np.median(window)), 1) if window else float("nan")

    def close(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)


def wait_for(check, timeout: float) -> float | None:
    """Seconds until ``check()`` is true (polled), None past ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(0.01)
    return None


def percentiles(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    return {"n": len(values), "p50_s": round(float(np.percentile(values, 50)), 3),
            "p95_s": round(float(np.percentile(values, 95)), 3), "max_s": round(max(values), 3)}


def copy_in(folder: Path, name: str, data: bytes) -> float:
    """Write ``data`` as ``folder/name`` through a temporary name (as a copy tool does); the close's time."""
    temporary = folder / f".{name}.part"
    temporary.write_bytes(data)
    os.rename(temporary, folder / name)
    return time.monotonic()


def catalog_paths(workspace: Path, folder: Path) -> list[str]:
    with sqlite3.connect(workspace / "catalog.db") as db:
        return [row[0] for row in db.execute("SELECT path FROM images WHERE path LIKE ?", (f"{folder}/%",))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--singles", type=int, default=20)
    parser.add_argument("--slow-s", type=float, default=5.0)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds at most for any one wait")
    parser.add_argument("--out", default=None, help="work folder (default: a temporary one, removed)")
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args()
    work = Path(args.out or tempfile.mkdtemp(prefix="watch-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        report = run(work, args)
    finally:
        if args.out is None:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(report, indent=2))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(report, indent=2))


def run(work: Path, args) -> dict:
    seed_dir, folder, workspace = work / "seed", work / "watched", work / "ws"
    for label in ("a", "b", "c"):
        (seed_dir / label).mkdir(parents=True, exist_ok=True)
        for i in range(8):
            (seed_dir / label / f"{i}.png").write_bytes(noise_png(hash((label, i)) % 2**31))
    folder.mkdir(exist_ok=True)
    indexer(workspace, "ingest", str(seed_dir))
    indexer(workspace, "train", "--network", "siamese", "--image-size", "32", "--epochs", "1",
            "--batch-classes", "3", "--batch-per-class", "2", "--name", "tiny")
    indexer(workspace, "build", "--index", "flat")
    queries = [p.read_bytes() for p in sorted(seed_dir.rglob("*.png"))]
    report: dict = {"burst": args.burst, "singles": args.singles, "cpus": os.cpu_count()}
    service = Service(workspace, folder)
    clients = Clients(service, queries)
    try:
        time.sleep(2.0)
        seed = 10_000
        singles, deletes = [], []
        for i in range(args.singles):  # (1) one image copied in
            data = noise_png(seed + i)
            closed = copy_in(folder, f"single_{i}.png", data)
            path = str(folder / f"single_{i}.png")
            if wait_for(lambda data=data, path=path: service.top(data)[0] == path, args.timeout) is not None:
                singles.append(time.monotonic() - closed)
        report["single_copy_to_searchable"] = percentiles(singles)
        for i in range(args.singles):  # (3) deletes
            data, path = noise_png(seed + i), folder / f"single_{i}.png"
            path.unlink()
            gone = time.monotonic()
            if wait_for(lambda data=data, path=path: service.top(data)[0] != str(path), args.timeout) is not None:
                deletes.append(time.monotonic() - gone)
        report["delete_to_gone"] = percentiles(deletes)
        # (2) the burst
        before_end = time.monotonic()
        before_p50 = clients.p50_ms(before_end - 5.0, before_end)
        blobs = [noise_png(20_000 + i) for i in range(args.burst)]
        started = time.monotonic()
        for i, data in enumerate(blobs):
            copy_in(folder, f"burst_{i}.png", data)
        copied = time.monotonic()
        base_added = service.status()["watch"]["added"]
        done = wait_for(lambda: service.status()["watch"]["added"] - base_added >= args.burst, args.timeout)
        finished = time.monotonic()
        sample = [blobs[i] for i in range(0, args.burst, max(1, args.burst // 20))]
        all_first = all(service.top(data)[0].endswith(f"burst_{blobs.index(data)}.png") for data in sample)
        paths = catalog_paths(workspace, folder)
        report["burst_all"] = {"copy_s": round(copied - started, 2),
                               "until_last_searchable_s": round(finished - started, 2) if done is not None else None,
                               "sampled_first": all_first, "rows": len(paths), "distinct_paths": len(set(paths)),
                               "query_p50_before_ms": before_p50,
                               "query_p50_during_ms": clients.p50_ms(started, finished)}
        # (4) a move
        embedded = service.status()["watch"]["embedded"]
        (folder / "moved").mkdir()
        os.rename(folder / "burst_0.png", folder / "moved" / "burst_0.png")
        moved_path = str(folder / "moved" / "burst_0.png")
        took = wait_for(lambda: service.top(blobs[0])[0] == moved_path, args.timeout)
        report["move"] = {"searchable_after_s": round(took, 3) if took is not None else None,
                          "embedded_before": embedded, "embedded_after": service.status()["watch"]["embedded"]}
        # (5) a slow writer
        slow = noise_png(30_000, size=256)
        pieces = np.array_split(np.frombuffer(slow, np.uint8), 10)
        with open(folder / "slow.png", "wb") as handle:
            for piece in pieces:
                handle.write(piece.tobytes())
                handle.flush()
                time.sleep(args.slow_s / len(pieces))
        took = wait_for(lambda: service.top(slow)[0] == str(folder / "slow.png"), args.timeout)
        watch = service.status()["watch"]
        report["slow_write"] = {"searchable_after_close_s": round(took, 3) if took is not None else None,
                                "refused_so_far": watch["refused"]}
        # (6) a truncated file, then a good one
        copy_in(folder, "truncated.png", noise_png(30_001)[:300])
        good = noise_png(30_002)
        copy_in(folder, "after.png", good)
        took = wait_for(lambda: service.top(good)[0] == str(folder / "after.png"), args.timeout)
        watch = service.status()["watch"]
        report["truncated"] = {"refused": watch["refused"], "last_error": watch["last_error"],
                               "next_file_searchable_s": round(took, 3) if took is not None else None}
        report["query_p50_overall_ms"] = clients.p50_ms(0, time.monotonic())
    finally:
        clients.close()
    # (7) kill -9 in the middle of a burst, then a restart
    second = [noise_png(40_000 + i) for i in range(args.burst)]
    copier_done = threading.Event()

    def copier() -> None:
        for i, data in enumerate(second):
            copy_in(folder, f"second_{i}.png", data)
        copier_done.set()

    thread = threading.Thread(target=copier)
    thread.start()
    wait_for(lambda: service.status()["watch"]["added"] >= args.burst + args.singles + 2 + args.burst // 3, 120)
    added_at_kill = service.status()["watch"]["added"] - (args.burst + args.singles + 2)
    service.stop(kill=True)
    thread.join()
    service = Service(workspace, folder)
    try:
        on_disk = sorted(str(p) for p in folder.rglob("*.png"))
        converged = wait_for(lambda: sorted(catalog_paths(workspace, folder)) == on_disk and
                             service.status()["watch"]["pending"] == 0, args.timeout)
        paths = catalog_paths(workspace, folder)
        ntotal = service.get("/indexes")[0]["ntotal"]
        with sqlite3.connect(workspace / "catalog.db") as db:
            ok = db.execute("SELECT count(*) FROM images WHERE status = 'ok'").fetchone()[0]
        report["kill_9_restart"] = {"second_burst_added_at_kill": added_at_kill,
                                    "converged_s": round(converged, 2) if converged is not None else None,
                                    "files": len(on_disk), "rows": len(paths), "distinct_paths": len(set(paths)),
                                    "index_vectors": ntotal, "ok_rows": ok}
    finally:
        service.stop()
    return report


if __name__ == "__main__":
    main()
