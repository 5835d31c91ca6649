"""What the search engine holds: loaded indexes (and, from :mod:`indexer.api.search.served`, the served vectors and
known rows), each never modified once published."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from indexer.api.devices import DeviceCopy
from indexer.api.registry.index_files import file_signature
from indexer.api.search.served import KnownRows, ServedVectors

__all__ = ["AddOutcome", "HeldIndex", "KnownRows", "ServedVectors", "file_signature"]


@dataclass(frozen=True)
class HeldIndex:
    """A loaded index as published to readers; never modified after publication. ``index`` is a
    :class:`indexer.core.segments.SegmentedIndex`: the file's index, sealed, plus the changes since."""

    name: str
    kind: str
    model: str
    path: Path  # the .faiss file
    index: Any
    sidecar: dict
    params: dict
    signature: tuple
    device: DeviceCopy | None = None  # gpu-flat: the sealed vectors on the GPU (indexer.api.devices)

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def describe(self) -> dict:
        """name, kind, model, ntotal (live vectors), dim, and the vectors per ``segments``."""
        return {"name": self.name, "kind": self.kind, "model": self.model, "ntotal": self.ntotal,
                "dim": int(self.index.d), "segments": self.index.describe()}


@dataclass(frozen=True)
class AddOutcome:
    id: int
    path: str
    duplicate_of: int | None
    indexes: list[str]

    @property
    def created(self) -> bool:
        return self.duplicate_of is None
