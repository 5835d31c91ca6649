"""The live service at N vectors over loopback HTTP: queries, writes, memory, compaction and recall.

Realistic synthetic N × d vectors (the bench's generator, seed 0) are written as an npy folder, imported with
``indexer import`` into a fresh workspace, indexed with ``indexer build --index KIND`` (tuned to recall@10
0.95) and served by ``indexer serve`` (``--save-every`` large: compaction only when asked, ``POST /compact``).
Then, one client on loopback:

1. JSON vector queries, one at a time: p50 / p99 ms;
2. ``POST /points`` and ``DELETE /images/{id}``: p50 / p99 ms each;
3. queries alone, then queries while a writer adds and deletes ``--write-rate`` vectors a second: p50 ratio;
4. ``--changes`` adds and as many deletes (in bulk, over HTTP), then recall@10 of the served index against
   exact search over the live set, before and after ``POST /compact``, beside a fresh build over the live set
   at the same settings; the compaction's duration and the slowest query answered while it ran;
5. the service's resident memory (``/metrics``) beside the index file's size, before and during compaction.

Usage: python benchmarks/serve_million.py [--n 1000000] [--dim 128] [--kind ivf] [--changes 50000]
       [--queries 300] [--write-rate 20] [--writes 200] [--json out.json] [--workdir /tmp/serve-million]
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def log(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def indexer(workspace: Path, *args: str) -> str:
    command = [sys.executable, str(ROOT / "cli.py"), "--workspace", str(workspace), *args]
    return subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT).stdout


def percentiles(times_ms: list[float]) -> dict[str, float]:
    ordered = sorted(times_ms)
    return {"p50": round(statistics.median(ordered), 3), "p99": round(ordered[int(0.99 * (len(ordered) - 1))], 3),
            "max": round(ordered[-1], 3), "n": len(ordered)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_service(workspace: Path, port: int, checkout: Path = ROOT) -> subprocess.Popen:
    """``indexer serve --index served`` of ``checkout`` on ``workspace`` at loopback ``port``, saving only when told
    (``--save-every 86400``: a compaction, a stop or ``POST /compact``); its output discarded."""
    return subprocess.Popen([sys.executable, str(checkout / "cli.py"), "--workspace", str(workspace), "serve",
                             "--index", "served", "--port", str(port), "--save-every", "86400"],
                            cwd=checkout, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def wait_until_up(client, seconds: float = 300.0) -> None:
    """Poll ``GET /healthz`` until the service answers 200 (it loads its indexes first), at most ``seconds``."""
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if client.get("/healthz").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"the service did not answer /healthz within {seconds:.0f} s")


def anon_file_mb(pid: int) -> tuple[float, float]:
    """(RssAnon, RssFile) of process ``pid`` in MiB: its own heap, and the pages of the files it maps (the
    served vectors' store file, shared and reclaimable)."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return tuple(round(int(fields[key].split()[0]) / 1024, 1) for key in ("RssAnon", "RssFile"))


def peak_mb(pid: int) -> float:
    """VmHWM of process ``pid`` in MiB: the most it has held resident since it started (start-up included)."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return round(int(fields["VmHWM"].split()[0]) / 1024, 1)


def reset_peak(pid: int) -> None:
    """Start VmHWM of process ``pid`` again from its resident memory now (Linux: ``5`` into ``clear_refs``), so
    the next :func:`peak_mb` is the peak of what happened since."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def metric(client, name: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name and not sample.labels:
                return float(sample.value)
    raise KeyError(name)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / truth.shape[1] for a, b in zip(found, truth)]))


