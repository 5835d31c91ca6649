"""``indexer index DIR``: a folder of photos, labelled or not, to a searchable index in one command."""

from __future__ import annotations

import click

from indexer import api
from indexer.cli.common import MAX_PROBLEM_LINES, print_report, workspace_of


@click.command("index")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("--labels", default="none", show_default=True,
              help="'none', 'folders' (sub-folder names) or a CSV file (filename,label[,split]); the model uses none.")
@click.option("--weights", default="imagenet", show_default=True,
              help="The pretrained network's weights: 'imagenet' (torch cache) or a file.")
@click.option("--network", default=api.PHOTOS_NETWORK, show_default=True, help="A torchvision classifier.")
@click.option("--epochs", type=click.IntRange(min=0), default=0, show_default=True,
              help="0: the pretrained network's features, PCA-whitened; N: also train a head N epochs without labels.")
@click.option("--model", "model_name", default=api.PHOTOS_MODEL, show_default=True, help="Model name.")
@click.option("--index", "index_name", default=api.PHOTOS_INDEX, show_default=True, help="Index name.")
@click.option("--image-size", type=click.IntRange(min=16), default=128, show_default=True)
@click.option("--dim", type=click.IntRange(min=1), default=128, show_default=True, help="Embedding dims.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.pass_context
def index(ctx: click.Context, directory: str, labels: str, weights: str, network: str, epochs: int, model_name: str,
          index_name: str, image_size: int, dim: int, seed: int) -> None:
    """Catalogue DIRECTORY, make a model without labels, embed every image and build an index (--index auto).

    Then: indexer serve. Run it again after an interruption, or after adding photos: each step goes on where it
    stopped (a model made with the same settings is kept).
    """
    outcome = api.index_folder(workspace_of(ctx), directory, labels=labels, model=model_name, index=index_name,
                               network=network, weights=weights, epochs=epochs, image_size=image_size, dim=dim,
                               seed=seed)
    seconds = outcome.seconds
    print_report(outcome.ingest)
    if outcome.model is None:
        click.echo(f"model {model_name!r}: kept (made earlier with the same settings)")
    else:
        for note in outcome.model.notes:
            click.echo(note, err=True)
        trained = f"{outcome.model.epochs_run} epochs without labels" if outcome.model.epochs_run else "no training"
        click.echo(f"model {model_name!r}: {network} ({trained}), {outcome.model.train_images} images, "
                   f"{seconds['model']:.1f} s")
    report = outcome.embed
    for image_id, path, reason in report.failed[:MAX_PROBLEM_LINES]:
        click.echo(f"{path}: {reason} (image {image_id} skipped)", err=True)
    click.echo(f"embedded {report.embedded} ({report.skipped_existing} already), {len(report.failed)} failed, "
               f"{seconds['embed']:.1f} s")
    built = outcome.build
    click.echo(f"index {built.name!r} ({built.factory}): {built.ntotal} vectors, {seconds['build']:.1f} s"
               f"{'; ' + built.reason if built.reason else ''}")
    click.echo(f"done in {sum(seconds.values()):.0f} s; next: indexer serve --index {built.name}")
