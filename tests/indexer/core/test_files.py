"""The one atomic write: whole or nothing, fsynced file and folder, temporaries beside the target."""

from __future__ import annotations

import ast
import json
import os
import stat
from pathlib import Path

import pytest

from indexer.core import files
from indexer.core.files import (
    atomic_path,
    atomic_write,
    commit_folder,
    copy_file,
    write_bytes,
    write_json,
    write_text,
)

ROOT = Path(__file__).resolve().parents[3]


class Boom(Exception):
    pass


@pytest.fixture
def synced(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Record each os.fsync and os.replace as ("fsync-file" | "fsync-dir", inode) or ("replace", inode)."""
    events: list[tuple[str, int]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        info = os.fstat(fd)
        events.append(("fsync-dir" if stat.S_ISDIR(info.st_mode) else "fsync-file", info.st_ino))
        real_fsync(fd)

    def replace(src, dst) -> None:
        events.append(("replace", os.stat(src).st_ino))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return events


def test_the_content_is_replaced_whole(tmp_path: Path) -> None:
    target = tmp_path / "a.bin"
    target.write_bytes(b"x" * 1000)
    assert write_bytes(target, b"new") == target
    assert target.read_bytes() == b"new"
    write_text(target, "héllo")
    assert target.read_bytes() == "héllo".encode()
    write_json(target, {"b": 1, "a": [1.5]}, indent=None, sort_keys=True)
    assert target.read_text() == '{"a": [1.5], "b": 1}'
    write_json(target, {"when": Path("p")}, default=str)
    assert json.loads(target.read_text()) == {"when": "p"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]


@pytest.mark.parametrize("helper", ["atomic_write", "atomic_path"])
def test_an_error_in_the_block_keeps_the_old_file_and_leaves_no_temporary(helper: str, tmp_path: Path) -> None:
    target = tmp_path / "model.json"
    target.write_bytes(b'{"old": true}')
    with pytest.raises(Boom):
        if helper == "atomic_write":
            with atomic_write(target) as handle:
                handle.write(b"half of the new")
                handle.flush()
                raise Boom
        else:
            with atomic_path(target) as tmp:
                tmp.write_bytes(b"half of the new")
                raise Boom
    assert target.read_bytes() == b'{"old": true}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json"]


def test_an_error_on_a_new_file_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(Boom), atomic_write(tmp_path / "new.txt", "w") as handle:
        handle.write("partial")
        raise Boom
    assert list(tmp_path.iterdir()) == []


def test_a_block_that_writes_nothing_fails_and_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "index.png"
    target.write_bytes(b"old")
    with pytest.raises(FileNotFoundError), atomic_path(target):
        pass
    assert target.read_bytes() == b"old"


def test_the_file_then_the_folder_are_fsynced_around_the_rename(tmp_path: Path, synced) -> None:
    target = tmp_path / "state.pt"
    target.write_bytes(b"old")
    write_bytes(target, b"new")
    file_inode, folder_inode = target.stat().st_ino, tmp_path.stat().st_ino
    assert synced == [("fsync-file", file_inode), ("replace", file_inode), ("fsync-dir", folder_inode)]


def test_atomic_path_fsyncs_what_a_library_wrote(tmp_path: Path, synced) -> None:
    target = tmp_path / "model.onnx"
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"network")  # as torch.save / torch.onnx.export would, by path
    assert target.read_bytes() == b"network"
    assert synced == [("fsync-file", target.stat().st_ino), ("replace", target.stat().st_ino),
                      ("fsync-dir", tmp_path.stat().st_ino)]


def test_the_temporary_file_lives_in_the_target_folder(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "config.json"
    target.parent.mkdir()
    with atomic_write(target, "w") as handle:
        temporary = Path(handle.name)
        assert temporary.exists() and not target.exists()
    assert temporary.parent == target.parent and not temporary.exists()
    assert temporary.name.startswith(".config.json.") and temporary.name.endswith(".tmp")
    with atomic_path(target) as one, atomic_path(target) as two:
        assert one.parent == two.parent == target.parent
        assert one != two  # two writers of one target never share a temporary file
        one.write_text("1")
        two.write_text("2")
    assert target.read_text() == "1"  # the outer block finished last


def test_text_is_utf8_and_keeps_newline_arguments(tmp_path: Path) -> None:
    target = tmp_path / "meta.csv"
    with atomic_write(target, "w", newline="") as handle:
        handle.write("a,ü\r\n")
    assert target.read_bytes() == "a,ü\r\n".encode()
    with pytest.raises(ValueError, match="mode 'a'"), atomic_write(target, "a"):
        pass
    assert target.read_bytes() == "a,ü\r\n".encode()


def test_copy_file(tmp_path: Path) -> None:
    source, target = tmp_path / "parent.onnx", tmp_path / "child.onnx"
    source.write_bytes(b"weights")
    target.write_bytes(b"older and longer")
    copy_file(source, target)
    assert target.read_bytes() == b"weights"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["child.onnx", "parent.onnx"]


def test_commit_folder_fsyncs_everything_before_the_rename(tmp_path: Path, synced) -> None:
    partial, target = tmp_path / "backup.partial", tmp_path / "backup"
    (partial / "models" / "m").mkdir(parents=True)
    (partial / "catalog.db").write_bytes(b"db")
    (partial / "models" / "m" / "model.pt").write_bytes(b"pt")
    commit_folder(partial, target)
    assert not partial.exists() and (target / "models" / "m" / "model.pt").read_bytes() == b"pt"
    kinds = [kind for kind, _ in synced]
    assert kinds.index("replace") == len(synced) - 2 and synced[-1] == ("fsync-dir", tmp_path.stat().st_ino)
    inodes = {inode for _, inode in synced[:-2]}
    everything = [target, target / "catalog.db", target / "models", target / "models" / "m",
                  target / "models" / "m" / "model.pt"]
    assert {p.stat().st_ino for p in everything} <= inodes


def test_fsync_helpers_accept_paths(tmp_path: Path, synced) -> None:
    (tmp_path / "f").write_bytes(b"1")
    files.fsync_file(tmp_path / "f")
    files.fsync_dir(tmp_path)
    assert synced == [("fsync-file", (tmp_path / "f").stat().st_ino), ("fsync-dir", tmp_path.stat().st_ino)]


# -- the guard: nobody renames by hand --------------------------------------------------------------------------

SCANNED = ("indexer", "models", "storage", "benchmarks", "cli.py")
MAY_RENAME = {"indexer/core/files.py", "indexer/core/index_io.py",  # the helper, and the index journal's protocol
              "benchmarks/watch.py"}  # plays a user: a copy tool's rename into place and a move the watcher must see


def hand_renames(path: Path) -> list[str]:
    """Calls in ``path`` that move a file into place: os.replace / os.rename / os.renames, shutil.move, any
    ``x.rename(...)`` (Path.rename) and ``x.replace(one_argument)`` (Path.replace; str.replace takes two)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module in ("os", "shutil"):
            found += [f"{node.lineno}: from {node.module} import {a.name}" for a in node.names
                      if a.name in ("replace", "rename", "renames", "move")]
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        attr, owner = node.func.attr, node.func.value
        module = owner.id if isinstance(owner, ast.Name) else None
        if (module == "os" and attr in ("replace", "rename", "renames")) or (module == "shutil" and attr == "move") \
                or attr == "rename" or (attr == "replace" and len(node.args) == 1 and not node.keywords):
            found.append(f"{node.lineno}: {ast.unparse(node.func)}(...)")
    return found


def project_files(root: Path) -> list[Path]:
    paths = []
    for name in SCANNED:
        top = root / name
        paths += [top] if top.suffix == ".py" else sorted(top.rglob("*.py"))
    return paths


def test_only_the_helper_and_the_index_journal_rename_files() -> None:
    paths = project_files(ROOT)
    assert len(paths) > 100 and ROOT / "indexer" / "core" / "files.py" in paths
    offenders = {
        str(path.relative_to(ROOT)): calls for path in paths
        if str(path.relative_to(ROOT)) not in MAY_RENAME and (calls := hand_renames(path))
    }
    assert offenders == {}, (
        "write files through indexer.core.files (atomic_write, atomic_path, write_json, copy_file, commit_folder): "
        f"it fsyncs the file and the folder; these rename by hand: {offenders}"
    )


def test_the_guard_sees_every_form(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import os, shutil\nfrom os import replace\n"
        "def f(tmp, path, s):\n"
        "    os.replace(tmp, path)\n    os.rename(tmp, path)\n    tmp.rename(path)\n    tmp.replace(path)\n"
        "    shutil.move(tmp, path)\n    s.replace('a', 'b')\n    # os.replace(tmp, path) in a comment\n"
    )
    assert [line.split(":")[0] for line in hand_renames(probe)] == ["2", "4", "5", "6", "7", "8"]
