"""FAISS HNSW graph and search knobs against hnswlib, each at its own cheapest setting reaching recall@10 0.95.

Builds (or loads from --cache) each variant over the bench's realistic vectors (seed 0), finds per variant the
smallest efSearch / ef on an integer grid (steps of 1) whose recall@10 on the bench's 300 held-out queries reaches
the target, then times those settings interleaved: each round times every variant over the same 300 queries, one
query per call on one thread, in a new random order. ``+sel`` variants search with a deletion selector of
``--deleted`` random ids in the per-call parameters, as the segments make it (``IDSelectorNot`` over an
``IDSelectorBitmap`` of the deleted ids); ``+selbatch`` the same marks as a hashed ``IDSelectorBatch`` (the first
form), ``+sellive`` as one ``IDSelectorBitmap`` of the live ids (no ``Not``);
``+unbounded`` with ``search_bounded_queue`` off; ``+nocheck`` with ``check_relative_distance`` off.

A variant kind:M:efConstruction:i is built in input order (the locality order patched out); :c (or :b) renumbers the built graph's entries by k-means cluster (or reverse
Cuthill-McKee order). Since issue 26 ``build_index`` stores graph kinds in cluster order itself
(indexer.core.locality), so run with PYTHONPATH=<this checkout> to measure that, or with an older checkout for
the input order. hnswlib with ``sel`` searches: its 1,000 ids are marked deleted (``mark_deleted``).

Usage: python benchmarks/hnsw_knobs.py [--n 200000] [--rounds 5] [--variants hnsw:32:40,hnsw-fp16:32:40,hnswlib]
       [--searches plain,sel] [--cache DIR] [--json out.json]
(a variant is kind:M:efConstruction; ``hnswlib`` is the bench's peer, M 16, efConstruction 100.)
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from indexer.bench.peers.hnswlib_peer import EF_CONSTRUCTION, HnswlibPeer, M
from indexer.bench.runner import EXTRA_EXACT
from indexer.bench.synthetic_bench import synthetic_data
from indexer.bench.timing import faiss_threads
from indexer.core.build import build_index
from indexer.core.factory import IndexParams
from indexer.core.fidelity import ann_recall_at_k
from indexer.core.files import write_json
from indexer.core.search import exact_search, search
from indexer.core.settings import search_parameters


def reorder(index, data, how: str) -> float:
    """Renumber the graph's entries for memory locality (``c``: by k-means cluster of √n centroids; ``b``:
    reverse Cuthill-McKee over the level-0 links); the IDMap's ids follow. Returns seconds."""
    import faiss

    t0 = time.perf_counter()
    idmap = faiss.downcast_index(index)
    inner = faiss.downcast_index(idmap.index)
    n = int(inner.ntotal)
    if how == "c":
        km = faiss.Kmeans(data.base.shape[1], int(np.sqrt(n)), niter=10, seed=0, spherical=True)
        km.train(data.base[np.random.default_rng(0).choice(n, min(n, 100_000), replace=False)])
        _, assign = km.index.search(data.base, 1)
        perm = np.argsort(assign.ravel(), kind="stable").astype(np.int64)
    else:
        from scipy.sparse import csr_matrix
        from scipy.sparse.csgraph import reverse_cuthill_mckee

        offsets = faiss.vector_to_array(inner.hnsw.offsets).astype(np.int64)
        neighbors = faiss.vector_to_array(inner.hnsw.neighbors)
        width = int(inner.hnsw.nb_neighbors(0))
        begin = offsets[:-1] + int(inner.hnsw.cum_nb_neighbors(0))
        level0 = neighbors[(begin[:, None] + np.arange(width)[None, :]).ravel()].reshape(n, width)
        rows = np.repeat(np.arange(n), width)
        cols = level0.ravel()
        keep = cols >= 0
        graph = csr_matrix((np.ones(int(keep.sum()), np.int8), (rows[keep], cols[keep])), shape=(n, n))
        perm = np.asarray(reverse_cuthill_mckee(graph, symmetric_mode=False), dtype=np.int64)
    inner.permute_entries(perm)
    ids = faiss.vector_to_array(idmap.id_map)
    faiss.copy_array_to_vector(ids[perm], idmap.id_map)
    idmap.construct_rev_map()
    return time.perf_counter() - t0


