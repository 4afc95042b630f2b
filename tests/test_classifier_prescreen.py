"""Unit tests for the pre-screen's guards, anchor width and the refinements' pre-screens."""

from __future__ import annotations

import re
import re._parser as sre  # type: ignore[import-not-found]  # stdlib parser; typeshed lacks it
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from classifier import engine
from classifier._prescreen import (
    MAX_ANCHOR_CHARS,
    MIN_GUARD_CHARS,
    PreScreen,
    _required_literal,
    anchors,
    build_screen,
    guarded_anchors,
)
from classifier._rulekinds import PatternRule, first_refinement
from classifier.rules import CODE_RULES, PATTERN_RULES, STATUS_RULES, TYPE_RULES
from classifier.types import ErrorType
from tests.strategies.errors import (
    fresh_classifier_caches,  # noqa: F401 - autouse fixture
    load_corpus,
)

V, P = ErrorType.VALIDATION_ERROR, ErrorType.PERMANENT
DIGITS = frozenset("0123456789")


def _parsed(pattern: str) -> list[Any]:
    """The stdlib parser's items for a pattern (what _required_literal walks)."""
    return list(sre.parse(pattern))


def _plain(rules: list[PatternRule], lowered: str) -> PatternRule | None:
    """Reference semantics: the first rule in order whose regex occurs anywhere."""
    return next((rule for rule in rules if rule.regex.search(lowered)), None)


class TestGuards:
    """A digit-run alternative is found through a literal it contains, not ten digit anchors."""

    def test_digit_run_alternative_gets_its_literal_as_guard(self) -> None:
        """'\\d+ validation errors? for' gives the guard ' validation error' and no digits."""
        found, guards = guarded_anchors(r"(?:\d+ validation errors? for|field required)(?!\w)")
        assert guards == frozenset({" validation error"})
        assert found == frozenset({"field requir"})
        assert found is not None
        assert not found & DIGITS

    def test_pattern_without_digit_run_is_unchanged(self) -> None:
        """With no one-character alternative: anchors()'s anchors and no guard."""
        pattern = r"(?:timed out|deadline exceeded)(?!\w)"
        assert guarded_anchors(pattern) == (anchors(pattern), frozenset())
        assert guarded_anchors("timeout") == (anchors("timeout"), frozenset())

    def test_short_literal_keeps_the_digit_anchors(self) -> None:
        """A required literal shorter than MIN_GUARD_CHARS filters too little: digits stay."""
        short = "x" * (MIN_GUARD_CHARS - 2)  # with the space before it: one too short
        found, guards = guarded_anchors(rf"(?:\d+ {short}|abcdef)")
        assert guards == frozenset()
        assert found is not None
        assert found >= DIGITS

    def test_literal_of_exactly_min_length_is_a_guard(self) -> None:
        """A required literal of MIN_GUARD_CHARS characters is enough for a guard."""
        literal = "y" * (MIN_GUARD_CHARS - 1)
        found, guards = guarded_anchors(rf"(?:\d+ {literal}|abcdef)")
        assert guards == frozenset({" " + literal})
        assert found == frozenset({"abcdef"})

    def test_an_unanchored_alternative_makes_the_rule_always_searched(self) -> None:
        """With a guard and an alternative that may start anywhere, the rule has no anchors."""
        assert guarded_anchors(r"(?:\d+ validation error|\w+ broke)") == (None, frozenset())

    def test_every_alternative_guarded_leaves_no_anchors(self) -> None:
        """Only digit-run alternatives: an empty anchor set and one guard each."""
        found, guards = guarded_anchors(r"(?:\d+ rows? rejected|\d+ bytes? missing)")
        assert found == frozenset()
        assert guards == frozenset({" rejected", " missing"})

    def test_guard_reads_past_the_alternation(self) -> None:
        """What follows the alternatives belongs to each of them: its literal is in the guard."""
        found, guards = guarded_anchors(r"(?:\d+|abcde)fghij")
        assert guards == frozenset({"fghij"})
        assert found == frozenset({"abcdefghij"})

    def test_an_unanchored_alternative_before_a_guarded_one(self) -> None:
        """The order of the alternatives does not matter: the rule is still always searched."""
        assert guarded_anchors(r"(?:\w+ broke|\d+ validation error)") == (None, frozenset())

    def test_ignorecase_pattern_gets_no_guard(self) -> None:
        """With (?i) a literal may match other characters (the long s): no guard is trusted."""
        found, guards = guarded_anchors(r"(?i)\d+ validation error")
        assert guards == frozenset()
        assert found is not None
        assert found >= DIGITS

    def test_unparsable_pattern_falls_back_to_anchors(self) -> None:
        """A pattern the parser refuses gives anchors()'s answer (None) and no guard."""
        assert guarded_anchors("(?:unclosed") == (None, frozenset())

    def test_engine_table_guards_rule_21_only(self) -> None:
        """The table's one digit-run alternative is guarded; no rule keeps a one-digit anchor."""
        screen = engine._PATTERNS.screen
        assert [literal for literal, _ in screen.guarded] == [" validation error"]
        assert not set(screen.rules_at) & DIGITS
        assert "9" in build_screen(PATTERN_RULES).rules_at  # without guards: the digits

    def test_guarded_rule_is_found_only_with_its_literal(self) -> None:
        """The guarded rule matches '3 validation errors for' and ignores other numbers."""
        rule = PatternRule(r"\d+ validation errors? for", V, "pydantic")
        other = PatternRule("error", P, "generic")
        screen = PreScreen([rule, other])
        assert screen.screen.guarded == ((" validation error", 0),)
        assert screen.first("3 validation errors for model") is rule
        assert screen.first("error 3 occurred") is other
        assert screen.first("x validation error for model") is other  # no digits: no match
        assert screen.first("3 rows") is None

    @settings(deadline=None, suppress_health_check=[HealthCheck.differing_executors])
    @given(
        st.lists(
            st.sampled_from(
                ["12", "3", " validation error", "s", " for", " field required", "x", ":", " "]
            ),
            max_size=12,
        )
    )
    def test_guarded_screen_agrees_with_plain_search(self, parts: list[str]) -> None:
        """Invariant: with guards, the pre-screen picks the plain ordered search's rule."""
        rules = [
            PatternRule(r"\d+ validation errors? for|field required", V, "guarded"),
            PatternRule(r"\d+", P, "digits only: anchors kept"),
        ]
        text = "".join(parts)
        assert PreScreen(rules).first(text) is _plain(rules, text)


