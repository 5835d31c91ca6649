"""Model operations: train on the catalog's labelled images, embed the catalog."""

from __future__ import annotations

import dataclasses
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from indexer.api.registry.images import is_imported, rows_to_embed
from indexer.api.workspace import Workspace, check_artifact_name
from indexer.core.errors import InputError
from indexer.core.files import copy_file, write_json
from models.config import (
    LABELS_CATALOG,
    LABELS_NONE,
    LOSSES,
    MINERS,
    SeedPaths,
    TrainConfig,
    config_from_yaml,
)
from models.device_decode import DECODE_MODES
from storage.catalog import ArtifactRow, ImageRow

if TYPE_CHECKING:
    from models.embed import EmbedReport

DEFAULT_TRAIN_SPLITS = TrainConfig().train_splits
HELD_OUT_SPLIT = "test"
DEFAULT_MODEL_NAME = TrainConfig().name  # replaced by the network's name when none is given
EMBED_ENGINES = ("local", "onnx", "ray")
EMBED_DECODES = DECODE_MODES  # where JPEGs are decoded for catalog embedding (models.device_decode)

__all__ = ["EMBED_DECODES", "EMBED_ENGINES", "LOSSES", "MINERS", "TrainOutcome", "derive_model", "embed", "train", "train_config"]


def train_config(config_file: str | None = None, **overrides: Any) -> tuple[TrainConfig, SeedPaths]:
    """The training config from a YAML file (ours or the seed project's) and flag overrides (None: unset).

    The model is named after its network unless a name is given.
    """
    config, seed_paths = config_from_yaml(config_file, overrides)
    if overrides.get("name") is None and config.name == DEFAULT_MODEL_NAME:
        config = dataclasses.replace(config, name=config.network)
    return config, seed_paths


@dataclass
class TrainOutcome:
    """What :func:`train` did: model ``name``, its ``checkpoint``, validation ``metrics`` (precision_at_1,
    map_at_r, ...), ``epochs_run`` in ``seconds``, the image counts, and ``notes`` worth showing."""

    name: str
    checkpoint: Path
    metrics: dict
    epochs_run: int
    seconds: float
    train_images: int
    val_images: int
    val_source: str
    notes: list[str] = field(default_factory=list)


def train(
    workspace: Workspace, config: TrainConfig, seed_paths: SeedPaths | None = None, *, progress: bool = True
) -> TrainOutcome:
    """Train ``config`` on the catalog, register it, and drop embeddings of an older model of that name.

    With the default ``train_splits`` every split but ``test`` is trained on (images with no
    split included). Validation uses the ``val`` split when it was not trained on, otherwise a
    seeded hold-out of the training images.

    ``config.labels`` "auto" trains on the labelled images when there are two labels of two images, else
    without labels; "none" learns from every image alone (:mod:`models.label_free`); ``config.epochs`` 0
    fits a PCA-whitening on the images and trains nothing (:mod:`models.pretrained`). The outcome's notes
    say which labels were used and how many images were left out.
    """
    from models.train import train_model

    check_artifact_name("model", config.name)
    with workspace.catalog(write=True) as catalog:
        every = [row for row in catalog.images() if not is_imported(row)]  # imported vectors have no image
    images = [row for row in every if _is_training_split(row, config)]
    if not images:
        raise InputError(f"the catalog has no images in splits {_split_names(config)} to train on: "
                         "run 'indexer ingest DIR' first")
    config, label_notes = _choose_labels(config, images)
    if config.untrained or config.labels == LABELS_NONE:  # the images alone, labelled or not
        train_rows, val_rows = images, []
    else:
        train_rows = [row for row in images if row.label_id is not None]
        val_rows = [row for row in every if row.label_id is not None and row.split == "val"
                    and "val" not in _trained_splits(train_rows)]
    out_dir = workspace.models_dir / config.name
    result = train_model(config, _items(train_rows), _items(val_rows), out_dir, progress=progress)
    store_dir = workspace.embeddings_dir / config.name
    if store_dir.exists():  # vectors of the previous weights no longer describe this model
        shutil.rmtree(store_dir)
    with workspace.catalog(write=True) as catalog:
        catalog.register_model(
            name=config.name,
            kind=result.config.network,
            params={"config": result.config.to_dict(), "preprocess": result.preprocess.to_dict(),
                    "onnx": workspace.relative(result.onnx_path)},
            metrics=result.metrics,
            path=workspace.relative(result.checkpoint_path),
            dim=result.config.embedding_dim,
        )
    notes = label_notes + _honour_seed_paths(seed_paths, result.checkpoint_path)
    return TrainOutcome(
        name=config.name,
        checkpoint=result.checkpoint_path,
        metrics=result.metrics,
        epochs_run=result.epochs_run,
        seconds=result.seconds,
        train_images=result.num_train_items,
        val_images=result.num_val_items,
        val_source=_validation(config, bool(val_rows)),
        notes=notes,
    )


