"""Ingestion: every bad file is recorded with a reason while the good ones all go in."""

from __future__ import annotations

import errno
import io
import os
import pathlib

import pytest
from PIL import Image

from indexer.api import catalog_status, ingest_directory
from indexer.core.errors import InputError
from tests.conftest import SHAPES


def _rows(workspace):
    with workspace.catalog() as catalog:
        return {os.path.basename(r.path): r for r in catalog.images(status=None)}


def _ingest_with(workspace, image_tree, name, make):
    """Add one bad file to the tree, ingest, and return (report, rows)."""
    make(image_tree / "bad" / name)
    report = ingest_directory(workspace, image_tree, progress=False)
    rows = _rows(workspace)
    good = [r for r in rows.values() if r.status == "ok"]
    assert len(good) == 12, "every good file in the same run is ingested"
    return report, rows


def _write(data: bytes):
    def make(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    return make


def _truncated_jpeg(path):
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 10, 10)).save(buffer, "JPEG")
    _write(buffer.getvalue()[:300])(path)


def _bomb(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("1", (12000, 12000)).save(path)  # 144 Mpx, a few KB on disk


@pytest.mark.parametrize(
    "name, make, reason",
    [
        ("empty.jpg", _write(b""), "empty file (0 bytes)"),
        ("text.jpg", _write(b"this is not an image\n"), "not an image Pillow can identify"),
        ("truncated.jpg", _truncated_jpeg, "cannot decode"),
        ("bomb.png", _bomb, "decompression bomb"),
    ],
)
def test_bad_files_are_recorded_with_their_reason(workspace, image_tree, name, make, reason):
    report, rows = _ingest_with(workspace, image_tree, name, make)
    assert rows[name].status == "error"
    assert reason in rows[name].error
    assert report.errors == 1 and report.ingested == 12
    assert any(name in line and reason in line for line in report.problems)


def test_dangling_and_looping_symlinks(workspace, image_tree):
    (image_tree / "dangling.jpg").symlink_to(image_tree / "nowhere.jpg")
    (image_tree / "loop_a.jpg").symlink_to(image_tree / "loop_b.jpg")
    (image_tree / "loop_b.jpg").symlink_to(image_tree / "loop_a.jpg")
    report = ingest_directory(workspace, image_tree, progress=False)
    rows = _rows(workspace)
    assert "dangling" in rows["dangling.jpg"].error or "not found" in rows["dangling.jpg"].error
    assert rows["loop_a.jpg"].error == "symlink loop"
    assert report.errors == 3 and report.ingested == 12


def test_unreadable_file(workspace, image_tree, monkeypatch):
    target = image_tree / "secret.png"
    Image.new("RGB", (8, 8)).save(target)
    target.chmod(0)
    if os.geteuid() == 0:  # root reads anything: make the read fail as it would for a user
        real = pathlib.Path.read_bytes

        def read_bytes(self):
            if self.name == "secret.png":
                raise PermissionError(errno.EACCES, "Permission denied", str(self))
            return real(self)

        monkeypatch.setattr(pathlib.Path, "read_bytes", read_bytes)
    report = ingest_directory(workspace, image_tree, progress=False)
    assert _rows(workspace)["secret.png"].error == "permission denied"
    assert report.ingested == 12


def _save(mode, size=(20, 10), **kwargs):
    def make(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        img = Image.new(mode, size)
        img.save(path, **kwargs)

    return make


def _exif_rotated(path):
    img = Image.new("RGB", (40, 20), (10, 200, 10))
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90° on display
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, exif=exif)


def _animated_gif(path):
    frames = [Image.new("P", (16, 16), i) for i in range(3)]
    path.parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)


def _palette_alpha(path):
    img = Image.new("P", (16, 16), 1)
    img.info["transparency"] = 1
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, transparency=1)


@pytest.mark.parametrize(
    "name, make",
    [
        ("cmyk.jpg", _save("CMYK")),
        ("grey16.png", _save("I;16")),
        ("alpha.png", _save("RGBA")),
        ("palette.png", _palette_alpha),
        ("rotated.jpg", _exif_rotated),
        ("animated.gif", _animated_gif),
        ("picture.webp", _save("RGB")),
        ("picture.bmp", _save("RGB")),
        ("picture.tiff", _save("RGB")),
    ],
)
def test_unusual_but_valid_images_are_ok(workspace, tmp_path, name, make):
    make(tmp_path / "odd" / name)
    report = ingest_directory(workspace, tmp_path / "odd", progress=False)
    row = _rows(workspace)[name]
    assert row.status == "ok", row.error
    assert report.ingested == 1 and report.errors == 0
    if name == "rotated.jpg":
        with workspace.catalog() as catalog:
            image = catalog.session.get(__import__("storage.schema").schema.Image, row.id)
            assert (image.width, image.height) == (20, 40)


