"""One rule for a test whose optional part is missing: skip it and say why, except under ``CI=true``.

CI installs every extra and the Debian packages, and sets FLOWERS102_DIR and WEIGHTS (``.ci/run``), so a
part missing there is a broken setup: the test fails and its message names the part and how to get it,
instead of a quiet skip in the summary. GPU tests are the exception by design: CI machines have no CUDA, so
``make test`` deselects the ``gpu`` marker rather than skipping them.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import NoReturn

import pytest

GPU_HOW = "run 'pytest -m gpu' on a machine with CUDA ('make test' deselects the gpu tests)"
FLOWERS_HOW = ("set FLOWERS102_DIR to a Flowers-102 copy (jpg/, imagelabels.mat, setid.mat); "
               ".ci/run sets it from ../shared/datasets/flowers102")
WEIGHTS_HOW = "set WEIGHTS to mobilenet_v2-b0353104.pth; .ci/run sets it from ../shared/weights"


def extra(name: str) -> str:
    """How to install the ``name`` extra of setup.cfg."""
    return f"pip install -e '.[{name}]' (the '{name}' extra; 'make test' installs it)"


def missing(what: str, how: str) -> NoReturn:
    """Skip the calling test, or fail it under CI=true; the message names ``what`` is missing and ``how`` to get it."""
    __tracebackhide__ = True  # pytest reports the calling test's line, not this one
    message = f"missing {what}; {how}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI=true: a missing part fails the test instead of skipping it)", pytrace=False)
    pytest.skip(message)


def require(present: object, what: str, how: str) -> None:
    """:func:`missing` unless ``present`` is true."""
    __tracebackhide__ = True  # pytest reports the calling test's line, not this one
    if not present:
        missing(what, how)


def require_module(name: str, how: str) -> ModuleType:
    """The module ``name``, imported; :func:`missing` (naming it and the import error) when it cannot be."""
    __tracebackhide__ = True  # pytest reports the calling test's line, not this one
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        error = exc
    missing(f"the Python module {name!r} ({error})", how)  # outside the except: no chained traceback in the report


def require_cuda() -> None:
    """:func:`missing` unless torch sees a CUDA device."""
    __tracebackhide__ = True  # pytest reports the calling test's line, not this one
    import torch

    require(torch.cuda.is_available(), "a CUDA device (torch.cuda.is_available() is False)", GPU_HOW)
