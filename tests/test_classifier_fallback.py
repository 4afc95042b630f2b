"""Level 10, weak evidence: what an otherwise UNKNOWN error becomes; no rule is overridden."""

from __future__ import annotations

import pytest

from classifier import ErrorType, _fallback, classify_error
from classifier.engine import explain
from tests.strategies.errors import (
    fresh_classifier_caches,  # noqa: F401 - autouse fixture
    stand_in_class,
)

T, P, TO = ErrorType.TRANSIENT, ErrorType.PERMANENT, ErrorType.TIMEOUT
V, U = ErrorType.VALIDATION_ERROR, ErrorType.UNKNOWN

Oops = stand_in_class("somelib.errors.Oops")  # a class no rule and no class-name word knows


class TestStatusNamedInText:
    """An HTTP status the text names is read through the status table, else by its class."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("Client error '409 Conflict' for url 'http://127.0.0.1:1/v1'", P),
            ("client error '451 unavailable for legal reasons' for url", P),
            ("416 Client Error: Requested Range Not Satisfiable for url: http://h/x", V),
            ("upstream answered HTTP 418", P),
            ("HTTP/1.1 409", P),
            ("status code 599 from the proxy", T),
            ("response code: 422", V),
        ],
    )
    def test_status_decides(self, text: str, expected: ErrorType) -> None:
        """The named status's own rule, or its class (4xx PERMANENT, 5xx TRANSIENT), decides."""
        assert classify_error(Oops(text)) is expected
        assert classify_error(None, text) is expected

    def test_phrase_must_belong_to_the_number(self) -> None:
        """FTP's "452 Insufficient storage" carries HTTP 507's phrase: not a status."""
        assert _fallback.weak_evidence("452 Insufficient storage space in system.", {}, {}) is None

    def test_lower_case_phrase_after_its_number(self) -> None:
        """A phrase in lower case counts when its own number stands before it, even at the start."""
        assert classify_error(Oops("409 conflict")) is P
        assert classify_error(Oops("409 Client Error: conflict for url")) is P
        assert classify_error(Oops("we resolved a conflict")) is U

    def test_status_refined_by_its_text(self) -> None:
        """A named status keeps its rule's refinements: a 413 over a billing tier is a limit."""
        assert classify_error(None, "HTTP 413: over the billing tier of the project") is P
        assert classify_error(None, "HTTP 413: over the size of the project") is V

    def test_no_status_without_a_marker(self) -> None:
        """A bare 4xx number with no phrase and no HTTP/status marker is not read here."""
        assert _fallback.weak_evidence("got 409 rows from the query", {}, {}) is None


class TestCodeNamedInText:
    """gRPC, errno and getaddrinfo names in upper case go through the code tables."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("rpc failed: NOT_FOUND", P),
            ("call ended with RESOURCE_EXHAUSTED", T),
            ("the call: INVALID_ARGUMENT", V),
            ("socket said EHOSTDOWN", T),
            ("lookup EAI_NONAME for db.internal", P),
            ("lookup EAI_AGAIN for db.internal", T),
        ],
    )
    def test_code_decides(self, text: str, expected: ErrorType) -> None:
        """The code's own rule decides an otherwise UNKNOWN error."""
        assert classify_error(Oops(text)) is expected

    def test_case_matters(self) -> None:
        """Lower-case "not_found" or "ehostdown" in prose is no code name."""
        assert classify_error(Oops("rpc failed: not_found")) is U
        assert classify_error(Oops("socket said ehostdown")) is U

    def test_unlisted_upper_case_word_is_skipped(self) -> None:
        """An upper-case word that is no listed errno does not stop the search for one that is."""
        assert classify_error(Oops("EOF then EHOSTDOWN")) is T

    def test_title_case_phrase(self) -> None:
        """A reason phrase in title case is the status; in prose it is not."""
        assert classify_error(Oops("server answered Conflict")) is P
        assert classify_error(Oops("Server answered with: Gone")) is P
        assert classify_error(Oops("we resolved a conflict")) is U


class TestWeakWords:
    """Words about the input make VALIDATION_ERROR, about the environment PERMANENT."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("unpack requires a buffer of 4 bytes", V),
            ("Short substrate on input", V),
            ("file does not start with RIFF id", V),
            ("db type could not be determined", V),
            ("unterminated subpattern at position 0", V),
            ("Incompatible version (1.0 instead of 2.0)", P),
            ("feature zstd is disabled on this server", P),
            ("the table was locked by its owner", P),
        ],
    )
    def test_word_decides(self, text: str, expected: ErrorType) -> None:
        """An exception nothing else decided is labelled by the words of its text."""
        assert classify_error(Oops(text)) is expected

    def test_a_phrase_in_prose_leaves_the_word(self) -> None:
        """A reason phrase in prose ("locked", not 423 Locked) leaves the weak word to decide."""
        assert classify_error(Oops("payload is bad")) is V
        locked = Oops("the row was locked by another session")
        assert explain(locked) is _fallback.WEAK_WORDS[1]

    def test_first_word_wins(self) -> None:
        """When both kinds of words occur, the one earlier in the text decides."""
        assert classify_error(Oops("version 3 of the header came first")) is P
        assert classify_error(Oops("header of version 3 came first")) is V

    def test_examples_of_each_word_rule(self) -> None:
        """Every weak-word rule's examples reach it, on an exception nothing else decides."""
        for rule in _fallback.WEAK_WORDS:
            for example in rule.examples:
                assert explain(Oops(example)) is rule, example

    def test_no_evidence_stays_unknown(self) -> None:
        """Without a status, a code or a word, the verdict stays UNKNOWN (the seed's default)."""
        for text in ("", "boom", 'File "x.py", line 403, in run', "port 503"):
            assert classify_error(Oops(text)) is U, text


