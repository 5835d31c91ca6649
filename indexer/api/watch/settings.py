"""What a folder watcher is asked for: a frozen, validated configuration."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from indexer.core.errors import InputError

WATCH_MODES = ("auto", "events", "polling")  # auto: events, or polling on a network file system
WATCH_LABELS = ("auto", "folders", "none")  # auto: as the folder was ingested (folders when nothing says)


@dataclass(frozen=True)
class WatchConfig:
    """``folders``: the watched folders (absolute, resolved). ``quiet_s``: a file is read once its size and
    mtime have not changed for this long; ``open_quiet_s``: the same for a file still open for writing (where
    the platform tells of closes); ``batch_s``: how long the first settled file waits for others to join its
    batch; ``batch_max``: files per batch (one embed batch, one index change); ``poll_s``: seconds between two
    scans in polling mode; ``rescan_s``: a reconciling scan this often in events mode (0: only at start and
    when events were lost); ``rest``: while more files wait, the watcher rests this many times the last batch's
    duration before the next, so a burst leaves the queries part of the machine (0: no rest)."""

    folders: tuple[str, ...]
    mode: str = "auto"
    labels: str = "auto"
    quiet_s: float = 0.5
    open_quiet_s: float = 30.0
    batch_s: float = 0.25
    batch_max: int = 256
    poll_s: float = 1.0
    rescan_s: float = 600.0
    rest: float = 1.0
    tick_s: float = field(default=0.05, repr=False)

    def __post_init__(self) -> None:
        if not self.folders:
            raise InputError("watch: expected at least one folder")
        resolved = []
        for folder in self.folders:
            path = os.path.realpath(os.path.expanduser(str(folder)))
            if not os.path.isdir(path):
                raise InputError(f"watch: {folder!r} is not a directory")
            resolved.append(path)
        for path in resolved:
            inside = [other for other in resolved if other != path and path.startswith(other.rstrip(os.sep) + os.sep)]
            if inside:
                raise InputError(f"watch: {path!r} lies inside the watched folder {inside[0]!r}; watch one of them")
        if len(set(resolved)) != len(resolved):
            raise InputError(f"watch: a folder is named twice ({', '.join(resolved)})")
        object.__setattr__(self, "folders", tuple(resolved))
        if self.mode not in WATCH_MODES:
            raise InputError(f"watch mode must be one of {', '.join(WATCH_MODES)}; got {self.mode!r}")
        if self.labels not in WATCH_LABELS:
            raise InputError(f"watch labels must be one of {', '.join(WATCH_LABELS)}; got {self.labels!r}")
        for name in ("quiet_s", "open_quiet_s", "batch_s", "poll_s", "tick_s"):
            if not getattr(self, name) > 0:
                raise InputError(f"watch {name} must be positive; got {getattr(self, name)!r}")
        if not 0 <= self.rest <= 10:
            raise InputError(f"watch rest must be between 0 and 10 (times a batch's duration); got {self.rest!r}")
        if self.rescan_s < 0:
            raise InputError(f"watch rescan_s must be 0 (never) or more; got {self.rescan_s!r}")
        if self.batch_max < 1:
            raise InputError(f"watch batch_max must be at least 1; got {self.batch_max!r}")
