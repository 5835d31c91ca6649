"""Load on `indexer serve`: starts the service on a workspace and drives it from this (second) process on loopback.

Phases, each bounded in count and in time: (a) one client, N queries one after another; (b) C concurrent clients,
M queries in all; (c) as (b) while a writer adds one image and deletes it again every second. Queries are
`POST /query` uploads of the JPEGs in IMAGES (e.g. the 64 px Flowers copies). Prints p50/p95/p99 latency,
throughput and errors per phase, and where the time goes (the service's Server-Timing parts against the
client's end-to-end time).

Usage: python benchmarks/serve_load.py --workspace WS --index ivf --images DIR [--json out.json]
Run it on a COPY of a workspace: phase (c) writes to it (and deletes what it wrote).
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PARTS = ("decode", "embed", "search", "catalog")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--index", default="ivf")
    parser.add_argument("--images", required=True, help="folder of query JPEGs (searched recursively)")
    parser.add_argument("--single", type=int, default=500, help="queries in phase (a)")
    parser.add_argument("--concurrent", type=int, default=2000, help="queries in phases (b) and (c)")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--time-limit", type=float, default=120.0, help="seconds at most per phase")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args()

    files = sorted(Path(args.images).rglob("*.jpg"))
    if not files:
        sys.exit(f"no .jpg files under {args.images}")
    random.Random(args.seed).shuffle(files)
    queries = [(path.name, path.read_bytes()) for path in files[:256]]
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "--workspace", args.workspace, "serve",
                               "--index", args.index, "--port", str(port), "-k", str(args.k)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait_ready(url, server)
        report = {"params": vars(args), "phases": {}}
        report["phases"]["a"] = run_phase(url, queries, args.single, 1, args.time_limit, args.k)
        report["phases"]["b"] = run_phase(url, queries, args.concurrent, args.clients, args.time_limit, args.k)
        report["phases"]["c"] = run_phase(url, queries, args.concurrent, args.clients, args.time_limit, args.k,
                                          writer=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(markdown(report))
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(report, indent=2))


def run_phase(url: str, queries, total: int, clients: int, time_limit: float, k: int, writer: bool = False) -> dict:
    import httpx

    latencies: list[float] = []
    parts: list[dict[str, float]] = []
    errors: list[str] = []
    writes: list[float] = []
    lock = threading.Lock()
    counter = iter(range(total))
    deadline = time.perf_counter() + time_limit
    stop = threading.Event()

    bodies = [_multipart(name, data) for name, data in queries]  # encoded once, as a client would per file

    def client(number: int) -> None:
        # http.client on one keep-alive connection: the lightest Python client, so that the figures are the
        # service's rather than the client library's (httpx costs about 1.5 ms a request more here)
        host, port = url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        try:
            for i in counter:  # shared iterator: the clients together send `total` queries
                if time.perf_counter() > deadline:
                    break
                body, content_type = bodies[(i * 7 + number) % len(bodies)]
                began = time.perf_counter()
                try:
                    connection.request("POST", f"/query?k={k}", body=body, headers={"Content-Type": content_type})
                    response = connection.getresponse()
                    payload = response.read()
                    ok = response.status == 200 and len(json.loads(payload)["results"]) == k
                    timing = response.getheader("server-timing", "")
                    detail = payload.decode(errors="replace")
                except (OSError, http.client.HTTPException) as exc:
                    ok, timing, detail = False, "", repr(exc)
                    connection.close()
                    connection = http.client.HTTPConnection(host, int(port), timeout=30)
                elapsed = (time.perf_counter() - began) * 1e3
                with lock:
                    if ok:
                        latencies.append(elapsed)
                        parts.append(_server_timing(timing))
                    else:
                        errors.append(detail)
        finally:
            connection.close()

    def write_loop() -> None:
        rng = np.random.default_rng(1)
        previous = None
        with httpx.Client(base_url=url, timeout=30) as session:
            tick = time.perf_counter()
            while not stop.wait(max(0.0, tick + 1.0 - time.perf_counter())):  # one write a second, on the clock
                tick = max(tick + 1.0, time.perf_counter() - 1.0)
                began = time.perf_counter()
                try:
                    if previous is not None:
                        deleted = session.delete(f"/images/{previous}")
                        if deleted.status_code != 200:
                            errors.append(f"delete: {deleted.text}")
                    added = session.post("/images", files={"image": ("w.jpg", _noise_jpeg(rng), "image/jpeg")},
                                         data={"label": "load-writer"})
                    if added.status_code != 201:
                        errors.append(f"add: {added.text}")
                        previous = None
                    else:
                        previous = added.json()["id"]
                except httpx.HTTPError as exc:
                    errors.append(f"write: {exc!r}")
                writes.append((time.perf_counter() - began) * 1e3)
            if previous is not None:
                session.delete(f"/images/{previous}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    write_thread = threading.Thread(target=write_loop) if writer else None
    started = time.perf_counter()
    if write_thread:
        write_thread.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    stop.set()
    if write_thread:
        write_thread.join()
    lat = np.array(latencies) if latencies else np.zeros(1)
    server_parts = {part: float(np.mean([p.get(part, 0.0) for p in parts])) if parts else 0.0 for part in PARTS}
    result = {
        "clients": clients, "queries": len(latencies) + len(errors), "ok": len(latencies), "errors": len(errors),
        "error_samples": errors[:3], "wall_s": wall, "qps": len(latencies) / wall if wall else 0.0,
        "p50_ms": float(np.percentile(lat, 50)), "p95_ms": float(np.percentile(lat, 95)),
        "p99_ms": float(np.percentile(lat, 99)), "mean_ms": float(lat.mean()),
        "server_ms": server_parts, "writes": len(writes),
        "write_ms_p50": float(np.percentile(writes, 50)) if writes else None,
    }
    result["http_ms"] = result["mean_ms"] - sum(server_parts.values())
    return result


def markdown(report: dict) -> str:
    names = {"a": "(a) 1 client, sequential", "b": "(b) 8 concurrent clients", "c": "(c) as (b) + 1 add/delete per s"}
    lines = ["| phase | queries | errors | p50 ms | p95 ms | p99 ms | queries/s | mean ms: decode / embed / search / "
             "catalog / HTTP+multipart+client |", "|---|---|---|---|---|---|---|---|"]
    for key, row in report["phases"].items():
        parts = " / ".join(f"{row['server_ms'][p]:.2f}" for p in PARTS)
        label = names.get(key, key).replace("8", str(row["clients"]), 1) if key != "a" else names[key]
        lines.append(f"| {label} | {row['queries']} | {row['errors']} | {row['p50_ms']:.1f} | {row['p95_ms']:.1f} | "
                     f"{row['p99_ms']:.1f} | {row['qps']:.0f} | {parts} / {row['http_ms']:.2f} |")
    c = report["phases"].get("c")
    if c and c["writes"]:
        lines.append(f"\nphase (c): {c['writes']} writes (delete previous + add), p50 {c['write_ms_p50']:.0f} ms; "
                     f"(c)/(b) throughput {c['qps'] / max(report['phases']['b']['qps'], 1e-9):.0%}")
    return "\n".join(lines)


def _server_timing(header: str) -> dict[str, float]:
    out = {}
    for part in header.split(","):
        name, _, value = part.strip().partition(";dur=")
        if value:
            out[name] = float(value)
    return out


def _multipart(name: str, data: bytes) -> tuple[bytes, str]:
    """A multipart/form-data body with one file field ``image``, and its content type."""
    boundary = "indexer-load-boundary"
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
            "Content-Type: image/jpeg\r\n\r\n").encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _noise_jpeg(rng) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, format="JPEG")
    return buffer.getvalue()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_ready(url: str, server: subprocess.Popen, timeout_s: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"the service exited: {server.stdout.read().decode()}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.kill()
    sys.exit("the service did not become ready")


if __name__ == "__main__":
    main()
