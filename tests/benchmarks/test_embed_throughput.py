"""benchmarks/embed_throughput.py --generated runs at a tiny size, so the main-process measurement cannot rot."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.mark.parametrize("extra", [[], ["--raw", "--tta", "flip"]])
def test_the_main_process_overhead_run_prints_its_rates(extra):
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "embed_throughput.py"), "--generated", "24",
                           "--side", "16", "--batch-size", "8", "--workers", "0", *extra],
                          capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "decode-only loader:" in proc.stdout and "embed_model, near-zero model:" in proc.stdout
    assert "24 images, 16 px, batch 8, workers 0" in proc.stdout
