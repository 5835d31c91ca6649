"""The commands that make models and vectors: ``train``, ``model derive``, ``embed``."""

from __future__ import annotations

import click

from indexer import api
from indexer.cli.common import MAX_PROBLEM_LINES, workspace_of


@click.command()
@click.option("--network", default=None, help="'siamese', any torchvision classifier (resnet18, resnet50, mobilenet_v2, ...) or 'sift-vlad'.")
@click.option("--epochs", type=int, default=None,
              help="Epochs (default: 30 without labels, 60 with a frozen backbone, else 12); 0: no training, the "
                   "pretrained network's pooled features PCA-whitened to --dim, fitted on the catalog's images.")
@click.option("--image-size", type=int, default=None, help="Square input size in pixels (default 64 siamese, 128 otherwise).")
@click.option("--weights", default=None, help="'imagenet' (torchvision registry / torch cache) or a checkpoint file.")
@click.option("--freeze-backbone/--no-freeze-backbone", default=None, help="Train only the projection head.")
@click.option("--loss", type=click.Choice(api.LOSSES), default=None)
@click.option("--miner", type=click.Choice(api.MINERS), default=None)
@click.option("--batch-classes", type=int, default=None, help="P: classes per batch.")
@click.option("--batch-per-class", type=int, default=None, help="K: images per class in a batch.")
@click.option("--lr", type=float, default=None, help="Learning rate of the head (and of the Siamese net).")
@click.option("--seed", type=int, default=None)
@click.option("--name", default=None, help="Model name in the catalog (default: the network name).")
@click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False), default=None,
              help="YAML config (ours, or the seed project's); flags override it.")
@click.option("--device", default=None, help="auto (default), cpu, cuda or cuda:N.")
@click.option("--labels", type=click.Choice(api.LABEL_MODES), default=None,
              help="auto (default): the catalog's labels when there are two labels of two images, else none; "
                   "none: learn from the images alone (a head on the frozen pretrained network); catalog: labels only.")
@click.option("--tta", type=click.Choice(api.TTA_MODES), default=None,
              help="Test-time augmentation stored with the model: flip averages each image with its mirror (default none).")
@click.option("--codebook", type=click.IntRange(min=2), default=None, help="sift-vlad: k-means centroids (default 64).")
@click.option("--dim", type=click.IntRange(min=1), default=None, help="Embedding dims (default 128).")
@click.option("--recipe", type=click.Choice(sorted(api.RECIPES)), default=None,
              help="A multi-stage recipe (best: MobileNetV2 at 160 px, frozen then fine-tuned, flip; ~30 min "
                   "on 2 cores; best-v4: the previous best; best-gpu: for a GPU, unmeasured; see "
                   "docs/BENCHMARKS.md).")
@click.pass_context
def train(ctx: click.Context, config_file: str | None, codebook, dim, recipe, **flags) -> None:
    """Train an embedding network on the catalog's images (all splits but test): on the labelled ones, or
    without labels (--labels none, the default when the catalog has none).

    --epochs 0 registers a pretrained network without training (PCA-whitened features);
    --network sift-vlad fits the classical baseline instead (dense SIFT, VLAD, PCA-whitening);
    --recipe best runs our best CPU recipe's stages in order.
    """
    if recipe is not None:
        outcomes = _train_recipe(ctx, recipe, config_file, codebook, dim, flags)
    elif flags["network"] == "sift-vlad":
        outcomes = [_fit_sift_vlad(ctx, config_file, codebook, dim, flags)]
    else:
        if codebook is not None:
            raise click.UsageError("--codebook applies to --network sift-vlad")
        config, seed_paths = api.train_config(config_file, embedding_dim=dim, **flags)
        outcomes = [api.train(workspace_of(ctx), config, seed_paths)]
    for outcome in outcomes:
        _print_trained(outcome)


def _train_recipe(ctx: click.Context, recipe: str, config_file, codebook, dim, flags):
    accepted = ["name", *(key for key in api.RECIPE_OVERRIDES if key in flags)]
    given = {**flags, "config": config_file, "codebook": codebook, "dim": dim}
    refused = sorted(_flag(key) for key, value in given.items() if value is not None and key not in accepted)
    if refused:
        raise click.UsageError(f"--recipe sets the network and its training; it takes only "
                               f"{', '.join(map(_flag, accepted))}, not {', '.join(refused)}")
    overrides = {key: value for key, value in flags.items() if key in api.RECIPE_OVERRIDES}
    return api.train_recipe(workspace_of(ctx), recipe, flags["name"], **overrides)


def _flag(key: str) -> str:
    return f"--{key.replace('_', '-')}"


