"""Org scoping of any catalog query: one rule, applied by each store when `org_slug` is given.

Every catalog query takes an optional `org_slug`. When it is given, each store reads the
transitions table through `(SELECT * FROM <table> WHERE org_slug = <param>)` instead of the table
itself (`scope_sqlite` / `scope_bigquery`), so one rule filters every query, present and future,
to one organisation; the HTTP service always passes it. A query that declares `org_slug` itself
(`runs`) gets the same value for its own filter.
"""

from __future__ import annotations

import functools
import re

ORG_PARAM = "org_slug"
_T = "org_meta_state_transitions"
_SQLITE_TABLE = re.compile(rf"\b(FROM|JOIN)\s+{_T}\b")


@functools.cache
def scope_sqlite(sql: str) -> str:
    """SQLite SQL reading only the transitions of `:org_slug`."""
    return _SQLITE_TABLE.sub(rf"\1 (SELECT * FROM {_T} WHERE org_slug = :{ORG_PARAM})", sql)


@functools.cache
def scope_bigquery(template: str) -> str:
    """A BigQuery template (table token in backticks) reading only the rows of `@org_slug`."""
    return template.replace(
        "`__TABLE__`", f"(SELECT * FROM `__TABLE__` WHERE org_slug = @{ORG_PARAM})"
    )
