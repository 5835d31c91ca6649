"""The commands over indexes: ``build``, ``query``, ``remove``, ``bench``, ``dupes``."""

from __future__ import annotations

import json

import click

from indexer import api
from indexer.cli.common import workspace_of


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


@click.command()
@click.option("--index", "kind", type=click.Choice(api.BUILD_CHOICES), default=None,
              help=f"Index kind (default {api.DEFAULT_KIND}; 'raw' with --factory; 'auto' picks one for the data).")
@click.option("--model", "model_name", default=None, help="Model whose embeddings to index (default: the most recent).")
@click.option("--name", default=None, help="Index name (default: the kind). An existing index of that name is replaced atomically.")
@click.option("--nlist", type=int, default=None, help="IVF lists (default 4*sqrt(N) up to about 1M vectors, then N/256; at most N/39).")
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
@click.option("--shards", type=click.IntRange(min=1), default=None, help="IVF kinds: also lay the index out as this many shard files by id range with a manifest (served by 'indexer serve --ray'); with --on-disk: read the vectors in this many shards instead.")
@_rerank_options(("none", "dba"), "dba: store every vector averaged with its nearest neighbours (database-side augmentation).")
@click.pass_context
def build(ctx: click.Context, kind: str | None, update_name: str | None, rerank, rerank_n, rerank_alpha,
          **options) -> None:
    """Embed what is missing and build (or update) a FAISS index over the catalog."""
    workspace = workspace_of(ctx)
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


@click.command()
@click.argument("images", nargs=-1, type=click.Path())
@click.option("--id", "ids", type=int, multiple=True, help="Query with a catalogued image by its id (repeatable).")
@click.option("--index", "index_name", default=None, help="Index name (default: the most recent).")
@click.option("-k", type=click.IntRange(min=1), default=10, show_default=True, help="Results per query.")
@click.option("--nprobe", type=int, default=None, help="IVF lists to search (default: the tuned value).")
@click.option("--json", "as_json", is_flag=True, help="Print only JSON on stdout.")
@click.option("--grid", type=click.Path(dir_okay=False), default=None, help="Write a picture of the query and its results.")
@click.option("--where", default=None, metavar="EXPR",
              help='Only images matching a filter, e.g. \'label = "rose" and width >= 500\' (see docs/API.md).')
@click.option("--min-score", type=float, default=None, help="Drop results scoring below this (fewer than k may come back).")
@click.option("--offset", type=click.IntRange(0, 10_000), default=0, show_default=True,
              help="Skip this many of the best results (a page's start: --offset 10 -k 10 is page 2).")
@click.option("--weights", default=None, metavar="W1,W2,...",
              help="Combine the IMAGEs (then the --ids) into ONE query, their vectors weighted so (negative: unlike).")
@click.option("--not", "unlike", multiple=True, type=click.Path(), help="An image the results should NOT look like "
              "(weight -1; repeatable); the query images are combined into one query.")
@click.option("--not-id", "unlike_ids", type=int, multiple=True, help="The same for a catalogued image by id.")
@_rerank_options(("none", "qe", "dba"), "qe: average the query with its top neighbours and search again; "
                 "dba: the index must have been built with --rerank dba.")
@click.pass_context
def query(ctx: click.Context, images: tuple[str, ...], ids: tuple[int, ...], index_name, k, nprobe, as_json,
          grid, where, min_score, offset, weights, unlike, unlike_ids, rerank, rerank_n, rerank_alpha) -> None:
    """Find the catalog images most like each IMAGE (and each catalogued image --id N)."""
    if not images and not ids:
        raise click.UsageError("give IMAGE files or --id")
    outcome = api.query(workspace_of(ctx), list(images), ids=list(ids), index_name=index_name, k=k, nprobe=nprobe,
                        rerank=_rerank(rerank, rerank_n, rerank_alpha), where=where, min_score=min_score,
                        offset=offset, weights=_floats(weights, "--weights"), unlike=list(unlike),
                        unlike_ids=list(unlike_ids))
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
        click.echo(json.dumps([answer.to_dict() for answer in outcome.answers], indent=2))
    else:
        for answer in outcome.answers:
            label = f" (label {answer.label})" if answer.label else ""
            plan = f"; filter: {answer.plan['selected']} images, {answer.plan['kind']} search" if answer.plan else ""
            click.echo(f"{answer.query}{label} — index {outcome.index!r}, model {outcome.model!r}{plan}")
            for hit in answer.results:
                click.echo(f"  {hit.rank:>3}  {hit.score:7.4f}  {hit.path}  {hit.label or '-'}")
    for picture in pictures:
        click.echo(f"grid written to {picture}", err=as_json)
    if outcome.failures:
        ctx.exit(1)


