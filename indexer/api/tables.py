"""Results as tables: plain rows (lists of dicts) that become a pandas DataFrame on request.

pandas is optional: without it :func:`to_dataframe` raises :class:`MissingDependencyError`
with the one command that installs it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from indexer.core.errors import MissingDependencyError

PANDAS_HELP = "to_pandas() needs pandas, which is not installed: pip install pandas (or pip install 'indexer[notebook]')"


def to_dataframe(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> Any:
    """A ``pandas.DataFrame`` of ``rows`` with exactly ``columns`` in that order (also when ``rows`` is empty)."""
    try:
        import pandas
    except ImportError:
        raise MissingDependencyError(PANDAS_HELP) from None
    return pandas.DataFrame([{column: row.get(column) for column in columns} for row in rows], columns=list(columns))
