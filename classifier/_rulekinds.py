"""The four kinds of classification rule; each is a small frozen object with one match method."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

import attrs

from classifier.types import ErrorType

# A rule pattern is written in lower case (the engine lower-cases the text once) and must
# start with a word character, so that a single word-boundary scan can find every rule.
# Nothing is compiled at import (issue 20: `import classifier` must be cheap): a rule's regex is
# compiled the first time it is tried, and a test compiles every rule of the table.


def _unescaped(pattern: str) -> Iterable[str]:
    """The characters of pattern that are not part of a backslash escape (\\D, \\S, \\W...)."""
    escaped = False
    for char in pattern:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        else:
            yield char


def _check_lower(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    """Patterns are matched against lower-cased text, so an upper-case letter never matches."""
    if any(c.isupper() for c in _unescaped(value)):
        raise ValueError(f"PatternRule.pattern must be lower case (got {value!r}).")


@attrs.frozen
class PatternRule:
    """A regex searched in the lower-cased message, anchored at a word boundary on both ends."""

    pattern: str = attrs.field(validator=_check_lower)
    error_type: ErrorType
    reason: str
    examples: tuple[str, ...] = ()

    @functools.cached_property
    def regex(self) -> re.Pattern[str]:
        """Compiled on first use, with the same boundaries the combined scanner uses."""
        return re.compile(rf"\b(?:{self.pattern})(?!\w)")

    @property
    def bounded(self) -> str:
        """The pattern with its trailing boundary, as the combined scanner embeds it."""
        return rf"(?:{self.pattern})(?!\w)"

    def matches(self, lowered: str) -> bool:
        """True when the pattern occurs in already lower-cased text."""
        return self.regex.search(lowered) is not None


@attrs.frozen
class TypeRule:
    """Qualified exception class names (module.qualname) looked up along the MRO."""

    names: tuple[str, ...]
    error_type: ErrorType
    reason: str
    refine: tuple[PatternRule, ...] = ()


@attrs.frozen
class CodeRule:
    """Machine-readable error codes a service attaches (botocore Error.Code, SQLSTATE, ...)."""

    codes: tuple[str, ...]
    error_type: ErrorType
    reason: str
    source: str
    kind: str = "service"  # the namespace: service, sqlstate, sqlstate-class, mysql, redis, ...
    refine: tuple[PatternRule, ...] = ()
    folded: frozenset[str] = attrs.field(init=False, eq=False, repr=False)

    @folded.default
    def _fold(self) -> frozenset[str]:
        """Codes compare case-insensitively: services disagree on spelling."""
        return frozenset(code.casefold() for code in self.codes)


@attrs.frozen
class StatusRule:
    """HTTP status codes on the exception; refine lets a reason in the message override."""

    statuses: tuple[int, ...]
    error_type: ErrorType
    reason: str
    refine: tuple[PatternRule, ...] = ()


@attrs.frozen
class FlagRule:
    """A retryability flag the library sets itself (an attribute, or a method returning bool)."""

    attributes: tuple[str, ...]
    error_type: ErrorType
    reason: str


@attrs.frozen
class HeaderRule:
    """A response header (or attribute) by which a server says when to come back."""

    headers: tuple[str, ...]
    attributes: tuple[str, ...]
    error_type: ErrorType
    reason: str


@attrs.frozen
class NameRule:
    """A word in an exception class's own name (any class in the MRO, any library)."""

    pattern: str
    error_type: ErrorType
    reason: str
    examples: tuple[str, ...] = ()

    @functools.cached_property
    def regex(self) -> re.Pattern[str]:
        """Compiled on first use; class names are matched case-sensitively (CamelCase words)."""
        return re.compile(self.pattern)


Rule = PatternRule | TypeRule | CodeRule | StatusRule | FlagRule | HeaderRule | NameRule


def first_refinement(refine: Iterable[PatternRule], lowered: str) -> PatternRule | None:
    """The first refining pattern found in the message, if any."""
    for rule in refine:
        if rule.matches(lowered):
            return rule
    return None
