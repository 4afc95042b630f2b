"""docs/classifier.md is generated from the rule table and must not drift from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from classifier import docs
from classifier.docs import render
from classifier.rules import (
    CODE_RULES,
    NAME_RULES,
    NOT_RETRYABLE_FLAG,
    PATTERN_RULES,
    RETRY_AFTER,
    RETRY_FLAG,
    STATUS_RULES,
    TYPE_RULES,
    WEAK_NAME_RULES,
)

DOC = Path(__file__).resolve().parent.parent / "docs" / "classifier.md"


class TestDocs:
    """The committed page equals `python -m classifier.docs`."""

    def test_committed_page_is_current(self) -> None:
        """Regenerate with `python -m classifier.docs > docs/classifier.md` when this fails."""
        assert DOC.read_text(encoding="utf-8") == render()

    def test_every_rule_is_listed(self) -> None:
        """Each rule's reason, each type name and each pattern appears on the page."""
        page = render()
        for rule in (*CODE_RULES, *TYPE_RULES, *STATUS_RULES, *PATTERN_RULES, *WEAK_NAME_RULES):
            assert rule.reason in page
        for extra in (*NAME_RULES, RETRY_AFTER, RETRY_FLAG, NOT_RETRYABLE_FLAG):
            assert extra.reason in page
        for code_rule in CODE_RULES:
            assert all(f"`{code}`" in page for code in code_rule.codes)
        for type_rule in TYPE_RULES:
            for name in type_rule.names:
                assert f"`{name}`" in page
        for pattern_rule in PATTERN_RULES:
            assert pattern_rule.pattern in page

    def test_render_is_deterministic(self) -> None:
        """Two renders are identical."""
        assert render() == render()

    def test_mutation_survivors_are_listed(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The survivors file of the last `make mutation` run appears on the page verbatim."""
        survivors = tmp_path / "survivors.txt"
        survivors.write_text("    classifier.retry.x_backoff_delay__mutmut_7: survived\n")
        monkeypatch.setattr(docs, "SURVIVORS", survivors)
        assert "classifier.retry.x_backoff_delay__mutmut_7: survived" in docs.render()
        monkeypatch.setattr(docs, "SURVIVORS", tmp_path / "missing.txt")
        assert "(no run recorded)" in docs.render()
