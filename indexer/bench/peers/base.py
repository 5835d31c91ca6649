"""The contract every peer adapter fills: build over (ids, vectors, metadata), query one vector.

A peer is another vector search library or database a user might pick instead of indexer. The
bench feeds every peer the same base vectors and queries as our own kinds and times one query
at a time on one thread (where the peer lets us say so) after a warm-up, as ann-benchmarks
does. A subclass writes only what differs: how to build, set its search knob, query and size, and, where
the system can search within a filter natively, how to do that (:meth:`Peer.query_filtered`).
"""

from __future__ import annotations

import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from indexer.bench.peers.field_filter import FieldFilter


class PeerUnavailable(Exception):
    """The peer's package is not installed (or cannot run here); the bench notes it and goes on."""


class FilterUnsupported(Exception):
    """The peer has no native way to search within a filter; the filtered bench says so in its table."""


class Peer(ABC):
    """One peer system, built over one vector set.

    name: the bench row's ``kind``; package: its distribution name (for the version);
    knob: its search setting's own name (ef, nprobes, ...); sweep: values of it to try,
    cheapest first; database: it stores metadata rows and returns them with its query;
    filters: it searches within a :class:`FieldFilter` on its stored metadata natively (``filter_form`` names
    how, for the bench's table), else ``no_filter`` says why not.
    """

    name: str = ""
    package: str = ""
    knob: str = ""
    sweep: Sequence[int] = ()
    database: bool = False
    filters: bool = False
    filter_form: str = ""
    no_filter: str = "no native filtered search"

    def __init__(self, workdir: str | Path | None = None, filter_fields: Sequence[str] = ()) -> None:
        """``filter_fields``: metadata fields the bench will filter on; a peer makes them fast to filter, as its
        users would (a scalar index, a declared column), and still stores every other field."""
        self.filter_fields = tuple(filter_fields)
        self._own_dir = workdir is None
        self.workdir = Path(tempfile.mkdtemp(prefix=f"indexer-peer-{self.name}-")) if workdir is None else Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)

    @classmethod
    def version(cls) -> str:
        """The installed package version; PeerUnavailable when it is missing."""
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version(cls.package)
        except PackageNotFoundError:
            raise PeerUnavailable(f"{cls.package} is not installed (pip install 'indexer[peers]')") from None

    @abstractmethod
    def build(self, ids: np.ndarray, vectors: np.ndarray, metadata: Sequence[dict[str, Any]] | None) -> None:
        """Index (n, d) float32 L2-normalised ``vectors`` under int64 ``ids``, inner product (cosine)."""

    @abstractmethod
    def set_knob(self, value: int) -> None:
        """Use ``value`` for the search knob from the next query on."""

    @abstractmethod
    def query(self, vector: np.ndarray, k: int) -> np.ndarray:
        """The ids (int64, best first) of the top ``k`` for one (d,) float32 vector."""

    def query_rows(self, vector: np.ndarray, k: int) -> list[dict[str, Any]]:
        """The end-to-end call: top ``k`` with their stored metadata (databases only)."""
        raise NotImplementedError(f"{self.name} stores no metadata")

    def query_filtered(self, vector: np.ndarray, k: int, where: FieldFilter) -> np.ndarray:
        """The ids (int64, best first) of the top ``k`` among the rows whose stored metadata passes ``where``,
        searched with the system's own filter at the current knob; fewer than ``k`` when it finds fewer.
        Needs the build's ``metadata`` to hold ``where.field``."""
        raise FilterUnsupported(f"{self.name}: {self.no_filter}")

    def index_bytes(self) -> int:
        """Size of what the peer keeps on disk (its working folder) after the build."""
        return sum(p.stat().st_size for p in self.workdir.rglob("*") if p.is_file())

    def close(self) -> None:
        """Release the peer and remove its working folder when it made it."""
        if self._own_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)
