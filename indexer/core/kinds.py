"""The one table of index kinds: FAISS factory template, search knob, removal, defaults.

The CLI's choices, the API's checks, the bench and the tuner all read this table; a kind
differs from another in data, never in code.
"""

from __future__ import annotations

from dataclasses import dataclass

from indexer.core.errors import InputError

NPROBE = "nprobe"  # IVF: inverted lists visited per query
EF_SEARCH = "efSearch"  # HNSW: candidate list size per query (FAISS's own name, used everywhere)
KNOBS = (NPROBE, EF_SEARCH)

DEFAULT_KIND = "ivf"
DEFAULT_TARGET_RECALL = 0.95  # recall@10 against exact search that tuning aims for
DEFAULT_PCA_DIM = 32
DEFAULT_HNSW_M = 32
# HNSW candidate list while the graph is built: FAISS's own default.
DEFAULT_EF_CONSTRUCTION = 40
# Graph kinds built otherwise by default: (M, efConstruction). hnsw-fp16 builds the graph hnswlib builds: at 1M
# realistic vectors, stored in cluster order and searched with the segments' deletion selector, M 16 / efC 100
# reached recall@10 0.95 at 0.94x hnswlib's p50 and M 32 / efC 40 at 1.24-1.26x, building in 99 s against 64 s
# (docs/BENCHMARKS.md, "HNSW against hnswlib at 1M"). Plain hnsw keeps M 32: fewer links would make its file
# smaller and the service's fixed overhead a larger share of it.
GRAPH_DEFAULTS: dict[str, tuple[int, int]] = {"hnsw-fp16": (16, 100)}


def graph_defaults(kind: str) -> tuple[int, int]:
    """(M, efConstruction) that an index of ``kind`` is built with unless told otherwise."""
    return GRAPH_DEFAULTS.get(kind, (DEFAULT_HNSW_M, DEFAULT_EF_CONSTRUCTION))
MAX_EF_SEARCH = 2048  # the tuner's ceiling for efSearch (nprobe's is nlist)


@dataclass(frozen=True)
class IndexKind:
    """One index kind.

    factory: FAISS factory template; ``{pca}``, ``{nlist}``, ``{coarse}`` (empty, or an HNSW coarse
    quantizer for many lists), ``{pq_m}``, ``{pq_bits}``, ``{hnsw_m}`` are filled in by
    :func:`indexer.core.factory.factory_string`; ``{factory}``
    is the user's own string. knob: the per-call search setting the tuner adjusts (None:
    exact search, nothing to tune; ``raw``: read from the built index). removes: vectors can
    be removed in place (HNSW graphs cannot: the API rebuilds them without the vectors). device: the torch
    device the kind searches on (None: FAISS on the CPU); such a kind's file is its FAISS template's index,
    and the API refuses the kind where that device is missing.
    """

    name: str
    factory: str
    knob: str | None
    removes: bool
    summary: str
    device: str | None = None

    @property
    def tuned(self) -> bool:
        """True when builds tune a search setting to the target recall."""
        return self.knob is not None or self.name == "raw"


KINDS: dict[str, IndexKind] = {
    kind.name: kind
    for kind in (
        IndexKind("flat", "Flat", None, True, "exact inner-product search over every vector"),
        IndexKind("pca", "{pca},Flat", None, True, "PCA to --pca-dim dims, re-normalised, then exact search"),
        IndexKind("ivf", "IVF{nlist}{coarse},Flat", NPROBE, True, "k-means inverted lists; nprobe lists searched"),
        IndexKind("ivfpq", "IVF{nlist}{coarse},PQ{pq_m}x{pq_bits}", NPROBE, True, "inverted lists of PQ codes"),
        IndexKind("hnsw", "HNSW{hnsw_m}", EF_SEARCH, False, "HNSW graph; efSearch candidates per query"),
        IndexKind("hnsw-fp16", "HNSW{hnsw_m}_SQfp16", EF_SEARCH, False,
                  "HNSW graph (M 16, efConstruction 100) over half-precision vectors: half the bytes read per distance"),
        IndexKind("pca-ivf", "{pca},IVF{nlist}{coarse},Flat", NPROBE, True, "PCA, then inverted lists"),
        IndexKind("ivfsq", "IVF{nlist}{coarse},SQ8", NPROBE, True, "inverted lists of 8-bit scalar codes (d bytes a vector)"),
        IndexKind("ivf-hnsw", "IVF{nlist}_HNSW{hnsw_m},Flat", NPROBE, True,
                  "inverted lists with an HNSW coarse quantizer, for millions of vectors"),
        IndexKind("gpu-flat", "Flat", None, True,
                  "exact search on a CUDA GPU: fp16 scan, fp32 re-score, same results as flat", device="cuda"),
        IndexKind("raw", "{factory}", None, True, "any FAISS factory string given with --factory"),
    )
}
INDEX_KINDS: tuple[str, ...] = tuple(KINDS)
BENCH_KINDS: tuple[str, ...] = tuple(name for name in KINDS if name != "raw")  # raw needs a factory string
DEFAULT_BENCH_KINDS: tuple[str, ...] = ("flat", "pca", "ivf", "hnsw")
AUTO = "auto"  # not a kind: indexer.core.auto picks one of the kinds above for the data
ON_DISK = "ivf-ondisk"  # bench only: the ivf kind with its lists on disk (indexer.core.ondisk, build --on-disk)
BUILD_CHOICES: tuple[str, ...] = (*INDEX_KINDS, AUTO)
BENCH_CHOICES: tuple[str, ...] = (*BENCH_KINDS, AUTO, ON_DISK)


def index_kind(name: str) -> IndexKind:
    """The table entry for ``name``; InputError naming the known kinds otherwise."""
    try:
        return KINDS[name]
    except KeyError:
        raise InputError(f"unknown index kind {name!r}; expected one of {', '.join(INDEX_KINDS)}") from None
