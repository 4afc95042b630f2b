"""Diagrams and the generated documentation come from the specification table."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from statemachine import docs
from statemachine.diagrams import dot, mermaid, render_diagram, svg
from statemachine.spec import PIPELINE, STEP
from tests.strategies.events import EXPECTED

DOC = Path(__file__).resolve().parent.parent / "docs" / "state-machines.md"


class TestMermaid:
    """Mermaid stateDiagram-v2 text."""

    @pytest.mark.parametrize("table", [PIPELINE, STEP], ids=lambda t: t.kind)
    def test_one_arrow_per_edge(self, table: object) -> None:
        """Every legal transition is an arrow, and nothing else is."""
        text = render_diagram(table.kind.lower(), "mermaid")  # type: ignore[attr-defined]
        lines = text.splitlines()
        assert lines[0] == "stateDiagram-v2"
        arrows = {
            tuple(line.strip().replace(" --> ", " ").replace(":", "").split())
            for line in lines[1:]
            if "[*]" not in line
        }
        expected = {(s, d, e) for (s, e), d in EXPECTED[table.kind].items()}  # type: ignore[attr-defined]
        assert arrows == expected

    def test_start_and_terminal_markers(self) -> None:
        """PENDING comes from [*]; each terminal state goes to [*]."""
        text = mermaid(STEP)
        assert "[*] --> PENDING" in text
        assert "COMPLETED --> [*]" in text
        assert "FAILED --> [*]" in text
        assert "RETRYING --> [*]" not in text


class TestDot:
    """Graphviz DOT text and SVG."""

    def test_dot_edges(self) -> None:
        """Each edge appears with its event label; terminal states have a double border."""
        text = dot(PIPELINE)
        assert '"RUNNING" -> "TIMEOUT" [label="time_out"];' in text
        assert '"TIMEOUT" [peripheries=2];' in text

    def test_svg_without_graphviz(self, tmp_path: Path) -> None:
        """Asking for SVG with no dot binary fails with a message saying what to use."""
        with pytest.raises(RuntimeError, match="Graphviz"):
            svg(PIPELINE, dot_binary=None) if shutil.which("dot") is None else svg(
                PIPELINE, dot_binary=str(tmp_path / "missing-dot")
            )

    @pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz 'dot' not installed")
    def test_svg_with_graphviz(self) -> None:
        """With Graphviz present, SVG output is an SVG document naming the states."""
        text = render_diagram("step", "svg")
        assert "<svg" in text
        assert "RETRYING" in text


class TestRenderDiagram:
    """The CLI entry point."""

    def test_rejects_unknown_kind_and_format(self) -> None:
        """Unknown kinds and formats are named in the error."""
        with pytest.raises(ValueError, match="'kind' must be one of \\['pipeline', 'step'\\]"):
            render_diagram("job", "mermaid")
        with pytest.raises(ValueError, match="'fmt' must be one of"):
            render_diagram("step", "png")

    def test_kind_is_case_insensitive(self) -> None:
        """PIPELINE and pipeline render the same diagram."""
        assert render_diagram("PIPELINE", "dot") == render_diagram("pipeline", "dot")


class TestDocs:
    """docs/state-machines.md."""

    def test_committed_docs_are_current(self) -> None:
        """The committed document equals what `python -m statemachine.docs` prints."""
        assert DOC.read_text(encoding="utf-8") == docs.render()

    def test_docs_embed_both_diagrams_and_tables(self) -> None:
        """Both Mermaid blocks and every legal transition appear in the document."""
        text = docs.render()
        assert text.count("```mermaid") == 2
        for kind, edges in EXPECTED.items():
            for (source, event), dest in edges.items():
                assert f"| {source} | `{event}` | {dest} |" in text, kind
