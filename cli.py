"""The ``indexer`` command line: parses flags, calls :mod:`indexer.api`, prints.

Imports click, the standard library and :mod:`indexer.api` only (an import-linter contract
keeps it so). ``indexer.api`` loads its parts on first use, so ``--help`` answers at once.
"""

from __future__ import annotations

import json
import os
import sys

import click

from indexer import api

MAX_PROBLEM_LINES = 100


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


def _workspace(ctx: click.Context):
    return api.Workspace.at(ctx.obj["workspace"], ctx.obj["db"])


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
    help=f"{' or '.join(repr(s) for s in api.LABEL_SOURCES)} (sub-folder names / no labels), or a CSV file with header filename,label[,split].",
)
@click.option("--split", default=None, help="Split name given to these images (a CSV split column wins).")
@click.pass_context
def ingest(ctx: click.Context, directory: str, labels: str, split: str | None) -> None:
    """Catalogue every image under DIRECTORY (recursively); safe to run again."""
    _print_report(api.ingest_directory(_workspace(ctx), directory, labels=labels, split=split))


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
    _print_report(api.ingest_flowers102(_workspace(ctx), root, classes=classes))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print only JSON on stdout.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Summarise the catalog: images by split and status, labels, models, indexes."""
    summary = api.catalog_status(_workspace(ctx))
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


@main.command()
@click.option("--network", default=None, help="'siamese', any torchvision classifier (resnet18, resnet50, mobilenet_v2, ...) or 'sift-vlad'.")
@click.option("--epochs", type=int, default=None, help="Epochs (default: 60 with a frozen backbone, else 12).")
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
@click.option("--tta", type=click.Choice(api.TTA_MODES), default=None,
              help="Test-time augmentation stored with the model: flip averages each image with its mirror (default none).")
@click.option("--codebook", type=click.IntRange(min=2), default=None, help="sift-vlad: k-means centroids (default 64).")
@click.option("--dim", type=click.IntRange(min=1), default=None, help="sift-vlad: dims after PCA-whitening (default 128).")
@click.option("--recipe", type=click.Choice(sorted(api.RECIPES)), default=None,
              help="A tested multi-stage recipe (best: MobileNetV2, frozen then fine-tuned, flip; ~25 min on 2 cores).")
@click.pass_context
def train(ctx: click.Context, config_file: str | None, codebook, dim, recipe, **flags) -> None:
    """Train an embedding network on the catalog's labelled images (all splits but test).

    --network sift-vlad fits the classical baseline instead (dense SIFT, VLAD, PCA-whitening);
    --recipe best runs our best CPU recipe's stages in order.
    """
    if recipe is not None:
        outcomes = _train_recipe(ctx, recipe, config_file, codebook, dim, flags)
    elif flags["network"] == "sift-vlad":
        outcomes = [_fit_sift_vlad(ctx, config_file, codebook, dim, flags)]
    else:
        if codebook is not None or dim is not None:
            raise click.UsageError("--codebook and --dim apply to --network sift-vlad")
        config, seed_paths = api.train_config(config_file, **flags)
        outcomes = [api.train(_workspace(ctx), config, seed_paths)]
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
    return api.train_recipe(_workspace(ctx), recipe, flags["name"], **overrides)


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
    return api.train_sift_vlad(_workspace(ctx), **options)


@main.group()
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
    row = api.derive_model(_workspace(ctx), source, name, tta=tta)
    click.echo(f"model {row.name!r}: {source!r} with tta {tta}, {row.dim} dims; "
               f"next: indexer embed --model {row.name}")


@main.command()
@click.option("--model", "model_name", default=None, help="Model name (default: the most recent).")
@click.option("--batch-size", type=click.IntRange(min=1), default=128, show_default=True)
@click.option("--engine", type=click.Choice(api.EMBED_ENGINES), default="local", show_default=True,
              help="local: torch in this process; onnx: the ONNX export in this process (faster on a CPU); "
                   "ray: a Ray Data job (pip install \"indexer[scale]\").")
@click.option("--address", default=None, help="Ray cluster: auto or ray://HOST:PORT (default: start a local Ray).")
@click.option("--actors", type=click.IntRange(min=1), default=None,
              help="Ray model actors (default: one per GPU, else one per CPU of the cluster).")
@click.pass_context
def embed(ctx: click.Context, model_name: str | None, batch_size: int, engine: str, address: str | None,
          actors: int | None) -> None:
    """Embed every catalog image the model has not embedded yet (resumable)."""
    workspace = _workspace(ctx)
    name = model_name or api.default_model_name(workspace)
    report = api.embed(workspace, name, batch_size=batch_size, engine=engine, address=address, actors=actors)
    for image_id, path, reason in report.failed[:MAX_PROBLEM_LINES]:
        click.echo(f"{path}: {reason} (image {image_id} skipped)", err=True)
    click.echo(
        f"model {name!r}: {report.embedded} embedded, {report.skipped_existing} already embedded, "
        f"{len(report.failed)} failed ({report.images_per_s:.0f} images/s)"
    )


def _rerank_options(modes: tuple[str, ...], what: str):
    """--rerank MODE, --rerank-n N, --rerank-alpha A (None: the mode's measured default)."""
    def decorate(command):
        command = click.option("--rerank-alpha", type=click.FloatRange(min=0), default=None,
                               help="Re-ranking weight exponent (default: the measured one).")(command)
        command = click.option("--rerank-n", type=click.IntRange(min=1), default=None,
                               help="Neighbours a vector is averaged with (default: the measured number).")(command)
        return click.option("--rerank", type=click.Choice(modes), default="none", show_default=True,
                            help=what)(command)
    return decorate


def _rerank(rerank: str, rerank_n: int | None, rerank_alpha: float | None):
    return api.Rerank(mode=rerank, n=rerank_n, alpha=rerank_alpha)


@main.command()
@click.option("--index", "kind", type=click.Choice(api.BUILD_CHOICES), default=None,
              help=f"Index kind (default {api.DEFAULT_KIND}; 'raw' with --factory; 'auto' picks one for the data).")
@click.option("--model", "model_name", default=None, help="Model whose embeddings to index (default: the most recent).")
@click.option("--name", default=None, help="Index name (default: the kind). An existing index of that name is replaced atomically.")
@click.option("--nlist", type=int, default=None, help="IVF lists (default about 4*sqrt(N), at most N/39).")
@click.option("--nprobe", type=int, default=None, help="IVF lists searched (default: tuned to --target-recall).")
@click.option("--efSearch", "efSearch", type=int, default=None, help="HNSW efSearch (default: tuned to --target-recall).")
@click.option("--pca-dim", type=int, default=api.DEFAULT_PCA_DIM, show_default=True, help="Output dimensions of PCA kinds.")
@click.option("--factory", default=None, help="Raw FAISS factory string (with --index raw), e.g. 'OPQ16,IVF256,PQ16'.")
@click.option("--target-recall", type=float, default=None, help=f"Recall@10 vs exact search to tune nprobe/efSearch to (default {api.DEFAULT_TARGET_RECALL}).")
@click.option("--max-memory-mb", type=float, default=None, help="With --index auto: memory budget for the index (MB).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--gpu/--no-gpu", "use_gpu", default=None, help="Train and fill the index on the GPU (default: when FAISS's GPU build and a GPU are present).")
@click.option("--update", "update_name", default=None, metavar="NAME", help="Add newly ingested images to index NAME without retraining.")
@click.option("--on-disk", is_flag=True, help="IVF kinds: keep the inverted lists in a file beside the index, mapped at query time.")
@click.option("--shards", type=click.IntRange(min=1), default=None, help="With --on-disk: read the vectors in this many shards (one in memory at a time).")
@_rerank_options(("none", "dba"), "dba: store every vector averaged with its nearest neighbours (database-side augmentation).")
@click.pass_context
def build(ctx: click.Context, kind: str | None, update_name: str | None, rerank, rerank_n, rerank_alpha,
          **options) -> None:
    """Embed what is missing and build (or update) a FAISS index over the catalog."""
    workspace = _workspace(ctx)
    options["rerank"] = _rerank(rerank, rerank_n, rerank_alpha)
    if update_name is not None:
        outcome = api.update_index(workspace, update_name)
        click.echo(f"index {outcome.name!r}: {outcome.ntotal} vectors ({outcome.embedded} newly embedded)")
        return
    if options["factory"] and kind is None:
        kind = "raw"
    outcome = api.build_index(workspace, kind or api.DEFAULT_KIND, **options)
    tuned = f", recall@10 {outcome.tuned_recall:.3f}" if outcome.tuned_recall is not None else ""
    params = ", ".join(f"{key} {value}" for key, value in outcome.search_params.items())
    click.echo(
        f"index {outcome.name!r} ({outcome.factory}, model {outcome.model!r}): {outcome.ntotal} vectors of "
        f"{outcome.dim} dims, built in {outcome.build_s:.2f} s{'; ' + params if params else ''}{tuned}"
    )
    if outcome.reason:
        click.echo(f"{'why' if kind == 'auto' else 'note'}: {outcome.reason}")
    click.echo(f"file: {outcome.path}")


@main.command()
@click.argument("images", nargs=-1, type=click.Path())
@click.option("--id", "ids", type=int, multiple=True, help="Query with a catalogued image by its id (repeatable).")
@click.option("--index", "index_name", default=None, help="Index name (default: the most recent).")
@click.option("-k", type=click.IntRange(min=1), default=10, show_default=True, help="Results per query.")
@click.option("--nprobe", type=int, default=None, help="IVF lists to search (default: the tuned value).")
@click.option("--json", "as_json", is_flag=True, help="Print only JSON on stdout.")
@click.option("--grid", type=click.Path(dir_okay=False), default=None, help="Write a picture of the query and its results.")
@_rerank_options(("none", "qe", "dba"), "qe: average the query with its top neighbours and search again; "
                 "dba: the index must have been built with --rerank dba.")
@click.pass_context
def query(ctx: click.Context, images: tuple[str, ...], ids: tuple[int, ...], index_name, k, nprobe, as_json,
          grid, rerank, rerank_n, rerank_alpha) -> None:
    """Find the catalog images most like each IMAGE (and each catalogued image --id N)."""
    if not images and not ids:
        raise click.UsageError("give IMAGE files or --id")
    outcome = api.query(_workspace(ctx), list(images), ids=list(ids), index_name=index_name, k=k, nprobe=nprobe,
                        rerank=_rerank(rerank, rerank_n, rerank_alpha))
    for line in outcome.failures:
        click.echo(f"Error: {line}", err=True)
    for line in outcome.warnings:
        click.echo(f"warning: {line}", err=True)
    pictures = []
    if grid:
        for number, answer in enumerate(outcome.answers, 1):
            target = grid if number == 1 else _numbered(grid, number)
            pictures.append(str(api.draw_answer(answer, target)))
    if as_json:
        payload = [
            {"query": a.query, "results": [
                {"rank": h.rank, "id": h.id, "path": h.path, "label": h.label, "score": round(h.score, 6)}
                for h in a.results]}
            for a in outcome.answers
        ]
        click.echo(json.dumps(payload, indent=2))
    else:
        for answer in outcome.answers:
            label = f" (label {answer.label})" if answer.label else ""
            click.echo(f"{answer.query}{label} — index {outcome.index!r}, model {outcome.model!r}")
            for hit in answer.results:
                click.echo(f"  {hit.rank:>3}  {hit.score:7.4f}  {hit.path}  {hit.label or '-'}")
    for picture in pictures:
        click.echo(f"grid written to {picture}", err=as_json)
    if outcome.failures:
        ctx.exit(1)


def _numbered(path: str, number: int) -> str:
    from pathlib import Path

    p = Path(path)
    return str(p.with_name(f"{p.stem}-{number}{p.suffix}"))


@main.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--id", "ids", type=int, multiple=True, help="Catalog image id (repeatable).")
@click.pass_context
def remove(ctx: click.Context, paths: tuple[str, ...], ids: tuple[int, ...]) -> None:
    """Remove images from the catalog and from every index and embedding store that holds them."""
    if not paths and not ids:
        raise click.UsageError("give image PATHs or --id")
    outcome = api.remove_images(_workspace(ctx), list(paths), list(ids))
    for missing in outcome.not_found:
        click.echo(f"{missing}: not in the catalog", err=True)
    per_index = ", ".join(f"{name}: {count}" for name, count in outcome.per_index.items()) or "no index"
    click.echo(f"{outcome.removed_images} images removed from the catalog ({per_index})")


@main.command()
@click.option("--indexes", default=",".join(api.DEFAULT_BENCH_KINDS), show_default=True,
              help=f"Comma-separated index kinds from {', '.join(api.BENCH_CHOICES)}.")
@click.option("--peers", default="", metavar="LIST",
              help=f"Comma-separated peer systems measured beside ours, from {', '.join(api.PEERS)} (pip install 'indexer[peers]').")
@click.option("--model", "model_name", default=None, help="Model (default: the most recent).")
@click.option("--split", default="test", show_default=True, help="Split queried against itself; 'all' for the whole catalog.")
@click.option("-k", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--queries", "n_queries", type=int, default=None, help="Query a seeded sample of this many images (default: all).")
@click.option("--target-recall", type=float, default=api.DEFAULT_TARGET_RECALL, show_default=True)
@click.option("--synthetic", type=int, default=None, metavar="N", help="Benchmark N seeded synthetic vectors (see --data) instead of the catalog.")
@click.option("--dim", type=int, default=128, show_default=True, help="Dimensions of --synthetic vectors.")
@click.option("--data", "data_kind", type=click.Choice(["realistic", "blobs"]), default="realistic", show_default=True,
              help="--synthetic vectors shaped like trained embeddings, or isotropic clusters.")
@click.option("--export-vectors", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="With --synthetic: write base.npy, queries.npy and gt.npy (exact top 100) to DIR.")
@click.option("--shards", type=click.IntRange(min=1), default=10, show_default=True,
              help="With --synthetic and ivf-ondisk: build it in this many shards (one in memory at a time).")
@click.option("--memory-n", type=click.IntRange(min=1), default=None,
              help="With --synthetic and ivf-ondisk: in-memory kinds index the first N vectors (default 1,000,000).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Write the full figures as JSON.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None, help="Write the recall-latency curves (PNG).")
@click.option("--markdown", "markdown_path", type=click.Path(dir_okay=False), default=None, help="Write a Markdown block for the docs.")
@_rerank_options(("none", "qe", "dba"), "Re-ranking the label metrics are measured with (catalog mode).")
@click.pass_context
def bench(ctx: click.Context, indexes: str, peers: str, model_name, split, k, n_queries, target_recall, synthetic,
          dim, data_kind, export_vectors, shards, memory_n, seed, json_path, plot_path, markdown_path, rerank,
          rerank_n, rerank_alpha) -> None:
    """Compare index kinds (and peer systems): label quality, fidelity to exact search, latency, throughput, size."""
    api.prepare_output_paths(json_path, plot_path, markdown_path)  # fail before the run, not after it
    kinds = tuple(kind.strip() for kind in indexes.split(",") if kind.strip())
    peer_names = tuple(name.strip() for name in peers.split(",") if name.strip())
    if export_vectors and synthetic is None:
        raise click.UsageError("--export-vectors needs --synthetic N")
    if synthetic is not None and rerank != "none":
        raise click.UsageError("--rerank applies to catalog benches, not --synthetic")
    if synthetic is not None:
        report = api.bench_synthetic(synthetic, dim, kinds=kinds, k=k, n_queries=n_queries,
                                     target_recall=target_recall, seed=seed, data=data_kind, peers=peer_names,
                                     export_vectors=export_vectors, shards=shards, memory_n=memory_n)
    else:
        report = api.bench_catalog(_workspace(ctx), kinds=kinds, model_name=model_name,
                                   split=None if split == "all" else split, k=k, n_queries=n_queries,
                                   target_recall=target_recall, seed=seed, peers=peer_names,
                                   rerank=_rerank(rerank, rerank_n, rerank_alpha))
    for note in report["notes"]:
        click.echo(f"note: {note}", err=True)
    click.echo(api.report_table(report))
    for line in api.write_outputs(report, json_path=json_path, plot_path=plot_path, markdown_path=markdown_path):
        click.echo(line)


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
    outcome = api.export_vectors(_workspace(ctx), dest, model_name=model_name, format=export_format,
                                 batch_rows=batch_rows)
    if outcome.not_embedded:
        click.echo(f"note: {outcome.not_embedded} catalog images are not embedded by model {outcome.model!r} and were "
                   f"left out; run 'indexer embed --model {outcome.model}' first to include them", err=True)
    click.echo(f"model {outcome.model!r}: {outcome.rows} vectors of {outcome.dim} dims written as {outcome.format} "
               f"to {', '.join(str(path) for path in outcome.files)}")


@main.command()
@click.option("--model", "model_name", default=None, help="Model whose embeddings to compare (default: the most recent).")
@click.option("--threshold", type=click.FloatRange(min=0, max=1, min_open=True), default=None,
              help="Cosine similarity at or above which two images are near copies "
                   f"(default {api.DEFAULT_DUPLICATE_THRESHOLD}, chosen on Flowers; 1.0: exact copies only).")
@click.option("--json", "as_json", is_flag=True, help="Print only JSON on stdout.")
@click.option("--grid", type=click.Path(dir_okay=False), default=None, help="Write a picture, one row per group.")
@click.pass_context
def dupes(ctx: click.Context, model_name, threshold, as_json, grid) -> None:
    """Find groups of near-identical images (range search over the embeddings)."""
    if grid:
        api.prepare_output_paths(grid)
    threshold = api.DEFAULT_DUPLICATE_THRESHOLD if threshold is None else threshold
    report = api.find_duplicates(_workspace(ctx), model_name=model_name, threshold=threshold, progress=not as_json)
    if grid:
        click.echo(f"grid written to {api.draw_duplicates(report, grid)}", err=as_json)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    crossing = sum(group.crosses_split for group in report.groups)
    click.echo(f"model {report.model!r}, threshold {report.threshold}: {len(report.groups)} groups among "
               f"{report.n_images} images ({report.exact_pairs} byte-identical pairs; {crossing} groups cross "
               f"the test split)")
    for group in report.groups:
        marks = [mark for mark, on in (("exact copies", group.exact_copies), ("crosses split", group.crosses_split)) if on]
        click.echo(f"min similarity {group.min_similarity:.4f}{'  [' + ', '.join(marks) + ']' if marks else ''}")
        for row in group.images:
            click.echo(f"  {row.id:>6}  {row.split or '-':<5}  {row.label or '-':<20}  {row.path}")


@main.command()
@click.option("--index", "index_name", default=None, help="Default index (default: the most recent); every index of its model is served.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; beyond loopback, writes need --token.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("-k", type=click.IntRange(1, 100), default=10, show_default=True, help="Default results per query.")
@click.option("--max-upload-mb", type=click.FloatRange(min=0, min_open=True), default=20.0, show_default=True,
              help="Largest accepted upload (larger: 413).")
@click.option("--token", envvar="INDEXER_TOKEN", default=None, help="Bearer token the write endpoints require (env INDEXER_TOKEN).")
@click.option("--save-every", "flush_s", type=click.FloatRange(min=0), default=5.0, show_default=True,
              help="Seconds index files may lag the writes (catalog and vectors are durable at once; 0: save each write).")
@click.pass_context
def serve(ctx: click.Context, index_name, host, port, k, max_upload_mb, token, flush_s) -> None:
    """Serve queries, uploads and deletes over HTTP, with a web page at / (FastAPI on uvicorn)."""
    try:
        from indexer.service import ServiceConfig
        from indexer.service import serve as run_service
    except ImportError as exc:
        raise click.ClickException(f"the service needs the 'serve' extra: pip install -e '.[serve]' ({exc})") from None
    config = ServiceConfig(workspace=ctx.obj["workspace"], db=ctx.obj["db"], index=index_name, host=host, port=port,
                           k=k, max_upload_mb=max_upload_mb, token=token, flush_s=flush_s)
    run_service(config, announce=lambda line: click.echo(line, err=line.startswith("warning")))


@main.command()
@click.argument("destination", type=click.Path(file_okay=False))
@click.pass_context
def backup(ctx: click.Context, destination: str) -> None:
    """Write a consistent copy of the workspace to DESTINATION (a new folder) while other commands run."""
    outcome = api.backup_workspace(_workspace(ctx), destination)
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
    click.echo(f"catalog schema at revision {api.upgrade_database(_workspace(ctx))}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
