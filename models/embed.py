"""Catalog embedding: images → a trained model → an :class:`EmbeddingStore`, resumable and failure-tolerant."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from models.embedding_store import EmbeddingStore, PendingRows
from models.errors import ImageError, ModelError
from models.preprocess import PreprocessSpec, load_and_preprocess


@dataclass
class EmbedReport:
    """Outcome of :func:`embed_items`; ``failed`` holds ``(id, path, reason)``; ``notes``: lines worth showing."""

    embedded: int
    skipped_existing: int
    failed: list[tuple[int, str, str]] = field(default_factory=list)
    seconds: float = 0.0
    images_per_s: float = 0.0
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LoaderRate:
    """What :func:`measure_loader_rate` saw: ``images`` decoded in ``seconds``, the first batch after
    ``startup_seconds`` (workers starting), the rest at ``steady_images_per_s`` (0.0 with one batch)."""

    images: int
    seconds: float
    startup_seconds: float
    steady_images_per_s: float

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds else 0.0


class _ItemDataset:
    """(id, path) → (array (3, S, S) float32 or None, id, path, reason)."""

    def __init__(self, items: Sequence[tuple[int, str]], spec: PreprocessSpec) -> None:
        self.items, self.spec = list(items), spec

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        item_id, path = self.items[index]
        try:
            return load_and_preprocess(path, self.spec), item_id, path, ""
        except ImageError as exc:
            return None, item_id, path, str(exc)


class _Collate:
    """Stack the decoded arrays into one batch: (n * spec.n_views, 3, S, S), the mirrors after the images
    when the spec flips (:meth:`PreprocessSpec.views`); a class, so DataLoader workers can pickle it."""

    def __init__(self, spec: PreprocessSpec) -> None:
        self.spec = spec

    def __call__(self, batch):
        import torch

        ok = [(array, item_id) for array, item_id, _, _ in batch if array is not None]
        failed = [(int(item_id), str(path), reason) for array, item_id, path, reason in batch if array is None]
        images = torch.from_numpy(self.spec.views(np.stack([a for a, _ in ok]))) if ok else None
        return images, np.asarray([i for _, i in ok], dtype=np.int64), failed


def embedding_loader(items: Sequence[tuple[int, str]], spec: PreprocessSpec, *, batch_size: int = 128,
                     num_workers: int | None = None, device=None):
    """The DataLoader :func:`embed_model` reads: batches of (images or None, (n,) int64 ids, failed
    ``(id, path, reason)``), images as :class:`_Collate` makes them; workers (None): min(8, cores) on CUDA,
    else 1; pinned memory on CUDA."""
    from torch.utils.data import DataLoader

    cuda = str(device or "cpu").startswith("cuda")
    if num_workers is None:
        num_workers = min(8, os.cpu_count() or 1) if cuda else 1
    return DataLoader(_ItemDataset(items, spec), batch_size=batch_size, shuffle=False, collate_fn=_Collate(spec),
                      num_workers=num_workers, pin_memory=cuda)


def embed_items(checkpoint_path: str | os.PathLike[str], items: Sequence[tuple[int, str]], store: EmbeddingStore,
                *, batch_size: int = 128, progress: bool = True, num_workers: int | None = None,
                flush_every: int = 4, device: str = "auto") -> EmbedReport:
    """Embed the ``(id, path)`` items the store lacks with the checkpoint's model (:func:`embed_model`)."""
    started = time.perf_counter()
    items = [(int(i), os.fspath(p)) for i, p in items]
    if not len(store.missing([i for i, _ in items])):  # don't pay for importing torch and loading the model
        return EmbedReport(0, len(items), [], time.perf_counter() - started, 0.0)

    from models.checkpoint import load_model
    from models.device import resolve_device

    torch_device = resolve_device(device)
    model, spec, meta = load_model(checkpoint_path, device=str(torch_device))
    if store.dim is not None and store.dim != meta.get("embedding_dim", store.dim):
        raise ModelError(f"store {store.directory} holds {store.dim}-dim vectors; model {checkpoint_path} "
                         f"makes {meta['embedding_dim']}-dim ones")
    return embed_model(model, spec, items, store, batch_size=batch_size, progress=progress, num_workers=num_workers,
                       flush_every=flush_every, device=torch_device, started=started)


