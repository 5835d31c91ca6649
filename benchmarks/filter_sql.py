"""The catalog's part of a filtered search at N rows: the SQL that turns a filter into ids, timed (issue 27).

``indexer bench --filters`` times the FAISS part of a filtered search with the selection made once in numpy.
This script times what the service adds in front of it. A fresh SQLite workspace gets N rows through the
project's own import (:func:`indexer.api.import_vectors`, one Parquet file: its other columns become typed user
fields): small seeded vectors (the SQL does
not read them) with the filter bench's two generated fields as user fields
(:func:`indexer.bench.filtered_bench.generated_fields`): ``category``, text, 1,000 values, and ``value``, a
uniform number. A flat index over the vectors lets a :class:`~indexer.api.search.engine.Searcher` run.

For each field and fraction (``category in [...]`` the first f x 1,000 values; ``value < f``):

- ``sql_ms``: a fresh catalog session, the filter parsed against the catalog's fields and answered by
  :meth:`storage.catalog.Catalog.matching_ids` (one query, bound parameters): what ``Searcher._selection`` runs
  on a cache miss. ``first`` is the first run of that filter, then the median of ``--repeats``;
- ``miss_ms``: the searcher's own ``filter`` timing (``Answer.timings_ms``) of a vector query whose filter is
  not in its cache (the cache is emptied before each): SQL, ids to numpy, the selection object;
- ``hit_ms``: the same query again within the cache's lifetime (``SELECTION_TTL_S``): the cached selection.

The catalog file is in the OS page cache (it was just written); a query after a reboot would read it from disk
first. ``selected`` is checked against the generated fields counted in numpy.

``--db-url`` puts the catalog in another database (an empty PostgreSQL database:
``postgresql+psycopg://USER@HOST:PORT/NAME``) instead of the workspace's SQLite file; the rest is the same.

Usage: python benchmarks/filter_sql.py [--n 1000000] [--fractions 0.001,0.01,0.1,0.5] [--repeats 5]
       [--workdir /tmp/filter-sql] [--db-url URL] [--reuse] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's indexer

DIM = 8
MODEL = "vectors"


def log(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr, flush=True)


def floats(text: str) -> list[float]:
    return [float(part) for part in text.split(",") if part]


def write_source(path: Path, n: int, seed: int) -> None:
    """A Parquet file of ids 1..n: path, vector ((n, DIM) seeded unit vectors), category (text), value."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from indexer.bench.filtered_bench import category_name, generated_fields

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    category, value = generated_fields(n, seed)
    names = [category_name(c) for c in range(int(category.max()) + 1)]
    table = pa.table({
        "path": pa.array([f"/synthetic/{i:07d}.npy" for i in range(n)], pa.string()),
        "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), DIM),
        "category": pa.array([names[c] for c in category.tolist()], pa.string()),
        "value": pa.array(value, pa.float64()),
    })
    pq.write_table(table, path)


def filters(fractions: list[float]) -> dict[tuple[str, float], str]:
    """{(field, fraction): filter text}, the filter bench's selections in the filter language."""
    from indexer.bench.filtered_bench import field_filters
    from storage.filters import quoted

    out = {}
    for (field, fraction), selection in field_filters(tuple(fractions)).items():
        if field == "category":
            out[field, fraction] = f"category in [{', '.join(map(quoted, selection.values))}]"
        else:
            out[field, fraction] = f"value < {selection.below!r}"
    return out


def expected_counts(n: int, fractions: list[float], seed: int) -> dict[tuple[str, float], int]:
    from indexer.bench.filtered_bench import selections

    return {key: len(ids) for key, ids in selections(n, tuple(fractions), seed).items()}


def time_sql(workspace, text: str) -> tuple[float, int]:
    """(ms, ids selected) of one fresh catalog session answering filter ``text``."""
    started = time.perf_counter()
    with workspace.catalog() as catalog:
        ids = catalog.matching_ids(catalog.parse_filter(text))
    return (time.perf_counter() - started) * 1e3, len(ids)


def summary(times: list[float]) -> dict[str, float]:
    return {"first": round(times[0], 3), "median": round(statistics.median(times[1:] or times), 3),
            "min": round(min(times), 3), "n": len(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--fractions", type=floats, default=[0.001, 0.01, 0.1, 0.5])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default="/tmp/filter-sql")
    parser.add_argument("--db-url", default=None,
                        help="the catalog's database (an empty PostgreSQL database); default the workspace's SQLite")
    parser.add_argument("--reuse", action="store_true", help="keep an imported workspace of the same n")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    from indexer.api import Searcher, build_index, import_vectors
    from indexer.api.workspace import Workspace
    from indexer.core.files import write_json

    work = Path(args.workdir)
    workspace_dir, done = work / "ws", work / f"imported-{args.n}"
    setup: dict = {}
    if not (args.reuse and done.exists()):
        shutil.rmtree(work, ignore_errors=True)
        log(f"writing {args.n:,} rows")
        write_source(work / "source.parquet", args.n, args.seed)
        started = time.perf_counter()
        import_vectors(Workspace.at(workspace_dir, args.db_url), work / "source.parquet", model_name=MODEL,
                       progress=False)
        setup["import_s"] = round(time.perf_counter() - started, 1)
        log(f"imported in {setup['import_s']} s")
        build_index(Workspace.at(workspace_dir, args.db_url), "flat", model_name=MODEL, progress=False)
        done.touch()
    workspace = Workspace.at(workspace_dir, args.db_url)
    database = "sqlite" if workspace.db_url.startswith("sqlite") else workspace.db_url.split(":", 1)[0]
    if database == "sqlite":
        setup["catalog_mb"] = round((workspace_dir / "catalog.db").stat().st_size / 2**20, 1)
    else:
        from sqlalchemy import text

        with workspace.catalog() as catalog:
            size = catalog.session.scalar(text("SELECT pg_database_size(current_database())"))
        setup["catalog_mb"] = round(size / 2**20, 1)
    searcher = Searcher(workspace)
    query = np.random.default_rng(args.seed + 1).normal(size=DIM).tolist()
    expected = expected_counts(args.n, args.fractions, args.seed)
    rows = []
    for (field, fraction), text in filters(args.fractions).items():
        sql, counts = [], set()
        for _ in range(args.repeats + 1):
            ms, count = time_sql(workspace, text)
            sql.append(ms)
            counts.add(count)
        if counts != {expected[field, fraction]}:
            raise SystemExit(f"{field} {fraction}: SQL selected {counts}; the generated fields hold "
                             f"{expected[field, fraction]}")
        miss, hit = [], []
        for _ in range(args.repeats + 1):
            searcher.forget_selections()
            miss.append(searcher.search_vector(query, k=10, where=text).timings_ms["filter"])
            hit.append(searcher.search_vector(query, k=10, where=text).timings_ms["filter"])
        row = {"field": field, "fraction": fraction, "selected": expected[field, fraction],
               "filter_chars": len(text), "sql_ms": summary(sql), "miss_ms": summary(miss), "hit_ms": summary(hit)}
        rows.append(row)
        log(f"{field} {fraction:.1%} ({row['selected']:,}): SQL median {row['sql_ms']['median']:.1f} ms "
            f"(first {row['sql_ms']['first']:.1f}), searcher miss {row['miss_ms']['median']:.1f} ms, "
            f"hit {row['hit_ms']['median']:.3f} ms")
    report = {"n": args.n, "repeats": args.repeats, "seed": args.seed, "database": database, **setup,
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rows": rows}
    print(json.dumps(report, indent=2))
    if args.json:
        write_json(args.json, report)


if __name__ == "__main__":
    main()
