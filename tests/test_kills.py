"""SIGKILL at a seeded random moment in each long-running write, then the same command again: nothing lost,
the end state equals an unkilled run's (the long version: benchmarks/kill_harness.py)."""

from __future__ import annotations

from tests.kill_harness import prepare, run_trials, summarise

PER_CLASS = 24
SEED = 10


def test_every_write_survives_a_kill_and_a_rerun(tmp_path):
    plan = prepare(tmp_path / "plan", PER_CLASS)
    assert [step.name for step in plan.steps] == [
        "ingest", "train", "embed", "build", "ingest", "build --update", "remove"]
    trials = run_trials(plan, kills_per_step=1, seed=SEED, scratch=tmp_path / "trials")
    for trial in trials:
        assert trial.rerun_ok, trial
        assert trial.rows_lost == 0, trial
        assert trial.mismatch == [], trial
    table = summarise(trials)
    assert sum(row["kills"] for row in table.values()) >= 4, f"most trials should kill a running process: {table}"
