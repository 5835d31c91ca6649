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
    missing = [name for name in indexer.api.__all__ if f"`{name}`" not in text]
    assert not missing, f"public names not documented in docs/API.md: {missing}"


def test_the_public_names_are_what_the_package_imports():
    """``__all__`` lists every name the package imports for its users, and nothing it lacks."""
    import types

    import indexer.api

    imported = {name for name, value in vars(indexer.api).items()
                if not name.startswith("_") and not isinstance(value, types.ModuleType) and name != "annotations"}
    assert imported == set(indexer.api.__all__)


def test_public_functions_and_classes_have_docstrings_and_type_hints():
    import inspect

    import indexer.api

    problems = []
    for name in dir(indexer.api):
        obj = getattr(indexer.api, name)
        if not (inspect.isfunction(obj) or inspect.isclass(obj)):
            continue
        if not obj.__doc__ or obj.__doc__.startswith(f"{obj.__name__}("):  # a dataclass's generated one
            problems.append(f"{name}: no docstring")
        members = [(name, obj)] if inspect.isfunction(obj) else [
            (f"{name}.{attr}", member) for attr, member in vars(obj).items()
            if inspect.isfunction(member) and not attr.startswith("_")
        ] if obj.__module__.startswith("indexer") else []
        for label, function in members:
            signature = inspect.signature(function)
            if not function.__doc__:
                problems.append(f"{label}: no docstring")
            if signature.return_annotation is inspect.Signature.empty:
                problems.append(f"{label}: no return type")
            problems += [f"{label}: parameter {p.name} has no type" for p in signature.parameters.values()
                         if p.annotation is inspect.Parameter.empty and p.name not in ("self", "cls")]
    assert not problems, problems


def test_the_package_ships_py_typed():
    from configparser import ConfigParser

    config = ConfigParser()
    config.read(API_DOC.parents[1] / "setup.cfg")
    for package in ("indexer", "models", "storage"):
        assert "py.typed" in config["options.package_data"][package]
        assert (API_DOC.parents[1] / package / "py.typed").is_file()
