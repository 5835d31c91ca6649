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
    assert result.exit_code == 0 and "revision 0002" in result.output


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
