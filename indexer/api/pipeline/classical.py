"""The classical baseline as a model: SIFT-VLAD fitted on the catalog, registered like a trained network.

"Training" fits a k-means codebook and a PCA-whitening on the labelled images outside the test
split (train + val); no labels are used. The model's query path (:mod:`models.embedders`) needs
no torch.
"""

from __future__ import annotations

import shutil
import time

from indexer.api.pipeline.training import HELD_OUT_SPLIT, TrainOutcome
from indexer.api.registry.images import is_imported
from indexer.api.workspace import Workspace, check_artifact_name
from indexer.core.errors import InputError

SIFT_VLAD = "sift-vlad"


def train_sift_vlad(
    workspace: Workspace,
    *,
    name: str | None = None,
    codebook: int = 64,
    dim: int = 128,
    image_size: int | None = None,
    step: int | None = None,
    patch: int | None = None,
    seed: int = 0,
    whitening: float | None = None,
    progress: bool = True,
) -> TrainOutcome:
    """Fit SIFT-VLAD (``codebook`` centroids, PCA to ``dim``; ``image_size``, ``step``, ``patch`` and ``whitening``
    default to :class:`models.sift_vlad.SiftVladSpec`'s measured ones) on every catalog image outside the test
    split, save it under ``models/NAME/`` and register it (kind ``sift-vlad``)."""
    from models.errors import ImageError
    from models.sift_vlad import SiftVladSpec, fit_sift_vlad, open_image

    name = check_artifact_name("model", name or SIFT_VLAD)
    chosen = {"image_size": image_size, "step": step, "patch": patch, "whitening": whitening}
    spec = SiftVladSpec(codebook=codebook, dim=dim, seed=seed,
                        **{key: value for key, value in chosen.items() if value is not None})
    with workspace.catalog(write=True) as catalog:
        rows = [row for row in catalog.images() if row.split != HELD_OUT_SPLIT and not is_imported(row)]
    if not rows:
        raise InputError("the catalog has no images outside the test split to fit sift-vlad on: "
                         "run 'indexer ingest DIR' first")
    started = time.perf_counter()
    images, notes = [], []
    for row in rows:
        try:
            images.append(open_image(row.path, spec))  # as the embedder
        except ImageError as exc:
            notes.append(f"skipped: {exc}")
    model = fit_sift_vlad(images, spec, progress=progress)
    out_dir = workspace.models_dir / name
    path = model.save(out_dir / "sift-vlad.npz")
    seconds = time.perf_counter() - started
    store_dir = workspace.embeddings_dir / name
    if store_dir.exists():  # vectors of the previous fit no longer describe this model
        shutil.rmtree(store_dir)
    with workspace.catalog(write=True) as catalog:
        catalog.register_model(
            name=name, kind=SIFT_VLAD,
            params={"embedder": SIFT_VLAD, "sift_vlad": workspace.relative(path), "spec": spec.to_dict(),
                    "fit_images": len(images), "fit_splits": "all but test"},
            metrics={"fit_seconds": seconds},
            path=workspace.relative(path), dim=model.dim,
        )
    return TrainOutcome(
        name=name, checkpoint=path, metrics={"fit_seconds": seconds}, epochs_run=0, seconds=seconds,
        train_images=len(images), val_images=0, val_source="none: the codebook and PCA use no labels",
        notes=notes[:20],
    )
