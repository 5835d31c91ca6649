"""Bench reports as text: a terminal table and a Markdown block for the docs."""

from __future__ import annotations

from typing import Any

COLUMNS = [
    ("kind", "kind", "{}"),
    ("system", "system", "{}"),
    ("rows_n", "vectors", "{:,}"),
    ("p_at_1", "P@1", "{:.3f}"),
    ("p_at_k", "P@k", "{:.3f}"),
    ("r_at_k", "R@k", "{:.3f}"),
    ("f1_at_k", "F1@k", "{:.3f}"),
    ("map_at_r", "MAP@R", "{:.3f}"),
    ("ann_recall_at_k", "recall@k", "{:.3f}"),
    ("nprobe", "nprobe", "{}"),
    ("efSearch", "efSearch", "{}"),
    ("knob_value", "peer knob", "{}"),
    ("search_ms_p50", "search p50 ms", "{:.3f}"),
    ("search_ms_p99", "p99 ms", "{:.3f}"),
    ("qps", "batch q/s", "{:,.0f}"),
    ("qps_1t", "1-thread q/s", "{:,.0f}"),
    ("rows_ms_p50", "vector->rows ms", "{:.3f}"),
    ("query_ms_p50", "end-to-end ms", "{:.1f}"),
    ("build_s", "build s", "{:.2f}"),
    ("bytes_per_vector", "bytes/vec", "{:.0f}"),
    ("speedup_vs_flat", "vs flat", "{:.1f}x"),
    ("our_overhead_pct", "overhead %", "{:.1f}"),
    ("build_peak_rss_mb", "build peak MB", "{:,.0f}"),
    ("query_rss_mb", "query RSS MB", "{:,.0f}"),
]


def _cells(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    rows = report["results"]
    if report["params"].get("streaming"):  # rows index different numbers of vectors: say how many
        rows = [{**row, "rows_n": row.get("n")} for row in rows]
    present = [(key, title, fmt) for key, title, fmt in COLUMNS if any(row.get(key) is not None for row in rows)]
    header = [title for _, title, _ in present]
    body = [[_format(row.get(key), fmt) for key, _, fmt in present] for row in rows]
    return header, body


def _format(value: Any, fmt: str) -> str:
    if value is None:
        return "-"
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def _describe(params: dict[str, Any], stats: dict[str, Any] | None = None) -> str:
    hardness = ""
    if stats and stats.get("lid") is not None:
        hardness = f"; LID {stats['lid']:.1f}, relative contrast {stats['relative_contrast']:.2f}"
    return _what(params) + hardness


def _what(params: dict[str, Any]) -> str:
    if params.get("mode") == "synthetic":
        return (f"synthetic ({params.get('data', 'blobs')}): {params['n']:,} vectors, d={params['d']}, k={params['k']}, "
                f"{params['n_queries']} queries")
    split = params.get("split") or "whole catalog"
    return (
        f"model {params['model']!r}, {split} ({params['n_images']} images, {params['n_queries']} queries vs the rest), "
        f"k={params['k']}"
    )


def _at_target(report: dict[str, Any]) -> tuple[list[str], list[list[str]]] | None:
    """The cheapest swept setting of each system reaching the target recall (None when not computed)."""
    rows = report.get("at_target")
    if not rows:
        return None
    header = ["kind", "system", "setting", "recall@k", "p50 ms", "p99 ms", "1-thread q/s"]
    body = [[row["kind"], row["system"], _format(row["value"], "{}"), _format(row["recall"], "{:.3f}"),
             _format(row["p50_ms"], "{:.3f}"), _format(row["p99_ms"], "{:.3f}"), _format(row["qps_1t"], "{:,.0f}")]
            for row in rows]
    if any("sweep_p50_ms" in row for row in rows):  # timed again in interleaved rounds (sweeps.retime_at_target)
        header.append("sweep p50 ms")
        for cells, row in zip(body, rows):
            cells.append(_format(row.get("sweep_p50_ms"), "{:.3f}"))
    peers = [row["p50_ms"] for row in rows if row["system"] == "peer" and row["p50_ms"] is not None]
    if peers:  # each system's p50 over the fastest peer's, both at the target
        header.append("p50 / fastest peer")
        for cells, row in zip(body, rows):
            cells.append(_format(None if row["p50_ms"] is None else row["p50_ms"] / min(peers), "{:.2f}×"))
    return header, body


def _text(header: list[str], body: list[list[str]]) -> list[str]:
    widths = [max(len(cell) for cell in column) for column in zip(header, *body)]
    return ["  ".join(h.rjust(w) for h, w in zip(header, widths))] + [
        "  ".join(c.rjust(w) for c, w in zip(row, widths)) for row in body]


def text_table(report: dict[str, Any]) -> str:
    lines = [_describe(report["params"], report.get("data")), *_text(*_cells(report))]
    target = _at_target(report)
    if target:
        lines += [f"cheapest swept setting with recall@k >= {report['params'].get('target_recall')}:", *_text(*target)]
    return "\n".join(lines + _calibration_lines(report))


def _calibration_lines(report: dict[str, Any]) -> list[str]:
    """The score calibration (a labelled catalog bench): precision of the exact top k at each min_score."""
    if not report.get("calibration"):
        return []
    from indexer.bench.calibration import calibration_table

    cutoff = report.get("suggested_min_score")
    advice = (f"suggested min_score for 90 % precision: {cutoff:.2f}" if cutoff is not None
              else "no min_score reaches 90 % precision here")
    return ["", "score calibration (exact top k, same label = a hit):", calibration_table(report["calibration"]),
            advice]


def markdown_block(report: dict[str, Any]) -> str:
    header, body = _cells(report)
    params = report["params"]
    lines = [
        f"{_describe(params, report.get('data'))}; target recall {params.get('target_recall')}; "
        f"{params.get('machine', '')}; {params.get('date', '')}",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    target = _at_target(report)
    if target:
        header, body = target
        lines += ["", f"Cheapest swept setting with recall@k >= {params.get('target_recall')}:", "",
                  "| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines + _calibration_lines(report))
