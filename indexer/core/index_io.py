"""Saving and loading an index with its JSON sidecar, crash-safely.

Files for ``path = dir/name``: ``name.faiss`` (the index) and ``name.json`` (the
sidecar: what was passed, plus d, ntotal, faiss version, search settings, created
time and the index file's SHA-256).

Two files cannot be replaced in one atomic step, so a save runs as a tiny journal:

1. write ``name.faiss.tmp`` and ``name.json.tmp`` and fsync them;
2. rename ``name.json.tmp`` -> ``name.json.pending``  (the new sidecar is now known);
3. rename ``name.faiss.tmp`` -> ``name.faiss``;
4. rename ``name.json.pending`` -> ``name.json``.

Killed before 3, the old pair is untouched. Killed between 3 and 4, the index is
new and ``name.json.pending`` describes it: loading sees that the index's checksum
matches the pending sidecar and uses it (and the next save completes the rename).
Without a pending file the pair is consistent by construction, so loading only
checks d/ntotal cheaply (the full checksum with ``verify=True``).

An on-disk IVF index (:mod:`indexer.core.ondisk`) also has ``name.<token>.ivfdata``, written and fsynced
before step 1 under a name no earlier build used; the sidecar names it (``"on_disk"``), and a save sweeps
the data files of earlier builds once the new pair is in place. The checksum covers ``name.faiss`` only.

A graph compacted by the service (:func:`indexer.core.compaction.fold_tail`) keeps ``name.faiss`` as it was and
saves its segments beside it (:func:`save_segments`): ``name.<token>.tail`` (the small graph of folded adds) and
``name.<token>.marks`` (the deletion marks on the main graph), written and fsynced before a new sidecar that
names them (``"segments"``) goes through steps 2 and 4; the main file's checksum is unchanged, so a kill between
them is recovered as above. :func:`load_segments` reads them back; a full save drops them.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import re
import secrets
from pathlib import Path
from typing import Any

from indexer.core.errors import IndexFileError
from indexer.core.files import file_sha256, fsync_dir, fsync_file
from indexer.core.ondisk_lists import data_file, is_on_disk, read_on_disk, sweep_data_files
from indexer.core.settings import default_settings, set_default_settings

SIDECAR_FORMAT = 1
SEGMENT_SUFFIXES = (".tail", ".marks")  # name.<token>.tail / name.<token>.marks: a graph's saved segments


def index_paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """(``name.faiss``, ``name.json``) for ``dir/name`` or ``dir/name.faiss``."""
    p = Path(path)
    stem = p.with_suffix("") if p.suffix in (".faiss", ".json") else p
    return stem.with_name(stem.name + ".faiss"), stem.with_name(stem.name + ".json")


def _with_suffix(p: Path, suffix: str) -> Path:
    return p.with_name(p.name + suffix)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise IndexFileError(f"index sidecar {path} is unreadable or not JSON: {exc}") from exc


def _recover(faiss_path: Path, json_path: Path) -> None:
    """Finish or discard an interrupted save (see module docstring)."""
    pending = _with_suffix(json_path, ".pending")
    if not pending.exists():
        return
    try:
        meta = json.loads(pending.read_text())
        complete = faiss_path.exists() and file_sha256(faiss_path) == meta.get("sha256")
    except (OSError, ValueError):
        complete = False
    if complete:
        os.replace(pending, json_path)
    else:
        pending.unlink(missing_ok=True)
    fsync_dir(json_path.parent)


@contextlib.contextmanager
def index_lock(path: str | os.PathLike[str]):
    """Hold an exclusive advisory lock on ``name.lock`` for a read-modify-write of the index.

    Builds, updates and removals take it, so two processes never interleave their saves (their
    ``.tmp`` files would collide) and an update never loses a concurrent removal. Readers need
    no lock: the journal makes every state they can see loadable.
    """
    import fcntl

    faiss_path, _ = index_paths(path)
    faiss_path.parent.mkdir(parents=True, exist_ok=True)
    with open(_with_suffix(faiss_path.with_suffix(""), ".lock"), "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def save_index(
    index: Any, path: str | os.PathLike[str], sidecar: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Write ``name.faiss`` + ``name.json`` crash-safely; returns the sidecar written.

    ``sidecar`` (JSON-serialisable: params, build info, model name, …) is stored as
    given, plus d, ntotal, faiss_version, search_params, created, index_bytes, sha256.
    """
    import faiss

    faiss_path, json_path = index_paths(path)
    faiss_path.parent.mkdir(parents=True, exist_ok=True)
    _recover(faiss_path, json_path)
    tmp_index = _with_suffix(faiss_path, ".tmp")
    tmp_json = _with_suffix(json_path, ".tmp")
    try:
        faiss.write_index(index, str(tmp_index))
        fsync_file(tmp_index)
        data = data_file(index) if is_on_disk(index) else None
        meta = {
            **{key: value for key, value in (sidecar or {}).items() if key != "segments"},  # the index is whole
            **({"on_disk": {"data_file": data.name, "data_bytes": data.stat().st_size}} if data else {}),
            "format": SIDECAR_FORMAT,
            "d": int(index.d),
            "ntotal": int(index.ntotal),
            "faiss_version": faiss.__version__,
            "search_params": default_settings(index),
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "index_file": faiss_path.name,
            "index_bytes": tmp_index.stat().st_size,
            "sha256": file_sha256(tmp_index),
        }
        _write_sidecar(tmp_json, meta)
    except (OSError, RuntimeError, TypeError, ValueError) as exc:
        tmp_index.unlink(missing_ok=True)
        tmp_json.unlink(missing_ok=True)
        raise IndexFileError(f"could not write index {faiss_path}: {exc}") from exc
    try:  # no clean-up on failure here: the journal lets the next load/save recover
        _move_into_place(tmp_json, json_path, (tmp_index, faiss_path))
    except OSError as exc:
        raise IndexFileError(f"could not move the new index into place at {faiss_path}: {exc}") from exc
    sweep_data_files(faiss_path, keep=data)  # the lists files of earlier builds of this name
    _sweep_segments(faiss_path, keep=())
    return meta


