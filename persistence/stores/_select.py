"""select_rows helper shared by the stores: an equality filter on STRING columns of one table."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from persistence.schema import TableSpec
from persistence.stores.base import StoreError


def where_clause(
    spec: TableSpec, where: Mapping[str, str], placeholder: Callable[[int], str]
) -> str:
    """`"a" = ? AND "b" = ?` for STRING columns of the spec (anything else: StoreError)."""
    parts = []
    for i, (column, value) in enumerate(where.items()):
        if column not in spec.column_names or spec.field(column).type != "STRING":
            raise StoreError(
                f"select_rows on {spec.name}: {column!r} is not a STRING column", retryable=False
            )
        if not isinstance(value, str):
            raise StoreError(
                f"select_rows on {spec.name}: {column} must be a str (got {type(value).__name__})",
                retryable=False,
            )
        parts.append(f'"{column}" = {placeholder(i)}')
    return " AND ".join(parts) or "1 = 1"
