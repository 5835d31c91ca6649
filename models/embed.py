"""Catalog embedding: images → a trained model → an :class:`EmbeddingStore`, resumable and failure-tolerant."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from models.device_decode import DeviceBatch, DeviceDecoder, check_decode, worker_load
from models.embedding_store import EmbeddingStore
from models.errors import ImageError, ModelError
from models.pending_rows import PendingRows
from models.preprocess import PreprocessSpec, load_and_preprocess, load_square_pixels, normalise_table

FLUSH_SECONDS = 5.0  # embedded rows are written to the store at least this often: a killed run loses this much


@dataclass
class EmbedReport:
    """Outcome of :func:`embed_items`; ``failed`` holds ``(id, path, reason)``; ``notes``: lines worth showing.
    ``startup_seconds``: from the call until the first batch's vectors were on the host (model load, workers
    starting, first decode); ``steady_images_per_s``: the images after that over the seconds after that (0.0
    when there was one batch); ``images_per_s`` counts the whole run."""

    embedded: int
    skipped_existing: int
    failed: list[tuple[int, str, str]] = field(default_factory=list)
    seconds: float = 0.0
    images_per_s: float = 0.0
    notes: list[str] = field(default_factory=list)
    startup_seconds: float = 0.0
    steady_images_per_s: float = 0.0


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
    """(id, path) → (pixels or None, id, path, reason). Pixels: (S, S, 3) uint8 when ``raw`` (normalised on
    the model's device by :class:`_DeviceInput`), else (3, S, S) float32 normalised here; with ``decode``
    "device", a JPEG's bytes instead (:func:`models.device_decode.worker_load`)."""

    def __init__(self, items: Sequence[tuple[int, str]], spec: PreprocessSpec, raw: bool,
                 decode: str = "cpu") -> None:
        self.items, self.spec, self.raw, self.decode = list(items), spec, raw, decode

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int):
        item_id, path = self.items[index]
        try:
            load = worker_load if self.decode == "device" else load_square_pixels if self.raw else load_and_preprocess
            return load(path, self.spec), item_id, path, ""
        except ImageError as exc:
            return None, item_id, path, str(exc)


class _Collate:
    """Stack the decoded arrays into one batch: raw, (n, S, S, 3) uint8; else (n * spec.n_views, 3, S, S)
    float32, the mirrors after the images when the spec flips (:meth:`PreprocessSpec.views`); with ``decode``
    "device", a :class:`models.device_decode.DeviceBatch`; a class, so DataLoader workers can pickle it."""

    def __init__(self, spec: PreprocessSpec, raw: bool, decode: str = "cpu") -> None:
        self.spec, self.raw, self.decode = spec, raw, decode

    def __call__(self, batch):
        import torch

        ok = [(array, item_id) for array, item_id, _, _ in batch if array is not None]
        failed = [(int(item_id), str(path), reason) for array, item_id, path, reason in batch if array is None]
        if self.decode == "device":
            return _device_batch(batch), np.asarray([i for _, i in ok], dtype=np.int64), failed
        images = None
        if ok:
            stacked = np.stack([a for a, _ in ok])
            images = torch.from_numpy(stacked if self.raw else self.spec.views(stacked))
        return images, np.asarray([i for _, i in ok], dtype=np.int64), failed


def _device_batch(batch) -> DeviceBatch | None:
    """The workers' items of one batch as a :class:`DeviceBatch` (None when every item failed)."""
    out = DeviceBatch()
    for loaded, item_id, path, _ in batch:
        if loaded is not None:
            out.add(loaded, item_id, path)
    return out if len(out) else None


