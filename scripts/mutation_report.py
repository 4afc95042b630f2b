"""Summarise the last mutmut run over one package: counts per module and each survivor's change.

Reads mutmut's own result files (mutants/<package>/*.py.meta) and the mutated sources next to
them, so it needs no second mutmut process. `make mutation` writes its output to
statemachine/mutation_survivors.txt; docs/mutation.md reads the survivors from there.

Usage: python scripts/mutation_report.py [package]   (default: statemachine)
"""

from __future__ import annotations

import ast
import collections
import difflib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# mutmut's exit codes (mutmut.stats.status_by_exit_code), grouped as the report counts them.
KILLED = {1, 3}
SURVIVED = {0}
TIMEOUT = {-24, 24, 36, 152, 255}
NOT_RUN = {None}
NO_TESTS = {5, 33}


def _status(code: int | None) -> str:
    if code in KILLED:
        return "killed"
    if code in SURVIVED:
        return "survived"
    if code in TIMEOUT:
        return "timeout"
    if code in NOT_RUN:
        return "not run"
    if code in NO_TESTS:
        return "no tests"
    return "other"


def _functions(source: str) -> dict[str, str]:
    """Every function (and method) of a mutated module by name, as source text."""
    tree = ast.parse(source)
    return {
        node.name: ast.get_source_segment(source, node) or ""
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }


def _change(functions: dict[str, str], key: str) -> str:
    """The lines a mutant changed, as '- old | + new' on one line."""
    name = key.rsplit(".", 1)[-1]
    orig = functions.get(name.rsplit("__mutmut_", 1)[0] + "__mutmut_orig", "")
    new = functions.get(name, "")
    diff = [
        line
        for line in difflib.unified_diff(orig.splitlines()[1:], new.splitlines()[1:], lineterm="")
        if line[:1] in "-+" and not line.startswith(("---", "+++"))
    ]
    if not diff and orig and new:  # the signature line changed (a default value)
        diff = [f"- {orig.splitlines()[0].strip()}", f"+ {new.splitlines()[0].strip()}"]
    return " | ".join(f"{line[0]} {line[1:].strip()}" for line in diff)


def report(package: str) -> list[str]:
    """The report's lines: a count table as comments, then one line per survivor."""
    base = ROOT / "mutants" / package
    counts: list[str] = []
    survivors: list[str] = []
    totals: collections.Counter[str] = collections.Counter()
    for meta in sorted(base.glob("*.py.meta")):
        codes = json.loads(meta.read_text(encoding="utf-8")).get("exit_code_by_key", {})
        if not codes:
            continue
        module = meta.name.removesuffix(".py.meta")
        tally = collections.Counter(_status(code) for code in codes.values())
        totals.update(tally)
        totals["generated"] += len(codes)
        counts.append(
            f"# {package}.{module}: {len(codes)} generated, {tally['killed']} killed, "
            f"{tally['timeout']} timeout, {tally['survived']} survived, "
            f"{tally['not run']} not run, {tally['no tests']} no tests"
        )
        alive = sorted(
            (k for k, c in codes.items() if _status(c) == "survived"),
            key=lambda k: (k.rsplit("__mutmut_", 1)[0], int(k.rsplit("_", 1)[1])),
        )
        if alive:
            functions = _functions((base / f"{module}.py").read_text(encoding="utf-8"))
            survivors.extend(f"{key}: {_change(functions, key)}" for key in alive)
    header = [
        f"# mutmut survivors in {package}/ (scripts/mutation_report.py, from mutants/*.meta).",
        f"# Total: {totals['generated']} generated, {totals['killed']} killed, "
        f"{totals['timeout']} timeout, {totals['survived']} survived, "
        f"{totals['not run']} not run, {totals['no tests']} no tests.",
    ]
    return [*header, *counts, *survivors]


def main() -> None:
    """Print the report for the package named on the command line."""
    package = sys.argv[1] if len(sys.argv) > 1 else "statemachine"
    sys.stdout.write("\n".join(report(package)) + "\n")


if __name__ == "__main__":
    main()
