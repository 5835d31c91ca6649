"""The long kill harness: many seeded SIGKILLs across ingest, train, embed, build, build --update and remove.

Usage: python benchmarks/kill_harness.py [--kills-per-step 8] [--min-kills 50] [--per-class 40] [--seed 0]
                                        [--json out.json]
Each trial copies the workspace as it was before one step, kills that step at a random moment within its
unkilled duration, runs it again and compares the end state with the unkilled run (see tests/kill_harness.py).
Prints one JSON line per trial and a Markdown table of kills, partial states, rows lost and mismatches.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root, for tests.kill_harness

from indexer.core.files import write_json  # noqa: E402
from tests.kill_harness import prepare, run_trials, summarise  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills-per-step", type=int, default=8)
    parser.add_argument("--min-kills", type=int, default=50,
                        help="more rounds until this many trials killed a running process")
    parser.add_argument("--per-class", type=int, default=40, help="images per class in each of the two folders")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", dest="json_path", default=None)
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="kill-harness-") as scratch:
        plan = prepare(Path(scratch) / "plan", args.per_class)
        print("unkilled durations: " + ", ".join(f"{step.name} {seconds:.1f} s"
                                                 for step, seconds in zip(plan.steps, plan.seconds)), flush=True)
        trials = run_trials(plan, args.kills_per_step, args.seed, Path(scratch) / "trials",
                            log=lambda line: print(line, flush=True), min_kills=args.min_kills)
    table = summarise(trials)
    total = {key: sum(row[key] for row in table.values()) for key in next(iter(table.values()))}
    print(f"\n{len(trials)} trials in {time.perf_counter() - started:.0f} s (seed {args.seed})\n")
    print("| command | trials | killed while running | left a partial state | reruns failed | rows lost | mismatches |")
    print("|---|---|---|---|---|---|---|")
    for name, row in [*table.items(), ("**all**", total)]:
        print(f"| {name} | {row['trials']} | {row['kills']} | {row['partial']} | {row['rerun_failed']} | "
              f"{row['rows_lost']} | {row['mismatches']} |")
    if args.json_path:
        write_json(args.json_path, {"seed": args.seed, "per_class": args.per_class,
                                    "table": table, "trials": [asdict(t) for t in trials]}, indent=2)
    failed = total["rerun_failed"] + total["rows_lost"] + total["mismatches"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
