"""Cold start (issue 20): importing classifier compiles no regex; every rule compiles when used."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

from classifier._lazyre import LazyRegex, lazy
from classifier._rulekinds import PatternRule
from classifier.rules import PATTERN_RULES, STATUS_RULES, TYPE_RULES

_COUNT_COMPILES = textwrap.dedent(
    """
    import re, sys
    original = re._compile
    ours = []
    def counting(pattern, flags=0, *rest):
        caller = sys._getframe(1)
        while caller is not None and caller.f_globals.get("__name__", "").startswith("re"):
            caller = caller.f_back
        name = caller.f_globals.get("__name__", "") if caller is not None else ""
        if name.startswith("classifier") and not isinstance(pattern, re.Pattern):
            ours.append(pattern)
        return original(pattern, flags, *rest)
    re._compile = counting
    import classifier
    print(len(ours))
    classifier.classify_error(ConnectionResetError("Connection reset by peer"))
    classifier.redact("password=hunter2")
    print(len(ours))
    """
)


class TestColdStart:
    """`import classifier` is cheap: patterns compile on first use, once."""

    def test_import_compiles_no_regex(self) -> None:
        """A fresh interpreter importing classifier compiles nothing; classifying then does."""
        out = subprocess.run(
            [sys.executable, "-c", _COUNT_COMPILES], capture_output=True, text=True, check=True
        ).stdout.split()
        assert out[0] == "0"
        assert int(out[1]) > 0

    def test_every_rule_compiles(self) -> None:
        """Every pattern rule and refinement is a valid regex (checked here, not at import)."""
        refinements = [r for rule in (*TYPE_RULES, *STATUS_RULES) for r in rule.refine]
        for rule in (*PATTERN_RULES, *refinements):
            assert isinstance(rule, PatternRule)
            assert isinstance(rule.regex, re.Pattern), rule.pattern


class TestLazyRegex:
    """LazyRegex behaves as the compiled pattern and compiles it once."""

    def test_compiles_once(self) -> None:
        """The compiled pattern is created on first use and then reused."""
        regex = lazy(r"a(b+)")
        assert regex._compiled is None
        first = regex.compiled
        assert regex.compiled is first

    def test_methods_match_re(self) -> None:
        """search, match, sub and finditer give the results of the compiled pattern."""
        regex, plain = LazyRegex(r"(?i)b+"), re.compile(r"(?i)b+")
        text = "aBbcbd"
        assert regex.search(text).group(0) == plain.search(text).group(0)  # type: ignore[union-attr]
        assert regex.match(text) is None
        assert regex.match(text, 1).group(0) == "Bb"  # type: ignore[union-attr]
        assert regex.sub("*", text) == plain.sub("*", text)
        assert [m.span() for m in regex.finditer(text)] == [(1, 3), (4, 5)]
        assert "b+" in repr(regex)
