"""The shard replica's one entry point, without Ray: reads answer on the calling event loop, changes and saves
go to a worker thread (so the replica's loop goes on answering while they run), unknown methods are refused."""

from __future__ import annotations

import asyncio
import threading

import pytest

from tests.indexer.api.test_shards import clustered, imported_workspace


@pytest.fixture(scope="module")
def replica(tmp_path_factory):
    from indexer.service.cluster.deployments import ShardReplica

    workspace = imported_workspace(tmp_path_factory.mktemp("replica"), n=300, shards=2)
    made = ShardReplica(str(workspace), None, "ivf", 0, 0.0)
    yield made
    made.shard.close()


def threads_of(replica, method: str, args: tuple) -> tuple[object, set[str]]:
    """(the call's answer, the names of the threads the shard's ``method`` ran in)."""
    seen: set[str] = set()
    original = getattr(replica.shard, method)

    def spy(*given):
        seen.add(threading.current_thread().name)
        return original(*given)

    setattr(replica.shard, method, spy)
    try:
        return asyncio.run(replica.call(method, args)), seen
    finally:
        delattr(replica.shard, method)


def test_a_search_answers_on_the_loop_and_a_change_in_a_worker_thread(replica):
    main = threading.current_thread().name
    query = clustered(1, seed=5)
    (scores, ids, live), where = threads_of(replica, "search", (query, 5))
    assert where == {main} and ids.shape == (1, 5) and live == replica.shard.ntotal
    gone = replica.shard.ids()[:1]
    _, where = threads_of(replica, "change", (None, gone))
    assert where and main not in where
    assert not replica.shard.holds(int(gone[0]))


def test_an_unknown_method_is_refused_by_name(replica):
    from indexer.api import InputError

    with pytest.raises(InputError, match="'drop'"):
        asyncio.run(replica.call("drop", ()))
