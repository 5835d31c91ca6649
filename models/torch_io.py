"""Reading torch files safely: ``torch.load(weights_only=True)`` with one-line errors."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def torch_load(path: str | os.PathLike[str], error: type[Exception], what: str) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU; a missing or unreadable file raises ``error``."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise error(f"{what} {str(path)!r} not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, pickle garbage, foreign objects
        detail = str(exc).splitlines()[0] if str(exc) else ""
        raise error(f"{what} {str(path)!r} is unreadable ({exc.__class__.__name__}{': ' + detail if detail else ''})") from None
