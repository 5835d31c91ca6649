"""The ``indexer`` command line: parses flags, calls :mod:`indexer.api`, prints.

This file holds the group and its global options, the catalog commands and the service; the commands over
models and indexes are in :mod:`indexer.cli`. Imports click, the standard library, :mod:`indexer.api` and
:mod:`indexer.cli` only (tests/test_layers.py keeps it so). ``indexer.api`` loads its parts on first use,
so ``--help`` answers at once.
"""

from __future__ import annotations

import json
import os
import sys

import click

from indexer import api
from indexer.cli.common import print_report, workspace_of
from indexer.cli.fields import tag
from indexer.cli.photos import index
from indexer.cli.searching import bench, build, dupes, query, remove
from indexer.cli.training import embed, model, train
from indexer.cli.vectors import import_vectors
from indexer.cli.watching import watch


class IndexerGroup(click.Group):
    """Turns every library error into a one-line ``Error: ...`` and exit status 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except api.LIBRARY_ERRORS as exc:
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt:
            raise click.ClickException(
                "interrupted; run the same command again to continue (ingest, embed and train resume; "
                "an interrupted build leaves the previous index in place)"
            ) from None
        except Exception as exc:
            database_error = _database_error(exc)
            if database_error is None:
                raise
            raise click.ClickException(database_error) from None


def _database_error(exc: Exception) -> str | None:
    """A one-line message for SQLAlchemy/driver errors (bad --db URL, locked or foreign database file)."""
    errors = sys.modules.get("sqlalchemy.exc")
    if errors is None or not isinstance(exc, errors.SQLAlchemyError):
        return None
    cause = getattr(exc, "orig", None) or exc
    first = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
    return f"database error: {first}"


@click.group(cls=IndexerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--workspace",
    envvar="INDEXER_HOME",
    type=click.Path(file_okay=False),
    default=None,
    help=f"Workspace folder (catalog, models, embeddings, indexes). Default ./{api.DEFAULT_WORKSPACE}; env INDEXER_HOME.",
)
@click.option("--db", default=None, envvar="INDEXER_DB", help="SQLAlchemy database URL (default: SQLite in the workspace).")
@click.version_option("0.1.0", prog_name="indexer")
@click.pass_context
def main(ctx: click.Context, workspace: str | None, db: str | None) -> None:
    """Image query system: catalog images, train embeddings, build FAISS indexes, query, benchmark."""
    if not sys.stderr.isatty():  # a log file: progress bars redraw at most every 5 s (tqdm reads this on import)
        os.environ.setdefault("TQDM_MININTERVAL", "5")
    ctx.ensure_object(dict)
    ctx.obj.update(workspace=workspace, db=db)


@main.command()
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--labels",
    default="folders",
    show_default=True,
    help=f"{' or '.join(repr(s) for s in api.LABEL_SOURCES)} (sub-folder names / no labels), or a CSV file with header filename,label[,split][,FIELD...].",
)
@click.option("--split", default=None, help="Split name given to these images (a CSV split column wins).")
@click.option("--field", "field_specs", multiple=True, metavar="NAME:TYPE",
              help="The type (text, number, date) of an extra --labels CSV column (default: inferred from its values).")
@click.pass_context
def ingest(ctx: click.Context, directory: str, labels: str, split: str | None, field_specs) -> None:
    """Catalogue every image under DIRECTORY (recursively); safe to run again. Extra --labels CSV columns become
    typed fields for filters (indexer query --where)."""
    print_report(api.ingest_directory(workspace_of(ctx), directory, labels=labels, split=split,
                                      field_types=api.parse_types(field_specs)))


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
@click.option("--classes", type=click.IntRange(1, 102), default=None,
              help="Only labels 1..N (official ids), for a small subset (8: 431 images).")
@click.pass_context
def data_flowers102(ctx: click.Context, root: str | None, classes: int | None) -> None:
    """Get Oxford Flowers-102 (or use a local copy) and catalogue it with the official labels and split."""
    print_report(api.ingest_flowers102(workspace_of(ctx), root, classes=classes))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print only JSON on stdout.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Summarise the catalog: images by split and status, labels, models, indexes."""
    summary = api.catalog_status(workspace_of(ctx))
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


@main.command("export")
@click.argument("dest", type=click.Path())
@click.option("--model", "model_name", default=None, help="Model whose vectors to export (default: the most recent).")
@click.option("--format", "export_format", type=click.Choice(api.EXPORT_FORMATS), default="parquet", show_default=True,
              help="parquet: one file with id, path, label, split and a fixed-size vector column; "
                   "npy: a folder with ids.npy, vectors.npy and meta.csv.")
@click.option("--batch-rows", type=click.IntRange(min=1), default=4096, show_default=True,
              help="Rows read and written at a time (memory stays flat).")