class _DeviceInput:
    """A loader batch → the network's input on ``device``, (n * n_views, 3, S, S) float32 channels-last. A raw
    (n, S, S, 3) uint8 batch travels as a quarter of the float bytes; on the device its mirrors go after the
    images (as :meth:`PreprocessSpec.views` lays them out) and each value is looked up in
    :func:`normalise_table`, so the input equals :func:`load_and_preprocess`'s bit for bit. A float batch
    (normalised in the workers) only moves."""

    def __init__(self, spec: PreprocessSpec, device) -> None:
        import torch

        self.device, self.flip = device, spec.n_views == 2
        self.table = torch.from_numpy(normalise_table(spec).reshape(-1)).to(device)
        self.offsets = torch.arange(3, dtype=torch.int32, device=device) * 256  # channel c's values: c * 256 on

    def __call__(self, images):
        import torch

        from models.device import channels_last

        images = images.to(self.device, non_blocking=True)
        if images.dtype == torch.uint8:
            if self.flip:
                images = torch.cat([images, images.flip(2)])
            images = self.table[images.int() + self.offsets].permute(0, 3, 1, 2)  # NHWC values: channels-last
        return channels_last(images)


def default_workers(device) -> int:
    """DataLoader workers when none are asked for: every core this process may use on CUDA (the decoders
    feed the device), 1 on the CPU (the forward needs the cores)."""
    if not str(device or "cpu").startswith("cuda"):
        return 1
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def embedding_loader(items: Sequence[tuple[int, str]], spec: PreprocessSpec, *, batch_size: int = 128,
                     num_workers: int | None = None, device=None, raw: bool | None = None, decode: str = "cpu"):
    """The DataLoader :func:`embed_model` reads: batches of (images or None, (n,) int64 ids, failed
    ``(id, path, reason)``), images as :class:`_Collate` makes them (``raw`` None: raw on CUDA; ``decode``
    "device": JPEGs as bytes, for :class:`models.device_decode.DeviceDecoder`, the rest as raw pixels);
    workers (None): :func:`default_workers`; pinned memory on CUDA."""
    from torch.utils.data import DataLoader

    cuda = str(device or "cpu").startswith("cuda")
    raw = cuda if raw is None else raw
    raw = raw or check_decode(decode) == "device"  # the worker-decoded pixels join the device-decoded ones
    workers = default_workers(device) if num_workers is None else num_workers
    return DataLoader(_ItemDataset(items, spec, raw, decode), batch_size=batch_size, shuffle=False,
                      collate_fn=_Collate(spec, raw, decode), num_workers=workers, pin_memory=cuda)


def embed_items(checkpoint_path: str | os.PathLike[str], items: Sequence[tuple[int, str]], store: EmbeddingStore,
                *, batch_size: int = 128, progress: bool = True, num_workers: int | None = None,
                flush_seconds: float = FLUSH_SECONDS, device: str = "auto", decode: str = "cpu") -> EmbedReport:
    """Embed the ``(id, path)`` items the store lacks with the checkpoint's model (:func:`embed_model`;
    ``decode`` "device": JPEGs decoded on the model's device, :mod:`models.device_decode`)."""
    check_decode(decode)
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
                       flush_seconds=flush_seconds, device=torch_device, started=started, decode=decode)


