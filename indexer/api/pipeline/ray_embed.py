"""``embed --engine ray``: the catalog's missing images embedded by a Ray Data job (:mod:`models.ray_embed`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from indexer.api.workspace import Workspace
from indexer.core.errors import InputError, MissingDependencyError

if TYPE_CHECKING:
    from models.embed import EmbedReport
    from models.embedding_store import EmbeddingStore
    from storage.catalog import ArtifactRow

RAY_HELP = 'embedding on Ray needs Ray Data: pip install "indexer[scale]"'


def import_ray():
    """The ``ray`` module, or :class:`MissingDependencyError` saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401  (the extra is ray[data]; plain ray lacks pandas/pyarrow)
    except ImportError:
        raise MissingDependencyError(RAY_HELP) from None
    return ray


def embed_on_ray(workspace: Workspace, model: ArtifactRow, items: Sequence[tuple[int, str]], store: EmbeddingStore,
                 *, address: str | None = None, actors: int | None = None, batch_size: int = 128,
                 progress: bool = True) -> EmbedReport:
    """Embed the ``items`` ``store`` lacks with ``model`` on Ray: the cluster at ``address``, or a local Ray
    (started here and stopped after) when None. Image and model files must be readable at the same paths
    on every node."""
    ray = import_ray()
    from models import ray_embed
    from models.embedders import ONNX, embedder_file, embedder_kind, open_embedder

    if actors is not None and actors < 1:
        raise InputError(f"actors: {actors!r} is invalid; expected at least 1")
    stored = embedder_file(model.params)
    actor_model = ray_embed.ActorModel(
        params=model.params,
        files={stored: str(workspace.resolve(stored))},
        checkpoint=str(workspace.resolve(model.path)) if embedder_kind(model.params) == ONNX else None,
    )
    dim = open_embedder(model.params, workspace.resolve).dim  # a missing or broken model fails here, in one line
    try:
        started = ray_embed.start_ray(address)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        where = f"the Ray cluster at {address!r}" if address else "a local Ray"
        raise InputError(f"cannot start or reach {where}: {_first_lines(exc)}") from None
    try:
        return ray_embed.embed_on_ray(actor_model, dim, items, store, actors=actors, batch_size=batch_size,
                                      progress=progress)
    finally:
        if started:
            ray.shutdown()


def _first_lines(exc: BaseException) -> str:
    """The exception's first line, and its cause's (Ray's "Failed to connect" hides why: a token, a port)."""
    lines = [str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__]
    cause = exc.__cause__
    if cause is not None and str(cause).strip():
        lines.append(str(cause).strip().splitlines()[0])
    return " (".join(lines) + (")" if len(lines) > 1 else "")
