"""benchmarks/filter_sql.py at a tiny size: the SQL selects what the generated fields hold, every timing is there."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.requirements import extra, require_module

ROOT = Path(__file__).resolve().parent.parent.parent


def test_filter_sql_selects_the_generated_fields_and_times_each_step(tmp_path):
    require_module("pyarrow", extra("notebook"))  # the import reads user fields from Parquet
    out = tmp_path / "sql.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "filter_sql.py"), "--n", "3000",
                           "--fractions", "0.01,0.5", "--repeats", "1", "--workdir", str(tmp_path / "work"),
                           "--json", str(out)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["n"] == 3000 and report["import_s"] > 0
    rows = {(row["field"], row["fraction"]): row for row in report["rows"]}
    assert set(rows) == {(field, f) for field in ("category", "value") for f in (0.01, 0.5)}
    assert 0 < rows["category", 0.01]["selected"] < rows["category", 0.5]["selected"] < 3000
    for row in rows.values():  # the script stops when the SQL's count differs from the fields' own
        assert row["sql_ms"]["n"] == 2 and row["sql_ms"]["median"] > 0
        assert row["miss_ms"]["median"] > 0 and row["hit_ms"]["median"] >= 0
