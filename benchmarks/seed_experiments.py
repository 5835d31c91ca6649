"""The proof of concept's five experiments, run through its own YAML form on our protocol.

Usage: python benchmarks/seed_experiments.py --workspace WS [--only 1,4,5] [--json seed.json] [--keep-going]
       [--embed-engine local|onnx]

WS is a workspace with the Flowers-102 catalog (`indexer --workspace WS data flowers102 --root DIR`); ImageNet
weights come from TORCH_HOME as for `indexer train --weights imagenet`. For each experiment the script writes
the seed's YAML (train.network, train.hw, train.epochs, resnet.freeze_backbone: the keys the seed used), then
runs, as a user would, in new processes:

    indexer --workspace WS train --config seedN.yaml --name seedN [stand-in flags]
    indexer --workspace WS embed --model seedN [--engine onnx]
    indexer --workspace WS build --index flat --model seedN --name seedN-flat
    indexer --workspace WS bench --model seedN --indexes flat --json seedN.json

and prints one line per experiment: wall times, F1@10, P@1, MAP@R (test split, each test image queried against
the rest, exact search) and the end-to-end query time in process (decode, embed, search, catalog rows).

ResNet-50's ImageNet weights cannot be fetched offline, so (4) and (5), which start from them, run with
torchvision's MobileNetV2 ImageNet checkpoint as the nearest stand-in (flags `--network mobilenet_v2 --weights
imagenet` over the same YAML); each row says so, and `connected_command` gives the command for ResNet-50.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

# (number, what the seed ran, its YAML, flags for the offline stand-in, the seed's published F1 and query time)
EXPERIMENTS = [
    (1, "Siamese, 64 px, 10 epochs", {"network": "siamese", "hw": 64, "epochs": 10}, None, [], 0.19, "2.6 s"),
    (2, "Siamese, 224 px, 10 epochs", {"network": "siamese", "hw": 224, "epochs": 10}, None, [], 0.07, "2.5 s"),
    (3, "ResNet-50 from scratch, 1 epoch, 224 px", {"network": "resnet", "hw": 224, "epochs": 1},
     {"freeze_backbone": False}, [], 0.11, "1.8 s"),
    (4, "ResNet-50 ImageNet-pretrained, 1 epoch, 224 px", {"network": "resnet", "hw": 224, "epochs": 1},
     {"freeze_backbone": False}, ["--network", "mobilenet_v2", "--weights", "imagenet"], 0.11, "2.3 s"),
    (5, "ResNet-50 pretrained and frozen, 10 epochs, 224 px", {"network": "resnet", "hw": 224, "epochs": 10},
     {"freeze_backbone": True}, ["--network", "mobilenet_v2", "--weights", "imagenet"], 0.11, "2.1 s"),
]


def seed_yaml(train: dict, resnet: dict | None) -> str:
    """The seed's YAML form: a ``train:`` section and, for its ResNet runs, a ``resnet:`` section."""
    lines = ["train:"] + [f"  {key}: {json.dumps(value)}" for key, value in train.items()]
    if resnet is not None:
        lines += ["resnet:"] + [f"  {key}: {str(value)}" for key, value in resnet.items()]
    return "\n".join(lines) + "\n"


def run(cmd: list[str]) -> float:
    """Run ``cmd``, stream its output, return its wall time; a failure raises CalledProcessError."""
    print("$", " ".join(cmd), flush=True)
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=sys.stdout, stderr=sys.stderr)
    return time.perf_counter() - started


def experiment(indexer: str, workspace: str, folder: Path, spec: tuple, embed_engine: str = "local") -> dict:
    number, what, train, resnet, stand_in, seed_f1, seed_time = spec
    name = f"seed{number}"
    config = folder / f"{name}.yaml"
    config.write_text(seed_yaml(train, resnet))
    base = [indexer, "--workspace", workspace]
    times = {"train_s": run([*base, "train", "--config", str(config), "--name", name, *stand_in])}
    times["embed_s"] = run([*base, "embed", "--model", name, "--engine", embed_engine])
    times["build_s"] = run([*base, "build", "--index", "flat", "--model", name, "--name", f"{name}-flat"])
    report_path = folder / f"{name}-bench.json"
    times["bench_s"] = run([*base, "bench", "--model", name, "--indexes", "flat", "--json", str(report_path)])
    row = next(r for r in json.loads(report_path.read_text())["results"] if r["kind"] == "flat")
    weights = " --weights imagenet" if stand_in else ""
    return {
        "experiment": number, "seed_setup": what, "yaml": config.read_text(),
        "stand_in": "MobileNetV2 ImageNet checkpoint for ResNet-50" if stand_in else None,
        "command": " ".join(["indexer", "train", "--config", config.name, "--name", name, *stand_in]),
        "connected_command": f"indexer train --config {config.name} --name {name}{weights}",
        "seed_f1": seed_f1, "seed_query_time": seed_time,
        "f1_at_k": row.get("f1_at_k"), "p_at_1": row.get("p_at_1"), "map_at_r": row.get("map_at_r"),
        "end_to_end_ms": row.get("query_ms_p50"), "embed_engine": embed_engine, **{k: round(v, 1) for k, v in times.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--only", default="1,2,3,4,5", help="Comma-separated experiment numbers, run in this order.")
    parser.add_argument("--folder", default=None, help="Where the YAML files and bench JSON go (default: WS/seed).")
    parser.add_argument("--json", default=None, help="Write the rows as JSON.")
    parser.add_argument("--keep-going", action="store_true", help="Go on to the next experiment after a failure.")
    parser.add_argument("--embed-engine", choices=("local", "onnx"), default="local",
                        help="indexer embed --engine: torch (local) or the ONNX export (faster on a CPU).")
    args = parser.parse_args()
    by_number = {spec[0]: spec for spec in EXPERIMENTS}
    wanted = [int(part) for part in args.only.split(",") if part.strip()]
    unknown = [number for number in wanted if number not in by_number]
    if unknown:
        parser.error(f"--only: no experiment {unknown[0]}; they are numbered 1 to {len(EXPERIMENTS)}")
    folder = Path(args.folder or Path(args.workspace) / "seed")
    folder.mkdir(parents=True, exist_ok=True)
    indexer = str(Path(sys.executable).with_name("indexer"))
    rows = []
    for spec in (by_number[number] for number in wanted):
        try:
            rows.append(experiment(indexer, args.workspace, folder, spec, args.embed_engine))
        except subprocess.CalledProcessError as exc:
            rows.append({"experiment": spec[0], "seed_setup": spec[1], "failed": f"exit {exc.returncode}"})
            if not args.keep_going:
                break
        print(json.dumps(rows[-1]), flush=True)
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=2))
    for row in rows:
        if "failed" in row:
            print(f"({row['experiment']}) {row['seed_setup']}: FAILED ({row['failed']})")
            continue
        print(f"({row['experiment']}) {row['seed_setup']}{' [stand-in: MobileNetV2]' if row['stand_in'] else ''}: "
              f"F1@10 {row['f1_at_k']:.3f} (seed {row['seed_f1']}), P@1 {row['p_at_1']:.3f}, "
              f"MAP@R {row['map_at_r']:.3f}, query {row['end_to_end_ms']:.1f} ms in process (seed "
              f"{row['seed_query_time']}); train {row['train_s']:.0f} s, embed {row['embed_s']:.0f} s")


if __name__ == "__main__":
    main()
