"""Oxford Flowers-102 through torchvision's ``Flowers102`` dataset code.

A local copy is used in place when its ``.mat`` files carry the official checksums:
either torchvision's layout (``DIR/flowers-102/jpg``) or a folder holding ``jpg/`` and
the two ``.mat`` files directly. Nothing is then downloaded or written into DIR.
Otherwise torchvision downloads the official archive and label files (checksums
verified) into the workspace.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from indexer.core.errors import InputError
from indexer.datasets.folders import ImageItem

# The official files' md5 sums, as torchvision's Flowers102 checks them (a test keeps
# these equal to torchvision's own table, so the local check never imports torch).
LABELS_FILE = ("imagelabels.mat", "e0620be6f572b9609742df49c70aed4d")
SETID_FILE = ("setid.mat", "a5357ecc9cb78c4bef273ce3793fc85c")
SPLITS = ("train", "val", "test")
OFFLINE_HELP = (
    "download it on a connected machine, or point --root (make demo: FLOWERS102_DIR=...) at a "
    "local copy holding jpg/, imagelabels.mat and setid.mat"
)


def find_local_copy(root: str | os.PathLike[str]) -> Path | None:
    """The folder holding ``jpg/`` and the verified ``.mat`` files under ``root``, or None."""
    root = Path(root).expanduser()
    for candidate in (root / "flowers-102", root):
        if (candidate / "jpg").is_dir() and all(
            _md5_matches(candidate / name, md5) for name, md5 in (LABELS_FILE, SETID_FILE)
        ):
            return candidate.resolve()
    return None


def flowers102_items(root: str | os.PathLike[str] | None, download_dir: Path) -> list[ImageItem]:
    """All 8,189 official images with labels (1–102, class names) and the official split.

    ``root``: a local copy to use in place; None downloads into ``download_dir``.
    """
    if root is not None:
        local = find_local_copy(root)
        if local is None:
            raise InputError(
                f"{root}: no Flowers-102 copy there (need jpg/ and the official imagelabels.mat "
                f"and setid.mat, directly or under flowers-102/); {OFFLINE_HELP}"
            )
        with tempfile.TemporaryDirectory(prefix="flowers102-") as tmp:
            # torchvision expects <root>/flowers-102/; a symlink gives it that layout
            # without writing into a possibly read-only folder.
            (Path(tmp) / "flowers-102").symlink_to(local, target_is_directory=True)
            return _read_splits(Path(tmp), download=False, real_base=local)
    download_dir.mkdir(parents=True, exist_ok=True)
    return _read_splits(download_dir, download=True, real_base=download_dir / "flowers-102")


def _read_splits(root: Path, *, download: bool, real_base: Path) -> list[ImageItem]:
    from torchvision.datasets import Flowers102

    items: list[ImageItem] = []
    for split in SPLITS:
        try:
            dataset = Flowers102(str(root), split=split, download=download, loader=str)
        except (OSError, RuntimeError) as exc:  # URLError is an OSError
            raise InputError(
                f"cannot obtain Flowers-102 into {root} ({_short(exc)}); {OFFLINE_HELP}"
            ) from None
        for position in range(len(dataset)):  # loader=str: the public API yields paths, nothing decoded
            image_file, label = dataset[position]
            items.append(
                ImageItem(
                    path=real_base / "jpg" / Path(image_file).name,
                    label=Flowers102.classes[label],
                    label_id=label + 1,
                    split=split,
                )
            )
    items.sort(key=lambda item: item.path.name)
    return items


def _md5_matches(path: Path, md5: str) -> bool:
    try:
        with path.open("rb") as handle:
            return hashlib.md5(handle.read(), usedforsecurity=False).hexdigest() == md5
    except OSError:
        return False


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
