"""run_query: validate and resolve parameters, ask the store, normalise the answer."""

from __future__ import annotations

import datetime as dt
import importlib
import json
import re
from collections.abc import Mapping
from typing import Any

from persistence.queries._scope import ORG_PARAM
from persistence.queries.catalog import CATALOG, FLOAT_DIGITS, QueryParam, QuerySpec
from persistence.stores.base import Store

# The executor's identifier rule for org slugs (not imported: persistence sits below executor).
_ORG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")


class QueryError(ValueError):
    """A query name or parameter is wrong; the message names it and what is accepted."""


def get_query(name: str) -> QuerySpec:
    """Return the catalog entry for `name` or raise QueryError listing the known names."""
    try:
        return CATALOG[name]
    except KeyError:
        raise QueryError(f"unknown query {name!r}; expected one of {sorted(CATALOG)}.") from None


def dialect_sql(dialect: str) -> Mapping[str, str]:
    """The SQL of one dialect (module persistence.queries.<dialect>, dict <DIALECT>_SQL)."""
    module = importlib.import_module(f"persistence.queries.{dialect}")
    sql: Mapping[str, str] = getattr(module, f"{dialect.upper()}_SQL")
    missing = sorted(set(CATALOG) - set(sql))
    if missing:
        raise QueryError(f"dialect {dialect!r} has no SQL for queries {missing}.")
    return sql


# How each parameter type reads in an error message.
_EXPECTED = {
    "INT64": "an integer",
    "DATE": "a date (YYYY-MM-DD)",
    "TIMESTAMP": "a timestamp (ISO 8601)",
    "STRING": "a string",
    "BOOL": "true or false",
}
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def _bool(value: Any) -> bool:
    """A bool, or the text a CLI passes for one; anything else is a TypeError."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise TypeError


def _coerce(query: str, param: QueryParam, value: Any) -> Any:
    """Convert one caller value to the parameter's Python type, or raise QueryError."""
    where = f"query {query!r}: parameter {param.name!r}"
    try:
        if param.type == "BOOL":
            return _bool(value)
        if param.type == "INT64":
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise TypeError
            number = int(value)
            if number < 0:
                raise QueryError(f"{where} must be >= 0 (got {value!r}).")
            return number
        if param.type == "DATE":
            if isinstance(value, dt.datetime):
                return value.astimezone(dt.UTC).date()
            if isinstance(value, dt.date):
                return value
            return dt.date.fromisoformat(str(value))
        if param.type == "TIMESTAMP":
            stamp = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(value)
            if stamp.tzinfo is None:
                stamp = stamp.replace(tzinfo=dt.UTC)  # naive input is taken as UTC
            return stamp.astimezone(dt.UTC)
        if not isinstance(value, str):
            raise TypeError
        return value
    except QueryError:
        raise
    except (TypeError, ValueError):
        raise QueryError(
            f"{where} must be {_EXPECTED[param.type]} (got {value!r} that is a "
            f"{type(value).__name__})."
        ) from None


def _org_scope(spec: QuerySpec, params: Mapping[str, Any]) -> tuple[dict[str, Any], Any]:
    """Split off the `org_slug` every query accepts (it scopes the query to one organisation);
    a query that declares it as its own parameter keeps it too."""
    rest = dict(params)
    declared = any(p.name == ORG_PARAM for p in spec.caller_params)
    org = rest.get(ORG_PARAM) if declared else rest.pop(ORG_PARAM, None)
    if org is not None and (not isinstance(org, str) or not _ORG_RE.match(org)):
        raise QueryError(
            f"query {spec.name!r}: parameter {ORG_PARAM!r} must be an org slug of letters, "
            f"digits, '_', '-', '.' (got {org!r})."
        )
    return rest, org


def resolve_params(spec: QuerySpec, params: Mapping[str, Any]) -> dict[str, Any]:
    """Validate caller params against the spec; fill defaults, run-time values and derived ones.

    Every query also takes `org_slug`: given, the store reads only that organisation's rows.
    """
    params, org = _org_scope(spec, params)
    allowed = {p.name: p for p in spec.caller_params}
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise QueryError(
            f"query {spec.name!r} does not take parameter(s) {unknown}; "
            f"expected some of {sorted(allowed)}."
        )
    now = dt.datetime.now(dt.UTC)
    resolved: dict[str, Any] = {}
    for name, param in allowed.items():
        value = params.get(name)
        if value is None:
            if param.required:
                raise QueryError(f"query {spec.name!r} needs parameter {name!r} (got nothing).")
            if param.name == "now":
                value = now
            elif param.name == "as_of":
                value = now.date()
            else:
                value = param.default
        resolved[name] = None if value is None else _coerce(spec.name, param, value)
    resolved.update(spec.derive(dict(resolved)))
    if org is not None:
        resolved[ORG_PARAM] = org
    return resolved


def _top_counts(value: Any) -> Any:
    """Canonical order for [{value, count}] lists: count desc, then value (null first)."""
    if not isinstance(value, list) or not all(
        isinstance(v, Mapping) and set(v) == {"value", "count"} for v in value
    ):
        return value
    items = [{"value": v["value"], "count": int(v["count"])} for v in value]
    return sorted(items, key=lambda v: (-v["count"], v["value"] is not None, str(v["value"])))


def _normalise(column_type: str, value: Any) -> Any:
    """Turn a dialect's value into the JSON-ready value every store returns for that type."""
    if value is None:
        return None
    if column_type == "TIMESTAMP":
        stamp = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=dt.UTC)
        return stamp.astimezone(dt.UTC).isoformat(timespec="microseconds")
    if column_type == "DATE":
        return value.isoformat() if isinstance(value, dt.date) else str(value)
    if column_type == "INT64":
        return int(value)
    if column_type == "BOOL":
        return bool(value)
    if column_type == "FLOAT64":
        return round(float(value), FLOAT_DIGITS)
    if column_type == "JSON":
        return _top_counts(json.loads(value) if isinstance(value, str | bytes) else value)
    return str(value)


def normalise_rows(spec: QuerySpec, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Check a dialect returned the spec's columns and normalise every value."""
    expected = spec.column_names
    out = []
    for row in rows:
        if tuple(row) != expected and set(row) != set(expected):
            raise QueryError(
                f"query {spec.name!r} returned columns {list(row)}; expected {list(expected)}."
            )
        out.append({c.name: _normalise(c.type, row[c.name]) for c in spec.columns})
    return out


def run_query(store: Store, name: str, **params: Any) -> list[dict[str, Any]]:
    """Run a catalog query on any store and return JSON-ready rows with the spec's columns."""
    spec = get_query(name)
    resolved = resolve_params(spec, params)
    return normalise_rows(spec, store.query(name, resolved))
