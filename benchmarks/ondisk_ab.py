"""The on-disk IVF at N against the in-memory IVF at 1M, timed interleaved in one process.

    python benchmarks/ondisk_ab.py [--n 10000000] [--rounds 9] [--json ondisk_ab.json]

`indexer bench --indexes ivf,ivf-ondisk` times the two in separate processes minutes apart, and on this shared
machine a p50 moves by up to 30 % between such phases (benchmarks/coarse_ab.py timed identical searches at
0.89 and 1.26 ms). Here both indexes are built as the bench builds them (kind ``ivf``, the same nlist rule,
tuned to recall@10 0.95 on the same 1,000 held-out queries), the on-disk one is saved and loaded back mapped
read-only, and then each round times 300 single queries on one thread for every system, in a shuffled order;
the ratio is taken per round. The on-disk index is also timed with its graph quantizer's candidate list at
nprobe + 16, beside the default of nprobe (:func:`indexer.core.coarse.quantizer_ef`), to check that choice.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np

from indexer.bench import realistic
from indexer.bench.ondisk_bench import file_rows
from indexer.core.build import build_index
from indexer.core.factory import IndexParams
from indexer.core.fidelity import ann_recall_at_k
from indexer.core.files import write_json
from indexer.core.index_io import load_index, save_index
from indexer.core.ondisk import build_on_disk, exact_search_in_shards
from indexer.core.search import exact_search, search
from indexer.core.tuning import tune_search_param

K = 10


def _params_margin(nprobe: int):
    """Search parameters whose graph quantizer's candidate list is nprobe + 16 (and the objects to keep)."""
    params = faiss.SearchParametersIVF(nprobe=nprobe)
    coarse = faiss.SearchParametersHNSW(efSearch=max(32, nprobe + 16))
    params.quantizer_params = coarse
    return params, coarse


def _times(index, queries, nprobe: int, margin: bool) -> np.ndarray:
    seconds = np.empty(len(queries))
    keep = _params_margin(nprobe) if margin else None
    for i, q in enumerate(queries):
        started = time.perf_counter()
        if keep is None:
            search(index, q[None], K, nprobe=nprobe)
        else:
            index.search(q[None], K, params=keep[0])
        seconds[i] = time.perf_counter() - started
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000_000)
    parser.add_argument("--memory-n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--shards", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    n, d = args.n, args.dim
    folder = Path(tempfile.mkdtemp(prefix="indexer-ondisk-ab-"))
    try:
        t0 = time.perf_counter()
        base_path = folder / "base.f32"
        with open(base_path, "wb") as handle:
            for chunk in realistic.realistic_chunks(n, d, seed=args.seed, chunk=250_000):
                handle.write(chunk.tobytes())
        drawn, _ = realistic.make_realistic_queries(1300, d, realistic.default_n_clusters(n), args.seed)
        queries, tune_queries = drawn[:300], drawn[300:]
        read = file_rows(base_path, d)
        shards = max(1, n // 250_000)
        gt = exact_search_in_shards(read, n, queries, K + 10, shards=shards)
        tune_gt = exact_search_in_shards(read, n, tune_queries, K + 10, shards=shards)
        print(f"data and ground truth: {time.perf_counter() - t0:.0f} s", flush=True)

        params = IndexParams("ivf", seed=args.seed)
        t0 = time.perf_counter()
        built, info = build_on_disk(params, read, n, d, folder / "disk.faiss", shards=args.shards)
        tuned_disk = tune_search_param(built, None, k=K, target_recall=0.95, seed=args.seed,
                                       exact=(tune_queries, None, tune_gt))
        save_index(built, folder / "disk.faiss", {"kind": "ivf", "params": params.to_dict()})
        del built
        disk, _ = load_index(folder / "disk.faiss")
        build_s = time.perf_counter() - t0
        print(f"on-disk {info.factory}: built and tuned in {build_s:.0f} s (k-means {info.train_s:.0f} s on "
              f"{info.train_n:,} points), tuned nprobe {tuned_disk.value}",
              flush=True)

        ids_m, base_m = read(0, args.memory_n)
        memory, info_m = build_index(params, base_m, ids_m)
        gt_m = exact_search(base_m, ids_m, queries, K + 10)
        tune_gt_m = exact_search(base_m, ids_m, tune_queries, K + 10)
        tuned_mem = tune_search_param(memory, None, k=K, target_recall=0.95, seed=args.seed,
                                      exact=(tune_queries, None, tune_gt_m))
        print(f"in-memory {info_m.factory}: tuned nprobe {tuned_mem.value}", flush=True)

        systems = {
            "ivf-ondisk": (disk, tuned_disk.value, False, gt),
            "ivf-ondisk (quantizer ef nprobe + 16)": (disk, tuned_disk.value, True, gt),
            "ivf (in memory, 1M)": (memory, tuned_mem.value, False, gt_m),
        }
        recall = {}
        for name, (index, nprobe, margin, truth) in systems.items():
            if margin:
                _, found = index.search(queries, K, params=_params_margin(nprobe)[0])
            else:
                _, found = search(index, queries, K, nprobe=nprobe)
            recall[name] = ann_recall_at_k(found, truth[1], K, exact_scores=truth[0])
        faiss.omp_set_num_threads(1)
        for index, nprobe, margin, _ in systems.values():  # warm-up: map the lists the queries touch
            _times(index, queries, nprobe, margin)
        rng = np.random.default_rng(args.seed)
        p50 = {name: [] for name in systems}
        for _ in range(args.rounds):
            for name in rng.permutation(list(systems)):
                index, nprobe, margin, _ = systems[name]
                p50[name].append(float(np.median(_times(index, queries, nprobe, margin)) * 1e3))
        memory_name = "ivf (in memory, 1M)"
        report = {"n": n, "memory_n": args.memory_n, "rounds": args.rounds, "build_and_tune_s": build_s,
                  "train_s": info.train_s, "train_n": info.train_n, "systems": {}}
        for name, (_, nprobe, _, _) in systems.items():
            ratios = np.array(p50[name]) / np.array(p50[memory_name])
            report["systems"][name] = {"nprobe": int(nprobe), "recall": recall[name], "p50_ms_rounds": p50[name],
                                       "p50_ms": float(np.median(p50[name])),
                                       "ratio_to_memory_median": float(np.median(ratios)),
                                       "ratio_min": float(ratios.min()), "ratio_max": float(ratios.max())}
            print(f"{name:>38}  nprobe {nprobe:4d}  recall@10 {recall[name]:.3f}  p50 {np.median(p50[name]):.3f} ms"
                  f"  ratio to in-memory per round: median {np.median(ratios):.2f} ({ratios.min():.2f}-"
                  f"{ratios.max():.2f})", flush=True)
        if args.json:
            write_json(args.json, report, indent=1)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