def test_labels_from_folders_idempotent_and_non_images_ignored(workspace, image_tree):
    (image_tree / "notes.txt").write_text("not an image")
    first = ingest_directory(workspace, image_tree, progress=False)
    assert (first.ingested, first.ignored, first.errors) == (12, 1, 0)
    again = ingest_directory(workspace, image_tree, progress=False)
    assert (again.ingested, again.already_catalogued) == (0, 12)
    rows = _rows(workspace)
    assert {r.label for r in rows.values()} == set(SHAPES)
    summary = catalog_status(workspace)
    assert summary["images_ok"] == 12 and summary["labels"] == 3


def test_same_content_under_two_paths_is_reported_not_stored_twice(workspace, image_tree):
    copy = image_tree / "zz_copies" / "again.png"  # walked after the original
    copy.parent.mkdir()
    copy.write_bytes((image_tree / "red_circle" / "red_circle_0.png").read_bytes())
    report = ingest_directory(workspace, image_tree, progress=False)
    assert report.duplicates == 1 and report.ingested == 12
    row = _rows(workspace)["again.png"]
    assert row.status == "duplicate" and row.duplicate_of is not None
    assert catalog_status(workspace)["duplicates"] == 1


def test_labels_from_csv_with_split_and_none(workspace, image_tree, tmp_path):
    csv_file = tmp_path / "labels.csv"
    csv_file.write_text("filename,label,split\nred_circle/red_circle_0.png,warm,val\ngreen_square/green_square_0.png,cool,\n")
    report = ingest_directory(workspace, image_tree, labels=str(csv_file), split="train", progress=False)
    rows = _rows(workspace)
    assert (rows["red_circle_0.png"].label, rows["red_circle_0.png"].split) == ("warm", "val")
    assert (rows["green_square_0.png"].label, rows["green_square_0.png"].split) == ("cool", "train")
    assert rows["blue_triangle_0.png"].label is None
    assert report.unlabeled == 10