def _floats(text: str | None, option: str) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise click.BadParameter(f"expected numbers separated by commas; got {text!r}", param_hint=option) from None


def _numbered(path: str, number: int) -> str:
    from pathlib import Path

    p = Path(path)
    return str(p.with_name(f"{p.stem}-{number}{p.suffix}"))


@click.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--id", "ids", type=int, multiple=True, help="Catalog image id (repeatable).")
@click.pass_context
def remove(ctx: click.Context, paths: tuple[str, ...], ids: tuple[int, ...]) -> None:
    """Remove images from the catalog and from every index and embedding store that holds them."""
    if not paths and not ids:
        raise click.UsageError("give image PATHs or --id")
    outcome = api.remove_images(workspace_of(ctx), list(paths), list(ids))
    for missing in outcome.not_found:
        click.echo(f"{missing}: not in the catalog", err=True)
    per_index = ", ".join(f"{name}: {count}" for name, count in outcome.per_index.items()) or "no index"
    click.echo(f"{outcome.removed_images} images removed from the catalog ({per_index})")


@click.command()
@click.option("--indexes", default=",".join(api.DEFAULT_BENCH_KINDS), show_default=True,
              help=f"Comma-separated index kinds from {', '.join(api.BENCH_CHOICES)}.")
@click.option("--peers", default="", metavar="LIST",
              help=f"Comma-separated peer systems measured beside ours, from {', '.join(api.PEERS)} (pip install 'indexer[peers]'); "
                   "with --filters, through each one's own filter.")
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
@click.option("--filters", default=None, metavar="FRACTIONS",
              help="With --synthetic: filtered search within selections of these fractions (e.g. 0.001,0.01,0.1,0.5) "
                   "of two generated fields: plan, recall@10 within the selection, p50 against the unfiltered p50.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Write the full figures as JSON.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None, help="Write the recall-latency curves (PNG).")
@click.option("--markdown", "markdown_path", type=click.Path(dir_okay=False), default=None, help="Write a Markdown block for the docs.")
@_rerank_options(("none", "qe", "dba"), "Re-ranking the label metrics are measured with (catalog mode).")
@click.pass_context
def bench(ctx: click.Context, indexes: str, peers: str, model_name, split, k, n_queries, target_recall, synthetic,
          dim, data_kind, export_vectors, shards, memory_n, filters, seed, json_path, plot_path, markdown_path,
          rerank, rerank_n, rerank_alpha) -> None:
    """Compare index kinds (and peer systems): label quality, fidelity to exact search, latency, throughput, size."""
    api.prepare_output_paths(json_path, plot_path, markdown_path)  # fail before the run, not after it
    kinds = tuple(kind.strip() for kind in indexes.split(",") if kind.strip())
    peer_names = tuple(name.strip() for name in peers.split(",") if name.strip())
    if export_vectors and synthetic is None:
        raise click.UsageError("--export-vectors needs --synthetic N")
    if synthetic is not None and rerank != "none":
        raise click.UsageError("--rerank applies to catalog benches, not --synthetic")
    if filters is not None:
        if synthetic is None or plot_path:
            raise click.UsageError("--filters needs --synthetic N, and takes no --plot")
        fractions = tuple(_floats(filters, "--filters"))
        report = api.bench_filtered(synthetic, dim, kinds=kinds, fractions=fractions, k=k, n_queries=n_queries,
                                    target_recall=target_recall, seed=seed, data=data_kind, json_path=json_path,
                                    markdown_path=markdown_path, log=lambda line: click.echo(line, err=True),
                                    peers=peer_names)
        for note in report["notes"]:
            click.echo(f"note: {note}", err=True)
        click.echo(report["table"])
        for path in (json_path, markdown_path):
            if path:
                click.echo(f"written to {path}")
        return
    if synthetic is not None:
        report = api.bench_synthetic(synthetic, dim, kinds=kinds, k=k, n_queries=n_queries,
                                     target_recall=target_recall, seed=seed, data=data_kind, peers=peer_names,
                                     export_vectors=export_vectors, shards=shards, memory_n=memory_n)
    else:
        report = api.bench_catalog(workspace_of(ctx), kinds=kinds, model_name=model_name,
                                   split=None if split == "all" else split, k=k, n_queries=n_queries,
                                   target_recall=target_recall, seed=seed, peers=peer_names,
                                   rerank=_rerank(rerank, rerank_n, rerank_alpha))
    for note in report["notes"]:
        click.echo(f"note: {note}", err=True)
    click.echo(api.report_table(report))
    for line in api.write_outputs(report, json_path=json_path, plot_path=plot_path, markdown_path=markdown_path):
        click.echo(line)


@click.command()
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
    report = api.find_duplicates(workspace_of(ctx), model_name=model_name, threshold=threshold, progress=not as_json)
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
