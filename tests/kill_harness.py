"""Kill harness: SIGKILL each long-running write at a random (seeded) moment, run it again, compare the end state.

A reference pipeline runs once, never killed, over a tiny workspace: ingest, train, embed, build, ingest more,
build --update, remove. Before each step the workspace is kept; the step's end state is recorded. A trial copies
the workspace as it was before one step, starts that step as a real ``indexer`` process, kills it with SIGKILL
after a random delay within the step's unkilled duration, runs the same command again to completion and
compares the end state with the reference: the catalog rows (ids aside: images by path, duplicates by their
original's path), the labels, the models, each embedding store's members, and each index (it loads, its
members are the same images, and a search answers with members only).

Used by ``tests/test_kills.py`` (a few kills) and ``benchmarks/kill_harness.py`` (the long run).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tests.conftest import SHAPES, draw_shape

TINY_TRAIN = ["--network", "siamese", "--image-size", "32", "--epochs", "2", "--batch-classes", "3",
              "--batch-per-class", "4", "--name", "tiny", "--seed", "0", "--device", "cpu"]


@dataclass(frozen=True)
class Step:
    name: str
    args: tuple[str, ...]


@dataclass
class Plan:
    """The reference run: for each step, the workspace before it, its end state and its unkilled duration."""

    root: Path
    steps: list[Step]
    before: list[Path] = field(default_factory=list)
    after: list[dict] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)


@dataclass
class Trial:
    step: str
    delay_s: float
    killed: bool  # the process was still running when SIGKILL came
    partial: bool  # the kill left a state different from both the start and the end
    rerun_ok: bool
    rows_lost: int
    mismatch: list[str]


def make_images(root: Path, per_class: int) -> tuple[Path, Path]:
    """Two folders of distinct small PNGs with the same three class sub-folders: ``first`` and ``more``."""
    for part, offset in (("first", 0), ("more", 1)):
        for name, (colour, shape) in SHAPES.items():
            for i in range(per_class):
                size = 20 + (i // 5) * 2 + offset
                draw_shape(root / part / name / f"{part}_{name}_{i}.png", colour, shape, offset=i % 5 - 2, size=size)
    return root / "first", root / "more"


def pipeline(images: Path, per_class: int) -> list[Step]:
    first, more = images / "first", images / "more"
    removed = [str(first / name / f"first_{name}_{i}.png") for name in SHAPES for i in range(0, per_class, 7)]
    return [
        Step("ingest", ("ingest", str(first))),
        Step("train", ("train", *TINY_TRAIN)),
        Step("embed", ("embed", "--model", "tiny", "--batch-size", "8")),
        Step("build", ("build", "--index", "ivf", "--nlist", "2", "--seed", "0")),
        Step("ingest", ("ingest", str(more))),
        Step("build --update", ("build", "--update", "ivf")),
        Step("remove", ("remove", *removed)),
    ]


def indexer_argv(workspace: Path, args: tuple[str, ...]) -> list[str]:
    return [sys.executable, "-m", "cli", "--workspace", str(workspace), *args]


def prepare(root: Path, per_class: int) -> Plan:
    """Make the images and run the reference pipeline once, unkilled."""
    images = root / "images"
    make_images(images, per_class)
    plan = Plan(root=root, steps=pipeline(images, per_class))
    workspace = root / "reference"
    workspace.mkdir(parents=True)
    for number, step in enumerate(plan.steps):
        before = root / f"before-{number}"
        shutil.copytree(workspace, before)
        plan.before.append(before)
        started = time.perf_counter()
        result = subprocess.run(indexer_argv(workspace, step.args), capture_output=True, text=True)
        plan.seconds.append(time.perf_counter() - started)
        if result.returncode != 0:
            raise RuntimeError(f"reference step {step.name!r} failed: {result.stderr[-2000:]}")
        plan.after.append(workspace_state(workspace))
    return plan


def kill_trial(plan: Plan, number: int, delay_s: float, scratch: Path) -> Trial:
    """Copy the workspace before step ``number``, kill the step after ``delay_s``, rerun it, compare."""
    step = plan.steps[number]
    workspace = scratch / "ws"
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.copytree(plan.before[number], workspace)
    start_state = workspace_state(workspace)
    process = subprocess.Popen(indexer_argv(workspace, step.args), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    time.sleep(delay_s)
    killed = process.poll() is None
    if killed:
        os.kill(process.pid, signal.SIGKILL)
    process.wait()
    try:
        killed_state = workspace_state(workspace)
    except Exception as exc:  # noqa: BLE001 - an unreadable state is a finding, not a harness crash
        killed_state = {"unreadable": f"{type(exc).__name__}: {exc}"}
    rerun = subprocess.run(indexer_argv(workspace, step.args), capture_output=True, text=True)
    final = workspace_state(workspace) if rerun.returncode == 0 else {"rerun failed": rerun.stderr[-1000:]}
    expected = plan.after[number]
    mismatch = [key for key in sorted(set(expected) | set(final)) if expected.get(key) != final.get(key)]
    expected_paths = {row[0] for row in expected.get("images", [])}
    final_paths = {row[0] for row in final.get("images", [])}
    return Trial(step=step.name, delay_s=round(delay_s, 3), killed=killed,
                 partial=killed_state not in (start_state, expected), rerun_ok=rerun.returncode == 0,
                 rows_lost=len(expected_paths - final_paths), mismatch=mismatch)


def run_trials(plan: Plan, kills_per_step: int, seed: int, scratch: Path, log=None, min_kills: int = 0,
               max_rounds: int = 50) -> list[Trial]:
    """At least ``kills_per_step`` rounds of trials of every step, each killed at a seeded moment within the
    first 90 % of its unkilled duration; more rounds while fewer than ``min_kills`` trials killed a running process."""
    rng = random.Random(seed)
    trials: list[Trial] = []
    round_number = 0
    while round_number < kills_per_step or (sum(t.killed for t in trials) < min_kills and round_number < max_rounds):
        for number in range(len(plan.steps)):
            delay = rng.uniform(0.05, 0.9) * plan.seconds[number]
            trial = kill_trial(plan, number, delay, scratch / f"trial-{round_number}-{number}")
            shutil.rmtree(scratch / f"trial-{round_number}-{number}", ignore_errors=True)
            trials.append(trial)
            if log is not None:
                log(json.dumps(asdict(trial)))
        round_number += 1
    return trials


def summarise(trials: list[Trial]) -> dict[str, dict[str, int]]:
    """Per command: trials, kills (still running at the signal), partial states, reruns failed, rows lost, mismatches."""
    table: dict[str, dict[str, int]] = {}
    for trial in trials:
        row = table.setdefault(trial.step, dict(trials=0, kills=0, partial=0, rerun_failed=0, rows_lost=0,
                                                mismatches=0))
        row["trials"] += 1
        row["kills"] += trial.killed
        row["partial"] += trial.partial
        row["rerun_failed"] += not trial.rerun_ok
        row["rows_lost"] += trial.rows_lost
        row["mismatches"] += bool(trial.mismatch)
    return table


def workspace_state(workspace: Path) -> dict:
    """What a user can observe, ids aside: catalog rows, labels, models, embedding members, index members."""
    from indexer.api import Workspace

    if not (workspace / "catalog.db").exists():
        return {"catalog": None}
    ws = Workspace.at(workspace)
    try:
        return _state(ws)
    finally:
        ws.close()  # no connection may stay open: the harness copies workspaces (see Workspace.close)


def _state(ws) -> dict:
    import numpy as np

    from indexer.api import catalog_status
    from indexer.core.index_io import load_index
    from indexer.core.membership import indexed_ids
    from models.embedding_store import EmbeddingStore

    with ws.catalog() as catalog:
        images = catalog.images(status=None)
        models, indexes = catalog.models(), catalog.indexes()
        labels = sorted(catalog.label_names().values())
    path_of = {row.id: row.path for row in images}
    state: dict = {
        "images": sorted([row.path, row.label, row.split, row.status, row.sha256, row.error,
                          path_of.get(row.duplicate_of)] for row in images),
        "labels": labels,
        "models": sorted([m.name, m.kind, m.dim, ws.resolve(m.path).is_file(),
                          ws.resolve(m.params.get("onnx", "-")).is_file()] for m in models),
        "inconsistencies": sorted(catalog_status(ws)["inconsistencies"]),
    }
    for model in models:
        store_dir = ws.embeddings_dir / model.name
        ids = EmbeddingStore(store_dir).ids() if store_dir.exists() else np.zeros(0, np.int64)
        state[f"embeddings {model.name}"] = sorted(path_of.get(int(i), f"id {int(i)}") for i in ids)
    for row in indexes:
        index, _ = load_index(ws.resolve(row.path))
        members = indexed_ids(index)
        state[f"index {row.name}"] = [row.kind, int(index.ntotal), row.ntotal, row.model_name,
                                      sorted(path_of.get(int(i), f"id {int(i)}") for i in members)]
        if len(members):
            store = EmbeddingStore(ws.embeddings_dir / row.model_name)
            vectors = np.asarray(store.vectors(mmap=False), np.float32)[:5]
            _, found = index.search(vectors, min(5, len(members)))
            state[f"index {row.name} answers with members"] = bool(np.isin(found[found >= 0], members).all())
    return state
