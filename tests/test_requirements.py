"""The one rule for missing optional parts (tests/requirements.py): a skip that says why, a failure under CI=true."""

from __future__ import annotations

import pytest

from tests.requirements import require, require_module


def test_a_missing_part_skips_naming_it_and_how_to_get_it(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"^missing chromium; apt-get install chromium$"):
        require(False, "chromium", "apt-get install chromium")


def test_under_ci_a_missing_part_fails_instead(monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"^missing chromium; apt-get install chromium \(CI=true"):
        require(False, "chromium", "apt-get install chromium")
    with pytest.raises(pytest.fail.Exception, match=r"missing the Python module 'no_such_module_here' \(No module"):
        require_module("no_such_module_here", "pip install it")


def test_a_present_part_passes_and_a_module_comes_back(monkeypatch):
    monkeypatch.setenv("CI", "true")
    require(True, "chromium", "apt-get install chromium")
    assert require_module("json", "the standard library").dumps([1]) == "[1]"
