from __future__ import annotations

from pathlib import Path

from indexer.bench.plots import plot_cost_curve, plot_sweep

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_plot_sweep_writes_png(tmp_path: Path) -> None:
    sweeps = {
        "ivf": [{"value": 1, "recall": 0.5, "p50_ms": 0.1}, {"value": 8, "recall": 0.97, "p50_ms": 0.3}],
        "hnsw": [{"value": 16, "recall": 0.9, "p50_ms": 0.2}],
    }
    out = plot_sweep(sweeps, tmp_path / "sub" / "sweep.png")
    assert out.read_bytes()[:8] == PNG_MAGIC


def test_plot_cost_curve_writes_png(tmp_path: Path) -> None:
    rows = [
        {"n": n, "kind": kind, "search_ms_p50": n / f}
        for n in (1000, 10000)
        for kind, f in (("flat", 1e4), ("ivf", 1e5))
    ]
    assert plot_cost_curve(rows, tmp_path / "cost.png").read_bytes()[:8] == PNG_MAGIC


def test_plotting_never_switches_the_callers_matplotlib_backend(tmp_path: Path) -> None:
    """A notebook keeps its own backend: the plots draw on a bare Figure with the Agg canvas."""
    import subprocess
    import sys

    code = (
        "import sys, matplotlib\n"
        "matplotlib.use('svg')\n"
        "from indexer.bench import plots\n"
        "plots.plot_sweep({'ivf': [{'value': 1, 'recall': 0.5, 'p50_ms': 0.1}]}, sys.argv[1])\n"
        "plots.plot_cost_curve([{'n': 10, 'kind': 'flat', 'search_ms_p50': 0.1}], sys.argv[1])\n"
        "print(matplotlib.get_backend(), 'matplotlib.pyplot' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "p.png")], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["svg", "False"]
    assert (tmp_path / "p.png").read_bytes()[:8] == PNG_MAGIC