def embed_model(model, spec: PreprocessSpec, items: Sequence[tuple[int, str]], store: EmbeddingStore, *,
                batch_size: int = 128, progress: bool = True, num_workers: int | None = None, flush_every: int = 4,
                device=None, started: float | None = None) -> EmbedReport:
    """Embed the ``(id, path)`` items the store lacks with ``model`` (a torch module on ``device``, its outputs
    (m, D)), appending (n, D) float32 rows every ``flush_every`` batches so a killed run loses little;
    unreadable images are reported in ``failed``, not fatal. ``started``: the ``time.perf_counter()`` reading
    the report's time counts from (default: this call)."""
    started = time.perf_counter() if started is None else started
    items = [(int(i), os.fspath(p)) for i, p in items]
    todo_ids = set(store.missing([i for i, _ in items]).tolist())
    todo = [item for item in items if item[0] in todo_ids]
    if not todo:
        return EmbedReport(0, len(items), [], time.perf_counter() - started, 0.0)

    import torch
    from tqdm import tqdm

    from models.device import channels_last

    torch_device = torch.device(device or "cpu")
    channels_last(model)
    loader = embedding_loader(todo, spec, batch_size=batch_size, num_workers=num_workers, device=torch_device)
    failed: list[tuple[int, str, str]] = []
    pending = PendingRows(store)
    bar = tqdm(total=len(todo), desc="embed", unit="img", disable=not progress)
    with torch.inference_mode():  # fp32: bf16 autocast gave min cosine 0.9953 to the ONNX query path (H200)
        for step, (images, ids, bad) in enumerate(loader, start=1):
            failed.extend(bad)
            if images is not None:
                outputs = model(channels_last(images.to(torch_device, non_blocking=True))).float().cpu().numpy()
                pending.add(ids, spec.merge(outputs))
            bar.update(len(ids) + len(bad))
            if step % flush_every == 0:
                pending.flush()
    pending.flush()
    bar.close()
    seconds = time.perf_counter() - started
    embedded = pending.added
    return EmbedReport(embedded, len(items) - len(todo), failed, seconds, embedded / seconds if seconds else 0.0)


def measure_loader_rate(items: Sequence[tuple[int, str]], spec: PreprocessSpec, *, batch_size: int = 128,
                        num_workers: int | None = None, device=None) -> LoaderRate:
    """The decode-only rate: :func:`embedding_loader`'s batches read and dropped, nothing embedded."""
    started = time.perf_counter()
    first_at, first_images, images = 0.0, 0, 0
    for _images, ids, bad in embedding_loader(items, spec, batch_size=batch_size, num_workers=num_workers,
                                             device=device):
        images += len(ids) + len(bad)
        if not first_at:
            first_at, first_images = time.perf_counter(), images
    seconds = time.perf_counter() - started
    steady = seconds - (first_at - started)
    return LoaderRate(images, seconds, first_at - started,
                      (images - first_images) / steady if images > first_images and steady > 0 else 0.0)


def measure_forward_rate(checkpoint_path: str | os.PathLike[str], batch_size: int = 128, n_batches: int = 5,
                         device: str = "auto") -> float:
    """Images/s of the bare model forward on random (batch_size, 3, S, S) float32 tensors (after one warm-up)."""
    import torch

    from models.checkpoint import load_model
    from models.device import channels_last, resolve_device

    torch_device = resolve_device(device)
    model, spec, _ = load_model(checkpoint_path, device=str(torch_device))
    channels_last(model)
    batch = channels_last(torch.randn(batch_size, 3, spec.image_size, spec.image_size, device=torch_device))
    cuda = torch_device.type == "cuda"
    with torch.inference_mode():  # fp32: bf16 autocast gave min cosine 0.9953 to the ONNX query path (H200)
        model(batch)
        if cuda:
            torch.cuda.synchronize()
        began = time.perf_counter()
        for _ in range(n_batches):
            model(batch)
        if cuda:
            torch.cuda.synchronize()
    return batch_size * n_batches / (time.perf_counter() - began)
