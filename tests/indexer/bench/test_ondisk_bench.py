"""The streaming bench: vectors generated chunk by chunk, ivf-ondisk over all of them in child processes,
in-memory kinds over the first memory_n."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.bench.ondisk_bench import run_streaming_bench
from indexer.bench.realistic import realistic_chunks
from indexer.core.errors import InputError


def test_realistic_chunks_are_seeded_normalised_and_sized():
    chunks = list(realistic_chunks(2_500, 16, seed=3, chunk=1_000))
    assert [len(c) for c in chunks] == [1_000, 1_000, 500]
    again = np.concatenate(list(realistic_chunks(2_500, 16, seed=3, chunk=1_000)))
    assert np.array_equal(np.concatenate(chunks), again)
    np.testing.assert_allclose(np.linalg.norm(again, axis=1), 1.0, atol=1e-5)


def test_streaming_bench_rows_say_what_they_indexed_and_the_build_memory():
    report = run_streaming_bench(20_000, 16, ["ivf", "ivf-ondisk"], n_queries=60, n_tune_queries=60, shards=3,
                                 memory_n=5_000, n_latency=30, progress=False)
    rows = {row["kind"]: row for row in report["results"]}
    on_disk, in_memory = rows["ivf-ondisk"], rows["ivf"]
    assert on_disk["n"] == 20_000 and in_memory["n"] == 5_000
    assert on_disk["ann_recall_at_k"] >= 0.9 and in_memory["ann_recall_at_k"] >= 0.9
    assert 0 < on_disk["build_peak_rss_mb"] < 2_000 and 0 < on_disk["query_rss_mb"] < 2_000
    assert on_disk["data_bytes"] == 20_000 * (16 * 4 + 8)
    assert report["sweeps"]["ivf-ondisk"] and report["params"]["streaming"]


def test_streaming_bench_needs_the_on_disk_kind():
    with pytest.raises(InputError, match="ivf-ondisk"):
        run_streaming_bench(1_000, 8, ["ivf"], progress=False)


def test_streaming_bench_says_each_stage_on_stderr(capfd):
    run_streaming_bench(6_000, 8, ["ivf-ondisk"], n_queries=20, n_tune_queries=20, shards=2, n_latency=10,
                        progress=True)
    err = capfd.readouterr().err  # the build runs in a child process: its lines reach the same stderr
    for line in ("ground truth: exact search of 40 queries over 6,000 vectors in 1 shard",
                 "ivf-ondisk build: assign 2/2", "ivf-ondisk build: write 2/2", "ivf-ondisk: built in"):
        assert line in err