def _print_trained(outcome) -> None:
    for note in outcome.notes:
        click.echo(note, err=True)
    metrics = ", ".join(f"{key} {value:.4f}" for key, value in outcome.metrics.items()
                        if isinstance(value, float) and value == value)  # NaN: nothing was validated
    if outcome.val_source == api.KEPT_STAGE:
        click.echo(f"model {outcome.name!r}: kept from an earlier run of the recipe; validation: {metrics}")
        return
    if outcome.epochs_run == 0:  # fitted, not trained (sift-vlad): no epochs and nothing validated
        click.echo(f"model {outcome.name!r}: fitted in {outcome.seconds:.1f} s on {outcome.train_images} images "
                   f"({outcome.val_source})")
    elif not metrics:  # nothing validated (trained without labels)
        click.echo(f"model {outcome.name!r}: {outcome.epochs_run} epochs in {outcome.seconds:.1f} s on "
                   f"{outcome.train_images} images; validation: {outcome.val_source}")
    else:
        click.echo(
            f"model {outcome.name!r}: {outcome.epochs_run} epochs in {outcome.seconds:.1f} s on {outcome.train_images} "
            f"images; validation on {outcome.val_images} images ({outcome.val_source}): {metrics}"
        )
    click.echo(f"checkpoint: {outcome.checkpoint}")


def _fit_sift_vlad(ctx: click.Context, config_file, codebook, dim, flags):
    used = sorted(f"--{key.replace('_', '-')}" for key, value in flags.items()
                  if value is not None and key not in ("network", "name", "seed", "image_size"))
    if config_file or used:
        raise click.UsageError(f"--network sift-vlad takes --codebook, --dim, --image-size, --seed and --name; "
                               f"not {', '.join(used or ['--config'])}")
    options = {key: value for key, value in (("codebook", codebook), ("dim", dim), ("image_size", flags["image_size"]),
                                             ("seed", flags["seed"]), ("name", flags["name"])) if value is not None}
    return api.train_sift_vlad(workspace_of(ctx), **options)


@click.group()
def model() -> None:
    """Trained models: variants of one without retraining."""


@model.command("derive")
@click.argument("source")
@click.option("--name", required=True, help="Name of the new model in the catalog.")
@click.option("--tta", type=click.Choice(api.TTA_MODES), required=True,
              help="Test-time augmentation: flip averages each image with its mirror (catalog and queries alike).")
@click.pass_context
def model_derive(ctx: click.Context, source: str, name: str, tta: str) -> None:
    """Register SOURCE's weights as a new model with other test-time augmentation (no training).

    Then embed it and build its indexes: indexer embed --model NAME; indexer build --model NAME.
    """
    row = api.derive_model(workspace_of(ctx), source, name, tta=tta)
    click.echo(f"model {row.name!r}: {source!r} with tta {tta}, {row.dim} dims; "
               f"next: indexer embed --model {row.name}")


@click.command()
@click.option("--model", "model_name", default=None, help="Model name (default: the most recent).")
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--engine", type=click.Choice(api.EMBED_ENGINES), default="local", show_default=True,
              help="local: torch in this process; onnx: the ONNX export in this process (faster on a CPU); "
                   "ray: a Ray Data job (pip install \"indexer[scale]\").")
@click.option("--address", default=None, help="Ray cluster: auto or ray://HOST:PORT (default: start a local Ray).")
@click.option("--actors", type=click.IntRange(min=1), default=None,
              help="Ray model actors (default: one per GPU, else one per CPU of the cluster).")
@click.option("--decode", type=click.Choice(api.EMBED_DECODES), default="cpu", show_default=True,
              help="Where JPEGs are decoded (--engine local): cpu, in the loader's workers; device, on the "
                   "model's device (nvJPEG on a GPU), the workers only reading the files.")
@click.pass_context
def embed(ctx: click.Context, model_name: str | None, batch_size: int, engine: str, address: str | None,
          actors: int | None, decode: str) -> None:
    """Embed every catalog image the model has not embedded yet (resumable)."""
    workspace = workspace_of(ctx)
    name = model_name or api.default_model_name(workspace)
    report = api.embed(workspace, name, batch_size=batch_size, engine=engine, address=address, actors=actors,
                       decode=decode)
    for image_id, path, reason in report.failed[:MAX_PROBLEM_LINES]:
        click.echo(f"{path}: {reason} (image {image_id} skipped)", err=True)
    for note in report.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(
        f"model {name!r}: {report.embedded} embedded, {report.skipped_existing} already embedded, "
        f"{len(report.failed)} failed ({report.images_per_s:.0f} images/s"
        + (f"; {report.steady_images_per_s:.0f} after a start-up of {report.startup_seconds:.1f} s)"
           if report.steady_images_per_s else ")")
    )
