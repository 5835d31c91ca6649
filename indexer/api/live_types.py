"""What the live catalog publishes: held indexes (never modified once published) and its answers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class HeldIndex:
    """A loaded index as published to readers; never modified after publication."""

    name: str
    kind: str
    model: str
    path: Path  # the .faiss file
    index: Any
    sidecar: dict
    params: dict
    signature: tuple

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def describe(self) -> dict:
        return {"name": self.name, "kind": self.kind, "model": self.model, "ntotal": self.ntotal,
                "dim": int(self.index.d)}


@dataclass(frozen=True)
class LiveHit:
    rank: int
    id: int
    path: str
    label: str | None
    score: float

    def to_dict(self) -> dict:
        return {"rank": self.rank, "id": self.id, "path": self.path, "label": self.label,
                "score": round(self.score, 6)}


@dataclass(frozen=True)
class LiveAnswer:
    query: str
    index: str
    results: list[LiveHit]
    timings_ms: dict[str, float]  # decode, embed, search, catalog

    @property
    def took_ms(self) -> float:
        return sum(self.timings_ms.values())


@dataclass(frozen=True)
class AddOutcome:
    id: int
    path: str
    duplicate_of: int | None
    indexes: list[str]

    @property
    def created(self) -> bool:
        return self.duplicate_of is None



def file_signature(faiss_path: Path) -> tuple:
    """What identifies the index files' current version: (inode, size, mtime) of the index and its sidecar."""
    out = []
    for path in (faiss_path, faiss_path.with_suffix(".json")):
        try:
            stat = path.stat()
            out.append((stat.st_ino, stat.st_size, stat.st_mtime_ns))
        except OSError:
            out.append(None)
    return tuple(out)
