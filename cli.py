"""The ``indexer`` command line: parses flags, calls :mod:`indexer.api`, prints.

Nothing heavy is imported at start-up; each command imports what it needs.
"""

from __future__ import annotations

import json
import sys

import click

from indexer.errors import LIBRARY_ERRORS

MAX_PROBLEM_LINES = 100


class IndexerGroup(click.Group):
    """Turns every library error into a one-line ``Error: ...`` and exit status 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except LIBRARY_ERRORS as exc:
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt:
            raise click.ClickException("interrupted; work done so far is saved") from None


def _workspace(ctx: click.Context):
    from indexer.workspace import Workspace

    return Workspace.at(ctx.obj["workspace"], ctx.obj["db"])


@click.group(cls=IndexerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--workspace",
    envvar="INDEXER_HOME",
    type=click.Path(file_okay=False),
    default=None,
    help="Workspace folder (catalog, models, embeddings, indexes). Default ./indexer-data; env INDEXER_HOME.",
)
@click.option("--db", default=None, envvar="INDEXER_DB", help="SQLAlchemy database URL (default: SQLite in the workspace).")
@click.version_option("0.1.0", prog_name="indexer")
@click.pass_context
def main(ctx: click.Context, workspace: str | None, db: str | None) -> None:
    """Image query system: catalog images, train embeddings, build FAISS indexes, query, benchmark."""
    ctx.ensure_object(dict)
    ctx.obj.update(workspace=workspace, db=db)


def _print_report(report) -> None:
    for line in report.problems[:MAX_PROBLEM_LINES]:
        click.echo(line, err=True)
    if len(report.problems) > MAX_PROBLEM_LINES:
        click.echo(f"... and {len(report.problems) - MAX_PROBLEM_LINES} more problems", err=True)
    click.echo(report.summary_line())


@main.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--labels",
    default="folders",
    show_default=True,
    help="'folders' (sub-folder names), 'none', or a CSV file with header filename,label[,split].",
)
@click.option("--split", default=None, help="Split name given to these images (a CSV split column wins).")
@click.pass_context
def ingest(ctx: click.Context, directory: str, labels: str, split: str | None) -> None:
    """Catalogue every image under DIRECTORY (recursively); safe to run again."""
    from indexer.api import ingest_directory

    _print_report(ingest_directory(_workspace(ctx), directory, labels=labels, split=split))


@main.group()
def data() -> None:
    """Obtain public data sets."""


@data.command("flowers102")
@click.option(
    "--root",
    type=click.Path(exists=True, file_okay=False),
    default=None,
    help="Local copy: DIR/flowers-102/jpg or DIR/jpg with imagelabels.mat and setid.mat. Used in place.",
)
@click.pass_context
def data_flowers102(ctx: click.Context, root: str | None) -> None:
    """Get Oxford Flowers-102 (or use a local copy) and catalogue it with the official labels and split."""
    from indexer.api import ingest_flowers102

    _print_report(ingest_flowers102(_workspace(ctx), root))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print only JSON on stdout.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Summarise the catalog: images by split and status, labels, models, indexes."""
    from indexer.api import catalog_status

    summary = catalog_status(_workspace(ctx))
    if as_json:
        click.echo(json.dumps(summary, indent=2, default=str))
        return
    click.echo(f"workspace: {summary['workspace']}")
    click.echo(f"database:  {summary['database']}")
    click.echo(
        f"images:    {summary['images_total']} total, {summary['images_ok']} ok, "
        f"{summary['images_error']} errors, {summary['duplicates']} duplicates"
    )
    for split, count in sorted(summary["splits"].items()):
        click.echo(f"  {split:<10} {count:>7} ok")
    click.echo(f"labels:    {summary['labels']}")
    click.echo(f"models:    {', '.join(summary['models']) or '-'}")
    click.echo(f"indexes:   {', '.join(summary['indexes']) or '-'}")
    for problem in summary.get("inconsistencies", []):
        click.echo(f"warning: {problem}", err=True)


@main.group()
def db() -> None:
    """Catalog database maintenance."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Apply schema migrations (opening a workspace for writing does this too)."""
    from indexer.api import upgrade_database

    click.echo(f"catalog schema at revision {upgrade_database(_workspace(ctx))}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
