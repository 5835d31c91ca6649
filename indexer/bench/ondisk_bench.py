"""The synthetic bench past memory: ``indexer bench --synthetic N --indexes ivf,ivf-ondisk --shards S``.

The base vectors are generated chunk by chunk (:func:`indexer.bench.realistic.realistic_chunks`) into a raw
float32 file, never all in memory; ground truth is exact search over that file one shard at a time.
``ivf-ondisk`` is built over all N rows in a child process, so the peak resident memory reported is the
build's own, and queried in a second child, which reports its resident memory after its queries. Every other
kind is built in memory over the first ``memory_n`` rows (default min(N, 1,000,000)) with their own exact
ground truth, by the usual bench routine: on-disk at N beside in-memory at 1M, in one run.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from indexer.core.errors import InputError
from indexer.core.kinds import ON_DISK

DEFAULT_MEMORY_N = 1_000_000
CHUNK = 250_000  # rows generated and written at a time
EXTRA_EXACT = 10


def run_streaming_bench(n: int, d: int, kinds: list[str], *, k: int = 10, n_queries: int = 300,
                        n_tune_queries: int = 1000, target_recall: float = 0.95, seed: int = 0, shards: int = 10,
                        memory_n: int | None = None, n_latency: int = 200, progress: bool = True,
                        workdir: str | None = None) -> dict[str, Any]:
    """Rows like :func:`indexer.bench.runner.run_bench`'s, plus for ``ivf-ondisk``: ``build_peak_rss_mb`` (the
    build process's peak resident memory through training, assignment and writing), ``build_peak_anon_mb``
    (its largest anonymous memory, sampled) and ``build_peak_rss_with_tuning_mb`` (the peak once tuning has
    searched the mapped lists: file pages in the page cache count as resident while mapped);
    ``query_rss_mb`` (the query process's resident memory after its queries at the tuned setting),
    ``query_rss_after_sweep_mb`` and ``query_peak_rss_mb`` (after the sweep up to nprobe 512, which maps most
    lists); and ``data_bytes``. Each row's ``n`` says what it indexed. Both kinds are tuned on the same
    ``n_tune_queries`` held-out queries: 1,000, because at 10M a 200-query tuning set puts nprobe at 58 where 40
    reaches the target on the measured queries (query difficulty varies between clusters)."""
    from indexer.bench import realistic
    from indexer.bench.runner import BenchData, bench_kind, bench_params
    from indexer.core.ondisk import exact_search_in_shards
    from indexer.core.search import exact_search

    if ON_DISK not in kinds:
        raise InputError(f"the streaming bench measures {ON_DISK!r}; add it to --indexes")
    memory_n = min(n, DEFAULT_MEMORY_N if memory_n is None else memory_n)
    folder = Path(tempfile.mkdtemp(prefix="indexer-ondisk-bench-", dir=workdir))
    report: dict[str, Any] = {"results": [], "sweeps": {}, "notes": [], "stages_s": {}}
    try:
        started = time.perf_counter()
        base_path = folder / "base.f32"
        _write_base(base_path, n, d, seed, progress)
        drawn, _ = realistic.make_realistic_queries(n_queries + n_tune_queries, d, realistic.default_n_clusters(n), seed)
        queries, tune_queries = drawn[:n_queries], drawn[n_queries:]
        report["stages_s"]["generate"] = time.perf_counter() - started
        read = file_rows(base_path, d)

        started = time.perf_counter()
        gt_shards = max(1, -(-n // CHUNK))
        _say(progress, f"ground truth: exact search of {n_queries + n_tune_queries:,} queries over {n:,} vectors "
                       f"in {gt_shards} shard{'s' if gt_shards != 1 else ''}")
        exact = exact_search_in_shards(read, n, queries, k + EXTRA_EXACT, shards=gt_shards)
        tune_exact = exact_search_in_shards(read, n, tune_queries, k + EXTRA_EXACT, shards=gt_shards)
        report["stages_s"]["ground_truth"] = time.perf_counter() - started

        for kind in kinds:
            if kind != ON_DISK:
                continue
            row, curve = _on_disk_row(folder, base_path, n, d, k, seed, shards, target_recall, queries,
                                      tune_queries, exact, tune_exact, n_latency, progress)
            report["results"].append(row)
            report["sweeps"][ON_DISK] = curve
        in_memory = [kind for kind in kinds if kind != ON_DISK]
        if in_memory:
            ids, base = read(0, memory_n)
            data = BenchData(base=base, base_ids=ids, queries=queries, tune_queries=tune_queries, deep_labels=False)
            exact_m = exact_search(base, ids, queries, k + EXTRA_EXACT)
            for kind in in_memory:
                row, curve = bench_kind(bench_params(kind, d, seed, shards), data, exact_m, k, target_recall,
                                        n_latency=n_latency, n_tune_queries=n_tune_queries, overhead_repeats=1)
                report["results"].append(row)
                if curve:
                    report["sweeps"][kind] = curve
            del base, data
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    report["params"] = {"mode": "synthetic", "data": "realistic", "streaming": True, "n": n, "d": d,
                        "kinds": list(kinds), "k": k, "n_queries": n_queries, "n_tune_queries": n_tune_queries,
                        "target_recall": target_recall, "seed": seed, "shards": shards, "memory_n": memory_n,
                        "n_latency": n_latency}
    from indexer.bench.sweeps import at_target

    report["at_target"] = at_target(report["results"], report["sweeps"], target_recall)
    report["notes"].append(f"{ON_DISK} indexes all {n:,} vectors; the in-memory kinds index the first "
                           f"{memory_n:,} (each row's n), each against its own exact ground truth")
    return report


def file_rows(path: Path, d: int):
    """``read_rows(start, stop)`` over a raw float32 file of d-dim rows; ids are row numbers. Reads with
    plain file reads (no memory map), so only the rows asked for are resident."""

    def read(start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        with open(path, "rb") as handle:
            handle.seek(start * d * 4)
            x = np.fromfile(handle, dtype=np.float32, count=(stop - start) * d).reshape(stop - start, d)
        return np.arange(start, stop, dtype=np.int64), x

    return read


def _write_base(path: Path, n: int, d: int, seed: int, progress: bool) -> None:
    from indexer.bench import realistic

    bar = _bar(n, "generate", progress)
    with open(path, "wb") as handle:
        for chunk in realistic.realistic_chunks(n, d, seed=seed, chunk=CHUNK):
            handle.write(chunk.tobytes())
            if bar is not None:
                bar.update(len(chunk))
    if bar is not None:
        bar.close()


def _say(enabled: bool, line: str) -> None:
    if enabled:
        print(line, file=sys.stderr, flush=True)


class _StageLines:
    """``progress(stage, done, total)`` for :func:`indexer.core.ondisk.build_on_disk`: one stderr line when a
    stage ends, and at most one every ``every_s`` seconds within it."""

    def __init__(self, prefix: str, every_s: float = 5.0) -> None:
        self.prefix, self.every_s = prefix, every_s
        self.started = self.last = time.perf_counter()

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = time.perf_counter()
        if done == total or now - self.last >= self.every_s:
            self.last = now
            print(f"{self.prefix}: {stage} {done}/{total} ({now - self.started:.0f} s)", file=sys.stderr, flush=True)


def _bar(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="vec", unit_scale=True, mininterval=5.0)


def _on_disk_row(folder, base_path, n, d, k, seed, shards, target_recall, queries, tune_queries, exact,
                 tune_exact, n_latency, progress) -> tuple[dict[str, Any], list[dict[str, float]]]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    arrays = {"queries": queries, "tune_queries": tune_queries, "gt_scores": exact[0], "gt_ids": exact[1],
              "tune_scores": tune_exact[0], "tune_ids": tune_exact[1]}
    for name, array in arrays.items():
        np.save(folder / f"{name}.npy", array)
    index_path = folder / "index" / "ivf-ondisk.faiss"
    index_path.parent.mkdir()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:  # a fresh process: its own peak
        built = pool.submit(build_child, str(base_path), n, d, shards, seed, str(index_path), str(folder), k,
                            target_recall, progress).result()
    _say(progress, f"{ON_DISK}: built in {built['build_s']:.0f} s; querying it in a new process")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        measured = pool.submit(query_child, str(index_path), str(folder), k, n_latency).result()
    row = {"kind": ON_DISK, "system": "indexer", "factory": built["factory"], "n": n, "d": d,
           "nlist": built["nlist"], "nprobe": built["nprobe"], "efSearch": None,
           "tune_reached_target": built["reached"], "tuned_recall": built["tuned_recall"], "rerank": "none",
           "build_s": built["build_s"], "train_s": built["train_s"], "add_s": built["add_s"],
           "train_n": built["train_n"], "shards": shards, "build_peak_rss_mb": built["peak_rss_mb"],
           "build_peak_anon_mb": built["peak_anon_mb"], "build_peak_rss_with_tuning_mb": built["peak_rss_with_tuning_mb"],
           "index_bytes": built["index_bytes"], "data_bytes": built["data_bytes"],
           "bytes_per_vector": built["index_bytes"] / n, **measured["row"]}
    return row, measured["sweep"]


def build_child(base_path: str, n: int, d: int, shards: int, seed: int, index_path: str, folder: str, k: int,
                target_recall: float, progress: bool = False) -> dict[str, Any]:
    """(In a child process.) Build, tune and save the on-disk index; report timings and the peak RSS.
    ``progress``: a line on stderr as each stage ends and at most every 5 s within one."""
    from indexer.core.factory import IndexParams
    from indexer.core.index_io import save_index
    from indexer.core.ondisk import build_on_disk
    from indexer.core.ondisk_lists import data_bytes
    from indexer.core.tuning import tune_search_param

    params = IndexParams("ivf", seed=seed)
    with _MemorySampler() as memory:
        _say(progress, f"{ON_DISK}: training the coarse quantizer, then {shards} shards assigned and written")
        index, info = build_on_disk(params, file_rows(Path(base_path), d), n, d, index_path, shards=shards,
                                    progress=_StageLines(f"{ON_DISK} build") if progress else None)
        build_peak = _peak_rss_mb()
        _say(progress, f"{ON_DISK}: tuning nprobe to recall@{k} {target_recall}")
        load = lambda name: np.load(Path(folder) / f"{name}.npy")  # noqa: E731
        tuned = tune_search_param(index, None, k=k, target_recall=target_recall, seed=seed,
                                  exact=(load("tune_queries"), None, (load("tune_scores"), load("tune_ids"))))
        sidecar = save_index(index, index_path, {"kind": "ivf", "params": params.to_dict(), "build": info.to_dict()})
    return {"factory": info.factory, "nlist": info.nlist, "nprobe": tuned.value, "reached": tuned.reached,
            "tuned_recall": tuned.recall, "build_s": info.build_s, "train_s": info.train_s, "add_s": info.add_s,
            "train_n": info.train_n, "peak_rss_mb": build_peak, "peak_rss_with_tuning_mb": _peak_rss_mb(),
            "peak_anon_mb": memory.peak_anon_mb, "data_bytes": data_bytes(index),
            "index_bytes": sidecar["index_bytes"] + data_bytes(index)}


def query_child(index_path: str, folder: str, k: int, n_latency: int) -> dict[str, Any]:
    """(In a child process.) Load the on-disk index (lists mapped), answer the queries, measure them."""
    from indexer.bench.runner import faiss_direct_overhead
    from indexer.bench.sweeps import default_sweep_values, sweep
    from indexer.bench.timing import latency_ms, throughput_qps
    from indexer.core.fidelity import ann_recall_at_k
    from indexer.core.index_io import load_index
    from indexer.core.search import search

    index, _ = load_index(index_path)
    load = lambda name: np.load(Path(folder) / f"{name}.npy")  # noqa: E731
    queries, gt_scores, gt_ids = load("queries"), load("gt_scores"), load("gt_ids")
    _, found = search(index, queries, k)
    lat = latency_ms(index, queries[:n_latency], k)
    row = {"ann_recall_at_k": ann_recall_at_k(found, gt_ids, k, exact_scores=gt_scores),
           "search_ms_p50": lat["p50"], "search_ms_p95": lat["p95"], "search_ms_p99": lat["p99"],
           "qps": throughput_qps(index, queries, k), "qps_1t": 1e3 / lat["mean"],
           "our_overhead_pct": faiss_direct_overhead(index, queries[:200], k, n_repeats=1)["overhead_pct"],
           "query_rss_mb": _rss_mb(), "query_anon_mb": _status_mb("RssAnon")}  # after its queries, at its setting
    curve = sweep(index, queries, (gt_scores, gt_ids), k, default_sweep_values(index, k), n_latency=100)
    row.update(query_rss_after_sweep_mb=_rss_mb(), query_peak_rss_mb=_peak_rss_mb())
    return {"row": row, "sweep": curve}


def _peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _rss_mb() -> float:
    return _status_mb("VmRSS")


def _status_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status (VmRSS, RssAnon, RssFile), in MB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


class _MemorySampler:
    """The largest anonymous resident memory (RssAnon: the process's own data, not mapped file pages the
    kernel can drop) seen every 50 ms while the block runs."""

    def __init__(self) -> None:
        import threading

        self.peak_anon_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak_anon_mb = max(self.peak_anon_mb, _status_mb("RssAnon"))

    def __enter__(self) -> _MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_anon_mb = max(self.peak_anon_mb, _status_mb("RssAnon"))
