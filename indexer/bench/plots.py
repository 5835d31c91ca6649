"""Benchmark plots drawn on a bare matplotlib ``Figure`` with the Agg canvas.

No pyplot and no ``matplotlib.use``: importing or calling this never switches the caller's
backend (a notebook keeps its inline backend). matplotlib is imported inside the functions.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from indexer.core.files import atomic_path


def _figure() -> tuple[Any, Any]:
    """A new (figure, axes) pair that renders with Agg, whatever backend the caller uses."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def plot_sweep(sweeps: dict[str, list[dict[str, float]]], path: str | os.PathLike[str]) -> Path:
    """Recall@k vs single-query p50 latency, one curve per kind, points labelled with the setting."""
    fig, ax = _figure()
    for kind, rows in sweeps.items():
        if not rows:
            continue
        xs = [r["p50_ms"] for r in rows]
        ys = [r["recall"] for r in rows]
        ax.plot(xs, ys, marker="o", label=kind)
        for r in rows:
            ax.annotate(
                str(r["value"]),
                (r["p50_ms"], r["recall"]),
                fontsize=7,
                xytext=(3, -8),
                textcoords="offset points",
            )
    ax.set_xscale("log")
    ax.set_xlabel("single-query p50 latency (ms, log)")
    ax.set_ylabel("recall@k vs exact search")
    ax.set_title("Recall vs latency (labels: nprobe / efSearch)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return _save(fig, path)


def pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (recall, qps) points no other point beats on both, by rising recall."""
    front: list[tuple[float, float]] = []
    for recall, qps in sorted(points, key=lambda p: (-p[0], -p[1])):
        if not front or qps > front[-1][1]:
            front.append((recall, qps))
    return front[::-1]


def plot_pareto(sweeps: dict[str, list[dict[str, float]]], path: str | os.PathLike[str]) -> Path:
    """Recall@k vs single-thread queries per second, the Pareto front of each system's sweep."""
    fig, ax = _figure()
    for name, rows in sweeps.items():
        points = [(r["recall"], r["qps_1t"]) for r in rows if r.get("qps_1t")]
        if not points:
            continue
        front = pareto(points)
        ax.plot([p[0] for p in front], [p[1] for p in front], marker="o", label=name)
    ax.set_yscale("log")
    ax.set_xlabel("recall@k vs exact search")
    ax.set_ylabel("queries per second, one thread (log)")
    ax.set_title("Recall vs QPS (Pareto front of each system's own knob)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_cost_curve(rows: list[dict[str, Any]], path: str | os.PathLike[str]) -> Path:
    """Index size N vs single-query p50 latency per kind, log-log."""
    fig, ax = _figure()
    kinds = sorted({r["kind"] for r in rows})
    for kind in kinds:
        points = sorted((r["n"], r["search_ms_p50"]) for r in rows if r["kind"] == kind)
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=kind)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("indexed vectors N (log)")
    ax.set_ylabel("single-query p50 latency (ms, log)")
    ax.set_title("Query cost vs index size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return _save(fig, path)


def _save(fig: Any, path: str | os.PathLike[str]) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    with atomic_path(out) as tmp:  # the temporary name ends in .tmp: the format comes from the real one
        fig.savefig(tmp, dpi=120, format=out.suffix[1:].lower() or "png")
    return out