class TestFirst:
    """PreScreen.first tries candidates in table order, whatever the text order."""

    def test_two_candidates_in_reverse_text_order(self) -> None:
        """The earlier rule wins even when the later rule's anchor comes first in the text."""
        beta = PatternRule("beta", P, "first in the table")
        alpha = PatternRule("alpha", V, "second in the table")
        assert PreScreen([beta, alpha]).first("alpha beta") is beta
        assert PreScreen([alpha, beta]).first("alpha beta") is alpha

    def test_screen_is_built_once(self) -> None:
        """The built screen is kept and reused by later calls."""
        screen = PreScreen([PatternRule("beta", P, "b")])
        assert screen.first("beta") is not None
        built = screen._screen
        assert built is not None
        assert screen.first("gamma") is None
        assert screen._screen is built


class TestRequiredLiteral:
    """The literal every match contains: the longest run of mandatory literal characters."""

    @pytest.mark.parametrize(
        ("pattern", "expected"),
        [
            (r"\d+ validation errors? for", " validation error"),
            (r"ab(?:cdef)+x?", "cdef"),  # a group repeated at least once is mandatory
            (r"(?:abcdef)?xy", "xy"),  # an optional group is not
            (r"(?:abcdef)*xy", "xy"),
            (r"(abcdef)z", "abcdef"),  # a capturing group is walked into
            (r"(?i:abcdef)z", "z"),  # inline flags: its literals are not trusted
            (r"\w+", ""),
            (r"ab\bcd", "ab"),  # anything else ends the run
            (r"abcd(?:efgh)+", "abcd"),  # of two equally long literals, the first
            (r"ab(?:cdef)+", "cdef"),  # a longer literal inside a group wins
        ],
    )
    def test_shapes(self, pattern: str, expected: str) -> None:
        """Groups, mandatory repeats and flags give the literal every match contains."""
        assert _required_literal(_parsed(pattern)) == expected

    def test_literal_occurs_in_every_match(self) -> None:
        """Wherever the pattern matches, the required literal lies inside the match."""
        pattern = r"\d+ validation errors? for"
        literal = _required_literal(_parsed(pattern))
        for text in ["1 validation error for", "12 validation errors for x"]:
            match = re.search(pattern, text)
            assert match is not None
            assert literal in match.group(0)


