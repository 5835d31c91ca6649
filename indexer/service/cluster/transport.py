"""The router's :class:`indexer.api.Transport` over Ray Serve deployment handles: every shard called at once,
a search's answers awaited at most ``timeout_s`` (a shard with no live replica, or whose replica died mid-call, is
reported as the exception it gave, and the router leaves it out).

The calls go over Serve's gRPC path between deployments (``_by_reference=False``: the answer comes back in the
reply, not through Ray's object store; docs/BENCHMARKS.md, issue 30). Their answers are awaited together on an
event loop of the transport's own: such an answer is fetched only when asked for, so waiting for the shards one
after the other would leave those after a slow one no time to be fetched, and they would be counted missing."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

OTHER_TIMEOUT_S = 300.0  # writes, saves and reconciling must reach their shard: they wait this long


class ServeTransport:
    def __init__(self, handles: list[Any], timeout_s: float) -> None:
        self.handles = [handle.options(_by_reference=False) for handle in handles]
        self.timeout_s = timeout_s
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, name="shard-calls", daemon=True).start()

    def call(self, method: str, calls: dict[int, tuple]) -> dict[int, Any]:
        """``{shard: args}`` -> ``{shard: result, or the exception it raised or a TimeoutError}``, from any thread
        but the transport's loop (the engine's searches run in the service's worker threads)."""
        return asyncio.run_coroutine_threadsafe(self.gather(method, calls), self.loop).result()

    async def gather(self, method: str, calls: dict[int, tuple]) -> dict[int, Any]:
        """:meth:`call`'s answers, awaited: every shard's call sent, then all awaited together; a search waits at
        most ``timeout_s``, anything else :data:`OTHER_TIMEOUT_S`; a call not answered by then is cancelled."""
        sent = {number: self.handles[number].call.remote(method, args) for number, args in calls.items()}
        waiting = {number: asyncio.ensure_future(_awaited(response)) for number, response in sent.items()}
        await asyncio.wait(waiting.values(), timeout=self.timeout_s if method == "search" else OTHER_TIMEOUT_S)
        out: dict[int, Any] = {}
        for number, task in waiting.items():
            if not task.done():
                task.cancel()
                sent[number].cancel()
                out[number] = TimeoutError(f"shard {number} did not answer {method!r} in time")
            elif task.exception() is not None:
                out[number] = _cause(task.exception())
            else:
                out[number] = task.result()
        return out


async def _awaited(response: Any) -> Any:
    """A DeploymentResponse as a coroutine (asyncio.wait takes tasks, not awaitables)."""
    return await response


def _cause(exc: BaseException) -> BaseException:
    """The shard's own error when Ray wrapped it (a RayTaskError carries it as its cause), else ``exc``."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, Exception) else exc
