"""The command line: every command has --help, output contracts, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest

from cli import main


def _commands(group: click.Group, prefix=()):
    for name, command in group.commands.items():
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))


@pytest.mark.parametrize("path", list(_commands(main)))
def test_every_command_has_help(path):
    from click.testing import CliRunner

    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output


def test_help_imports_no_heavy_module():
    code = "import sys, cli; cli.main(['--help'], standalone_mode=False); print(sorted(m for m in ('torch', 'faiss', 'alembic', 'torchvision', 'onnxruntime') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"


def test_ingest_then_status_json(cli, image_tree):
    result = cli("ingest", str(image_tree))
    assert result.exit_code == 0
    assert "12 ingested, 0 duplicates, 0 errors" in result.output
    status = cli("status", "--json")
    data = json.loads(status.stdout)
    assert data["images_total"] == data["images_ok"] == 12
    assert (data["images_error"], data["duplicates"], data["labels"]) == (0, 0, 3)
    assert data["splits"] == {"(none)": 12}
    assert data["models"] == [] and data["indexes"] == []


def test_status_text_and_bad_file_lines(cli, image_tree):
    (image_tree / "broken.jpg").write_bytes(b"")
    result = cli("ingest", str(image_tree), "--split", "train")
    assert "broken.jpg: empty file (0 bytes)" in result.stderr
    assert "12 ingested, 0 duplicates, 1 errors" in result.stdout
    text = cli("status").output
    assert "13 total, 12 ok, 1 errors" in text and "train" in text


def test_status_without_catalog_is_one_line_error(cli, tmp_path):
    result = cli("status", workspace=tmp_path / "empty")
    assert result.exit_code == 1
    assert result.output.strip().startswith("Error: no catalog at")
    assert len(result.output.strip().splitlines()) == 1


def test_status_is_read_only_and_never_imports_alembic(cli, image_tree, tmp_path):
    cli("ingest", str(image_tree))
    code = (
        "import sys, cli; cli.main(['--workspace', sys.argv[1], 'status', '--json'], standalone_mode=False);"
        "print('alembic' in sys.modules, file=sys.stderr)"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path / "ws")], capture_output=True, text=True, check=True)
    assert proc.stderr.strip().splitlines()[-1] == "False"


def test_db_upgrade(cli):
    result = cli("db", "upgrade")
    assert result.exit_code == 0 and "revision 0004" in result.output


def test_bad_labels_option_is_one_line_error(cli, image_tree):
    result = cli("ingest", str(image_tree), "--labels", "missing.csv")
    assert result.exit_code == 1
    assert "missing.csv: no such file" in result.output


def test_data_flowers102_with_a_wrong_root_is_one_line_error(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    result = cli("data", "flowers102", "--root", str(tmp_path / "empty"))
    assert result.exit_code == 1
    assert "no Flowers-102 copy there" in result.output and len(result.output.strip().splitlines()) == 1


def test_train_config_unknown_key_is_one_line_error(cli, image_tree, tmp_path):
    cli("ingest", str(image_tree))
    config = tmp_path / "seed.yaml"
    config.write_text("train:\n  epochs: 1\n  hw: 32\n  bogus: 3\n")
    result = cli("train", "--config", str(config))
    assert result.exit_code == 1
    assert "unknown config key 'train.bogus'" in result.output


def test_train_accepts_the_seed_yaml_and_flags_override_it(cli, image_tree, tmp_path):
    cli("ingest", str(image_tree))
    config = tmp_path / "seed.yaml"
    saved = tmp_path / "seed-model.pt"
    config.write_text(
        "general:\n  labels_fpath: labels.csv\n"
        f"train:\n  epochs: 5\n  hw: 32\n  network: siamese\n  save_network_path: {saved}\n"
        "resnet:\n  freeze_backbone: false\n"
    )
    result = cli("train", "--config", str(config), "--epochs", "1", "--batch-classes", "3", "--batch-per-class", "2")
    assert result.exit_code == 0, result.output
    assert "model 'siamese': 1 epochs" in result.output
    assert saved.is_file() and "general.labels_fpath ignored" in result.stderr


def test_the_seed_yaml_with_a_resnet_section_trains_a_siamese_network_as_written(cli, image_tree, tmp_path):
    """The seed's resnet: section configures its ResNet only; with network siamese it is set aside, with a note."""
    cli("ingest", str(image_tree))
    config = tmp_path / "seed.yaml"
    config.write_text(
        'train:\n  network: "siamese"\n  epochs: 1\n  hw: 32\n'
        "resnet:\n  freeze_backbone: True\n"
    )
    result = cli("train", "--config", str(config), "--batch-classes", "3", "--batch-per-class", "2")
    assert result.exit_code == 0, result.output
    assert "model 'siamese': 1 epochs" in result.stdout
    assert "the resnet: section" in result.stderr and "was not used" in result.stderr


def test_the_resnet_section_applies_to_a_torchvision_backbone():
    import tempfile
    from pathlib import Path

    from models.config import config_from_yaml

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "seed.yaml"
        path.write_text('train:\n  network: "resnet"\n  hw: 224\nresnet:\n  freeze_backbone: True\n')
        config, seed_paths = config_from_yaml(path)
        assert (config.network, config.freeze_backbone, config.image_size) == ("resnet50", True, 224)
        assert seed_paths.notes == ()
        flagged, _ = config_from_yaml(path, {"freeze_backbone": False})
        assert flagged.freeze_backbone is False, "a flag still wins over the file"


def test_commands_started_together_on_a_new_workspace_do_not_race_on_the_schema(tmp_path):
    """Six processes migrate one new catalog at the same instant: all succeed, the schema is created once."""
    import sqlite3
    import time

    workspace = tmp_path / "fresh"
    start_at = time.time() + 4.0  # every process has imported everything by then
    code = (
        "import sys, time\n"
        "from indexer import api\n"
        "import storage.database, alembic.command\n"
        "workspace = api.Workspace.at(sys.argv[1])\n"
        "time.sleep(max(0.0, float(sys.argv[2]) - time.time()))\n"
        "print(api.upgrade_database(workspace))\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code, str(workspace), str(start_at)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(6)]
    outcomes = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 6, [err for _, err in outcomes]
    assert {out.strip() for out, _ in outcomes} == {"0004"}
    with sqlite3.connect(workspace / "catalog.db") as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [("0004",)]
