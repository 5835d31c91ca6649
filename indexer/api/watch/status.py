"""What a face shows of a folder watcher: a snapshot, copied out under the watcher's lock."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from indexer.api.watch.apply import BatchOutcome

COUNTS = ("added", "changed", "removed", "moved", "duplicates", "refused", "embedded")


@dataclass
class WatchStatus:
    """``mode``: events or polling (``mode_reason`` says why); ``labels``: each folder's label mode;
    ``events_seen``: file-system events received; ``pending``: files waiting to settle or in the next batch;
    the counts since start: files ``added``, ``changed``, ``removed``, ``moved`` (not embedded again),
    ``duplicates`` (byte-identical copies, recorded not indexed), ``refused`` (bad files, recorded with their
    reason), ``embedded`` (images the model embedded); ``batches`` and ``scans`` done; ``last_error``: the
    last refused file or failure, one line."""

    folders: list[str]
    mode: str = "starting"
    mode_reason: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    running: bool = False
    events_seen: int = 0
    pending: int = 0
    added: int = 0
    changed: int = 0
    removed: int = 0
    moved: int = 0
    duplicates: int = 0
    refused: int = 0
    embedded: int = 0
    batches: int = 0
    scans: int = 0
    last_batch_at: float | None = None
    last_error: str | None = None

    def count(self, outcome: BatchOutcome) -> None:
        """Add one batch's counts."""
        for name in COUNTS:
            setattr(self, name, getattr(self, name) + getattr(outcome, name))
        self.batches += 1

    def to_dict(self) -> dict:
        """The status as plain JSON-ready values (``/status``'s ``watch`` object)."""
        return asdict(self)