def _write_sidecar(path: Path, meta: dict[str, Any]) -> None:
    with open(path, "w") as f:
        json.dump(meta, f, indent=2, sort_keys=True, default=str)
    fsync_file(path)


def _move_into_place(tmp_json: Path, json_path: Path, index: tuple[Path, Path] | None = None) -> None:
    """Steps 2-4 of the journal: the new sidecar pending, the new ``index`` file (tmp, final) in place when there
    is one, then the sidecar in place; each rename made durable before the next."""
    pending = _with_suffix(json_path, ".pending")
    os.replace(tmp_json, pending)
    fsync_dir(json_path.parent)
    if index is not None:
        os.replace(*index)
        fsync_dir(index[1].parent)
    os.replace(pending, json_path)
    fsync_dir(json_path.parent)


def save_segments(path: str | os.PathLike[str], tail: Any | None, marks: Any) -> dict[str, Any]:
    """Save a graph's ``tail`` (a FAISS index, or None) and deletion ``marks`` (sorted int64 ids on the main
    index) beside its main index file, which stays as it is (see module docstring); returns the sidecar written,
    the main file's own with ``"segments"``: {tail, tail_ntotal, marks, marks_count}."""
    import faiss
    import numpy as np

    faiss_path, json_path = index_paths(path)
    _recover(faiss_path, json_path)
    current = _current_sidecar(faiss_path, json_path, verify=False)
    token = secrets.token_hex(6)
    written: list[Path] = []
    try:
        segments: dict[str, Any] = {}
        if tail is not None:
            tail_path = faiss_path.with_name(f"{faiss_path.stem}.{token}.tail")
            written.append(tail_path)
            faiss.write_index(tail, str(tail_path))
            fsync_file(tail_path)
            segments.update(tail=tail_path.name, tail_ntotal=int(tail.ntotal))
        marks = np.ascontiguousarray(marks, np.int64)
        marks_path = faiss_path.with_name(f"{faiss_path.stem}.{token}.marks")
        written.append(marks_path)
        with open(marks_path, "wb") as handle:
            np.save(handle, marks)
        fsync_file(marks_path)
        segments.update(marks=marks_path.name, marks_count=len(marks))
        meta = {**current, "segments": segments}
        tmp_json = _with_suffix(json_path, ".tmp")
        _write_sidecar(tmp_json, meta)
    except (OSError, RuntimeError, TypeError, ValueError) as exc:
        for part in written:
            part.unlink(missing_ok=True)
        raise IndexFileError(f"could not write the segments of index {faiss_path}: {exc}") from exc
    try:  # the main file does not change: a pending sidecar matches its checksum, so a kill here is recovered
        _move_into_place(tmp_json, json_path)
    except OSError as exc:
        raise IndexFileError(f"could not move the new sidecar of {faiss_path} into place: {exc}") from exc
    _sweep_segments(faiss_path, keep=tuple(part.name for part in written))
    return meta


