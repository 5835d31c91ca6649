"""The shard files of an index and their manifest: ``indexes/NAME.shards/shard-000.faiss`` (+ ``.json``, saved
with the crash-safe journal of :mod:`indexer.core.index_io`) and ``indexes/NAME.shards/manifest.json``.

The manifest lists every shard: its number, file, id range ``[id_lo, id_hi)`` (the last one open), vector count
and the SHA-256 of its ``.faiss`` file as last saved. A shard that saves (the service's writes) updates its own
entry under the manifest's lock, so several shard processes may save at once.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from indexer.api.workspace import Workspace
from indexer.core.errors import IndexFileError, InputError
from indexer.core.shards import IdRange

MANIFEST = "manifest.json"
TEMPLATE = "template.faiss"  # the trained index with no vectors: what a router plans filtered searches with
MANIFEST_FORMAT = 1


@dataclass(frozen=True)
class ShardEntry:
    """One shard as the manifest records it."""

    number: int
    file: str  # the .faiss file's name, in the shards folder
    id_lo: int
    id_hi: int | None
    count: int
    sha256: str

    @property
    def ids(self) -> IdRange:
        return IdRange(self.id_lo, self.id_hi)


@dataclass(frozen=True)
class Manifest:
    """The shards of index ``index`` (model ``model``, ``d`` dims, ``nlist`` lists), in id order."""

    index: str
    model: str
    kind: str
    d: int
    nlist: int
    shards: tuple[ShardEntry, ...]

    @property
    def ranges(self) -> list[IdRange]:
        """The shards' id ranges, in order."""
        return [entry.ids for entry in self.shards]

    @property
    def count(self) -> int:
        """Vectors over all shards, as last saved."""
        return sum(entry.count for entry in self.shards)

    def to_dict(self) -> dict[str, Any]:
        """The manifest's JSON form."""
        return {"format": MANIFEST_FORMAT, **asdict(self), "shards": [asdict(entry) for entry in self.shards]}

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: Path) -> Manifest:
        """:meth:`to_dict`'s inverse; IndexFileError naming ``where`` when the JSON is not a manifest."""
        try:
            shards = tuple(ShardEntry(**entry) for entry in data["shards"])
            manifest = cls(data["index"], data["model"], data["kind"], int(data["d"]), int(data["nlist"]), shards)
        except (KeyError, TypeError, ValueError) as exc:
            raise IndexFileError(f"shard manifest {where} is malformed: {exc}") from None
        if [entry.number for entry in shards] != list(range(len(shards))) or not shards:
            raise IndexFileError(f"shard manifest {where}: shards must be numbered 0..n-1 in order")
        return manifest


def shards_dir(workspace: Workspace, index_name: str) -> Path:
    """The folder of index ``index_name``'s shards."""
    return workspace.indexes_dir / f"{index_name}.shards"


def shard_path(workspace: Workspace, index_name: str, number: int) -> Path:
    """The ``.faiss`` file of shard ``number``."""
    return shards_dir(workspace, index_name) / f"shard-{number:03d}.faiss"


def read_manifest(workspace: Workspace, index_name: str) -> Manifest:
    """The manifest of index ``index_name``'s shards; NotFoundError-like InputError when it was not sharded."""
    path = shards_dir(workspace, index_name) / MANIFEST
    if not path.exists():
        raise InputError(f"index {index_name!r} has no shards (build it with 'indexer build --shards N'): "
                         f"{path} does not exist")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise IndexFileError(f"shard manifest {path} is unreadable: {exc}") from None
    return Manifest.from_dict(data, path)


def served_manifest(workspace: Workspace, index_name: str | None = None) -> Manifest:
    """The manifest of index ``index_name`` (default: the most recent index), which must have shards."""
    from indexer.api.registry.indexes import served_index

    with workspace.catalog() as catalog:
        name = served_index(catalog, index_name).name
    return read_manifest(workspace, name)


def write_shards(workspace: Workspace, index: Any, sidecar: dict, shards: int) -> Manifest:
    """Split the saved index ``index`` (``sidecar``: what it was saved with) into ``shards`` shard files by id
    range and write their manifest (last, so a manifest always names complete shards); the manifest."""
    from indexer.core.files import write_json
    from indexer.core.index_io import index_lock, save_index
    from indexer.core.membership import indexed_ids
    from indexer.core.shards import empty_copy, id_ranges, split_by_ranges

    name = sidecar["name"]
    folder = shards_dir(workspace, name)
    folder.mkdir(parents=True, exist_ok=True)
    ranges = id_ranges(indexed_ids(index), shards)
    entries = []
    with index_lock(folder / MANIFEST):
        for number, (part, ids) in enumerate(zip(split_by_ranges(index, ranges), ranges)):
            path = shard_path(workspace, name, number)
            with index_lock(path):
                written = save_index(part, path, {**_shard_sidecar(sidecar), "shard": number, "id_lo": ids.lo,
                                                  "id_hi": ids.hi})
            entries.append(ShardEntry(number, path.name, ids.lo, ids.hi, int(part.ntotal), written["sha256"]))
        with index_lock(folder / TEMPLATE):
            save_index(empty_copy(index), folder / TEMPLATE, {**_shard_sidecar(sidecar), "template": True})
        manifest = Manifest(name, sidecar["model"], sidecar["kind"], int(index.d), _nlist(index), tuple(entries))
        write_json(folder / MANIFEST, manifest.to_dict())
        for stale in folder.glob("shard-*.faiss"):  # an earlier layout with more shards
            if int(stale.stem.split("-")[1]) >= shards:
                for suffix in (".faiss", ".json", ".lock"):
                    stale.with_suffix(suffix).unlink(missing_ok=True)
    return manifest


def record_save(workspace: Workspace, index_name: str, number: int, count: int, sha256: str) -> None:
    """Update shard ``number``'s entry (count, checksum) after it saved, under the manifest's lock."""
    from indexer.core.files import write_json
    from indexer.core.index_io import index_lock

    folder = shards_dir(workspace, index_name)
    with index_lock(folder / MANIFEST):
        data = read_manifest(workspace, index_name).to_dict()
        data["shards"][number].update(count=int(count), sha256=sha256)
        write_json(folder / MANIFEST, data)


def load_template(workspace: Workspace, index_name: str) -> tuple[Any, dict]:
    """(the trained index with no vectors, its sidecar): nlist, quantizer and default nprobe of the shards."""
    from indexer.core.index_io import load_index

    return load_index(shards_dir(workspace, index_name) / TEMPLATE)


def _shard_sidecar(sidecar: dict) -> dict:
    keep = ("name", "kind", "model", "params", "build", "tuning", "seed", "rerank")
    return {key: sidecar[key] for key in keep if key in sidecar}


def _nlist(index: Any) -> int:
    from indexer.core.factory import find_ivf

    return int(find_ivf(index).nlist)


def owned(ids: np.ndarray, manifest: Manifest, number: int) -> np.ndarray:
    """(n,) bool: which of ``ids`` shard ``number`` owns."""
    return manifest.shards[number].ids.holds(ids)
