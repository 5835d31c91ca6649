"""The two epoch loops of :func:`models.train.train_model`: head-only on cached features, and end to end."""

from __future__ import annotations

import contextlib
import copy
import time

import numpy as np

from indexer.core.files import atomic_path
from models.data import ImageDataset, collate_skipping_failures
from models.device import channels_last
from models.ema import WeightAverage
from models.evaluation import retrieval_metrics
from models.features import cache_training_features, compute_features
from models.schedule import lr_schedule
from models.train_setup import batch_shape, optimizer_groups, selection_score


def fit_head_on_cached_features(model, loss_fn, miner, setup, train_items, train_labels, val_items, val_labels):
    """Backbone features computed once (clean + ``augment_views`` views), then many cheap head epochs."""
    import torch
    from pytorch_metric_learning.samplers import MPerClassSampler


    config, device = setup.config, setup.device
    model.backbone.requires_grad_(False)
    feats, labels = cache_training_features(
        model.backbone, train_items, train_labels, setup.spec, views=config.augment_views, device=device,
        batch_size=64, num_workers=setup.num_workers, generator=setup.generator, progress=setup.progress,
        policy=config.augment)
    if not val_items:  # no hold-out: nothing to validate, the last epoch is kept
        val_feats, val_lab = None, torch.zeros((0,), dtype=torch.int64)
    else:
        val_feats, val_lab = compute_features(model.backbone, ImageDataset(val_items, val_labels, setup.spec, False),
                                              device=device, batch_size=64, num_workers=setup.num_workers,
                                              generator=setup.generator, progress=setup.progress, desc="val features")
        if setup.spec.n_views > 1:  # test-time flip: validate on the mirrors too, appended as spec.views lays them out
            mirrored = ImageDataset(val_items, val_labels, setup.spec, False, mirror=True)
            val_feats = torch.cat([val_feats, compute_features(
                model.backbone, mirrored, device=device, batch_size=64, num_workers=setup.num_workers,
                generator=setup.generator, progress=setup.progress, desc="val features (mirrored)")[0]])
    feats, labels = feats.to(device), labels.to(device)
    val_feats = val_feats.to(device) if val_feats is not None else None
    p, k = batch_shape(config, labels.cpu().numpy())
    sampler = MPerClassSampler(labels.cpu().numpy(), m=k, batch_size=p * k,
                               length_before_new_iter=max(len(labels), p * k))

    def batches(_epoch: int):
        order = list(iter(sampler))
        for start in range(0, len(order), p * k):
            index = torch.as_tensor(order[start:start + p * k], device=device)
            yield feats[index], labels[index]

    def evaluate():
        if val_feats is None:
            return None
        model.head.eval()
        with torch.no_grad():
            return setup.spec.merge(model.embed_features(val_feats).cpu().numpy())

    return fit_loop(model, loss_fn, miner, setup, batches, len(sampler) // (p * k), evaluate, val_lab.numpy(),
                forward=model.embed_features, train_modules=[model.head])


def fit_end_to_end(model, loss_fn, miner, setup, train_items, train_labels, val_items, val_labels):
    """Augmented image batches through the whole network (Siamese, or a fine-tuned backbone)."""
    import torch
    from pytorch_metric_learning.samplers import MPerClassSampler
    from torch.utils.data import DataLoader


    config, device = setup.config, setup.device
    cuda = device.type == "cuda"
    channels_last(model)
    p, k = batch_shape(config, train_labels)
    sampler = MPerClassSampler(train_labels, m=k, batch_size=p * k,
                               length_before_new_iter=max(len(train_labels), p * k))
    loader = DataLoader(ImageDataset(train_items, train_labels, setup.spec, augment=True, policy=config.augment),
                        batch_size=p * k,
                        sampler=sampler, num_workers=setup.num_workers, collate_fn=collate_skipping_failures,
                        pin_memory=cuda, generator=setup.generator, persistent_workers=setup.num_workers > 0)
    val_loader = DataLoader(ImageDataset(val_items, val_labels, setup.spec, augment=False), batch_size=64,
                            num_workers=setup.num_workers, collate_fn=collate_skipping_failures, pin_memory=cuda)
    val_lab = np.asarray([val_labels[i] for i in range(len(val_items))])
    kept: list[int] = []

    def batches(_epoch: int):
        for batch in loader:
            if batch is not None:
                yield channels_last(batch[0].to(device, non_blocking=True)), batch[1].to(device)

    def evaluate():
        if not val_items:
            return None
        model.eval()
        outputs, kept[:] = [], []
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            for batch in val_loader:
                if batch is not None:
                    images = channels_last(torch.from_numpy(setup.spec.views(batch[0].numpy())).to(device))
                    outputs.append(setup.spec.merge(model(images).float().cpu().numpy()))
                    kept.extend(batch[2].tolist())
        return np.concatenate(outputs) if outputs else np.zeros((0, 1), np.float32)

    return fit_loop(model, loss_fn, miner, setup, batches, len(sampler) // (p * k), evaluate,
                lambda: val_lab[kept], forward=model, train_modules=[model])


SAVE_EVERY_S = 30.0  # resumable state is written at most this often (cheap head epochs take well under 1 s)