def load_segments(path: str | os.PathLike[str], meta: dict[str, Any]) -> tuple[Any | None, Any] | None:
    """(tail or None, sorted int64 marks) that sidecar ``meta`` of index ``path`` names (:func:`save_segments`), or
    None when it names none."""
    import faiss
    import numpy as np

    segments = meta.get("segments")
    if not segments:
        return None
    faiss_path, _ = index_paths(path)
    tail = None
    try:
        if segments.get("tail"):
            tail = faiss.read_index(str(faiss_path.with_name(segments["tail"])))
        marks = np.load(faiss_path.with_name(segments["marks"]), allow_pickle=False).astype(np.int64)
    except (OSError, RuntimeError, ValueError) as exc:
        raise IndexFileError(f"the segments of index {faiss_path} are missing or unreadable: {exc}") from exc
    if (tail.ntotal if tail is not None else 0) != segments.get("tail_ntotal", 0) or len(marks) != segments["marks_count"]:
        raise IndexFileError(f"the segments of index {faiss_path} do not match its sidecar; rebuild the index")
    return tail, marks


def _sweep_segments(faiss_path: Path, keep: tuple[str, ...]) -> None:
    """Delete the saved segments beside ``faiss_path`` but ``keep`` (older saves', or all after a full save)."""
    own = re.compile(re.escape(faiss_path.stem) + r"\.[0-9a-f]{12}(" + "|".join(map(re.escape, SEGMENT_SUFFIXES)) + ")")
    for part in faiss_path.parent.glob(f"{faiss_path.stem}.*"):
        if own.fullmatch(part.name) and part.name not in keep:  # not another index whose name starts alike
            part.unlink(missing_ok=True)


def _current_sidecar(faiss_path: Path, json_path: Path, verify: bool) -> dict[str, Any]:
    """The sidecar describing the index file now on disk (read-only; see module docstring)."""
    pending = _with_suffix(json_path, ".pending")
    if pending.exists():
        digest = file_sha256(faiss_path)
        for candidate in (pending, json_path):
            if candidate.exists():
                meta = _read_json(candidate)
                if meta.get("sha256") == digest:
                    return meta
        raise IndexFileError(
            f"index {faiss_path} matches neither {json_path.name} nor {pending.name}; re-save it"
        )
    if not json_path.exists():
        raise IndexFileError(f"index sidecar {json_path} is missing (expected next to {faiss_path.name})")
    meta = _read_json(json_path)
    if verify and meta.get("sha256") != file_sha256(faiss_path):
        raise IndexFileError(f"index {faiss_path} does not match the checksum in {json_path.name}")
    return meta


def read_sidecar(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The sidecar describing the index file now on disk, without loading the index (read-only)."""
    faiss_path, json_path = index_paths(path)
    if not faiss_path.exists():
        raise IndexFileError(f"index file {faiss_path} does not exist")
    return _current_sidecar(faiss_path, json_path, verify=False)


def load_index(
    path: str | os.PathLike[str], mmap: bool = False, verify: bool = False
) -> tuple[Any, dict[str, Any]]:
    """Load (index, sidecar) written by ``save_index``.

    ``mmap`` maps flat codes read-only instead of reading them (fast cold start;
    the index must then not be modified). ``verify`` checks the SHA-256.
    Raises IndexFileError for a missing, corrupt or inconsistent pair.
    """
    import faiss

    faiss_path, json_path = index_paths(path)
    if not faiss_path.exists():
        raise IndexFileError(f"index file {faiss_path} does not exist")
    meta = _current_sidecar(faiss_path, json_path, verify)
    flags = (faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY) if mmap else 0
    try:
        index = read_on_disk(faiss_path, flags) if meta.get("on_disk") else faiss.read_index(str(faiss_path), flags)
    except RuntimeError as exc:
        raise IndexFileError(f"index file {faiss_path} is corrupt or not a FAISS index") from exc
    for key, actual in (("d", index.d), ("ntotal", index.ntotal)):
        if key in meta and meta[key] != actual:
            raise IndexFileError(
                f"index {faiss_path} has {key}={actual} but its sidecar {json_path.name} says {meta[key]}"
            )
    params = meta.get("search_params") or {}
    set_default_settings(index, nprobe=params.get("nprobe"), efSearch=params.get("efSearch"))
    return index, meta
