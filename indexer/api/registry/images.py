"""What the catalog records of images: which rows are imported vectors (no image file), and the row a face serves.

``indexer import`` catalogues rows whose ``path`` is any unique string, not a file. They are marked by
``format = "external"`` (a real image's format is what Pillow names it: PNG, JPEG, ...) and a content hash
made from the path (``sha256("external:" + path)``), so the duplicate check of ingest never matches a real file.
Image models never embed them; only the external model they were imported into holds their vectors.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path

from indexer.api.workspace import Workspace
from indexer.core.errors import NotFoundError
from indexer.datasets.folders import has_image_extension
from storage.catalog import ArtifactRow, ImageRow

IMPORTED_FORMAT = "external"
HASH_PREFIX = "external:"

__all__ = ["IMPORTED_FORMAT", "imported_sha256", "is_imported", "rows_to_embed", "served_image"]


def imported_sha256(path: str) -> str:
    """The catalog's content hash of an imported row: the SHA-256 of ``"external:" + path`` (64 hex digits)."""
    return hashlib.sha256((HASH_PREFIX + path).encode("utf-8")).hexdigest()


def is_imported(row: ImageRow) -> bool:
    """True for a row ``indexer import`` catalogued (a vector with no image file behind it)."""
    return row.format == IMPORTED_FORMAT and row.sha256 == imported_sha256(row.path)


def rows_to_embed(model: ArtifactRow, rows: Iterable[ImageRow]) -> list[ImageRow]:
    """The rows of ``rows`` that ``model`` can embed: none for an external model (its vectors are imported),
    every row but imported vectors for an image model (they have no image file to open)."""
    from models.embedders import EXTERNAL, embedder_kind

    if embedder_kind(model.params) == EXTERNAL:
        return []
    return [row for row in rows if not is_imported(row)]


def served_image(workspace: Workspace, image_id: int) -> ImageRow:
    """The catalog row of image ``image_id`` whose file a face may serve (``GET /images/{id}``).

    NotFoundError when there is no such row, when its file is gone, or when it is an imported vector with no
    image file behind it (the message says so and names the model that holds it). An imported row is served
    only when its path names an existing file with an image suffix (.jpg, .png, ...): its path came from a
    file of vectors, not from ingest's decoding, so it must not open any other file to the service's clients.
    """
    from models.embedders import EXTERNAL

    with workspace.catalog() as catalog:
        row = catalog.images_by_ids([image_id]).get(int(image_id))
        models = [model.name for model in catalog.models() if model.params.get("embedder") == EXTERNAL]
    if row is None:
        raise NotFoundError(f"no image with id {image_id} in the catalog")
    if is_imported(row):
        if Path(row.path).is_file() and has_image_extension(row.path):
            return row
        holder = _holder(workspace, row.id, models)
        raise NotFoundError(f"image {image_id} is an imported vector (model {holder}): it has no image file")
    if not Path(row.path).is_file():
        raise NotFoundError(f"image {image_id}: its file {row.path} is gone")
    return row


def _holder(workspace: Workspace, image_id: int, models: list[str]) -> str:
    """The name of the external model whose store holds ``image_id`` ('?' when none does: an interrupted import)."""
    from models.embedding_store import EmbeddingStore

    for name in models:
        directory = workspace.embeddings_dir / name
        if directory.is_dir() and EmbeddingStore(directory).lookup([image_id])[0].any():
            return repr(name)
    return "?"
