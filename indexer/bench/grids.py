"""The search-knob values every sweep tries, ours and the peers' alike (one grid per kind of knob), so that
the fastest setting reaching a recall is found with the same resolution for every system."""

from __future__ import annotations

# graph candidate lists: FAISS efSearch, hnswlib ef, usearch expansion_search, Chroma ef_search.
# Every integer up to 64, where recall@10 0.95 is reached on realistic data from 100k to 1M vectors: a coarser
# step overshoots the target (efSearch 32 gave 0.947 and the next step, 40, 0.959 at 1M: 25 % more work than
# the 34 or 36 that suffice), and the at-target comparison then measures the grid, not the system. Past 64,
# steps of 4, then wider; cheap either way (each value is a few hundred queries).
GRAPH_SWEEP = (*range(10, 65), *range(68, 129, 4), 160, 192, 256, 320, 384, 448, 512)
# inverted lists visited: FAISS nprobe, LanceDB nprobes, Milvus nprobe
IVF_SWEEP = (1, 2, 3, 4, 6, 8, 12, 16, 20, 24, 32, 40, 48, 64, 96, 128, 192, 256, 384, 512)
STOP_RECALL = 0.995  # sweeping further only buys latency