def build_ours(spec: str, data, cache: str | None):
    import faiss

    kind, m, efc, *how = spec.split(":")
    if how == ["i"]:  # input order: build_index without its locality order (not cached: same key)
        from unittest import mock

        with mock.patch("indexer.core.locality.locality_order", lambda v, seed=0: np.arange(len(v))):
            t0 = time.perf_counter()
            index, _ = build_index(IndexParams(kind, hnsw_m=int(m), efConstruction=int(efc)), data.base,
                                   data.base_ids)
            return index, time.perf_counter() - t0
    if how:
        index, _ = build_ours(f"{kind}:{m}:{efc}", data, cache)
        print(f"reordered {spec} in {reorder(index, data, how[0]):.1f} s", flush=True)
        return index, None
    path = None if cache is None else os.path.join(cache, f"{len(data.base_ids)}-{kind}-{m}-{efc}.faiss")
    if path and os.path.exists(path):
        return faiss.read_index(path), None
    t0 = time.perf_counter()
    index, _ = build_index(IndexParams(kind, hnsw_m=int(m), efConstruction=int(efc)), data.base, data.base_ids)
    build_s = time.perf_counter() - t0
    if path:
        os.makedirs(cache, exist_ok=True)
        faiss.write_index(index, path)
    return index, build_s


def deletion_selectors(deleted: np.ndarray, n_ids: int) -> dict:
    """The deletion marks ``deleted`` (sorted ids below ``n_ids``) as each selector form a ``sel*`` search names."""
    import faiss

    def bitmap(ids: np.ndarray):
        mask = np.zeros(n_ids, bool)
        mask[ids] = True
        bits = np.packbits(mask, bitorder="little")
        selector = faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits))
        selector.referenced = bits  # FAISS keeps a raw pointer
        return selector

    marked = bitmap(deleted)
    negated = faiss.IDSelectorNot(marked)
    negated.referenced = marked
    batch = faiss.IDSelectorBatch(deleted)
    old = faiss.IDSelectorNot(batch)
    old.referenced = batch
    return {"sel": negated, "selbatch": old, "sellive": bitmap(np.setdiff1d(np.arange(n_ids), deleted))}


