"""``--index auto``: pick an index kind and its parameters for N vectors of d dims.

Sizing follows FAISS's own guidance ("Guidelines to choose an index"): exact search for small
N; IVF with nlist between 4·√N and 16·√N up to about a million; HNSW graphs or IVF with an
HNSW coarse quantizer past that; scalar (SQ8) or product (PQ) codes when the vectors do not fit
the memory budget. :func:`plan` lists the candidates that fit, best guess first, each with why;
:func:`build_auto` builds them, tunes each to the target recall on held-out queries, times it,
and keeps the fastest one that reaches the target (measured, not assumed).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from indexer.core.arrays import as_ids, as_vectors
from indexer.core.build import BuildInfo, build_index
from indexer.core.errors import InputError
from indexer.core.factory import IndexParams
from indexer.core.kinds import DEFAULT_HNSW_M, DEFAULT_TARGET_RECALL, EF_SEARCH, KINDS, graph_defaults
from indexer.core.tuning import TuneResult, held_out_rows, tune_held_out, tune_search_param

FLAT_MAX_N = 10_000  # exact search over 10k x 128 takes well under a millisecond: nothing to gain
GRAPH_MIN_N = 2_000_000  # past a few million, IVF's coarse quantizer itself becomes an HNSW graph
MEASURED_CANDIDATES = 2  # candidates built and timed; the rest are listed in the reasons only
TIMING_QUERIES = 200
ID_BYTES = 8


@dataclass(frozen=True)
class Candidate:
    """One kind worth building: its params, its estimated memory (bytes) and why it is a candidate."""

    params: IndexParams
    bytes_estimate: int
    reason: str


@dataclass(frozen=True)
class AutoChoice:
    """What ``build_auto`` chose and why; ``measured`` holds one entry per candidate built."""

    params: IndexParams
    reason: str
    measured: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.params.kind, "params": self.params.to_dict(), "reason": self.reason,
                "measured": self.measured}


def ivf_nlist(n: int, per_root: int = 4) -> int:
    """``per_root``·√N inverted lists (FAISS: 4 to 16), at most N/39 so k-means has enough points."""
    return max(1, min(int(round(per_root * math.sqrt(n))), n // 39))


def estimate_bytes(kind: str, n: int, d: int, hnsw_m: int | None = None) -> int:
    """Rough resident size of ``kind`` over n vectors of d dims (codes + ids + graph links; ``hnsw_m``: the
    graph's degree, the kind's default when None)."""
    hnsw_m = graph_defaults(kind)[0] if hnsw_m is None else hnsw_m
    code = {"flat": 4 * d, "ivf": 4 * d, "ivf-hnsw": 4 * d, "hnsw": 4 * d, "hnsw-fp16": 2 * d, "ivfsq": d,
            "ivfpq": max(1, d // 4)}[kind]
    links = 2 * hnsw_m * 4 if kind in ("hnsw", "hnsw-fp16") else 0
    return int(n * (code + ID_BYTES + links))


def plan(n: int, d: int, *, max_memory_mb: float | None = None, seed: int = 0) -> list[Candidate]:
    """The candidate kinds for n vectors of d dims within ``max_memory_mb``, best guess first.

    InputError when not even PQ codes fit the budget.
    """
    if n < 1 or d < 1:
        raise InputError(f"need n >= 1 vectors of d >= 1 dims; got n={n}, d={d}")
    if max_memory_mb is not None and not max_memory_mb > 0:
        raise InputError(f"--max-memory-mb must be > 0; got {max_memory_mb}")
    budget = math.inf if max_memory_mb is None else max_memory_mb * 2**20

    def fits(kind: str) -> bool:
        return estimate_bytes(kind, n, d) <= budget

    mb = f"{budget / 2**20:,.0f} MB" if budget < math.inf else "no memory limit"
    if n <= FLAT_MAX_N and fits("flat"):
        return [Candidate(IndexParams("flat", seed=seed), estimate_bytes("flat", n, d),
                          f"N = {n:,} <= {FLAT_MAX_N:,}: exact search is already fast, so no approximation")]
    out: list[Candidate] = []
    if fits("hnsw") and n < 4 * GRAPH_MIN_N:
        out.append(Candidate(IndexParams("hnsw", seed=seed), estimate_bytes("hnsw", n, d),
                             f"N = {n:,} and {mb}: an HNSW graph (M={DEFAULT_HNSW_M}) fits in memory and needs "
                             "no training"))
    if n >= GRAPH_MIN_N and fits("ivf-hnsw"):
        nlist = ivf_nlist(n, 16)
        out.append(Candidate(IndexParams("ivf-hnsw", nlist=nlist, seed=seed), estimate_bytes("ivf-hnsw", n, d),
                             f"N = {n:,} >= {GRAPH_MIN_N:,}: IVF with {nlist:,} lists (16·√N) and an HNSW coarse "
                             "quantizer"))
    if fits("ivf"):
        nlist = ivf_nlist(n, 4)
        out.append(Candidate(IndexParams("ivf", nlist=nlist, seed=seed), estimate_bytes("ivf", n, d),
                             f"N = {n:,}: IVF with {nlist:,} lists (4·√N), full vectors"))
    if not out or (not fits("hnsw") and not fits("ivf")):
        for kind, what in (("ivfsq", "8-bit scalar codes, d bytes a vector"), ("ivfpq", "PQ codes, d/4 bytes a vector")):
            if fits(kind):
                nlist = ivf_nlist(n, 4)
                out.append(Candidate(IndexParams(kind, nlist=nlist, seed=seed), estimate_bytes(kind, n, d),
                                     f"full vectors need {estimate_bytes('flat', n, d) / 2**20:,.0f} MB > {mb}: "
                                     f"IVF with {nlist:,} lists over {what}"))
    if not out:
        raise InputError(
            f"no index kind fits {n:,} vectors of {d} dims in {mb}; PQ codes alone need "
            f"{estimate_bytes('ivfpq', n, d) / 2**20:,.0f} MB (raise --max-memory-mb)"
        )
    return out


def _p50_ms(index: Any, queries: np.ndarray, k: int) -> float:
    """Median ms of one query per call (the index's tuned default setting)."""
    from indexer.core.search import search

    search(index, queries[:1], k)
    times = []
    for row in range(len(queries)):
        started = time.perf_counter()
        search(index, queries[row : row + 1], k)
        times.append(time.perf_counter() - started)
    return float(np.median(times) * 1e3)


def build_auto(
    vectors: np.ndarray,
    ids: np.ndarray,
    *,
    target_recall: float = DEFAULT_TARGET_RECALL,
    max_memory_mb: float | None = None,
    k: int = 10,
    seed: int = 0,
    tune_queries: np.ndarray | None = None,
    device: str = "cpu",
) -> tuple[Any, BuildInfo, AutoChoice, TuneResult | None]:
    """Build the best candidate of :func:`plan` over (n, d) float32 ``vectors`` with int64 ``ids``.

    Up to ``MEASURED_CANDIDATES`` candidates are built, tuned to ``target_recall`` (recall@k
    against exact search on ``tune_queries`` or on sampled stored vectors) and timed one query
    at a time; the fastest that reaches the target wins (else the one with the best recall).
    Returns (index, build info, choice with the reason, tuning of the winner or None).
    """
    xb = as_vectors(vectors, name="vectors")
    id_arr = as_ids(ids, xb.shape[0])
    candidates = plan(xb.shape[0], xb.shape[1], max_memory_mb=max_memory_mb, seed=seed)
    if candidates[0].params.kind == "flat":
        index, info = build_index(candidates[0].params, xb, id_arr, device=device)
        return index, info, AutoChoice(candidates[0].params, candidates[0].reason), None
    rng = np.random.default_rng(seed)
    timing = tune_queries if tune_queries is not None else xb[rng.choice(len(xb), min(TIMING_QUERIES, len(xb)), replace=False)]
    built = []
    for candidate in candidates[:MEASURED_CANDIDATES]:
        graph = tune_queries is None and KINDS[candidate.params.kind].knob == EF_SEARCH
        withheld = held_out_rows(len(xb), seed) if graph else None  # a graph is tuned on vectors it has not seen
        index, info = build_index(candidate.params, xb, id_arr, device=device, withhold=withheld)
        if withheld is not None:
            tuned = tune_held_out(index, xb, id_arr, withheld, k=k, target_recall=target_recall)
        else:
            tuned = tune_search_param(index, xb, id_arr, k, target_recall, seed=seed, queries=tune_queries)
        p50 = _p50_ms(index, timing, k)
        built.append((candidate, index, info, tuned, p50))
    reaching = [b for b in built if b[3] is None or b[3].reached]
    best = min(reaching, key=lambda b: b[4]) if reaching else max(built, key=lambda b: b[3].recall)
    measured = [
        {"kind": c.params.kind, "factory": i.factory, "build_s": i.build_s, "recall": None if t is None else t.recall,
         "setting": None if t is None else {t.param_name: t.value}, "reached": t is None or t.reached,
         "p50_ms": p50, "bytes_estimate": c.bytes_estimate, "why_considered": c.reason}
        for c, _, i, t, p50 in built
    ]
    candidate, index, info, tuned, p50 = best
    others = "; ".join(
        f"{m['kind']}: recall@{k} {m['recall']:.3f} at {m['setting']}, p50 {m['p50_ms']:.3f} ms"
        for m in measured if m["kind"] != candidate.params.kind
    )
    verdict = "fastest to reach" if reaching else "closest to"
    reason = (
        f"{candidate.reason}; {verdict} recall@{k} {target_recall} (measured {tuned.recall:.3f} at "
        f"{tuned.param_name}={tuned.value}, p50 {p50:.3f} ms a query)" + (f"; against {others}" if others else "")
    )
    params = IndexParams(**{**candidate.params.to_dict(), tuned.param_name: tuned.value})
    return index, info, AutoChoice(params, reason, measured), tuned
