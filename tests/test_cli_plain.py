"""Tests for pipestate._cli_plain: tables drawn without rich, exactly as rich draws them."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console
from rich.table import Table

from pipestate._cli_output import TIMELINE_COLUMNS
from pipestate._cli_plain import PlainColumn, print_plain, render, render_line, rich_would_colour

# Printable ASCII (the plain path's domain), or text with what it must refuse mixed in.
_PLAIN = st.text(alphabet=st.sampled_from([*"abcXYZ019.:->_()"]), max_size=30)
_HOSTILE = st.text(alphabet=st.sampled_from([*"abc .:", "[", "]", "é", "界", "\t"]), max_size=30)


def _column(text: st.SearchStrategy[str]) -> st.SearchStrategy[PlainColumn]:
    return st.builds(
        PlainColumn,
        header=text,
        justify=st.sampled_from(["left", "right"]),
        min_width=st.none() | st.integers(0, 25),
        max_width=st.none() | st.integers(1, 40),
    )


def _rich(title: str, columns: list[PlainColumn], rows: list[list[str]], width: int) -> str:
    """What rich prints for the same table on a non-terminal console (the CLI's settings)."""
    out = io.StringIO()
    console = Console(
        file=out, width=width, highlight=False, soft_wrap=False, emoji=False, force_terminal=False
    )
    table = Table(title=title or None, title_justify="left", expand=False)
    for c in columns:
        if c.min_width is not None and c.max_width is not None and c.min_width > c.max_width:
            continue  # not a column the CLI declares; the strategy below filters these out
        table.add_column(
            c.header,
            justify=c.justify,  # type: ignore[arg-type]
            min_width=c.min_width,
            max_width=c.max_width,
            no_wrap=True,
            overflow="ellipsis",
        )
    for row in rows:
        table.add_row(*row)
    console.print(table)
    return out.getvalue()


@st.composite
def _tables(draw: st.DrawFn) -> tuple[str, list[PlainColumn], list[list[str]], int]:
    text = _HOSTILE if draw(st.booleans()) else _PLAIN
    columns = draw(st.lists(_column(text), min_size=1, max_size=5))
    columns = [
        c
        for c in columns
        if c.min_width is None or c.max_width is None or c.min_width <= c.max_width
    ] or [PlainColumn("x")]
    rows = draw(st.lists(st.lists(text, min_size=len(columns), max_size=len(columns)), max_size=6))
    title = draw(text)
    width = draw(st.integers(20, 200))
    return title, columns, rows, width


class TestRender:
    @given(_tables())
    def test_plain_output_is_riches_output_whenever_it_is_given(
        self, table: tuple[str, list[PlainColumn], list[list[str]], int]
    ) -> None:
        """Invariant: when render() draws a table, it is byte for byte what rich prints."""
        title, columns, rows, width = table
        text = render(title, columns, rows, width)
        if text is not None:
            assert text == _rich(title, columns, rows, width)

    @given(_HOSTILE | _PLAIN, st.integers(1, 40))
    def test_a_plain_line_is_riches_line(self, text: str, width: int) -> None:
        """Invariant: a line printed plain is what rich prints for the same string."""
        line = render_line(text, width)
        if line is not None:
            out = io.StringIO()
            Console(file=out, width=width, highlight=False, emoji=False).print(text)
            assert line == out.getvalue()

    def test_a_run_timeline_is_drawn_plain(self) -> None:
        """A typical short timeline (ASCII, fits 160 columns) takes the plain path."""
        rows = [
            ["09:32:18.040", "PIPELINE chain-1", "PENDING -> RUNNING", "0.016", "started"],
            ["09:32:18.048", "STEP s0", "RUNNING -> COMPLETED", "0", "Step completed"],
        ]
        text = render("timeline of chain-1 (01a2)", TIMELINE_COLUMNS, rows, 160)
        assert text is not None
        assert text == _rich("timeline of chain-1 (01a2)", list(TIMELINE_COLUMNS), rows, 160)

    @pytest.mark.parametrize(
        "cell",
        ["[bold]x[/]", "caf\u00e9", "a\tb", " padded", "r" * 73],
        ids=["markup", "non-ascii", "control", "edge-space", "past-max-width"],
    )
    def test_what_rich_would_change_goes_to_rich(self, cell: str) -> None:
        """Markup, wide or control characters, edge spaces and cut values are left to rich."""
        row = ["09:32:18.040", "STEP s0", "RUNNING -> FAILED", "0", cell]
        assert render("t", TIMELINE_COLUMNS, [row], 160) is None

    def test_a_table_wider_than_the_page_goes_to_rich(self) -> None:
        """A table that rich would have to shrink is not drawn plain."""
        assert render("t", [PlainColumn("h")], [["x" * 200]], 160) is None


class TestTerminalDetection:
    @pytest.mark.parametrize(
        ("env", "expected"),
        [
            ({}, False),
            ({"FORCE_COLOR": "1"}, True),
            ({"FORCE_COLOR": ""}, False),
            ({"TTY_COMPATIBLE": "1"}, True),
            ({"TTY_COMPATIBLE": "0", "FORCE_COLOR": "1"}, False),
        ],
    )
    def test_follows_riches_rules(
        self, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: bool
    ) -> None:
        """A pipe counts as a terminal exactly when rich would colour it (FORCE_COLOR etc.)."""
        for name in ("FORCE_COLOR", "TTY_COMPATIBLE"):
            monkeypatch.delenv(name, raising=False)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        assert rich_would_colour(io.StringIO()) is expected
        assert Console(file=io.StringIO()).is_terminal is expected

    def test_coloured_output_is_left_to_rich(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """With FORCE_COLOR set nothing is printed plain (rich prints the colours)."""
        monkeypatch.setenv("FORCE_COLOR", "1")
        assert print_plain("t", [PlainColumn("h")], [["x"]], width=160) is False
        assert capsys.readouterr().out == ""
