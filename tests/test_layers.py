"""The layers that import-linter cannot see: cli.py is a module, not a package.

The packages' layers are import-linter contracts in setup.cfg, run by ``make test``.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, function-level imports included (``from a import b`` gives a.b too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_cli_imports_click_the_standard_library_and_indexer_api_only():
    allowed_roots = set(sys.stdlib_module_names) | {"click", "__future__"}
    offending = sorted(
        module for module in imported_modules(ROOT / "cli.py")
        if module.split(".")[0] not in allowed_roots
        and module not in ("indexer", "indexer.api", "indexer.service", "indexer.cli")
        and not module.startswith(("indexer.api.", "indexer.cli."))
        and module not in ("indexer.service.ServiceConfig", "indexer.service.serve", "indexer.service.ClusterOptions",
                           "indexer.service.serve_on_ray")
    )
    assert offending == [], (
        f"cli.py may import click, the standard library, indexer.api, its own parts (indexer.cli) and the other "
        f"face's entry points (indexer.service: ServiceConfig, serve, ClusterOptions, serve_on_ray) only: {offending}"
    )


def test_the_cli_parts_import_click_the_standard_library_and_indexer_api_only():
    allowed_roots = set(sys.stdlib_module_names) | {"click", "__future__"}
    paths = sorted((ROOT / "indexer" / "cli").glob("*.py"))
    assert len(paths) >= 3, paths  # the package, its shared helpers and its commands
    for path in paths:
        offending = sorted(
            module for module in imported_modules(path)
            if module.split(".")[0] not in allowed_roots and module not in ("indexer", "indexer.api", "indexer.cli")
            and not module.startswith(("indexer.api.", "indexer.cli."))
        )
        assert offending == [], f"{path.name} may import click, the standard library and indexer.api only: {offending}"


def test_the_check_sees_function_level_imports(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import click\n\ndef f():\n    from indexer.core.search import search\n")
    assert "indexer.core.search" in imported_modules(probe)


def test_an_exported_function_is_not_shadowed_by_its_submodule():
    """``indexer.api.query`` is the function, even when the module ``indexer.api.search.query`` is imported first."""
    import subprocess
    import sys

    code = ("import types\nimport indexer.api.search.query\nimport indexer.api\n"
            "from indexer.api.search.engine import Searcher\n"
            "assert not isinstance(indexer.api.query, types.ModuleType) and callable(indexer.api.query)\n"
            "assert indexer.api.query is indexer.api.search.query.query and indexer.api.Searcher is Searcher\n"
            "print('ok')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.stdout.strip() == "ok", result.stderr
