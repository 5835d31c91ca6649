"""The FastAPI app: configuration, errors as ``{"detail": "<one line>"}``, the write guard, the page."""

from __future__ import annotations

import secrets
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from indexer import api

STATIC_DIR = Path(__file__).resolve().parent / "static"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
MULTIPART_SLACK = 64 * 1024  # form fields and boundaries around the file


@dataclass(frozen=True)
class ServiceConfig:
    """What ``indexer serve`` was asked for. ``token``: bearer token the write endpoints then require."""

    workspace: str | None = None
    db: str | None = None
    index: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    k: int = 10
    max_upload_mb: float = 20.0
    token: str | None = None
    watch_s: float = 1.0
    flush_s: float = 5.0  # the longest an index file lags the acknowledged writes (see LiveCatalog)
    watch: tuple[str, ...] = ()  # folders that stay indexed (serve --watch DIR)
    watch_mode: str = "auto"
    watch_labels: str = "auto"

    def __post_init__(self) -> None:
        if not 1 <= self.k <= api.MAX_K:
            raise api.InputError(f"-k must be in 1..{api.MAX_K}; got {self.k}")
        if self.max_upload_mb <= 0:
            raise api.InputError(f"--max-upload-mb must be positive; got {self.max_upload_mb}")
        if self.flush_s < 0:
            raise api.InputError(f"--save-every must be 0 or more seconds; got {self.flush_s}")
        if not 0 <= self.port <= 65535:
            raise api.InputError(f"--port must be in 0..65535; got {self.port}")
        if self.watch:
            self.watch_config()  # a missing folder or a bad mode is refused before anything loads

    def watch_config(self):
        """The :class:`indexer.api.WatchConfig` of ``--watch`` (None without it)."""
        if not self.watch:
            return None
        return api.WatchConfig(folders=tuple(self.watch), mode=self.watch_mode, labels=self.watch_labels)

    @property
    def loopback(self) -> bool:
        return self.host in LOOPBACK_HOSTS

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    def open(self, notify=None):
        """The :class:`indexer.api.LiveCatalog` this configuration serves (model and indexes loaded)."""
        return api.LiveCatalog(api.Workspace.at(self.workspace, self.db), self.index, notify=notify,
                               flush_s=self.flush_s)


def create_app(config: ServiceConfig, live=None, announce=None) -> FastAPI:
    """The app serving ``live`` (opened from ``config`` at start-up when None; closed at shutdown), with a
    folder watcher over it when ``config.watch`` names folders (started after the live catalog, stopped
    before it closes); ``announce`` gets a line saying what is watched and how."""
    from indexer.service.routes import add_routes

    state: dict = {"live": live, "watcher": None}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if state["live"] is None:
            state["live"] = config.open()
        state["live"].start_watching(config.watch_s)
        if config.watch:
            watcher = api.Watcher(state["live"], config.watch_config(), notify=announce and
                                  (lambda line: announce(f"note: watch: {line}")))
            watcher.start()
            state["watcher"] = watcher
            if announce is not None:
                status = watcher.status()
                announce(f"watching {', '.join(status.folders)}: {status.mode} ({status.mode_reason})")
        try:
            yield
        finally:
            if state["watcher"] is not None:
                state["watcher"].stop()
            state["live"].close()

    app = FastAPI(title="indexer", summary="Image search over the catalog", lifespan=lifespan)

    def current():
        if state["live"] is None:
            raise HTTPException(503, "the model and indexes are still loading")
        return state["live"]

    async def writer(authorization: str | None = Header(default=None)) -> None:
        # async: it does no I/O, and FastAPI would run a plain def in the thread pool (one more hop per write)
        if config.token is None:
            if not config.loopback:
                raise HTTPException(403, "writes are refused: the service listens beyond loopback without --token")
            return
        given = (authorization or "").removeprefix("Bearer ").strip()
        if not secrets.compare_digest(given.encode(), config.token.encode()):
            raise HTTPException(403, "writes need 'Authorization: Bearer <token>' with the --token given to serve")

    _add_error_handlers(app)
    _add_upload_limit(app, config.max_upload_bytes)
    add_routes(app, config, current, writer, lambda: state["watcher"])
    _add_metrics(app, lambda: state["live"], lambda: state["watcher"])
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    return app


def one_line(text: object) -> str:
    lines = str(text).strip().splitlines()
    return lines[0] if lines else "error"


def _add_error_handlers(app: FastAPI) -> None:
    def library_error(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, api.NotFoundError):
            status = 404
        elif isinstance(exc, api.UnavailableError):
            status = 503
        elif isinstance(exc, api.InputError):
            status = 400
        else:
            status = 500
        return JSONResponse({"detail": one_line(exc)}, status_code=status)

    for error in api.LIBRARY_ERRORS:
        app.add_exception_handler(error, library_error)

    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = (exc.errors() or [{}])[0]
        where = " ".join(str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path"))
        return JSONResponse({"detail": one_line(f"{where or 'request'}: {first.get('msg', 'invalid')}")},
                            status_code=422)

    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"detail": one_line(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": one_line(f"internal error: {type(exc).__name__}: {exc}")}, status_code=500)

    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(HTTPException, http_error)
    from starlette.exceptions import HTTPException as StarletteHTTPException

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)


def _add_metrics(app: FastAPI, live, watcher) -> None:
    """``GET /metrics`` (Prometheus text) and the middleware that counts and times every request."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    from indexer.service.metrics import MetricsMiddleware, ServiceMetrics

    metrics = ServiceMetrics(live, watcher)
    app.add_middleware(MetricsMiddleware, metrics=metrics)

    @app.get("/metrics", summary="Requests, latency, segments, compaction and memory in Prometheus text format",
             response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
    def scrape() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _add_upload_limit(app: FastAPI, limit: int) -> None:
    """Refuse a body announced bigger than the limit before reading it (413); the routes check the file too.

    A plain ASGI middleware: Starlette's ``@app.middleware("http")`` costs about a millisecond a request."""
    app.add_middleware(UploadLimit, limit=limit + MULTIPART_SLACK)


class UploadLimit:
    def __init__(self, app, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            length = dict(scope["headers"]).get(b"content-length", b"")
            if length.isdigit() and int(length) > self.limit:
                response = JSONResponse({"detail": f"upload of {int(length):,} bytes exceeds --max-upload-mb "
                                                   f"({(self.limit - MULTIPART_SLACK) / 1048576:g} MiB)"},
                                        status_code=413)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
