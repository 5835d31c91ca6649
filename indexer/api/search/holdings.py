"""What a searcher holds and how the live catalog swaps it: the loaded indexes, the model's stored vectors and the
catalog rows known without asking, each published by swapping one reference and never modified afterwards (so
searches read them without a lock). :class:`indexer.api.search.engine.Searcher` answers queries over them."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from indexer.api.devices import check_kind_device, device_copy
from indexer.api.search.held import HeldIndex, KnownRows, ServedVectors
from indexer.api.workspace import Workspace
from indexer.core.errors import NotFoundError
from storage.catalog import ArtifactRow

Rows = Mapping[int, tuple[str, str | None]]  # ok catalog images: id -> (path, label)


class Holdings:
    """The indexes of catalog rows ``rows`` (``index_name`` the default one) and model ``model_name``'s stored
    vectors (loaded on first need) in ``workspace``. ``generation`` counts what was published: what was derived
    from an older one (a kept filter selection) is made again."""

    def __init__(self, workspace: Workspace, model_name: str, index_name: str, rows: list[ArtifactRow]) -> None:
        self.workspace, self.model_name, self.index_name = workspace, model_name, index_name
        self._held: dict[str, HeldIndex] = {row.name: self.load_held(row) for row in rows}
        self._vectors: ServedVectors | None = None  # the stored vectors, loaded on first need
        self._vectors_lock = threading.Lock()
        self._rows: Rows = KnownRows()  # rows known without asking the catalog (the live catalog keeps them)
        self._generation = 0  # bumped by every publish

    @property
    def kind(self) -> str:
        return self.held().kind

    @property
    def index(self) -> Any:
        """The default index (a :class:`indexer.core.segments.SegmentedIndex`: its file's index, sealed, and the
        changes since)."""
        return self.held().index

    def indexes(self) -> list[dict]:
        """``[{"name", "kind", "model", "ntotal", "dim"}]`` of the held indexes, the default first."""
        held = self._held
        return [held[name].describe() for name in sorted(held, key=lambda n: (n != self.index_name, n))]

    def held(self, index_name: str | None = None) -> HeldIndex:
        """The published index called ``index_name`` (default: the default index); NotFoundError otherwise."""
        held = self._held
        name = index_name or self.index_name
        if name not in held:
            known = ", ".join(sorted(held)) or "none"
            raise NotFoundError(f"index {name!r} is not served (served: {known})")
        return held[name]

    def held_names(self) -> list[str]:
        """The names of the held indexes."""
        return list(self._held)

    def load_held(self, row: ArtifactRow) -> HeldIndex:
        """Load the index of catalog row ``row`` (not yet published)."""
        from indexer.api.registry.index_files import file_signature, load_segmented
        from indexer.core.index_io import index_paths, load_index

        path = index_paths(self.workspace.resolve(row.path))[0]
        signature = file_signature(path)
        check_kind_device(row.kind)  # before reading the file: a gpu-flat index without a GPU is refused at once
        index, sidecar = load_index(path)
        return HeldIndex(row.name, row.kind, row.model_name, path, load_segmented(path, index, sidecar), sidecar,
                         row.params, signature, device_copy(row.kind, index))

    # -- publishing (the live catalog's writes) --------------------------------------------------------------

    def publish(self, held: HeldIndex) -> None:
        """Hold ``held`` in place of the index of that name (searches that started keep the one they had)."""
        self._held = {**self._held, held.name: held}
        self._generation += 1

    def unpublish(self, name: str) -> None:
        """Stop holding index ``name``."""
        self._held = {n: h for n, h in self._held.items() if n != name}
        self._generation += 1

    def publish_vectors(self, vectors: ServedVectors) -> None:
        """Use ``vectors`` as the model's stored vectors of ok catalog images (for ids and "qe")."""
        self._vectors = vectors
        self._generation += 1

    def publish_rows(self, rows: Rows) -> None:
        """Use ``rows`` (id -> (path, label) of ok catalog images) before asking the catalog."""
        self._rows = rows
        self._generation += 1

    def forget_selections(self) -> None:
        """Drop the kept filter selections (the catalog's fields changed)."""
        self._generation += 1

    @property
    def rows(self) -> Rows:
        """The rows known without asking the catalog."""
        return self._rows

    def served_vectors(self) -> ServedVectors:
        """The model's stored vectors of ok catalog images (loaded from the store on first need)."""
        with self._vectors_lock:
            if self._vectors is None:
                from indexer.api.registry.indexes import catalog_vectors

                self._vectors = ServedVectors.from_store(*catalog_vectors(self.workspace, self.model_name, mmap=True))
            return self._vectors
