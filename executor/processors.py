"""The processor registry: dotted names -> async callables, with entry-point plug-ins."""

from __future__ import annotations

import inspect
import logging
import sys
import threading
from collections.abc import Awaitable, Callable, Mapping
from types import MappingProxyType
from typing import Any, Protocol

import attrs

ENTRY_POINT_GROUP = "pipestate.processors"
_log = logging.getLogger(__name__)


@attrs.frozen(kw_only=True)
class ProcessorContext:
    """What a processor knows about the run it works for (attempt is 1-based)."""

    pipeline_logging_id: str
    pipeline_id: str
    step_id: str
    attempt: int
    org_slug: str
    store: Any = None
    # The pipeline file the step came from (relative paths in step configs resolve against its
    # directory) and the time the step may run, if bounded (processors pass it to remote jobs).
    config_source: str | None = None
    timeout_seconds: float | None = None
    # The run's parameters (the seed's {"date": "2025-12-01"}, `--param date=...`), checked
    # against the pipeline's `params:` schema; read-only.
    params: Mapping[str, Any] = attrs.field(factory=lambda: MappingProxyType({}))


class ConfigProblem(ValueError):
    """A step's `config` mapping is wrong for its processor; `key` names the offending key."""

    def __init__(self, key: str | None, message: str) -> None:
        super().__init__(f"{key}: {message}" if key else message)
        self.key = key
        self.message = message


ProcessorFn = Callable[[ProcessorContext, Mapping[str, Any]], Awaitable[Any]]
ConfigCheck = Callable[[Mapping[str, Any]], None]


class _Decorator(Protocol):
    def __call__(self, fn: ProcessorFn, /) -> ProcessorFn: ...


@attrs.frozen
class ProcessorSpec:
    """A registered processor: its callable and an optional check of its step config."""

    name: str
    fn: ProcessorFn
    check_config: ConfigCheck | None = None
    # Looked up once here rather than by inspect on every step the processor runs.
    is_async: bool = attrs.field(
        init=False,
        default=attrs.Factory(lambda self: is_async_callable(self.fn), takes_self=True),
        eq=False,
        repr=False,
    )


def is_async_callable(fn: Any) -> bool:
    """True for an `async def` (or a partial of one, or an object with an async __call__)."""
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an object's async __call__
    )


_REGISTRY: dict[str, ProcessorSpec] = {}
_lock = threading.Lock()
_load_lock = threading.Lock()
_loaded = False


def register(
    name: str, fn: ProcessorFn, *, check_config: ConfigCheck | None = None, replace: bool = False
) -> None:
    """Register `fn` under `name`; refuse to shadow an existing name unless replace=True."""
    if not name or any(not part for part in name.split(".")):
        raise ValueError(f"processor name must be dotted words like 'generic.noop' (got {name!r})")
    with _lock:
        if name in _REGISTRY and not replace and _REGISTRY[name].fn is not fn:
            raise ValueError(f"processor {name!r} is already registered")
        _REGISTRY[name] = ProcessorSpec(name, fn, check_config)


def unregister(name: str) -> None:
    """Remove a processor (for tests that register temporary ones)."""
    with _lock:
        _REGISTRY.pop(name, None)


def processor(name: str, *, check_config: ConfigCheck | None = None) -> _Decorator:
    """Decorator registering an async `(context, config) -> result` callable under `name`."""

    def deco(fn: ProcessorFn) -> ProcessorFn:
        register(name, fn, check_config=check_config, replace=True)
        return fn

    return deco


# The data processors (executor/etl/): registered by name at once, their modules imported when
# a config names one (its check) or a step runs it; a run without them skips ~1.2 ms of imports.
# Importing the module registers the real callable over the stand-in (@processor replaces).
_DEFERRED = {
    "duckdb.sql": "executor.etl.duckdb_sql",
    "http.extract": "executor.etl.http_extract",
    "gcp.bq_etl": "executor.etl.bq_etl",
}


def _imported(name: str, module: str) -> ProcessorSpec:
    """The processor `name` once `module` (which registers it) is imported."""
    import importlib

    importlib.import_module(module)
    with _lock:
        return _REGISTRY[name]


