"""Tests for the `pipestate` front door and the package dependency direction."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import pipestate

ROOT = Path(__file__).resolve().parent.parent
# Each engine package may import only the packages to its left.
ORDER = ["classifier", "statemachine", "persistence", "executor", "pipestate"]


class TestFrontDoor:
    def test_every_public_name_resolves(self) -> None:
        """Every name in pipestate.__all__ imports and is the engine's own object."""
        import classifier
        import executor
        import statemachine

        for name in pipestate.__all__:
            assert getattr(pipestate, name) is not None, name
        assert pipestate.classify_error is classifier.classify_error
        assert pipestate.run_pipeline is executor.run_pipeline
        assert pipestate.PipelineRun is statemachine.PipelineRun

    def test_unknown_name_is_a_clear_attribute_error(self) -> None:
        """A name that is not public raises AttributeError naming it."""
        with pytest.raises(AttributeError, match="no_such_thing"):
            _ = pipestate.no_such_thing  # type: ignore[attr-defined]

    def test_import_is_lazy(self) -> None:
        """`import pipestate` alone loads no engine package (keeps the CLI's start fast)."""
        code = (
            "import sys, pipestate; "
            "print(sorted(m for m in ('statemachine','persistence','executor','transitions') "
            "if m in sys.modules))"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        assert out.strip() == "[]"


def _imported_top_levels(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", ORDER[:-1])
def test_engine_packages_import_only_downstream(package: str) -> None:
    """An engine package never imports a package to its right (classifier <- ... <- pipestate)."""
    forbidden = set(ORDER[ORDER.index(package) + 1 :])
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imported_top_levels(path) & forbidden)
        for path in (ROOT / package).rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_all_lists_exactly_the_lazy_names() -> None:
    """__all__ and the lazy-import table name the same public API (plus __version__)."""
    assert set(pipestate.__all__) == set(pipestate._WHERE) | {"__version__"}


@pytest.mark.parametrize("package", ["classifier", "statemachine", "persistence", "executor"])
def test_lazy_exports_are_never_shadowed_by_submodules(package: str) -> None:
    """After every submodule is imported, each public name is still the object, not a module."""
    code = (
        "import importlib, pkgutil, types, sys\n"
        f"pkg = importlib.import_module('{package}')\n"
        "for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "    if 'bigquery' in info.name or info.name.endswith(('__main__', 'docs', 'explore')):\n"
        "        continue\n"
        "    importlib.import_module(info.name)\n"
        "bad = [n for n in pkg.__all__ if isinstance(getattr(pkg, n), types.ModuleType)]\n"
        "print(bad)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    assert out.strip() == "[]"
