"""Built-in processors: generic.noop, slow_processor, fail, flaky and sql."""

from __future__ import annotations

import builtins
import importlib
import math
import re
import sys
from collections.abc import Mapping
from typing import Any

from classifier.errors import ValidationError
from executor.processors import ConfigProblem, ProcessorContext, processor


def _number(config: Mapping[str, Any], key: str, default: float, *, minimum: float = 0) -> float:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigProblem(key, f"expected a number >= {minimum}, got {value!r}")
    if value < minimum:
        raise ConfigProblem(key, f"expected a number >= {minimum}, got {value!r}")
    return float(value)


def _allowed(config: Mapping[str, Any], *keys: str) -> None:
    extra = sorted(set(config) - set(keys))
    if extra:
        allowed = ", ".join(keys) or "none"
        raise ConfigProblem(None, f"unknown key {', '.join(map(repr, extra))} (allowed: {allowed})")


def _rows(config: Mapping[str, Any]) -> dict[str, Any] | None:
    if "rows_processed" not in config:
        return None
    return {"rows_processed": int(_number(config, "rows_processed", 0))}


def _check_noop(config: Mapping[str, Any]) -> None:
    _allowed(config, "rows_processed")
    _rows(config)


@processor("generic.noop", check_config=_check_noop)
async def noop(context: ProcessorContext, config: Mapping[str, Any]) -> dict[str, Any] | None:
    """Do nothing; report rows_processed when configured."""
    return _rows(config)


def _check_slow(config: Mapping[str, Any]) -> None:
    _allowed(config, "sleep_seconds", "rows_processed")
    _number(config, "sleep_seconds", 1.0)
    _rows(config)


@processor("generic.slow_processor", check_config=_check_slow)
async def slow_processor(
    context: ProcessorContext, config: Mapping[str, Any]
) -> dict[str, Any] | None:
    """Sleep for sleep_seconds (the seed's timeout demo), then succeed."""
    import asyncio  # here: `pipestate validate` imports this module, not asyncio

    await asyncio.sleep(_number(config, "sleep_seconds", 1.0))
    return _rows(config)


_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def _modules(config: Mapping[str, Any]) -> list[str]:
    """The `import` key: module names generic.fail imports at run time (never when validating)."""
    names = config.get("import", [])
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list) or not all(
        isinstance(n, str) and _MODULE_NAME.match(n) for n in names
    ):
        raise ConfigProblem("import", f"expected a module name or a list of them, got {names!r}")
    return names


def resolve_exception(name: str, *, importable: frozenset[str] = frozenset()) -> type[Exception]:
    """Map 'ValueError' or 'pkg.module.Error' to an Exception subclass (else ConfigProblem).

    A module named in `importable` (the step's `import` key) that is not loaded yet is
    accepted without importing it: validating a config never runs a module's import-time code.
    """
    if "." not in name:
        found = getattr(builtins, name, None)
    else:
        module_name, _, attr = name.rpartition(".")
        module = sys.modules.get(module_name)
        if module is None:
            if module_name in importable:
                return Exception  # checked for real when the step runs, after the import
            raise ConfigProblem(
                "exception",
                f"module {module_name!r} is not loaded; name it under the step's `import` key "
                f"or pass --import {module_name}",
            )
        found = getattr(module, attr, None)
    if not (isinstance(found, type) and issubclass(found, Exception)):
        raise ConfigProblem(
            "exception", f"expected the name of an Exception subclass, got {name!r}"
        )
    return found


def _check_fail(config: Mapping[str, Any]) -> None:
    _allowed(config, "exception", "message", "import")
    name = config.get("exception", "RuntimeError")
    if not isinstance(name, str):
        raise ConfigProblem("exception", f"expected a string, got {name!r}")
    resolve_exception(name, importable=frozenset(_modules(config)))
    if not isinstance(config.get("message", ""), str):
        raise ConfigProblem("message", f"expected a string, got {config.get('message')!r}")


def _message_shell(exc_type: type[Exception], message: str) -> type[Exception]:
    """A subclass of exc_type with the same module and name whose str() is `message`."""
    namespace = {
        "__module__": exc_type.__module__,
        "__qualname__": exc_type.__qualname__,
        "__str__": lambda self: message,
    }
    return type(exc_type.__name__, (exc_type,), namespace)


def build_exception(exc_type: type[Exception], message: str) -> Exception:
    """An instance of exc_type carrying `message`, even when its constructor wants more.

    Many library errors take several arguments (UnicodeDecodeError, HTTP errors with a
    response). When calling the class with the message alone fails, the instance is made
    without running its __init__, from a subclass with the same module and name whose str()
    is the message: classification by type name, isinstance and message all see what a real
    one would show.
    """
    try:
        return exc_type(message)
    except Exception:
        pass
    try:
        shell = _message_shell(exc_type, message)
        error = shell.__new__(shell, message)
        error.args = (message,)
    except Exception:  # a class that cannot be subclassed or allocated: say what was meant
        return RuntimeError(f"{exc_type.__module__}.{exc_type.__qualname__}: {message}")
    return error


@processor("generic.fail", check_config=_check_fail)
async def fail(context: ProcessorContext, config: Mapping[str, Any]) -> None:
    """Raise the configured exception type with the configured message."""
    for module in _modules(config):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigProblem("import", f"cannot import {module!r}: {exc}") from None
    exc_type = resolve_exception(str(config.get("exception", "RuntimeError")))
    message = str(config.get("message", f"step {context.step_id} failed on purpose"))
    raise build_exception(exc_type, message)


def _check_flaky(config: Mapping[str, Any]) -> None:
    _allowed(config, "failures", "message", "rows_processed")
    failures = config.get("failures", 2)
    if isinstance(failures, bool) or not isinstance(failures, int) or failures < 0:
        raise ConfigProblem("failures", f"expected an integer >= 0, got {failures!r}")
    _rows(config)


@processor("generic.flaky", check_config=_check_flaky)
async def flaky(context: ProcessorContext, config: Mapping[str, Any]) -> dict[str, Any] | None:
    """Fail with a transient ConnectionError on the first `failures` attempts, then succeed."""
    failures = int(config.get("failures", 2))
    if context.attempt <= failures:
        message = config.get("message", "connection reset by peer")
        raise ConnectionError(f"{message} (attempt {context.attempt} of {failures} failing)")
    return _rows(config)


def _check_sql(config: Mapping[str, Any]) -> None:
    _allowed(config, "query", "params")
    if not isinstance(config.get("query"), str):
        raise ConfigProblem(
            "query", f"expected a query name such as 'failures', got {config.get('query')!r}"
        )
    if not isinstance(config.get("params", {}), Mapping):
        raise ConfigProblem("params", f"expected a mapping, got {config.get('params')!r}")


@processor("generic.sql", check_config=_check_sql)
async def sql(context: ProcessorContext, config: Mapping[str, Any]) -> dict[str, Any]:
    """Run a named query on the run's store in a thread; rows_processed is the row count."""
    import asyncio  # here: `pipestate validate` imports this module, not asyncio

    if context.store is None:
        raise ValidationError(f"step {context.step_id}: generic.sql needs a store (--store)")
    from persistence.queries import run_query

    params = dict(config.get("params") or {})
    rows = await asyncio.to_thread(run_query, context.store, str(config["query"]), **params)
    return {"rows_processed": len(rows)}
