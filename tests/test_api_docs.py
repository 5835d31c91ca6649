"""docs/API.md is executed: every ``>>>`` example runs (doctest) on tiny images made in code."""

from __future__ import annotations

import doctest
from pathlib import Path

from tests.conftest import SHAPES, draw_shape

API_DOC = Path(__file__).resolve().parents[1] / "docs" / "API.md"


def test_every_example_in_the_api_doc_runs_and_prints_what_it_says(tmp_path, monkeypatch):
    for name, (colour, shape) in SHAPES.items():
        for i in range(8):
            draw_shape(tmp_path / "images" / name / f"{name}_{i}.png", colour, shape, offset=i - 4)
    monkeypatch.chdir(tmp_path)
    result = doctest.testfile(
        str(API_DOC), module_relative=False, globs={}, report=True, raise_on_error=False,
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
    )
    assert result.attempted > 60, "the examples were found"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in docs/API.md failed (output above)"


def test_every_public_name_is_in_the_api_doc():
    import indexer.api

    text = API_DOC.read_text()
    missing = [name for name in dir(indexer.api) if f"`{name}`" not in text]
    assert not missing, f"public names not documented in docs/API.md: {missing}"