def embed_model(model, spec: PreprocessSpec, items: Sequence[tuple[int, str]], store: EmbeddingStore, *,
                batch_size: int = 128, progress: bool = True, num_workers: int | None = None,
                flush_seconds: float = FLUSH_SECONDS, device=None, raw: bool | None = None,
                started: float | None = None, decode: str = "cpu") -> EmbedReport:
    """Embed the ``(id, path)`` items the store lacks with ``model`` (a torch module on ``device``, its outputs
    (m, D)), appending (n, D) float32 rows to the store at least every ``flush_seconds`` (and at the end) so a
    killed run loses little; unreadable images are reported in ``failed``, not fatal.

    The device never waits for the host: each batch's outputs travel to the host (pinned memory, an event)
    while the next batch runs, and are stored one batch later; the first batch is waited for, to time the
    start-up. ``raw`` (None: on CUDA): the workers send uint8 pixels, normalised on the device
    (:class:`_DeviceInput`); the vectors are the same either way. ``decode`` "device": the workers send JPEGs'
    bytes, decoded on the device (:mod:`models.device_decode`; vectors within cosine 0.999 of the CPU
    loader's). ``started``: the ``time.perf_counter()`` reading the report's times count from (default: this
    call)."""
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
    loader = embedding_loader(todo, spec, batch_size=batch_size, num_workers=num_workers, device=torch_device,
                              raw=raw, decode=decode)
    to_input = _DeviceInput(spec, torch_device)
    decoder = DeviceDecoder(spec, torch_device) if decode == "device" else None
    failed: list[tuple[int, str, str]] = []
    pending = PendingRows(store)
    bar = tqdm(total=len(todo), desc="embed", unit="img", disable=not progress)
    first_at, first_rows, flushed_at = None, 0, time.perf_counter()
    in_flight = None  # (ids, host outputs, event): the batch whose outputs are on their way to the host

    def land(batch) -> None:
        ids, outputs, event = batch
        if event is not None:
            event.synchronize()
        pending.add(ids, spec.merge(outputs.numpy()))

    with torch.inference_mode():  # fp32: bf16 autocast gave min cosine 0.9953 to the ONNX query path (H200)
        for images, ids, bad in loader:
            failed.extend(bad)
            seen = len(ids) + len(bad)
            if isinstance(images, DeviceBatch):
                images, ids, more = decoder(images)
                failed.extend(more)
            if images is not None:
                batch = (ids, *_to_host(model(to_input(images)).float()))
                if in_flight is not None:
                    land(in_flight)
                in_flight = batch
                if first_at is None:  # waited for: the start-up ends with the first vectors on the host
                    land(in_flight)
                    in_flight, first_at, first_rows = None, time.perf_counter(), pending.added
            bar.update(seen)
            if time.perf_counter() - flushed_at >= flush_seconds:
                pending.flush()
                flushed_at = time.perf_counter()
        if in_flight is not None:
            land(in_flight)
    pending.flush()
    bar.close()
    ended = time.perf_counter()
    seconds, embedded = ended - started, pending.added
    first_at = ended if first_at is None else first_at
    steady = (embedded - first_rows) / (ended - first_at) if embedded > first_rows and ended > first_at else 0.0
    return EmbedReport(embedded, len(items) - len(todo), failed, seconds, embedded / seconds if seconds else 0.0,
                       startup_seconds=first_at - started, steady_images_per_s=steady)


def _to_host(outputs):
    """Start moving (m, D) outputs to the host: (host tensor, event to wait on before reading it, or None).
    From CUDA the copy lands in pinned memory without blocking this thread; elsewhere it is done at once."""
    import torch

    if outputs.device.type != "cuda":
        return outputs.cpu(), None
    host = outputs.to("cpu", non_blocking=True)
    event = torch.cuda.Event()
    event.record()
    return host, event


def measure_loader_rate(items: Sequence[tuple[int, str]], spec: PreprocessSpec, *, batch_size: int = 128,
                        num_workers: int | None = None, device=None, raw: bool | None = None,
                        decode: str = "cpu") -> LoaderRate:
    """The decode-only rate: :func:`embedding_loader`'s batches read and dropped, nothing embedded (with
    ``decode`` "device", decoded on ``device`` too, waited for)."""
    started = time.perf_counter()
    first_at, first_images, images = 0.0, 0, 0
    decoder = DeviceDecoder(spec, device or "cpu") if decode == "device" else None
    for batch, ids, bad in embedding_loader(items, spec, batch_size=batch_size, num_workers=num_workers,
                                            device=device, raw=raw, decode=decode):
        if isinstance(batch, DeviceBatch):
            decoded, ids, more = decoder(batch)
            bad = bad + more
            _wait_for(decoded)
        images += len(ids) + len(bad)
        if not first_at:
            first_at, first_images = time.perf_counter(), images
    seconds = time.perf_counter() - started
    steady = seconds - (first_at - started)
    return LoaderRate(images, seconds, first_at - started,
                      (images - first_images) / steady if images > first_images and steady > 0 else 0.0)


def _wait_for(tensor) -> None:
    """Wait until a CUDA ``tensor``'s work is done (nothing to wait for elsewhere)."""
    if tensor is not None and tensor.device.type == "cuda":
        import torch

        torch.cuda.synchronize(tensor.device)


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