@click.pass_context
def export(ctx: click.Context, dest: str, model_name: str | None, export_format: str, batch_rows: int) -> None:
    """Write every embedded image's id, path, label, split and vector to DEST (for pandas, DuckDB, ...)."""
    outcome = api.export_vectors(workspace_of(ctx), dest, model_name=model_name, format=export_format,
                                 batch_rows=batch_rows)
    if outcome.not_embedded:
        click.echo(f"note: {outcome.not_embedded} catalog images are not embedded by model {outcome.model!r} and were "
                   f"left out; run 'indexer embed --model {outcome.model}' first to include them", err=True)
    click.echo(f"model {outcome.model!r}: {outcome.rows} vectors of {outcome.dim} dims written as {outcome.format} "
               f"to {', '.join(str(path) for path in outcome.files)}")


@main.command()
@click.option("--index", "index_name", default=None, help="Default index (default: the most recent); every index of its model is served.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; beyond loopback, writes need --token.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("-k", type=click.IntRange(1, 100), default=10, show_default=True, help="Default results per query.")
@click.option("--max-upload-mb", type=click.FloatRange(min=0, min_open=True), default=20.0, show_default=True,
              help="Largest accepted upload (larger: 413).")
@click.option("--token", envvar="INDEXER_TOKEN", default=None, help="Bearer token the write endpoints require (env INDEXER_TOKEN).")
@click.option("--save-every", "flush_s", type=click.FloatRange(min=0), default=5.0, show_default=True,
              help="Seconds index files may lag the writes (catalog and vectors are durable at once; 0: save each write); "
                   "a large index waits 20x its last save's duration instead when that is longer.")
@click.option("--watch", "watch", multiple=True, type=click.Path(exists=True, file_okay=False),
              help="A folder that stays indexed: new, changed, moved and deleted images are applied while serving "
                   "(repeatable; see 'indexer watch --help').")
@click.option("--watch-mode", type=click.Choice(api.WATCH_MODES), default="auto", show_default=True,
              help="events (inotify), polling (a periodic scan, for network file systems), or auto.")
@click.option("--watch-labels", type=click.Choice(api.WATCH_LABELS), default="auto", show_default=True,
              help="Labels of watched files: folders (sub-folder names), none, or auto (as the folder was ingested).")
@click.option("--ray", "on_ray", is_flag=True,
              help="Serve the index's shards ('indexer build --shards N') on Ray Serve: one deployment per shard and "
                   "a router with this same HTTP API (pip install 'indexer[scale]').")
@click.option("--address", default=None, metavar="auto|ray://HOST:PORT|HOST:PORT",
              help="With --ray: the Ray cluster (default: a local Ray started here).")
@click.option("--replicas", type=click.IntRange(min=1), default=1, show_default=True,
              help="With --ray: replicas per shard.")
@click.option("--shard-timeout", "shard_timeout_s", type=click.FloatRange(min=0, min_open=True), default=1.0,
              show_default=True, help="With --ray: seconds a query waits for a shard before answering without it "
                                      "(partial), or 503 with ?complete=true.")
@click.pass_context
def serve(ctx: click.Context, index_name, host, port, k, max_upload_mb, token, flush_s, watch, watch_mode,
          watch_labels, on_ray, address, replicas, shard_timeout_s) -> None:
    """Serve queries, uploads and deletes over HTTP, with a web page at / (FastAPI on uvicorn)."""
    try:
        from indexer.service import ServiceConfig
        from indexer.service import serve as run_service
    except ImportError as exc:
        raise click.ClickException(f"the service needs the 'serve' extra: pip install -e '.[serve]' ({exc})") from None
    if not on_ray and (address is not None or replicas != 1):
        raise click.UsageError("--address and --replicas apply with --ray")
    config = ServiceConfig(workspace=ctx.obj["workspace"], db=ctx.obj["db"], index=index_name, host=host, port=port,
                           k=k, max_upload_mb=max_upload_mb, token=token, flush_s=flush_s, watch=tuple(watch),
                           watch_mode=watch_mode, watch_labels=watch_labels)
    announce = lambda line: click.echo(line, err=line.startswith(("warning", "note")))  # noqa: E731
    if on_ray:
        from indexer.service import ClusterOptions, serve_on_ray

        serve_on_ray(config, ClusterOptions(address, replicas, shard_timeout_s), announce=announce)
        return
    run_service(config, announce=announce)


@main.command()
@click.argument("destination", type=click.Path(file_okay=False))
@click.pass_context
def backup(ctx: click.Context, destination: str) -> None:
    """Write a consistent copy of the workspace to DESTINATION (a new folder) while other commands run."""
    outcome = api.backup_workspace(workspace_of(ctx), destination)
    for note in outcome.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"backup written to {outcome.destination}: {outcome.files} files, {outcome.bytes / 1e6:.1f} MB "
               f"(catalog: {outcome.catalog})")


@main.group()
def db() -> None:
    """Catalog database maintenance."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Apply schema migrations (opening a workspace for writing does this too)."""
    click.echo(f"catalog schema at revision {api.upgrade_database(workspace_of(ctx))}")


for command in (index, train, model, embed, build, query, remove, bench, dupes, import_vectors, tag, watch):  # indexer/cli/
    main.add_command(command)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
