"""indexer tag: user fields on catalog images (typed: text, number, date), for filters (--where)."""

from __future__ import annotations

import json

import click

from indexer import api
from indexer.cli.common import workspace_of


@click.command()
@click.argument("path", required=False, type=click.Path())
@click.option("--id", "image_id", type=int, default=None, help="The catalogued image to tag, by id (or give PATH).")
@click.option("--set", "pairs", multiple=True, metavar="NAME=VALUE",
              help="A field to set (repeatable); an empty VALUE removes it.")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None,
              help="Tag many images from a CSV: first column filename, path or id; the others are fields.")
@click.option("--root", type=click.Path(exists=True, file_okay=False), default=None,
              help="With --csv: the folder its filenames are relative to (default: the CSV's own folder).")
@click.option("--field", "field_specs", multiple=True, metavar="NAME:TYPE",
              help="Declare a field's type (text, number, date) instead of inferring it from the values.")
@click.pass_context
def tag(ctx: click.Context, path, image_id, pairs, csv_path, root, field_specs) -> None:
    """Set user fields on catalog images, then filter by them: indexer query IMG --where 'price < 20'."""
    workspace = workspace_of(ctx)
    types = api.parse_types(field_specs)
    if csv_path:
        if path or image_id is not None or pairs:
            raise click.UsageError("--csv tags the images it lists: no PATH, --id or --set with it")
        outcome = api.tag_from_csv(workspace, csv_path, types=types, root=root)
        for line in outcome.skipped:
            click.echo(f"skipped: {line}", err=True)
        declared = ", ".join(f"{name} ({type_})" for name, type_ in outcome.declared.items()) or "none new"
        click.echo(f"{outcome.tagged} images tagged, {len(outcome.skipped)} rows skipped; fields declared: {declared}")
        return
    if root is not None:
        raise click.UsageError("--root goes with --csv")
    if (path is None) == (image_id is None) or not pairs:
        raise click.UsageError("give PATH or --id N, and at least one --set NAME=VALUE (or --csv FILE)")
    values = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected NAME=VALUE; got {pair!r}", param_hint="--set")
        values[name] = value if value != "" else None
    if image_id is None:
        image_id = api.image_id_of(workspace, path)
    fields = api.set_image_fields(workspace, image_id, values, types=types, infer_strings=True)
    click.echo(json.dumps({"id": image_id, "fields": fields}, default=str))
