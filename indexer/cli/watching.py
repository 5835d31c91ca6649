"""``indexer watch DIR...``: folders that stay indexed, without the HTTP service."""

from __future__ import annotations

import time

import click

from indexer import api
from indexer.cli.common import workspace_of

REPORT_EVERY_S = 1.0


@click.command()
@click.argument("folders", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--index", "index_name", default=None,
              help="Index whose model embeds the new images (default: the most recent); every index of that model is kept up to date.")
@click.option("--mode", type=click.Choice(api.WATCH_MODES), default="auto", show_default=True,
              help="events (inotify), polling (a periodic scan, for network file systems), or auto (polling on NFS/SMB/sshfs).")
@click.option("--labels", type=click.Choice(api.WATCH_LABELS), default="auto", show_default=True,
              help="Labels of new files: folders (sub-folder names), none, or auto (as the folder was ingested).")
@click.option("--save-every", "flush_s", type=click.FloatRange(min=0), default=5.0, show_default=True,
              help="Seconds the index files may lag the catalog and the embedding store (which are durable at once).")
@click.option("--once", is_flag=True, help="Reconcile the folders with the catalog and the indexes, then exit.")
@click.pass_context
def watch(ctx: click.Context, folders: tuple[str, ...], index_name: str | None, mode: str, labels: str,
          flush_s: float, once: bool) -> None:
    """Keep FOLDERS indexed until Ctrl-C: new and changed images are ingested, embedded and indexed, deleted
    ones removed, moved ones renamed without embedding them again.

    It writes the catalog, the embedding store and the index files (every --save-every seconds and at exit),
    as 'indexer serve --watch' does; a service over the same workspace reloads the index files within about a
    second of each save. A start (and --once) first reconciles what changed while nothing watched.
    """
    config = api.WatchConfig(folders=folders, mode=mode, labels=labels)
    live = api.LiveCatalog(workspace_of(ctx), index_name, flush_s=flush_s,
                           notify=lambda line: click.echo(f"note: {line}", err=True))
    watcher = api.Watcher(live, config, notify=lambda line: click.echo(f"note: {line}", err=True))
    try:
        watcher.start()
        status = watcher.status()
        click.echo(f"watching {', '.join(status.folders)}: {status.mode} ({status.mode_reason}); labels "
                   + ", ".join(f"{mode}" for mode in status.labels.values())
                   + ("" if once else "; Ctrl-C stops"), err=True)
        if once:
            watcher.wait_idle(timeout=float("inf"))
        else:
            _report_until_interrupted(watcher)
    except KeyboardInterrupt:
        pass
    finally:
        watcher.stop()
        live.close()
    click.echo(_summary(watcher.status()))


def _report_until_interrupted(watcher) -> None:
    last = None
    while True:
        time.sleep(REPORT_EVERY_S)
        line = _summary(watcher.status())
        if line != last:
            click.echo(line)
            last = line


def _summary(status) -> str:
    counts = ", ".join(f"{getattr(status, name)} {name}" for name in api.WATCH_COUNTS)
    return f"{counts} ({status.events_seen} events, {status.batches} batches, {status.pending} pending)"
