"""State diagrams of both machines, drawn from the specification table.

Mermaid stateDiagram-v2 and Graphviz DOT are pure text; SVG needs Graphviz's `dot` on PATH.
"""

from __future__ import annotations

import shutil
import subprocess

from statemachine._table import MachineTable
from statemachine.spec import TABLES

FORMATS = ("mermaid", "dot", "svg")


def mermaid(table: MachineTable) -> str:
    """Mermaid stateDiagram-v2 text for `table`: an arrow per edge, [*] at start and end."""
    lines = ["stateDiagram-v2", f"    [*] --> {table.initial}"]
    lines += [f"    {e.source} --> {e.dest}: {e.event}" for e in table.edges]
    lines += [f"    {state} --> [*]" for state in table.states if state in table.terminal]
    return "\n".join(lines) + "\n"


def dot(table: MachineTable) -> str:
    """Graphviz DOT text for `table`; terminal states are drawn with a double border."""
    lines = [
        f'digraph "{table.kind}" {{',
        "    rankdir=LR;",
        '    node [shape=box, style=rounded, fontname="Helvetica"];',
        '    edge [fontname="Helvetica", fontsize=10];',
        '    "__start__" [shape=point, label=""];',
    ]
    for state in table.states:
        peripheries = 2 if state in table.terminal else 1
        lines.append(f'    "{state}" [peripheries={peripheries}];')
    lines.append(f'    "__start__" -> "{table.initial}";')
    lines += [f'    "{e.source}" -> "{e.dest}" [label="{e.event}"];' for e in table.edges]
    lines.append("}")
    return "\n".join(lines) + "\n"


def svg(table: MachineTable, *, dot_binary: str | None = None) -> str:
    """SVG for `table` rendered by Graphviz; RuntimeError when `dot` is not installed."""
    binary = dot_binary or shutil.which("dot")
    if binary is None:
        raise RuntimeError(
            "SVG output needs Graphviz's 'dot' on PATH (not found); use fmt='mermaid' or 'dot'."
        )
    try:
        done = subprocess.run(
            [binary, "-Tsvg"], input=dot(table), capture_output=True, text=True, check=False
        )
    except OSError as exc:
        message = f"SVG output needs Graphviz's 'dot'; running {binary!r} failed: {exc}"
        raise RuntimeError(message) from exc
    if done.returncode != 0:
        raise RuntimeError(f"'dot -Tsvg' failed with exit code {done.returncode}: {done.stderr}")
    return done.stdout


def table_for(kind: str) -> MachineTable:
    """The table for `kind` ("pipeline" or "step", any case); ValueError names the choices."""
    table = TABLES.get(kind.upper())
    if table is None:
        choices = sorted(k.lower() for k in TABLES)
        raise ValueError(f"'kind' must be one of {choices} (got {kind!r}).")
    return table


def render_diagram(kind: str, fmt: str = "mermaid") -> str:
    """Render the `kind` machine ("pipeline" / "step") as "mermaid", "dot" or "svg" text."""
    table = table_for(kind)
    if fmt == "mermaid":
        return mermaid(table)
    if fmt == "dot":
        return dot(table)
    if fmt == "svg":
        return svg(table)
    raise ValueError(f"'fmt' must be one of {list(FORMATS)} (got {fmt!r}).")
