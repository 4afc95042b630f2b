"""Tables printed without rich, byte for byte as rich prints them to a pipe or a file.

Importing and running rich costs more CPU than a whole 1-step `pipestate run` should (about
40 ms of a 0.15 s budget). When stdout is not a terminal rich draws no colours, so a small table
of plain ASCII text is just box characters and padding; this module draws those itself. Anything
it cannot reproduce exactly (a terminal, a non-UTF-8 stream, markup or non-ASCII text, a value
wider than its column's limit, a table wider than the page) returns None and the caller uses rich.
tests/test_cli_plain.py checks the output against rich's on generated tables.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import IO

import attrs

# rich's HEAVY_HEAD box, the box of every table the CLI prints.
_TOP = ("┏", "━", "┳", "┓")
_HEAD_ROW = ("┃", "┃", "┃")
_HEAD_RULE = ("┡", "━", "╇", "┩")
_ROW = ("│", "│", "│")
_BOTTOM = ("└", "─", "┴", "┘")
# Console width used for piped output (pipestate._cli_output.console_for_output).
PIPE_WIDTH = 160


@attrs.frozen
class PlainColumn:
    """A column as the CLI declares it to rich: header, justification and width limits."""

    header: str
    justify: str = "left"
    min_width: int | None = None
    max_width: int | None = None


def rich_would_colour(stream: IO[str]) -> bool:
    """Whether rich would treat `stream` as a terminal (rich.console.Console.is_terminal)."""
    compatible = os.environ.get("TTY_COMPATIBLE", "")
    if compatible in ("0", "1"):
        return compatible == "1"
    force = os.environ.get("FORCE_COLOR")
    if force is not None:
        return force != ""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream: rich says no terminal
        return False


def _plain(text: str) -> bool:
    # No markup ('[') and nothing rich measures other than len(): printable ASCII, no edge spaces.
    return text.isascii() and text.isprintable() and "[" not in text and text == text.strip()


def render(
    title: str, columns: Sequence[PlainColumn], rows: Sequence[Sequence[str]], width: int
) -> str | None:
    """The table as rich renders it to a non-terminal `width` columns wide, or None if unsure."""
    if not all(_plain(c.header) for c in columns) or (title and not _plain(title)):
        return None
    widths: list[int] = []
    for i, column in enumerate(columns):
        cells = [row[i] for row in rows]
        if not all(map(_plain, cells)):
            return None
        w = max(len(column.header), *(len(c) for c in cells)) if cells else len(column.header)
        if column.max_width is not None and w > column.max_width:
            return None  # rich would cut or fold it
        if column.min_width is not None:
            w = max(w, column.min_width)
        widths.append(w)
    table_width = sum(widths) + 3 * len(widths) + 1
    if table_width > width or len(title) > table_width:
        return None

    def rule(edge: tuple[str, str, str, str]) -> str:
        left, line, cross, right = edge
        return left + cross.join(line * (w + 2) for w in widths) + right

    def line(cells: Sequence[str], edge: tuple[str, str, str]) -> str:
        left, cross, right = edge
        parts = []
        for text, w, column in zip(cells, widths, columns, strict=True):
            pad = text.rjust(w) if column.justify == "right" else text.ljust(w)
            parts.append(f" {pad} ")
        return left + cross.join(parts) + right

    out = [title.ljust(table_width)] if title else []
    out += [rule(_TOP), line([c.header for c in columns], _HEAD_ROW), rule(_HEAD_RULE)]
    out += [line(row, _ROW) for row in rows]
    out.append(rule(_BOTTOM))
    return "\n".join(out) + "\n"


def render_line(text: str, width: int) -> str | None:
    """A line of text as rich prints it to a non-terminal `width` columns wide, or None."""
    return text + "\n" if _plain(text) and len(text) <= width else None


def _write(text: str | None) -> bool:
    stream = sys.stdout
    encoding = (getattr(stream, "encoding", None) or "utf-8").lower()
    if text is None or not encoding.startswith("utf") or rich_would_colour(stream):
        return False
    stream.write(text)
    return True


def print_plain(
    title: str, columns: Sequence[PlainColumn], rows: Sequence[Sequence[str]], *, width: int
) -> bool:
    """Print the table to stdout without rich if that gives rich's exact output; say if it did."""
    return _write(render(title, columns, rows, width))


def print_plain_line(text: str, *, width: int) -> bool:
    """Print one line without rich if that gives rich's exact output; say if it did."""
    return _write(render_line(text, width))
