"""What every command shares: the workspace the global options name, and how problems are printed."""

from __future__ import annotations

import click

from indexer import api

MAX_PROBLEM_LINES = 100  # at most this many per-file problem lines; then a count of the rest


def workspace_of(ctx: click.Context):
    """The workspace of ``indexer --workspace DIR --db URL`` (or their environment variables)."""
    return api.Workspace.at(ctx.obj["workspace"], ctx.obj["db"])


def print_report(report) -> None:
    """An ingest report: its problems on stderr (at most MAX_PROBLEM_LINES), then its summary line."""
    for line in report.problems[:MAX_PROBLEM_LINES]:
        click.echo(line, err=True)
    if len(report.problems) > MAX_PROBLEM_LINES:
        click.echo(f"... and {len(report.problems) - MAX_PROBLEM_LINES} more problems", err=True)
    click.echo(report.summary_line())
