"""docs/classifier.md is generated from the rule table and must not drift from it."""

from __future__ import annotations

from pathlib import Path

from classifier.docs import render
from classifier.rules import CODE_RULES, PATTERN_RULES, STATUS_RULES, TYPE_RULES

DOC = Path(__file__).resolve().parent.parent / "docs" / "classifier.md"


class TestDocs:
    """The committed page equals `python -m classifier.docs`."""

    def test_committed_page_is_current(self) -> None:
        """Regenerate with `python -m classifier.docs > docs/classifier.md` when this fails."""
        assert DOC.read_text(encoding="utf-8") == render()

    def test_every_rule_is_listed(self) -> None:
        """Each rule's reason, each type name and each pattern appears on the page."""
        page = render()
        for rule in (*CODE_RULES, *TYPE_RULES, *STATUS_RULES, *PATTERN_RULES):
            assert rule.reason in page
        for type_rule in TYPE_RULES:
            for name in type_rule.names:
                assert f"`{name}`" in page
        for pattern_rule in PATTERN_RULES:
            assert pattern_rule.pattern in page

    def test_render_is_deterministic(self) -> None:
        """Two renders are identical."""
        assert render() == render()
