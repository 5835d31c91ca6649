"""``GET /metrics``: the service's figures in Prometheus's text format (prometheus-client).

Requests, errors and latency by route (a plain ASGI middleware: it times the whole request, uploads
included); vectors per segment and pending deletion marks of each served index; the last compaction's time and
duration; the process's resident memory (prometheus-client's process collector). Each app has its own
registry, so several apps in one process (tests) do not share counters.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from indexer.api import WATCH_COUNTS

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServiceMetrics:
    """The registry of one app: request counters and latency, and a collector over the live catalog."""

    def __init__(self, live: Callable[[], Any], watcher: Callable[[], Any] = lambda: None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("indexer_requests", "Requests answered, by route, method and status.",
                                ("route", "method", "status"), registry=self.registry)
        self.errors = Counter("indexer_errors", "Requests answered with a 4xx or 5xx status, by route.",
                              ("route", "method"), registry=self.registry)
        self.latency = Histogram("indexer_request_seconds", "Time to answer a request, by route.",
                                 ("route", "method"), buckets=LATENCY_BUCKETS, registry=self.registry)
        ProcessCollector(registry=self.registry)  # process_resident_memory_bytes and friends
        self.registry.register(_LiveCollector(live))
        self.registry.register(_WatchCollector(watcher))

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method).observe(seconds)
        if status >= 400:
            self.errors.labels(route, method).inc()


class _LiveCollector:
    """Gauges read from the live catalog at each scrape (nothing when it is still loading)."""

    def __init__(self, live: Callable[[], Any], watcher: Callable[[], Any] = lambda: None) -> None:
        self.live = live

    def describe(self) -> list:
        return []  # read at scrape time only: the live catalog may still be loading when the app starts

    def collect(self):
        live = self.live()
        if live is None:
            return
        vectors = GaugeMetricFamily("indexer_index_vectors", "Vectors held, by index and segment.",
                                    labels=("index", "segment"))
        deletions = GaugeMetricFamily("indexer_index_deletions_pending",
                                      "Deletion marks not yet folded into the sealed index.", labels=("index",))
        live_vectors = GaugeMetricFamily("indexer_index_live_vectors", "Vectors a search can return.",
                                         labels=("index",))
        unsaved = GaugeMetricFamily("indexer_index_unsaved", "1 when the index has changes its file lacks.",
                                    labels=("index",))
        pending = set(live.unsaved())
        for row in live.indexes():
            segments = row["segments"]
            vectors.add_metric((row["name"], "sealed"), segments["sealed"] - segments["tail"])  # each vector once
            vectors.add_metric((row["name"], "tail"), segments["tail"])
            vectors.add_metric((row["name"], "growing"), segments["growing"])
            deletions.add_metric((row["name"],), segments["deleted"])
            live_vectors.add_metric((row["name"],), row["ntotal"])
            unsaved.add_metric((row["name"],), int(row["name"] in pending))
        yield from (vectors, deletions, live_vectors, unsaved)
        last = live.last_compaction
        yield GaugeMetricFamily("indexer_last_compaction_timestamp_seconds",
                                "When the last compaction finished (Unix time; 0: none yet).",
                                value=last["at"] if last else 0.0)
        yield GaugeMetricFamily("indexer_last_compaction_duration_seconds",
                                "How long the last compaction took (0: none yet).",
                                value=last["seconds"] if last else 0.0)
        yield GaugeMetricFamily("indexer_last_compaction_in_place",
                                "1 when the last compaction held no second copy of the sealed index (in place, or a graph's tail).",
                                value=float(bool(last and last.get("in_place"))))


class _WatchCollector:
    """The folder watcher's figures (``serve --watch``; nothing without it)."""

    def __init__(self, watcher: Callable[[], Any]) -> None:
        self.watcher = watcher

    def describe(self) -> list:
        return []

    def collect(self):
        watcher = self.watcher()
        if watcher is None:
            return
        status = watcher.status()
        info = GaugeMetricFamily("indexer_watch_info", "1 per watched folder, with the watcher's mode.",
                                 labels=("folder", "mode", "labels"))
        for folder in status.folders:
            info.add_metric((folder, status.mode, status.labels.get(folder, "")), 1)
        files = CounterMetricFamily("indexer_watch_files", "Watched files applied since start, by outcome.",
                                    labels=("outcome",))
        for outcome in WATCH_COUNTS:
            files.add_metric((outcome,), getattr(status, outcome))
        yield info
        yield files
        yield CounterMetricFamily("indexer_watch_events", "File-system events received.", value=status.events_seen)
        yield CounterMetricFamily("indexer_watch_batches", "Batches applied.", value=status.batches)
        yield CounterMetricFamily("indexer_watch_scans", "Reconciling scans of the folders.", value=status.scans)
        yield GaugeMetricFamily("indexer_watch_pending_files", "Files waiting to settle or in the next batch.",
                                value=status.pending)
        yield GaugeMetricFamily("indexer_watch_running", "1 while the watcher runs.", value=float(status.running))
        yield GaugeMetricFamily("indexer_watch_last_error", "1 when the watcher has recorded an error (see /status).",
                                value=float(status.last_error is not None))


class MetricsMiddleware:
    """Counts and times every HTTP request by its route's path template (``/images/{image_id}``)."""

    def __init__(self, app, metrics: ServiceMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record_status(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.metrics.observe(path, scope["method"], status, time.perf_counter() - started)
