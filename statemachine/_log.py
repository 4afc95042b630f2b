"""Loggers that import structlog only when something is logged.

structlog's import pulls in its dev console renderer and, with it, much of rich (tens of
milliseconds); a `pipestate run` that logs nothing should not pay for it. `lazy_logger(name)` is a
stand-in whose first attribute access imports structlog, applies any configuration deferred with
`configure_when_used`, and from then on forwards to structlog's own logger.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

_deferred: list[Callable[[Any], None]] = []
_lock = threading.Lock()


def configure_when_used(configure: Callable[[Any], None]) -> None:
    """Run configure(structlog) now if structlog is loaded, else just before its first use here."""
    module = sys.modules.get("structlog")
    if module is not None:
        configure(module)
        return
    with _lock:
        _deferred.append(configure)


def _structlog() -> Any:
    import structlog

    with _lock:
        pending, _deferred[:] = list(_deferred), []
    for configure in pending:
        configure(structlog)
    return structlog


class LazyLogger:
    """A structlog logger bound on first use (a warning, an error), not at import."""

    __slots__ = ("_logger", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._logger: Any = None

    def __getattr__(self, attr: str) -> Any:
        """Resolve the real logger once, then forward (warning, error, info, bind, ...)."""
        if self._logger is None:
            self._logger = _structlog().get_logger(self._name)
        return getattr(self._logger, attr)


def lazy_logger(name: str) -> LazyLogger:
    """A logger named `name` that costs nothing until it logs."""
    return LazyLogger(name)
