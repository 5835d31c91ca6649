"""Vectors in: ``indexer import`` (what ``indexer export`` writes becomes catalog rows of an external model)."""

from __future__ import annotations

import click

from indexer import api
from indexer.cli.common import workspace_of


@click.command("import")
@click.argument("source", type=click.Path(exists=True))
@click.option("--model", "model_name", default=None,
              help="External model the vectors are stored for (default: the file's or folder's name without suffix).")
@click.option("--format", "import_format", type=click.Choice(api.IMPORT_FORMATS), default=None,
              help="parquet: one file with path and vector columns (label, split optional); npy: a folder with "
                   "vectors.npy and meta.csv. Default: a folder is npy, a file Parquet.")
@click.option("--batch-rows", type=click.IntRange(min=1), default=16384, show_default=True,
              help="Rows read, checked and written at a time (one catalog transaction and one store append each).")
@click.pass_context
def import_vectors(ctx: click.Context, source: str, model_name: str | None, import_format: str | None,
                   batch_rows: int) -> None:
    """Catalogue the rows of SOURCE (as 'indexer export' writes it) with their vectors, for an external model.

    Nothing is written unless the whole file is valid; run it again to finish an interrupted import.
    """
    outcome = api.import_vectors(workspace_of(ctx), source, model_name=model_name, format=import_format,
                                 batch_rows=batch_rows)
    if outcome.skipped_existing:
        click.echo(f"resumed: {outcome.skipped_existing} already imported", err=True)
    if outcome.normalised:
        click.echo(f"note: {outcome.normalised} vectors were L2-normalised (stores hold unit vectors: inner product "
                   "is cosine)", err=True)
    click.echo(f"model {outcome.model!r}: {outcome.rows} vectors of {outcome.dim} dims imported from "
               f"{outcome.source}; next: indexer build --index ivf --model {outcome.model}")
