"""The search-knob values every sweep tries, ours and the peers' alike (one grid per kind of knob), so that
the fastest setting reaching a recall is found with the same resolution for every system."""

from __future__ import annotations

# graph candidate lists: FAISS efSearch, hnswlib ef, usearch expansion_search, Chroma ef_search
GRAPH_SWEEP = (10, 12, 16, 20, 24, 32, 40, 48, 64, 80, 96, 128, 192, 256, 384, 512)
# inverted lists visited: FAISS nprobe, LanceDB nprobes, Milvus nprobe
IVF_SWEEP = (1, 2, 3, 4, 6, 8, 12, 16, 20, 24, 32, 40, 48, 64, 96, 128, 192, 256, 384, 512)
STOP_RECALL = 0.995  # sweeping further only buys latency