def params_for(index, value: int, search_kind: str, selectors: dict):
    """Per-call SearchParametersHNSW (an IDMap over HNSW: the IDMap reads ``sel`` from the same object)."""
    chosen = [selectors[part] for part in search_kind.split("+") if part in selectors]
    params = search_parameters(index, efSearch=value, selector=chosen[0] if chosen else None)
    if "unbounded" in search_kind:
        params.bounded_queue = False
    if "nocheck" in search_kind:
        params.check_relative_distance = False
    return params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--target-recall", type=float, default=0.95)
    parser.add_argument("--variants", default="hnsw:32:40,hnsw-fp16:32:40,hnswlib")
    parser.add_argument("--searches", default="plain", help="plain, sel, selbatch, sellive, unbounded, nocheck (+ joins: sel+unbounded)")
    parser.add_argument("--deleted", type=int, default=1000)
    parser.add_argument("--cache", default=None)
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args()

    started = time.perf_counter()
    data = synthetic_data(args.n, args.dim, 300, 200, seed=0, data="realistic")
    queries, k = data.queries, args.k
    gt_scores, gt_ids = exact_search(data.base, data.base_ids, queries, k + EXTRA_EXACT)
    rng = np.random.default_rng(1)
    deleted = np.sort(rng.choice(data.base_ids, size=args.deleted, replace=False))
    selectors = deletion_selectors(deleted, int(data.base_ids.max()) + 1)
    live = ~np.isin(gt_ids, deleted)  # ground truth over the live set, for the +sel searches
    gt_live = np.stack([row[keep][:k + 1] for row, keep in zip(gt_ids, live)])
    gs_live = np.stack([row[keep][:k + 1] for row, keep in zip(gt_scores, live)])

    systems, build_s = {}, {}
    rows = [queries[i:i + 1] for i in range(queries.shape[0])]
    for spec in args.variants.split(","):
        if spec == "hnswlib":
            peer = HnswlibPeer()
            t0 = time.perf_counter()
            peer.build(data.base_ids, data.base, None)
            build_s[spec] = time.perf_counter() - t0
            systems[(spec, "plain")] = (lambda v, p=peer: p.set_knob(v), lambda row, p=peer: p.query(row[0], k))
            if any("sel" in s for s in args.searches.split(",")):
                for i in deleted:
                    peer.index.mark_deleted(int(i))
                # marks are native; they apply to every query of this peer from here on (timed as +sel)
                systems[(spec, "plain")] = None
                systems[(spec, "sel")] = (lambda v, p=peer: p.set_knob(v), lambda row, p=peer: p.query(row[0], k))
            print(f"built {spec} (M {M}, efC {EF_CONSTRUCTION}) {build_s[spec]:.0f} s", flush=True)
            continue
        index, b = build_ours(spec, data, args.cache)
        build_s[spec] = b
        print(f"built {spec} {b if b is None else round(b)} s", flush=True)
        for search_kind in args.searches.split(","):
            current = {}

            def setup(v, index=index, search_kind=search_kind, current=current):
                current["params"] = params_for(index, v, search_kind, selectors)

            def run(row, index=index, current=current):
                return search(index, row, k, params=current["params"])[1][0]

            systems[(spec, search_kind)] = (setup, run)
    systems = {key: value for key, value in systems.items() if value is not None}

    pick, recall = {}, {}
    for key, (setup, run) in systems.items():
        truth = (gs_live, gt_live) if "sel" in key[1] else (gt_scores, gt_ids)
        for value in range(10, 400):
            setup(value)
            found = np.stack([run(row) for row in rows])
            r = float(ann_recall_at_k(found, truth[1], k, exact_scores=truth[0]))
            if r >= args.target_recall:
                pick[key], recall[key] = value, r
                break
        print(f"{key}: cheapest reaching {args.target_recall}: {pick.get(key)} ({recall.get(key)})", flush=True)

    if args.rounds < 1:
        return
    order_rng = np.random.default_rng(0)
    p50s = {key: [] for key in systems}
    keys = list(systems)
    with faiss_threads(1):
        for _ in range(args.rounds):
            for i in order_rng.permutation(len(keys)):
                key = keys[i]
                setup, run = systems[key]
                setup(pick[key])
                for row in rows[:10]:
                    run(row)
                seconds = np.empty(len(rows))
                for j, row in enumerate(rows):
                    t = time.perf_counter()
                    run(row)
                    seconds[j] = time.perf_counter() - t
                p50s[key].append(float(np.median(seconds)) * 1e3)
    ref = next((key for key in keys if key[0] == "hnswlib"), None)
    print(f"n={args.n:,}, {args.rounds} interleaved rounds of 300 queries; median over rounds of p50")
    print("| variant | search | setting | recall@10 | p50 ms | ratio to hnswlib (median of rounds) |")
    print("|---|---|---|---|---|---|")
    out = []
    for key in keys:
        ratio = np.median(np.array(p50s[key]) / np.array(p50s[ref])) if ref else float("nan")
        print(f"| {key[0]} | {key[1]} | {pick[key]} | {recall[key]:.3f} | {np.median(p50s[key]):.4f} | {ratio:.2f} |")
        out.append({"variant": key[0], "search": key[1], "setting": pick[key], "recall": recall[key],
                    "p50_ms_rounds": p50s[key], "ratio": float(ratio)})
    print(f"({time.perf_counter() - started:.0f} s in all)")
    if args.json_path:
        write_json(args.json_path, {"n": args.n, "rounds": args.rounds, "build_s": build_s, "rows": out}, indent=2)


if __name__ == "__main__":
    main()
