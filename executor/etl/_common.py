"""Shared checks for the data processors: config keys, identifiers, paths and SQL parameters."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from executor.processors import ConfigProblem, ProcessorContext

if TYPE_CHECKING:  # pathlib is imported by the functions using it, not by a run registering us
    from pathlib import Path

# A table name: one to three dotted identifiers (table, schema.table, db.schema.table).
TABLE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}(\.[A-Za-z_][A-Za-z0-9_-]{0,127}){0,2}$")
PARAM_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
# `$name` outside single-quoted strings (strings are blanked before searching).
_PLACEHOLDER_RE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_STRING_RE = re.compile(r"'(?:[^']|'')*'")
WRITE_MODES = ("create", "replace", "append")
DATA_DIR_ENV = "PIPESTATE_DATA_DIR"


def allowed_keys(config: Mapping[str, Any], *keys: str) -> None:
    """Refuse keys the processor does not know, naming them and the allowed ones."""
    extra = sorted(set(config) - set(keys))
    if extra:
        raise ConfigProblem(
            None, f"unknown key {', '.join(map(repr, extra))} (allowed: {', '.join(keys)})"
        )


def text(config: Mapping[str, Any], key: str, *, required: bool = False) -> str | None:
    """A non-empty string value, or None when absent and optional."""
    value = config.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigProblem(key, f"expected a non-empty string, got {value!r}")
    return value


def table_name(value: object, key: str) -> str:
    """A validated table name (letters, digits, '_', up to two dots)."""
    if not isinstance(value, str) or not TABLE_RE.match(value):
        raise ConfigProblem(key, f"expected a table name like schema.table, got {value!r}")
    return value


def target(config: Mapping[str, Any]) -> tuple[str, str] | None:
    """The optional `target: {table, mode}`; mode is create, replace or append."""
    spec = config.get("target")
    if spec is None:
        return None
    if not isinstance(spec, Mapping):
        raise ConfigProblem("target", f"expected a mapping with table and mode, got {spec!r}")
    allowed_keys(spec, "table", "mode")
    mode = spec.get("mode", "replace")
    if mode not in WRITE_MODES:
        raise ConfigProblem(
            "target.mode", f"expected one of {', '.join(WRITE_MODES)}, got {mode!r}"
        )
    return table_name(spec.get("table"), "target.table"), str(mode)


def static_params(config: Mapping[str, Any], key: str = "params") -> dict[str, Any]:
    """Step-level parameters: a mapping of names to scalars."""
    value = config.get(key) or {}
    if not isinstance(value, Mapping):
        raise ConfigProblem(key, f"expected a mapping of names to values, got {value!r}")
    for name, item in value.items():
        if not isinstance(name, str) or not PARAM_NAME_RE.match(name):
            raise ConfigProblem(key, f"parameter names are identifiers, got {name!r}")
        if isinstance(item, (Mapping, list)):
            raise ConfigProblem(f"{key}.{name}", f"expected a scalar, got {item!r}")
    return dict(value)


def run_params(context: ProcessorContext) -> dict[str, Any]:
    """The run's parameters (e.g. the seed's {"date": ...}), empty when the run has none."""
    return dict(context.params)


def pipeline_dir(context: ProcessorContext) -> Path:
    """The directory of the pipeline file (the working directory for configs not from a file)."""
    from pathlib import Path

    source = context.config_source
    if source and not source.startswith("<"):
        return Path(source).resolve().parent
    return Path.cwd()


def resolve_path(context: ProcessorContext, value: str) -> Path:
    """An input path: absolute as given, relative to the pipeline file's directory otherwise."""
    from pathlib import Path

    path = Path(value).expanduser()
    return path if path.is_absolute() else pipeline_dir(context) / path


def resolve_output(context: ProcessorContext, value: str) -> Path:
    """An output path (database, download): relative ones go under $PIPESTATE_DATA_DIR if set.

    Without it they sit next to the pipeline file, like inputs; setting it keeps a checkout of
    pipeline configs free of data files.
    """
    from pathlib import Path

    path = Path(value).expanduser()
    if path.is_absolute():
        return path
    data_dir = os.environ.get(DATA_DIR_ENV)
    return (Path(data_dir) if data_dir else pipeline_dir(context)) / path


def placeholders(sql: str) -> set[str]:
    """The `$name` parameters a statement uses (outside string literals)."""
    return set(_PLACEHOLDER_RE.findall(_STRING_RE.sub("''", sql)))


def bind(sql: str, values: Mapping[str, Any], *, step: str) -> dict[str, Any]:
    """The values a statement needs, by name; a clear error naming any that is missing."""
    wanted = placeholders(sql)
    missing = sorted(wanted - set(values))
    if missing:
        from classifier.errors import ValidationError

        raise ValidationError(
            f"step {step}: SQL parameter {', '.join('$' + m for m in missing)} has no value "
            f"(known: {', '.join(sorted(values)) or 'none'}; pass it with --param or params:)"
        )
    return {name: values[name] for name in wanted}