def embed(workspace: Workspace, model_name: str, *, batch_size: int = 128, progress: bool = True,
          engine: str = "local", address: str | None = None, actors: int | None = None,
          decode: str = "cpu") -> EmbedReport:
    """Embed every ok catalog image the model's store lacks.

    ``engine`` ``"local"`` embeds in this process with the torch checkpoint (on the GPU when there is one);
    ``"onnx"`` in this process with the model's ONNX export, the query path's runtime (on a CPU several times
    the local engine's rate; vectors equal to the torch ones to cosine 0.9999); ``"ray"`` runs a Ray Data job on the cluster at ``address``
    (``auto``, ``ray://HOST:PORT``; None starts a local Ray) with ``actors`` model actors
    (:func:`indexer.api.pipeline.ray_embed.embed_on_ray`). ``decode`` "device" (the local engine, a network
    model): JPEGs are decoded on the model's device, nvJPEG on a GPU (:mod:`models.device_decode`).

    Returns an :class:`models.embed.EmbedReport`: ``embedded``, ``skipped_existing``, ``failed``
    (``(id, path, reason)`` of files that broke since ingestion; they are marked ``error``), ``images_per_s``.

    Imported vectors (``indexer import``) have no image file: an image model leaves those rows out, and an
    external model has nothing to embed (a report of 0 embedded, with a note saying so).
    """
    from models.embed import EmbedReport, embed_items
    from models.embedders import EXTERNAL, ONNX, embed_with, embedder_kind, open_embedder
    from models.embedding_store import EmbeddingStore

    if engine not in EMBED_ENGINES:
        raise InputError(f"engine: {engine!r} is invalid; expected one of {', '.join(EMBED_ENGINES)}")
    if engine != "ray" and (address is not None or actors is not None):
        raise InputError("address and actors apply to the ray engine (--engine ray)")
    if decode not in DECODE_MODES:
        raise InputError(f"decode: {decode!r} is invalid; expected one of {', '.join(DECODE_MODES)}")
    with workspace.catalog(write=True) as catalog:
        model = catalog.model(model_name)
        rows = catalog.images()
    store_dir = workspace.embeddings_dir / model_name
    if embedder_kind(model.params) == EXTERNAL:
        stored = len(EmbeddingStore(store_dir)) if store_dir.is_dir() else 0
        return EmbedReport(0, stored, notes=[
            f"model {model_name!r} holds imported vectors: there is nothing to embed (add vectors with "
            f"'indexer import FILE --model {model_name}')"])
    if decode != "cpu" and (engine != "local" or embedder_kind(model.params) != ONNX):
        raise InputError(f"--decode {decode} applies to --engine local with a network model; model "
                         f"{model_name!r} ({model.kind}) was asked for the {engine} engine")
    store = EmbeddingStore(store_dir)
    items = [(row.id, row.path) for row in rows_to_embed(model, rows)]
    with store.locked():  # a second embedder of this model (embed, build) waits, then finds the vectors there
        if engine == "ray":
            from indexer.api.pipeline.ray_embed import embed_on_ray

            report = embed_on_ray(workspace, model, items, store, address=address, actors=actors,
                                  batch_size=batch_size, progress=progress)
        elif engine == "local" and embedder_kind(model.params) == ONNX:  # the torch model embeds the catalog; its ONNX export, queries
            report = embed_items(workspace.resolve(model.path), items, store, batch_size=batch_size,
                                 progress=progress, decode=decode)
        else:
            embedder = open_embedder(model.params, workspace.resolve, threads=os.cpu_count() or 1)
            report = embed_with(embedder, items, store, batch_size=batch_size, progress=progress)
    if report.failed:  # a file that broke after ingestion: record it, so builds stop retrying it
        with workspace.catalog(write=True) as catalog:
            for image_id, _path, reason in report.failed:
                catalog.update_image(image_id, status="error", error=f"at embedding: {reason}")
    return report


def derive_model(workspace: Workspace, source: str, name: str, *, tta: str) -> ArtifactRow:
    """Register model ``name``: trained model ``source``'s weights with test-time augmentation ``tta`` ("none"
    or "flip") in its preprocessing, so catalog embedding and queries both apply it. No training runs; the
    new model has no vectors yet (``embed`` it, then ``build``). Its files live in ``models/NAME/``; a model
    already called ``name`` is replaced and its vectors dropped, as :func:`train` does.

    Only learned networks can be derived: sift-vlad has no network outputs to average (InputError).
    """
    from models.checkpoint import write_variant
    from models.embedders import ONNX, embedder_kind
    from models.preprocess import TTA_MODES

    check_artifact_name("model", name)
    if tta not in TTA_MODES:
        raise InputError(f"tta: {tta!r} is invalid; expected one of {', '.join(TTA_MODES)}")
    if name == source:
        raise InputError(f"the derived model needs a name other than its source's ({source!r})")
    with workspace.catalog() as catalog:
        parent = catalog.model(source)
    if embedder_kind(parent.params) != ONNX:
        raise InputError(f"model {source!r} is {parent.kind}, not a network: test-time flip averages a network's "
                         "outputs on an image and its mirror, so it applies to learned models only")
    parent_onnx = workspace.resolve(parent.params["onnx"])
    if not parent_onnx.is_file():
        raise InputError(f"model {source!r} has no ONNX file at {parent_onnx}; train it again")
    out_dir = workspace.models_dir / name
    checkpoint = write_variant(workspace.resolve(parent.path), out_dir / "model.pt", name=name, tta=tta)
    onnx_path = out_dir / "model.onnx"
    copy_file(parent_onnx, onnx_path)  # the network itself is unchanged
    preprocess = {**parent.params["preprocess"], "tta": tta}
    config = {**parent.params["config"], "name": name, "tta": tta}
    sidecar = {"config": config, "preprocess": preprocess, "derived_from": source}
    write_json(out_dir / "config.json", sidecar, default=str)
    store_dir = workspace.embeddings_dir / name
    if store_dir.exists():  # vectors of an older model of this name no longer describe it
        shutil.rmtree(store_dir)
    with workspace.catalog(write=True) as catalog:
        return catalog.register_model(
            name=name, kind=parent.kind,
            params={**parent.params, "config": config, "preprocess": preprocess,
                    "onnx": workspace.relative(onnx_path), "derived_from": source},
            metrics={},  # the source's validation figures were measured without this preprocessing
            path=workspace.relative(checkpoint), dim=parent.dim,
        )


