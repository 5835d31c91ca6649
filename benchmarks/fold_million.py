"""An in-place compaction at N vectors, in one process: its duration, the queries answered meanwhile, memory.

Loads the IVF index ``benchmarks/serve_million.py`` built (``--workdir``/ws-fresh), adds ``--changes`` growing
vectors and as many deletion marks (segments), then folds them in place (:func:`indexer.core.compaction.fold_in_place`)
on a thread while the main thread queries the segmented index one query at a time. Prints the fold's seconds,
the query p50 / p99 / max meanwhile, and the resident memory (total and anonymous) before, at peak and after.

Usage: python benchmarks/fold_million.py [--workdir /tmp/serve-million] [--changes 50000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's indexer


def memory_mb() -> tuple[float, float]:
    """(VmRSS, RssAnon) of this process in MiB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return (int(fields["VmRSS"].split()[0]) / 1024, int(fields["RssAnon"].split()[0]) / 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="/tmp/serve-million")
    parser.add_argument("--changes", type=int, default=50_000)
    parser.add_argument("--json", default=None)
    parser.add_argument("--trim", action="store_true", help="malloc_trim(0) after the fold (glibc gives freed pages back)")
    args = parser.parse_args()
    from indexer.core.compaction import fold_in_place
    from indexer.core.index_io import load_index
    from indexer.core.search import search
    from indexer.core.segments import SegmentedIndex

    index, _ = load_index(Path(args.workdir) / "ws-fresh" / "indexes" / "served.faiss")
    n, d = int(index.ntotal), int(index.d)
    rng = np.random.default_rng(1)
    extra = rng.standard_normal((args.changes + 300, d)).astype(np.float32)
    extra /= np.linalg.norm(extra, axis=1, keepdims=True)
    queries, extra = extra[:300], extra[300:]
    segmented = SegmentedIndex(index).added(np.arange(args.changes, dtype=np.int64) + 10 * n, extra)
    segmented, _ = segmented.removed(np.sort(rng.choice(n, args.changes, replace=False)) + 1)
    for query in queries[:20]:
        search(segmented, query[None, :], 10)
    before = memory_mb()
    times, peak, done = [], list(before), threading.Event()
    report: dict = {"n": n, "changes": args.changes, "segments": segmented.describe()}

    def fold() -> None:
        started = time.perf_counter()
        fold_in_place(segmented)
        report["fold_s"] = round(time.perf_counter() - started, 2)
        done.set()

    thread = threading.Thread(target=fold)
    thread.start()
    i = 0
    while not done.is_set():
        started = time.perf_counter()
        search(segmented, queries[i % 300][None, :], 10)
        times.append((time.perf_counter() - started) * 1e3)
        i += 1
        if i % 50 == 0:
            now = memory_mb()
            peak = [max(a, b) for a, b in zip(peak, now)]
    thread.join()
    if args.trim:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    after = memory_mb()
    ordered = sorted(times)
    report.update(queries_during=len(times), query_p50_ms=round(ordered[len(ordered) // 2], 3),
                  query_p99_ms=round(ordered[int(0.99 * (len(ordered) - 1))], 3), query_max_ms=round(ordered[-1], 3),
                  rss_mb_before=round(before[0], 1), rss_anon_mb_before=round(before[1], 1),
                  rss_mb_peak=round(peak[0], 1), rss_anon_mb_peak=round(peak[1], 1),
                  rss_mb_after=round(after[0], 1), rss_anon_mb_after=round(after[1], 1),
                  index_file_mb=round((Path(args.workdir) / "ws-fresh" / "indexes" / "served.faiss").stat().st_size
                                      / 2**20, 1))
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