def test_csv_with_wrong_header_names_the_file(workspace, image_tree, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("name,class\n")
    with pytest.raises(InputError, match="bad.csv: expected a header 'filename,label"):
        ingest_directory(workspace, image_tree, labels=str(bad), progress=False)


def test_labels_none_and_paths_are_absolute_and_resolved(workspace, image_tree):
    link = image_tree.parent / "link"
    link.symlink_to(image_tree)
    ingest_directory(workspace, link, labels="none", progress=False)
    rows = _rows(workspace)
    assert all(r.label is None for r in rows.values())
    assert all(r.path.startswith(str(image_tree.resolve())) for r in rows.values())


def test_error_rows_are_retried_once_the_file_is_fixed(workspace, image_tree):
    broken = image_tree / "red_circle" / "fixme.png"
    broken.write_bytes(b"")
    assert ingest_directory(workspace, image_tree, progress=False).errors == 1
    Image.new("RGB", (8, 8), (200, 0, 0)).save(broken, "PNG")
    report = ingest_directory(workspace, image_tree, progress=False)
    assert (report.ingested, report.errors) == (1, 0)
    assert _rows(workspace)["fixme.png"].status == "ok"


def test_workspace_can_be_copied(workspace, image_tree, tmp_path):
    import shutil

    from indexer.api.workspace import Workspace

    ingest_directory(workspace, image_tree, progress=False)
    shutil.copytree(workspace.root, tmp_path / "moved")
    moved = Workspace.at(tmp_path / "moved")
    assert catalog_status(moved)["images_ok"] == 12
    assert catalog_status(moved)["workspace"] == str((tmp_path / "moved").resolve())


def test_symlinked_folders_are_walked_once(workspace, image_tree, tmp_path):
    outside = tmp_path / "outside" / "purple"
    from tests.conftest import draw_shape

    draw_shape(outside / "p.png", (120, 30, 160), "ellipse")
    (image_tree / "linked").symlink_to(outside.parent)
    (image_tree / "loop").symlink_to(image_tree)
    report = ingest_directory(workspace, image_tree, progress=False)
    assert report.ingested == 13 and report.errors == 0
    assert _rows(workspace)["p.png"].label == "linked/purple"
    assert any("already walked" in line for line in report.problems)


def test_csv_header_with_spaces(workspace, image_tree, tmp_path):
    csv_file = tmp_path / "spaced.csv"
    csv_file.write_text("filename, label\nred_circle/red_circle_0.png, warm\n")
    ingest_directory(workspace, image_tree, labels=str(csv_file), progress=False)
    assert _rows(workspace)["red_circle_0.png"].label == "warm"


def test_phone_formats_and_large_photos_are_catalogued_with_their_own_size(workspace, tmp_path):
    import pillow_heif
    from PIL import Image

    from tests.models.test_images import _photo

    pillow_heif.register_heif_opener()
    folder = tmp_path / "phone"
    folder.mkdir()
    _photo(folder / "a.heic", size=(640, 480), fmt="HEIF", quality=90)
    _photo(folder / "b.avif", size=(480, 640), fmt="AVIF", quality=90)
    _photo(folder / "c.jpg", size=(3000, 2000), quality=90)
    whole = (folder / "c.jpg").read_bytes()
    (folder / "d.jpg").write_bytes(whole[: len(whole) // 2])
    report = ingest_directory(workspace, folder, labels="none", progress=False)
    assert (report.ingested, report.errors) == (3, 1)
    rows = _rows(workspace)
    sizes = {name: (row.status, row.width, row.height) for name, row in rows.items()}
    assert sizes["a.heic"] == ("ok", 640, 480) and sizes["b.avif"] == ("ok", 480, 640)
    assert sizes["c.jpg"] == ("ok", 3000, 2000), "the original's size, not the reduced decode's"
    assert rows["d.jpg"].status == "error" and "cannot decode" in rows["d.jpg"].error
    assert Image.open(folder / "c.jpg").size == (3000, 2000)


def test_a_chunk_that_lost_a_deadlock_is_written_again(workspace, image_tree, monkeypatch):
    """PostgreSQL aborts one of two transactions that lock rows in opposite orders (40P01): run it again."""
    from sqlalchemy.exc import OperationalError

    import indexer.api.pipeline.ingest as module

    class Deadlock(Exception):
        sqlstate = "40P01"

    real, calls = module._ingest_chunk, []

    def first_attempt_deadlocks(catalog, chunk, keep_duplicates, report):
        calls.append(len(chunk))
        real(catalog, chunk, keep_duplicates, report)  # the rows and a new label go in ...
        if len(calls) == 1:
            raise OperationalError("INSERT", {}, Deadlock("deadlock detected"))  # ... and are rolled back

    monkeypatch.setattr(module, "_ingest_chunk", first_attempt_deadlocks)
    report = ingest_directory(workspace, image_tree, progress=False)
    assert calls == [12, 12]
    assert (report.seen, report.ingested, report.already_catalogued) == (12, 12, 0)
    assert len(_rows(workspace)) == 12
    assert catalog_status(workspace)["labels"] == 3


def test_other_database_errors_are_not_retried(workspace, image_tree, monkeypatch):
    from sqlalchemy.exc import IntegrityError

    import indexer.api.pipeline.ingest as module

    calls = []

    def broken(*args):
        calls.append(1)
        raise IntegrityError("INSERT", {}, Exception("NOT NULL constraint failed"))

    monkeypatch.setattr(module, "_ingest_chunk", broken)
    with pytest.raises(IntegrityError):
        ingest_directory(workspace, image_tree, progress=False)
    assert calls == [1]


def test_a_copy_found_in_a_later_run_names_the_original_by_path(workspace, image_tree, tmp_path):
    ingest_directory(workspace, image_tree, progress=False)
    copy = tmp_path / "later" / "copy.png"
    copy.parent.mkdir()
    original = image_tree / "red_circle" / "red_circle_0.png"
    copy.write_bytes(original.read_bytes())
    report = ingest_directory(workspace, tmp_path / "later", progress=False)
    assert report.duplicates == 1
    assert report.problems == [f"{copy}: duplicate of {original} (not stored twice)"]


def test_extra_csv_columns_become_typed_fields(workspace, image_tree, tmp_path):
    from indexer.api import image_fields, image_id_of

    csv_file = tmp_path / "labels.csv"
    csv_file.write_text("filename,label,split,price,sku,added\n"
                        "red_circle/red_circle_0.png,warm,val,12.5,A1,2025-01-02\n"
                        "green_square/green_square_0.png,cool,,3,B2,2025-03-04\n"
                        "blue_triangle/blue_triangle_0.png,cool,,,C3,\n")
    report = ingest_directory(workspace, image_tree, labels=str(csv_file), progress=False,
                              field_types={"sku": "text"})
    assert report.fields == {"price": "number", "sku": "text", "added": "date"}
    assert "fields: price (number), sku (text), added (date)" in report.summary_line()
    red = image_fields(workspace, image_id_of(workspace, image_tree / "red_circle" / "red_circle_0.png"))
    assert red["price"] == 12.5 and red["sku"] == "A1" and red["added"].year == 2025
    blue = image_fields(workspace, image_id_of(workspace, image_tree / "blue_triangle" / "blue_triangle_0.png"))
    assert blue == {"sku": "C3"}, "an empty cell leaves the field unset"
    with workspace.catalog() as catalog:
        matched = catalog.matching_ids(catalog.parse_filter('price > 5 or added >= "2025-03-01"'))
    assert len(matched) == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("filename,label,price\nred_circle/red_circle_1.png,warm,cheap\n")
    with pytest.raises(InputError, match="bad.csv: field 'price' is number; got a text value \\(no field"):
        ingest_directory(workspace, image_tree, labels=str(bad), progress=False)