def _choose_labels(config: TrainConfig, images: list[ImageRow]) -> tuple[TrainConfig, list[str]]:
    """``config`` with its ``labels`` mode decided for these training ``images``, and the lines to tell the user.

    "auto" means the catalog's labels when they are usable (two classes of two images), else none; labels
    "catalog" without usable labels is the error that says how to go on without them.
    """
    from models.data import usable_labels

    if config.untrained:
        return dataclasses.replace(config, labels=LABELS_NONE), []
    labelled = [row.label_id for row in images if row.label_id is not None]
    usable = usable_labels(labelled)
    if config.labels == LABELS_NONE:
        return config, []
    if not usable and (config.labels == LABELS_CATALOG or not config.pretrained_backbone):
        raise InputError(
            f"the catalog has no labels to train {config.network!r} on: {len(labelled)} of the {len(images)} images "
            f"in splits {_split_names(config)} are labelled, and training with labels needs two labels of two "
            "images each. Without labels: 'indexer train --network mobilenet_v2 --weights imagenet --labels none' "
            "learns from the images alone, '--epochs 0' uses the pretrained network as it is, '--network sift-vlad' "
            "fits the classical baseline; or label the images: 'indexer ingest DIR --labels folders' (one sub-folder "
            "per label) or '--labels FILE.csv' (filename,label)")
    if not usable:
        return dataclasses.replace(config, labels=LABELS_NONE), [
            f"no usable labels ({len(labelled)} of {len(images)} images labelled, two labels of two images needed): "
            "training without labels (--labels none)"]
    notes = []
    if len(labelled) < len(images):
        notes.append(f"trained on the {len(labelled)} labelled images; {len(images) - len(labelled)} unlabelled "
                     "images left out ('--labels none' learns from all of them)")
    return dataclasses.replace(config, labels=LABELS_CATALOG), notes


def _validation(config: TrainConfig, has_val_rows: bool) -> str:
    if config.untrained:
        return "none: nothing is trained, and the PCA uses no labels"
    if config.labels == LABELS_NONE:
        return "none: trained without labels, the last epoch is kept"
    if has_val_rows:
        return "val split"
    if config.holdout_fraction > 0:
        return "seeded hold-out of the training images"
    return "none: no hold-out, the last epoch is kept"


def _is_training_split(row: ImageRow, config: TrainConfig) -> bool:
    if tuple(config.train_splits) == DEFAULT_TRAIN_SPLITS:
        return row.split != HELD_OUT_SPLIT
    return row.split in config.train_splits


def _trained_splits(rows: list[ImageRow]) -> set[str | None]:
    return {row.split for row in rows}


def _split_names(config: TrainConfig) -> str:
    if tuple(config.train_splits) == DEFAULT_TRAIN_SPLITS:
        return f"(all but {HELD_OUT_SPLIT!r})"
    return ", ".join(config.train_splits)


def _items(rows: list[ImageRow]) -> list[tuple[str, int]]:
    return [(row.path, row.label_id) for row in rows]


def _honour_seed_paths(seed_paths: SeedPaths | None, checkpoint: Path) -> list[str]:
    """The seed project's output keys: copy the checkpoint where it asked; explain the rest."""
    if seed_paths is None:
        return []
    notes = list(seed_paths.notes)
    if seed_paths.save_network_path:
        target = Path(seed_paths.save_network_path).expanduser()
        target.parent.mkdir(parents=True, exist_ok=True)
        copy_file(checkpoint, target)
        notes.append(f"checkpoint also copied to {target} (train.save_network_path)")
    if seed_paths.labels_fpath:
        notes.append("general.labels_fpath ignored: labels come from the catalog ('indexer ingest --labels FILE.csv')")
    if seed_paths.embeddings_output_path:
        notes.append("train.embeddings_output_path ignored: 'indexer embed' stores embeddings in the workspace")
    return notes
