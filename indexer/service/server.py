"""Running the app under uvicorn (``indexer serve``)."""

from __future__ import annotations

import sys

from indexer import api
from indexer.service.app import ServiceConfig, create_app


def serve(config: ServiceConfig, *, announce=print) -> None:
    """Open the model and indexes, then serve until Ctrl-C (uvicorn stops cleanly on SIGINT/SIGTERM).

    Library errors while opening (no index, no model, a corrupt file) propagate before anything listens."""
    import uvicorn

    if not config.loopback:
        announce(f"warning: listening on {config.host}, beyond loopback: anyone who can reach it can query; "
                 + ("writes need the bearer token" if config.token else "writes are refused (no --token)"))
    live = config.open(notify=lambda line: print(f"note: {line}", file=sys.stderr, flush=True))
    settle_serving_process()
    names = ", ".join(f"{row['name']} ({row['ntotal']} vectors)" for row in live.indexes())
    announce(f"model {live.model_name!r}, indexes: {names}")
    announce(f"open http://{_url_host(config.host)}:{config.port}/ (API docs at /docs); Ctrl-C stops")
    sys.stdout.flush()
    app = create_app(config, live, announce=lambda line: print(line, file=sys.stderr, flush=True))
    uvicorn.run(app, host=config.host, port=config.port, log_level="warning", access_log=False)


def settle_serving_process() -> None:
    """Once a serving process has loaded what it serves (``indexer serve``, and ``serve --ray``'s replicas): every
    BLAS on one thread (requests already run on several; a query's small products need no pool), and start-up's
    objects out of the collector's walks (a full collection over them paused every thread 40-50 ms at 1M)."""
    api.limit_blas_threads(1)
    api.freeze_loaded_objects()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
