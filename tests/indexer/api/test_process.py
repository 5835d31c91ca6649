"""A serving process's settings: every loaded BLAS pool runs one thread; start-up's objects are frozen."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]

SCRIPT = """
import json, numpy, faiss
from threadpoolctl import threadpool_info
from indexer.api import limit_blas_threads
before = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
after = limit_blas_threads(1)
print(json.dumps({"before": before, "after": [(i["filepath"], i["num_threads"]) for i in after],
                  "now": [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]}))
"""


def test_limit_blas_threads_sets_every_loaded_blas_to_one_thread():
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2"}  # pools of two, as on a 2-core machine
    done = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["before"] and max(report["before"]) == 2
    assert any("numpy" in path or "scipy_openblas" in path for path, _ in report["after"]), report["after"]
    assert [threads for _, threads in report["after"]] == [1] * len(report["after"])
    assert report["now"] == [1] * len(report["before"])


FREEZE = """
import gc, json
from indexer.api import freeze_loaded_objects
before = gc.get_freeze_count()
held = [[i] for i in range(1000)]  # objects alive at start-up
frozen = freeze_loaded_objects()
print(json.dumps({"before": before, "frozen": frozen, "now": gc.get_freeze_count()}))
"""


def test_freeze_loaded_objects_moves_what_is_alive_out_of_the_collections():
    done = subprocess.run([sys.executable, "-c", FREEZE], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["before"] == 0
    assert report["frozen"] == report["now"] >= 1000  # the start-up lists at least