def fit_loop(model, loss_fn, miner, setup, batches, steps_per_epoch, evaluate, val_labels, *, forward, train_modules):
    """Shared loop: AdamW + (warm-up and) cosine schedule, optional weight average (``ema_decay``: then the
    average is validated and kept), tqdm with loss and images/s, keep the best epoch's state dict.

    ``batches(epoch)`` yields ``(inputs, labels)`` for epoch 1, 2, ...; ``evaluate()`` gives validation embeddings
    for ``val_labels`` (an array, or a callable giving it), or None: then the last epoch is kept.
    """
    import torch
    from tqdm import tqdm


    config, device = setup.config, setup.device
    cuda = device.type == "cuda"
    optimizer = torch.optim.AdamW(optimizer_groups(model, loss_fn, config), weight_decay=config.weight_decay)
    total = max(1, config.epochs * max(1, steps_per_epoch))
    scheduler = lr_schedule(optimizer, total, config.warmup_epochs * max(1, steps_per_epoch))
    average = WeightAverage(model, config.ema_decay) if config.ema_decay > 0 else None
    history: list[dict[str, float]] = []
    best_state, best_score = copy.deepcopy(model.state_dict()), -float("inf")
    first_epoch = 1
    resumed = _load_state(setup, model, optimizer, scheduler, average)
    if resumed is not None:
        history, best_state, best_score, first_epoch = resumed
    bar = tqdm(total=total, desc="train", unit="step", disable=not setup.progress,
               initial=(first_epoch - 1) * max(1, steps_per_epoch))
    last_saved = time.perf_counter()
    for epoch in range(first_epoch, config.epochs + 1):
        for module in train_modules:
            module.train()
        seen, losses, began = 0, [], time.perf_counter()
        for inputs, labels in batches(epoch):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
                embeddings = forward(inputs)
            embeddings = embeddings.float()
            pairs = miner(embeddings, labels) if miner is not None else None
            loss = loss_fn(embeddings, labels, pairs)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            if average is not None:
                average.update(model)
            seen += len(labels)
            losses.append(float(loss.detach()))
            bar.set_postfix(epoch=epoch, loss=f"{losses[-1]:.4f}", refresh=False,  # update() redraws, at its pace
                            img_s=f"{seen / max(time.perf_counter() - began, 1e-9):.0f}")
            bar.update(1)
        with average.applied(model) if average is not None else contextlib.nullcontext():
            embeddings = evaluate()  # None without a hold-out: no metrics, and the last epoch is kept
            labels_now = val_labels() if callable(val_labels) else val_labels
            metrics = (retrieval_metrics(embeddings, labels_now) if embeddings is not None
                       else {"precision_at_1": float("nan"), "map_at_r": float("nan")})
            entry = {"epoch": epoch, "loss": float(np.mean(losses)) if losses else float("nan"), **metrics}
            history.append(entry)
            score = selection_score(entry)
            if score > best_score or (best_score == -float("inf") and epoch == config.epochs):
                best_score, best_state = score, copy.deepcopy(model.state_dict())
        bar.set_postfix(epoch=epoch, loss=f"{entry['loss']:.4f}", p1=f"{entry['precision_at_1']:.3f}",
                        map_r=f"{entry['map_at_r']:.3f}", refresh=False)
        if time.perf_counter() - last_saved >= SAVE_EVERY_S:
            _save_state(setup, epoch, model, optimizer, scheduler, history, best_state, best_score, average)
            last_saved = time.perf_counter()
    bar.close()
    return history, best_state


def _save_state(setup, epoch, model, optimizer, scheduler, history, best_state, best_score, average=None) -> None:
    """Everything needed to continue after ``epoch``, written atomically and durably (temporary file, fsync,
    rename, fsync the folder)."""
    import random

    import torch

    if setup.state_path is None:
        return
    state = {
        "config": setup.config.to_dict(), "epoch": epoch, "model": model.state_dict(),
        "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "history": history,
        "best_state": best_state, "best_score": best_score, "torch_rng": torch.get_rng_state(),
        "generator": setup.generator.get_state(), "numpy_rng": _numpy_rng_to_saveable(),
        "python_rng": random.getstate(),
    }
    if average is not None:
        state["average"] = average.state_dict()
    with atomic_path(setup.state_path) as tmp:
        torch.save(state, tmp)


def _numpy_rng_to_saveable() -> tuple:
    """numpy's global RNG state with its key array as a tensor, so ``weights_only=True`` can load it."""
    import torch

    name, keys, position, has_gauss, gauss = np.random.get_state()
    return name, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss), float(gauss)


def _load_state(setup, model, optimizer, scheduler, average=None):
    """Restore a killed run of the same config: (history, best_state, best_score, next epoch), or None."""
    import random

    import torch

    path = setup.state_path
    if path is None or not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - a torn or foreign file: start afresh rather than fail
        return None
    if state.get("config") != setup.config.to_dict() or state["epoch"] >= setup.config.epochs:
        return None
    if average is not None and "average" not in state:
        return None
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if average is not None:
        average.load_state_dict(state["average"])
    torch.set_rng_state(state["torch_rng"])
    setup.generator.set_state(state["generator"])
    name, keys, position, has_gauss, gauss = state["numpy_rng"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
    random.setstate(state["python_rng"])
    if setup.progress:
        from tqdm import tqdm

        tqdm.write(f"resuming training after epoch {state['epoch']} from {path}")
    return state["history"], state["best_state"], state["best_score"], state["epoch"] + 1
