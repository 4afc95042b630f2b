"""Lazy package exports (PEP 562), shared by every package's __init__.

Each package lists its public names and the submodules defining them; a name is imported on first
use and then cached in the package. This keeps `import pkg._light_submodule`, `pipestate --help`
and `pipestate validate` from loading machinery they never call. It lives in the lowest package so
that every other one may use it without breaking the dependency direction.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_exports(
    package: str, where: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Return the module-level __getattr__ and __dir__ for `package` exporting `where`'s names."""
    namespace = sys.modules[package].__dict__

    def __getattr__(name: str) -> Any:
        """Import a public name from the submodule that defines it, on first use."""
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        """List the public API (for tab completion and help())."""
        return sorted({*namespace, *where})

    return __getattr__, __dir__
