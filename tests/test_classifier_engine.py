"""Unit tests for the engine's speed paths: the class-name cache and the chain short cut."""

from __future__ import annotations

import pytest

from classifier import ErrorType, classify_error, engine
from classifier._fallback import WEAK_NAMES
from classifier._rulekinds import NameRule
from classifier.rules import NAME_RULES, WEAK_NAME_RULES
from tests.strategies.errors import (
    fresh_classifier_caches,  # noqa: F401 - autouse fixture
    load_corpus,
    stand_in_class,
)

T, P, U = ErrorType.TRANSIENT, ErrorType.PERMANENT, ErrorType.UNKNOWN


class TestNameCache:
    """_name_rule answers as the uncached MRO walk, once per class and table."""

    def test_cached_equals_uncached_on_corpus_classes(self) -> None:
        """For every corpus class and name table, the cached rule is the walk's rule."""
        classes = {e["exception_class"] for e in load_corpus() if e.get("exception_class")}
        for qualified in sorted(classes):
            cls = stand_in_class(qualified)
            for table in (NAME_RULES, WEAK_NAME_RULES, WEAK_NAMES):
                expected = engine._find_name_rule(cls, table)
                assert engine._name_rule(cls, table) is expected, qualified
                assert engine._name_rule(cls, table) is expected, qualified  # from the cache

    def test_entry_is_kept_per_class_and_table(self) -> None:
        """One entry per (class, table), holding the table it was computed for."""
        cls = type("QuotaExceeded", (Exception,), {"__module__": "svc"})
        found = engine._name_rule(cls, WEAK_NAMES)
        assert found is not None
        assert found.error_type is P
        assert engine._NAME_CACHE[(cls, id(WEAK_NAMES))] == (WEAK_NAMES, found)
        assert engine._name_rule(cls, WEAK_NAME_RULES) is None

    def test_cached_entry_is_returned_without_walking(self) -> None:
        """A cached entry for the same table answers, whatever the walk would say."""
        cls = type("SocketError", (Exception,), {"__module__": "svc"})
        sentinel = NameRule("Sentinel", P, "cached")
        engine._NAME_CACHE[(cls, id(WEAK_NAMES))] = (WEAK_NAMES, sentinel)
        assert engine._name_rule(cls, WEAK_NAMES) is sentinel

    def test_stale_table_id_is_recomputed(self) -> None:
        """An entry whose id now names another table is recomputed, never reused."""
        cls = type("SocketError", (Exception,), {"__module__": "svc"})
        other: tuple[NameRule, ...] = (NameRule("Nothing", P, "never"),)
        engine._NAME_CACHE[(cls, id(WEAK_NAMES))] = (other, None)
        found = engine._name_rule(cls, WEAK_NAMES)
        assert found is not None
        assert found.error_type is T
        assert engine._NAME_CACHE[(cls, id(WEAK_NAMES))] == (WEAK_NAMES, found)

    def test_cache_is_bounded(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """At the limit the cache is emptied before a new entry is added."""
        monkeypatch.setattr(engine, "_TYPE_CACHE_LIMIT", 2)
        classes = [type(f"LockError{i}", (Exception,), {"__module__": "m"}) for i in range(3)]
        for cls in classes[:2]:
            engine._name_rule(cls, WEAK_NAMES)
        assert len(engine._NAME_CACHE) == 2
        engine._name_rule(classes[2], WEAK_NAMES)
        assert list(engine._NAME_CACHE) == [(classes[2], id(WEAK_NAMES))]

    def test_unhashable_class_is_not_cached(self) -> None:
        """A class whose metaclass refuses hashing is walked each time, never cached."""

        class Unhashable(type):
            __hash__ = None  # type: ignore[assignment]

        cls = Unhashable("QuotaExceeded", (Exception,), {"__module__": "svc"})
        found = engine._name_rule(cls, WEAK_NAMES)
        assert found is not None
        assert found.error_type is P
        assert engine._NAME_CACHE == {}


class Plain(Exception):
    """A class no rule names, with a message no rule reads."""


class TestChainShortCut:
    """A plain undecided exception skips the chain walk only when it has no chain."""

    def test_cause_decides(self) -> None:
        """A plain outer exception takes its verdict from its __cause__."""
        outer = Plain("wrapped")
        outer.__cause__ = ConnectionResetError("reset")
        assert classify_error(outer) is T

    def test_context_decides(self) -> None:
        """A plain outer exception takes its verdict from its __context__ alone."""
        try:
            try:
                raise ConnectionResetError("reset")
            except ConnectionResetError:
                raise Plain("while handling") from None
        except Plain as caught:
            outer = caught
        assert outer.__cause__ is None
        assert outer.__context__ is not None
        assert classify_error(outer) is T

    def test_wrapped_original_decides(self) -> None:
        """A rich exception (.orig, as SQLAlchemy) is walked though it has no chain."""
        outer = Plain("wrapped")
        outer.orig = ConnectionResetError("reset")  # type: ignore[attr-defined]
        assert outer.__cause__ is None
        assert outer.__context__ is None
        assert classify_error(outer) is T

    def test_no_chain_is_unknown(self) -> None:
        """A plain exception with nothing inside and no evidence stays UNKNOWN."""
        assert classify_error(Plain("zq")) is U
