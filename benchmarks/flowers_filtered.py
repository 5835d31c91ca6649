"""Filters on Flowers-102: a label filter returns only that label, and P@1 / MAP@R per label within filtered
galleries beside the unfiltered ones (issue 27).

Runs :func:`indexer.api.pipeline.filtered_quality.bench_label_filters` on a labelled workspace (any labelled
catalog works; Flowers is the one measured): every test image, by its stored vector, is queried through the
query engine every face uses (the filter parsed by the grammar, answered with bound SQL, the search kept to the
selected ids).

1. ``label = "<its label>"``, k results: hits with another label (must be 0), and queries whose hits are not
   the exact top k of their label's vectors (must be 0). P@1 and MAP@R under this filter are 1 by
   construction, so they are not reported as quality.
2. For each gallery filter (default: none, ``split = "test"``, ``split = "train"``): P@1 and MAP@R per label,
   R counted within the gallery. ``split = "test"`` is the protocol of ``indexer bench`` (each test image
   against the rest of the test split), so its overall figures equal that bench's on a flat index.

Usage: python benchmarks/flowers_filtered.py --workspace WS [--index NAME] [--split test] [--k 10]
       [--gallery 'split = "val"' ...] [--json out.json] [--markdown out.md]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's indexer


def main() -> None:
    from indexer.api import Workspace, bench_label_filters, label_filter_table
    from indexer.api.pipeline.filtered_quality import default_galleries
    from indexer.core.files import write_json, write_text

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--index", default=None, help="the index searched (default: the most recent)")
    parser.add_argument("--split", default="test", help="the queries' split")
    parser.add_argument("--k", type=int, default=10, help="results of each label-filtered query")
    parser.add_argument("--gallery", action="append", default=None,
                        help="a gallery filter (repeatable; 'none': the whole index); default: none, the split, train")
    parser.add_argument("--json", default=None)
    parser.add_argument("--markdown", default=None)
    args = parser.parse_args()

    galleries = default_galleries(args.split) if args.gallery is None else \
        tuple(None if gallery == "none" else gallery for gallery in args.gallery)
    report = bench_label_filters(Workspace.at(args.workspace), index_name=args.index, split=args.split,
                                 galleries=galleries, k=args.k,
                                 log=lambda line: print(f"[{time.strftime('%H:%M:%S')}] {line}", file=sys.stderr))
    table = label_filter_table(report)
    print(table)
    if args.json:
        write_json(args.json, report)
    if args.markdown:
        write_text(args.markdown, table + "\n")


if __name__ == "__main__":
    main()