def _deferred(name: str, module: str) -> ProcessorFn:
    """A stand-in that imports `module` and runs the processor it registered."""

    async def run(context: ProcessorContext, config: Mapping[str, Any]) -> Any:
        return await _imported(name, module).fn(context, config)

    return run


def _deferred_check(name: str, module: str) -> ConfigCheck:
    """A stand-in config check that imports `module` and applies the real check."""

    def check(config: Mapping[str, Any]) -> None:
        real = _imported(name, module).check_config
        if real is not None:
            real(config)

    return check


def _ensure_loaded() -> None:
    global _loaded
    if _loaded:
        return
    # A lock of its own (registering takes _lock), held until loading is done: a second
    # thread (configs are loaded in worker threads by the service) must not see an empty
    # registry while the first is still importing.
    with _load_lock:
        if _loaded:
            return
        # Registers generic.*, then duckdb.sql, http.extract, gcp.bq_etl (their modules load
        # when first checked or run, their engines when a step runs).
        import executor._builtins  # noqa: F401

        for name, module in _DEFERRED.items():
            if module not in sys.modules:  # imported already: it registered the real one
                stand_in = _deferred(name, module)
                register(name, stand_in, check_config=_deferred_check(name, module), replace=True)
        if plugins_may_exist():
            load_plugins()
        _loaded = True


def plugins_may_exist() -> bool:
    """False only when no installed distribution declares a `pipestate.processors` entry point.

    importlib.metadata costs about as much CPU as a whole 1-step `pipestate run` may take (its
    import and a parse of every distribution's metadata). This looks where its path finder
    looks, directories on sys.path holding *.dist-info / *.egg-info, for the group's header in
    an entry_points.txt, and says True (so load_plugins decides) when it finds one or meets
    anything it cannot read the same way: a zip on sys.path or another distribution finder.
    """
    import os
    from importlib.machinery import PathFinder

    for finder in sys.meta_path:
        if hasattr(finder, "find_distributions") and finder is not PathFinder:
            return True
    header = f"[{ENTRY_POINT_GROUP}]"
    for entry in sys.path:
        root = entry or "."
        try:
            names = os.listdir(root)
        except NotADirectoryError:
            return True  # a zip archive: importlib.metadata reads inside it
        except OSError:
            continue  # missing or unreadable: importlib.metadata skips it too
        egg = root.lower().endswith(".egg")
        for name in names:
            low = name.lower()
            if not (low.endswith((".dist-info", ".egg-info")) or (egg and low == "egg-info")):
                continue
            try:
                with open(os.path.join(root, name, "entry_points.txt"), encoding="utf-8") as fh:
                    if header in fh.read():
                        return True
            except (OSError, UnicodeDecodeError):
                continue
    return False


def load_plugins() -> list[str]:
    """Import processors from the `pipestate.processors` entry points; return the names added."""
    from importlib.metadata import entry_points

    added = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
        except Exception as exc:  # one broken plug-in must not take the others down
            _log.warning("cannot load processor plug-in %s (%s): %s", ep.name, ep.value, exc)
            continue
        if callable(obj):
            register(ep.name, obj, check_config=getattr(obj, "check_config", None), replace=True)
            added.append(ep.name)
    return added


def known_processors() -> dict[str, ProcessorSpec]:
    """Return a snapshot of every registered processor by name."""
    _ensure_loaded()
    with _lock:
        return dict(_REGISTRY)


def unknown_processor_message(name: str, known: Mapping[str, object]) -> str:
    """Why `name` is not found, with the known names and how a new plug-in gets seen."""
    return (
        f"unknown processor {name!r} (known: {', '.join(sorted(known))}). A processor newly "
        f'declared under [project.entry-points."{ENTRY_POINT_GROUP}"] is seen only after its '
        f"package is reinstalled (pip install -e .); a module that registers it with "
        f"@processor can be loaded with --import MODULE."
    )


def get_processor(name: str) -> ProcessorSpec:
    """Return the processor registered under `name` (KeyError naming the known ones)."""
    _ensure_loaded()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(unknown_processor_message(name, _REGISTRY)) from None