class TestAnchorWidth:
    """Anchors are cut at MAX_ANCHOR_CHARS; every anchor's prefixes share its candidates."""

    def test_anchor_is_cut_at_max_chars(self) -> None:
        """A long literal gives one anchor of MAX_ANCHOR_CHARS characters."""
        word = "connection refused by the server"
        assert anchors(word) == frozenset({word[:MAX_ANCHOR_CHARS]})
        assert MAX_ANCHOR_CHARS == 12

    def test_longer_anchor_carries_rules_of_its_prefixes(self) -> None:
        """The trie reports the longest anchor; rules anchored at a prefix of it are included."""
        rules = [
            PatternRule("time", P, "short"),
            PatternRule("timeout", P, "long"),
            PatternRule("deadline", P, "other"),
        ]
        screen = build_screen(rules)
        assert screen.rules_at["timeout"] == (0, 1)
        assert screen.rules_at["time"] == (0,)
        assert screen.rules_at["deadline"] == (2,)
        assert PreScreen(rules).first("a timeout") is rules[1]

    def test_one_character_anchor_is_a_prefix_too(self) -> None:
        """A one-character anchor's rule is a candidate wherever a longer anchor starts with it."""
        rules = [PatternRule("x", P, "one"), PatternRule("xyz", P, "three")]
        assert build_screen(rules).rules_at == {"x": (0,), "xyz": (0, 1)}

    def test_empty_table_has_no_anchors(self) -> None:
        """No rules: no anchors, no scanner, nothing always searched."""
        screen = build_screen([])
        assert (screen.rules_at, screen.scanner, screen.always) == ({}, None, ())
        assert screen.padded is False
        assert screen.guarded == ()

    def test_guards_with_a_boundary_scanner(self) -> None:
        """A punctuation anchor (the \\b scanner, unpadded) and a guard work side by side."""
        dash = PatternRule("-x", P, "dash")
        rule = PatternRule(r"\d+ validation errors? for", V, "pydantic")
        screen = build_screen([dash, rule], guards=True)
        assert screen.padded is False
        assert screen.guarded == ((" validation error", 1),)
        assert PreScreen([dash, rule]).first("a-x") is dash
        assert PreScreen([dash, rule]).first("2 validation errors for m") is rule

    def test_only_guarded_rules_keep_their_guards(self) -> None:
        """A table whose every rule is guarded has no scanner, and its guards still work."""
        rule = PatternRule(r"\d+ validation errors? for", V, "pydantic")
        screen = build_screen([rule], guards=True)
        assert screen.scanner is None
        assert screen.guarded == ((" validation error", 0),)
        assert PreScreen([rule]).first("2 validation errors for m") is rule
        assert PreScreen([rule]).first("2 errors for m") is None


def _refine_tuples() -> list[tuple[PatternRule, ...]]:
    """Every non-empty refine tuple of the tables."""
    refines = [rule.refine for rule in TYPE_RULES]
    refines += [rule.refine for rule in CODE_RULES] + [rule.refine for rule in STATUS_RULES]
    return [refine for refine in refines if refine]


class TestRefinementScreens:
    """engine._refinement decides exactly as first_refinement, through cached pre-screens."""

    def test_agrees_with_first_refinement_on_corpus(self) -> None:
        """On every corpus message, each table refine tuple gives first_refinement's rule."""
        texts = [entry["message"].lower() for entry in load_corpus()]
        texts += [x.lower() for refine in _refine_tuples() for r in refine for x in r.examples]
        for refine in _refine_tuples():
            for text in texts:
                assert engine._refinement(refine, text) is first_refinement(refine, text), text

    @settings(deadline=None, suppress_health_check=[HealthCheck.differing_executors])
    @given(st.text(max_size=200))
    def test_agrees_with_first_refinement_on_any_text(self, raw: str) -> None:
        """Invariant: for arbitrary text, the screened refinement equals the plain one."""
        text = raw.lower()
        for refine in _refine_tuples():
            assert engine._refinement(refine, text) is first_refinement(refine, text)

    def test_empty_refine_is_none(self) -> None:
        """No refinement: None, and no screen is built."""
        assert engine._refinement((), "anything") is None
        assert engine._REFINE_SCREENS == {}

    def test_screens_are_cached_per_tuple_identity(self) -> None:
        """A tuple gets its own screen once; an equal but distinct tuple is not confused."""
        first = (PatternRule("alpha", P, "a"),)
        second = (PatternRule("beta", P, "b"),)
        assert engine._refinement(first, "alpha here") is first[0]
        cached = engine._REFINE_SCREENS[id(first)][1]
        assert engine._refinement(first, "beta") is None
        assert engine._REFINE_SCREENS[id(first)][1] is cached
        assert engine._refinement(second, "beta") is second[0]
        assert engine._refinement(second, "alpha") is None

    def test_stale_id_is_rebuilt(self) -> None:
        """An entry whose id now names another tuple is rebuilt, never reused."""
        stale = (PatternRule("gamma", P, "g"),)
        fresh = (PatternRule("delta", P, "d"),)
        engine._REFINE_SCREENS[id(fresh)] = (stale, PreScreen(stale))
        assert engine._refinement(fresh, "delta") is fresh[0]
        assert engine._REFINE_SCREENS[id(fresh)][0] is fresh

    def test_cache_is_bounded(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """At the limit the cache is emptied before a new screen is added."""
        monkeypatch.setattr(engine, "_TYPE_CACHE_LIMIT", 2)
        tuples = [(PatternRule(f"word{i}", P, "w"),) for i in range(3)]
        for refine in tuples[:2]:
            engine._refinement(refine, "text")
        assert len(engine._REFINE_SCREENS) == 2
        assert engine._refinement(tuples[2], "a word2 here") is tuples[2][0]
        assert list(engine._REFINE_SCREENS) == [id(tuples[2])]