class TestNeverOverridesARule:
    """Only an otherwise UNKNOWN verdict reaches level 10."""

    def test_pattern_rule_keeps_its_verdict(self) -> None:
        """A message a pattern rule decides keeps that verdict whatever its weak words say."""
        assert classify_error(Oops("deadlock detected while reading input data")) is T

    def test_type_rule_keeps_its_verdict(self) -> None:
        """A type rule decides before any weak word (TypeError is a bug, not the data)."""
        assert classify_error(TypeError("unexpected header value")) is P

    def test_chain_decides_before_weak_words(self) -> None:
        """An inner exception's verdict outranks the outer text's weak words."""
        outer = Oops("wrapping the input")
        outer.__cause__ = ConnectionResetError("reset")
        assert classify_error(outer) is T

    def test_false_retry_flag_decides_before_weak_words(self) -> None:
        """A library's own not-retriable flag (PERMANENT) outranks a weak input word."""
        exc = Oops("bad input")
        exc.retriable = False  # type: ignore[attr-defined]
        assert classify_error(exc) is P

    def test_weak_rules_are_in_the_table(self) -> None:
        """The ordered rule table lists level 10 last, with every weak rule."""
        from classifier.rules import RULES

        name, rules = RULES[-1]
        assert name.startswith("10.")
        assert set(rules) == {
            *_fallback.STATUS_CLASSES,
            *_fallback.WEAK_NAMES,
            *_fallback.WEAK_WORDS,
        }


class TestWeakClassNames:
    """Words in the class name decide an otherwise UNKNOWN error, before the text's words."""

    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            ("UsageError", V),
            ("DeserializationError", V),
            ("DuplicateKey", V),
            ("QuotaExceeded", P),
            ("AuthError", P),
            ("VersionConflict", P),
            ("NotReadyError", T),
            ("SocketError", T),
            ("LockError", T),
        ],
    )
    def test_class_word_decides(self, name: str, expected: ErrorType) -> None:
        """A class of a library no rule names, with an empty message, is read by its name."""
        assert classify_error(stand_in_class(f"somelib.errors.{name}")("")) is expected

    def test_examples_reach_their_rule(self) -> None:
        """Every weak class-name rule's examples are decided by that rule."""
        for rule in _fallback.WEAK_NAMES:
            for example in rule.examples:
                assert explain(stand_in_class(f"somelib.{example}")("")) is rule, example

    def test_class_word_outranks_text_word(self) -> None:
        """The library's own category beats a weak word in its text ("limit" is environment)."""
        assert classify_error(stand_in_class("somelib.UsageError")("--limit: bad")) is V

    def test_named_status_outranks_class_word(self) -> None:
        """A status the text names beats a weak class-name word."""
        assert classify_error(stand_in_class("somelib.UsageError")("HTTP 503")) is T

    def test_base_class_words_count(self) -> None:
        """A library base class's name is read when the class's own says nothing."""
        base = stand_in_class("somelib.QuotaExceeded")
        sub = type("Daily", (base,), {"__module__": "somelib", "__qualname__": "Daily"})
        assert classify_error(sub("")) is P

    def test_message_only_has_no_class(self) -> None:
        """Without an exception there is no class name to read: the text alone decides."""
        assert classify_error(None, "UsageError") is U


class TestAlternatives:
    """The weak words are split into top-level alternatives for the anchor scan."""

    def test_split_only_at_top_level(self) -> None:
        """Bars inside groups, character classes or escapes do not split a pattern."""
        pattern = r"a|(?:b|c)d|[|x]|e\|f|g"
        assert _fallback._alternatives(pattern) == ["a", "(?:b|c)d", "[|x]", r"e\|f", "g"]

    def test_nested_groups_and_a_class_with_a_bracket(self) -> None:
        """Depth is counted through nested groups; a class ends at its first unescaped bracket."""
        pattern = r"((a|b)|c)|[\]|]z|h"
        assert _fallback._alternatives(pattern) == ["((a|b)|c)", r"[\]|]z", "h"]

    def test_every_weak_rule_is_the_union_of_its_parts(self) -> None:
        """Joining the parts again gives the rule's own pattern back."""
        for rule in _fallback.WEAK_WORDS:
            assert "|".join(_fallback._alternatives(rule.pattern)) == rule.pattern