def query_ids(client, queries: np.ndarray, k: int = 10) -> tuple[np.ndarray, list[float]]:
    ids, times = [], []
    for vector in queries:
        started = time.perf_counter()
        answer = client.post("/query", json={"vector": vector.tolist(), "k": k})
        times.append((time.perf_counter() - started) * 1e3)
        answer.raise_for_status()
        ids.append([hit["id"] for hit in answer.json()["results"]])
    return np.array(ids), times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--kind", default="ivf")
    parser.add_argument("--efSearch", type=int, default=None,
                        help="an HNSW kind's efSearch, given to the build (its own tuning queries indexed rows, which "
                             "flatters a graph: efSearch 15 gave recall@10 0.876 on held-out queries at 1M)")
    parser.add_argument("--changes", type=int, default=50_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--write-rate", type=float, default=20.0)
    parser.add_argument("--writes", type=int, default=200, help="single adds (then deletes) timed")
    parser.add_argument("--workdir", default="/tmp/serve-million")
    parser.add_argument("--json", default=None)
    parser.add_argument("--reuse", action="store_true",
                        help="keep a workspace a previous run of the same --n and --kind left in --workdir")
    args = parser.parse_args()
    import httpx

    from indexer.bench.synthetic_bench import synthetic_data
    from indexer.core.files import write_json
    from indexer.core.search import exact_search

    work = Path(args.workdir)
    workspace = work / "ws"
    reuse = args.reuse and (workspace / "indexes" / "served.json").is_file()
    if not reuse:
        shutil.rmtree(work, ignore_errors=True)
    (work / "vectors").mkdir(parents=True, exist_ok=True)
    log(f"generating {args.n:,} + {args.changes:,} realistic vectors")
    data = synthetic_data(args.n + args.changes, args.dim, args.queries, 0, seed=0, data="realistic")
    base, extra, queries = data.base[:args.n], data.base[args.n:], data.queries
    import_s = build_s = None
    if not reuse:
        np.save(work / "vectors" / "ids.npy", np.arange(args.n, dtype=np.int64))
        np.save(work / "vectors" / "vectors.npy", base)
        with open(work / "vectors" / "meta.csv", "w") as handle:
            handle.write("id,path,label,split\n")
            handle.writelines(f"{i},item-{i},,\n" for i in range(args.n))
        started = time.perf_counter()
        indexer(workspace, "import", str(work / "vectors"), "--model", "vectors")
        import_s = round(time.perf_counter() - started, 1)
        log(f"imported in {import_s:.0f} s; building {args.kind}")
        started = time.perf_counter()
        given = ["--efSearch", str(args.efSearch)] if args.efSearch else []
        indexer(workspace, "build", "--index", args.kind, "--model", "vectors", "--name", "served", *given)
        build_s = round(time.perf_counter() - started, 1)
        shutil.copytree(workspace, work / "ws-fresh")  # what --reuse starts from
    else:
        shutil.rmtree(workspace)
        shutil.copytree(work / "ws-fresh", workspace)
        log("reusing the imported and built workspace")
    sidecar = json.loads((workspace / "indexes" / "served.json").read_text())
    port = free_port()
    server = start_service(workspace, port)
    report: dict = {"n": args.n, "dim": args.dim, "kind": args.kind, "import_s": import_s,
                    "build_s": build_s, "search_params": sidecar["search_params"],
                    "index_bytes": sidecar.get("index_bytes")}
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600)
        wait_until_up(client)
        log("serving; timing queries")
        query_ids(client, queries[:20])  # warm-up
        _, times = query_ids(client, queries)
        report["query_ms"] = percentiles(times)
        report["rss_mb_loaded"] = round(metric(client, "process_resident_memory_bytes") / 2**20, 1)
        report["anon_file_mb_loaded"] = anon_file_mb(server.pid)
        report["rss_mb_peak_until_loaded"] = peak_mb(server.pid)
        phase_peaks: dict[str, float] = {}  # VmHWM of each phase alone (reset before it): where the run's peak is
        report["rss_mb_peak_by_phase"] = phase_peaks
        reset_peak(server.pid)

        log("timing single writes")
        add_times, delete_times, added = [], [], []
        for i in range(args.writes):
            started = time.perf_counter()
            response = client.post("/points", json={"path": f"single-{i}", "vector": extra[i].tolist()})
            add_times.append((time.perf_counter() - started) * 1e3)
            response.raise_for_status()
            added.append(response.json()["id"])
        for image_id in added:
            started = time.perf_counter()
            client.delete(f"/images/{image_id}").raise_for_status()
            delete_times.append((time.perf_counter() - started) * 1e3)
        report["points_ms"], report["delete_ms"] = percentiles(add_times), percentiles(delete_times)
        phase_peaks["single_writes"] = peak_mb(server.pid)
        reset_peak(server.pid)

        log("queries alone, then beside a writer")
        alone = query_ids(client, queries)[1]
        stop = threading.Event()

        def writer() -> None:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as own:
                i = 0
                while not stop.is_set():
                    vector = extra[(args.writes + i) % len(extra)]
                    response = own.post("/points", json={"path": f"busy-{i}", "vector": vector.tolist()})
                    own.delete(f"/images/{response.json()['id']}")
                    i += 1
                    time.sleep(max(0.0, 2.0 / args.write_rate - 0.002))

        thread = threading.Thread(target=writer)
        thread.start()
        beside = query_ids(client, queries)[1]
        stop.set()
        thread.join()
        report["query_p50_alone_ms"] = round(statistics.median(alone), 3)
        report["query_p50_with_writer_ms"] = round(statistics.median(beside), 3)
        report["writer_ratio"] = round(statistics.median(beside) / statistics.median(alone), 3)
        phase_peaks["queries_and_writer"] = peak_mb(server.pid)
        reset_peak(server.pid)

        log(f"{args.changes:,} adds and {args.changes:,} deletes")
        rng = np.random.default_rng(1)
        deleted = np.sort(rng.choice(args.n, args.changes, replace=False))
        new_ids = []
        for i in range(args.changes):
            response = client.post("/points", json={"path": f"bulk-{i}", "vector": extra[i].tolist()})
            new_ids.append(response.json()["id"])
            if (i + 1) % 10_000 == 0:
                log(f"  {i + 1:,} added")
        phase_peaks["bulk_adds"] = peak_mb(server.pid)
        reset_peak(server.pid)
        for j, image_id in enumerate(deleted):
            client.delete(f"/images/{int(image_id) + 1}")  # import gave the rows ids 1..N in file order
            if (j + 1) % 10_000 == 0:
                log(f"  {j + 1:,} deleted")
        phase_peaks["bulk_deletes"] = peak_mb(server.pid)
        reset_peak(server.pid)
        live = np.ones(args.n, bool)
        live[deleted] = False
        live_vectors = np.concatenate([base[live], extra[:args.changes]])
        live_ids = np.concatenate([np.flatnonzero(live) + 1, np.array(new_ids)])
        _, truth = exact_search(live_vectors, live_ids, queries, 10)
        found, _ = query_ids(client, queries)
        report["recall_before_compaction"] = round(recall(found, truth), 4)
        report["segments_before"] = client.get("/indexes").json()[0]["segments"]

        log("compacting while one client queries")
        slowest, during, done = [], [], threading.Event()

        def compact() -> None:
            started = time.perf_counter()
            report["compact_http_s"] = client.post("/compact").json()["seconds"]
            report["compact_wall_s"] = round(time.perf_counter() - started, 2)
            done.set()

        phase_peaks["recall_queries"] = peak_mb(server.pid)
        reset_peak(server.pid)
        report["rss_mb_before_compaction"] = round(metric(client, "process_resident_memory_bytes") / 2**20, 1)
        report["anon_file_mb_before_compaction"] = anon_file_mb(server.pid)
        rss_peak, anon_peak = [0.0], [0.0]
        thread = threading.Thread(target=compact)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as other:
            thread.start()
            while not done.is_set():
                during.extend(query_ids(other, queries[:20])[1])
                rss_peak[0] = max(rss_peak[0], metric(other, "process_resident_memory_bytes"))
                anon_peak[0] = max(anon_peak[0], anon_file_mb(server.pid)[0])
        thread.join()
        phase_peaks["compaction"] = peak_mb(server.pid)
        slowest = max(during) if during else None
        report["queries_during_compaction"] = len(during)
        report["slowest_query_during_compaction_ms"] = round(slowest, 3) if slowest else None
        report["rss_mb_peak_during_compaction"] = round(rss_peak[0] / 2**20, 1)
        report["anon_mb_peak_during_compaction"] = anon_peak[0]
        report["compaction_in_place"] = bool(metric(client, "indexer_last_compaction_in_place"))
        found, _ = query_ids(client, queries)
        report["recall_after_compaction"] = round(recall(found, truth), 4)
        report["segments_after"] = client.get("/indexes").json()[0]["segments"]
        report["rss_mb_after"] = round(metric(client, "process_resident_memory_bytes") / 2**20, 1)
        report["anon_file_mb_after"] = anon_file_mb(server.pid)
        phase_peaks["after_compaction"] = peak_mb(server.pid)
        report["rss_mb_peak_overall"] = max(report["rss_mb_peak_until_loaded"], *phase_peaks.values())
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=600)
        except subprocess.TimeoutExpired:
            server.kill()

    log("a fresh build over the live set, same settings")
    from indexer.core.build import build_index
    from indexer.core.factory import IndexParams
    from indexer.core.search import search

    params = IndexParams.from_dict(sidecar["params"])
    fresh, _ = build_index(params, live_vectors, live_ids)
    knobs = {key: value for key, value in sidecar["search_params"].items() if value is not None}
    report["recall_fresh_build"] = round(recall(search(fresh, queries, 10, **knobs)[1], truth), 4)
    print(json.dumps(report, indent=2))
    if args.json:
        write_json(args.json, report)


if __name__ == "__main__":
    main()
