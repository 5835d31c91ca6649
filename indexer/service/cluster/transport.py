"""The router's :class:`indexer.api.Transport` over Ray Serve deployment handles: every shard called at once,
a search's answers awaited at most ``timeout_s`` (a shard with no live replica, or whose replica died mid-call, is
reported as the exception it gave, and the router leaves it out).

The calls go over Serve's gRPC path between deployments (``_by_reference=False``: the answer comes back in the
reply, not through Ray's object store). The engine's thread that asks waits for the answers itself: awaiting them
together on an event loop instead cost one more thread hop and was slower (docs/BENCHMARKS.md, issue 30)."""

from __future__ import annotations

import time
from typing import Any

OTHER_TIMEOUT_S = 300.0  # writes, saves and reconciling must reach their shard: they wait this long


class ServeTransport:
    def __init__(self, handles: list[Any], timeout_s: float) -> None:
        self.handles = [handle.options(_by_reference=False) for handle in handles]
        self.timeout_s = timeout_s

    def call(self, method: str, calls: dict[int, tuple]) -> dict[int, Any]:
        sent = {number: self.handles[number].call.remote(method, args) for number, args in calls.items()}
        deadline = time.monotonic() + (self.timeout_s if method == "search" else OTHER_TIMEOUT_S)
        out: dict[int, Any] = {}
        for number, response in sent.items():
            try:
                out[number] = response.result(timeout_s=max(deadline - time.monotonic(), 0.001))
            except Exception as exc:  # noqa: BLE001 - a timeout, a dead replica, or the shard's own error
                response.cancel()
                out[number] = _cause(exc)
        return out


def _cause(exc: Exception) -> Exception:
    """The shard's own error when Ray wrapped it (a RayTaskError carries it as its cause), else ``exc``."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, Exception) else exc
