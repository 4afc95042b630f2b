"""classify_error: walk the rule table in its documented order of precedence."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator

from classifier import _fallback
from classifier._prescreen import PreScreen
from classifier._rulekinds import (
    CodeRule,
    NameRule,
    PatternRule,
    Rule,
    StatusRule,
    TypeRule,
)
from classifier._signals import (
    attr,
    exception_codes,
    has_header,
    has_signals,
    http_status,
    message_codes,
    retry_flag,
)
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
from classifier.types import RETRYABLE, ErrorType

MAX_SCAN_CHARS = 64 * 1024  # longer messages are cut: the signal sits at the start
MAX_CHAIN_DEPTH = 8  # __cause__ / __context__ / group members followed at most this deep

_TYPE_INDEX: dict[str, TypeRule] = {name: rule for rule in TYPE_RULES for name in rule.names}
_CODE_INDEX: dict[tuple[str, str], CodeRule] = {
    (rule.kind, code): rule for rule in CODE_RULES for code in rule.folded
}
_STATUS_INDEX = {status: rule for rule in STATUS_RULES for status in rule.statuses}

# The pattern rules behind a literal pre-screen: only rules whose anchors occur are tried.
_PATTERNS = PreScreen(PATTERN_RULES)

# Refinements behind their own pre-screens, one per refine tuple of the tables (keyed by id, the
# tuple kept to check it): a plain search of builtins' KeyError/ValueError refinement, a long
# alternation whose branches start with groups, tried every position: 3.5 us per message.
_REFINE_SCREENS: dict[int, tuple[tuple[PatternRule, ...], PreScreen]] = {}


def _refinement(refine: tuple[PatternRule, ...], lowered: str) -> PatternRule | None:
    """The first refining pattern found in the message (as first_refinement), or None."""
    if not refine:
        return None
    entry = _REFINE_SCREENS.get(id(refine))
    if entry is None or entry[0] is not refine:
        if len(_REFINE_SCREENS) >= _TYPE_CACHE_LIMIT:  # rules built at run time must not leak
            _REFINE_SCREENS.clear()
        entry = _REFINE_SCREENS[id(refine)] = (refine, PreScreen(refine))
    return entry[1].first(lowered)


def classify_error(
    exception: BaseException | None = None, error_message: object = None
) -> ErrorType:
    """Classify a failure from the exception and/or its message; never raises."""
    try:
        return _verdict(exception, error_message)[0]
    except Exception:  # the last line of defence: classification must not fail a pipeline
        return ErrorType.UNKNOWN


def explain(exception: BaseException | None = None, error_message: object = None) -> Rule | None:
    """The rule that decides the outer exception, or None; for docs and tests."""
    try:
        return _verdict(exception, error_message)[1]
    except Exception:
        return None


def _verdict(
    exception: BaseException | None, error_message: object
) -> tuple[ErrorType, Rule | None]:
    """Levels 1-4, then the library's retry flag and the weak class names (levels 5-6)."""
    if not isinstance(exception, BaseException):
        text = error_message[:MAX_SCAN_CHARS] if type(error_message) is str else None
        text = message_text(None, error_message) if text is None else text
        rule = _decide(None, text, False)
        return (rule.error_type, rule) if rule is not None else _weak_evidence(text, None)
    rich = has_signals(exception)  # once per call: _decide and the flag below both need it
    text = message_text(exception, error_message)
    rule = _decide(exception, text, rich)
    if rule is not None:
        verdict = rule.error_type
    elif rich or exception.__cause__ is not None or exception.__context__ is not None:
        verdict = _from_chain(exception)
    else:  # not rich: no group members, .orig, .reason or .last_exc; no chain either
        verdict = ErrorType.UNKNOWN
    flag = retry_flag(exception, RETRY_FLAG.attributes) if rich else None
    if flag is True and verdict not in RETRYABLE:
        return RETRY_FLAG.error_type, RETRY_FLAG  # the library knows its own errors best
    if verdict is not ErrorType.UNKNOWN:
        return verdict, rule
    weak = _name_rule(type(exception), WEAK_NAME_RULES)
    if weak is not None:
        return weak.error_type, weak
    if flag is False:
        return NOT_RETRYABLE_FLAG.error_type, NOT_RETRYABLE_FLAG
    return _weak_evidence(text, type(exception))


def _weak_evidence(text: str, cls: type | None) -> tuple[ErrorType, Rule | None]:
    """Level 10: a status or code named in the text, a class-name word, then the text's words."""
    rule: Rule | None = _fallback.weak_evidence(text, _STATUS_INDEX, _CODE_INDEX)
    if isinstance(rule, StatusRule):
        rule = _refinement(rule.refine, text.lower()) or rule
    elif cls is not None and (rule is None or isinstance(rule, PatternRule)):
        rule = _name_rule(cls, _fallback.WEAK_NAMES) or rule
    return (rule.error_type, rule) if rule is not None else (ErrorType.UNKNOWN, None)


def _decide(exception: BaseException | None, text: str, rich: bool | None = None) -> Rule | None:
    """Levels 1-3 for one exception and its message text (rich: has_signals, if known)."""
    lowered = text.lower()
    if rich is None:
        rich = isinstance(exception, BaseException) and has_signals(exception)
    code_rule = _code_rule(exception, rich, lowered, text)
    if code_rule is not None:
        return code_rule
    if isinstance(exception, BaseException):
        if rich and has_header(exception, RETRY_AFTER.headers, RETRY_AFTER.attributes):
            return RETRY_AFTER
        type_rule = _type_rule(type(exception))
        if isinstance(type_rule, TypeRule):
            refined = _refinement(type_rule.refine, lowered)
            return refined or _specific_name(type(exception)) or type_rule
        # An HTTP status is the server's own verdict: it outranks words in a class name
        # (websockets' InvalidStatus says "Invalid" whether the answer was 403 or 503).
        status = http_status(exception) if rich else None
        status_rule = _STATUS_INDEX.get(status) if status is not None else None
        if status_rule is not None:
            return _refinement(status_rule.refine, lowered) or status_rule
        if type_rule is not None:
            return type_rule
    return match_patterns(lowered)


def _code_rule(exception: BaseException | None, rich: bool, lowered: str, text: str) -> Rule | None:
    """Level 1a: the first code with a rule; then the class of any SQLSTATE seen."""
    codes = message_codes(lowered, text, exception)
    if rich and exception is not None:
        codes = itertools.chain(exception_codes(exception), codes)
    classes: list[tuple[str, str]] = []
    service: list[str] = []
    for kind, code in codes:
        rule = _CODE_INDEX.get((kind, code.casefold()))
        if rule is not None:
            return _refinement(rule.refine, lowered) or rule
        if kind in _CODE_CLASSES:
            class_kind, width = _CODE_CLASSES[kind]
            classes.append((class_kind, code[:width].casefold()))
        elif kind == "service" and code.isidentifier():
            service.append(code)
    for key in classes:
        rule = _CODE_INDEX.get(key)
        if rule is not None:
            return rule
    for code in service:  # an unlisted service code is named like a class: read its words
        name_rule = _words(code, NAME_RULES)
        if name_rule is not None:
            return name_rule
    return None


# Code kinds whose leading characters form a class with its own rules (SQLSTATE "40", SMTP "4").
_CODE_CLASSES = {
    "sqlstate": ("sqlstate-class", 2),
    "smtp": ("smtp-class", 1),
    "ftp": ("ftp-class", 1),
}


def match_patterns(lowered: str) -> PatternRule | None:
    """The earliest pattern rule matching already lower-cased text, or None."""
    return _PATTERNS.first(lowered) if lowered else None


_TYPE_CACHE: dict[type, TypeRule | NameRule | None] = {}
_TYPE_CACHE_LIMIT = 4096


def _type_rule(cls: type) -> TypeRule | NameRule | None:
    """The qualified-name rule along the MRO, else a strong class-name rule (cached per type)."""
    try:
        return _TYPE_CACHE[cls]
    except (KeyError, TypeError):
        pass
    rule: TypeRule | NameRule | None = _lookup_mro(cls) or _name_rule(cls, NAME_RULES)
    if len(_TYPE_CACHE) >= _TYPE_CACHE_LIMIT:  # dynamically created classes must not leak memory
        _TYPE_CACHE.clear()
    with contextlib.suppress(TypeError):  # an unhashable metaclass: just do not cache
        _TYPE_CACHE[cls] = rule
    return rule


_SPECIFIC_CACHE: dict[type, NameRule | None] = {}


def _specific_name(cls: type) -> NameRule | None:
    """A class-name rule of a library class whose type rule matched only at a builtin base.

    zoneinfo's ZoneInfoNotFoundError is a KeyError: the library's own class name says more
    than the builtin base it reuses (cached per type, like _type_rule).
    """
    try:
        return _SPECIFIC_CACHE[cls]
    except (KeyError, TypeError):
        pass
    found: NameRule | None = None
    specific: list[type] = []
    for klass in _mro(cls):
        module = getattr(klass, "__module__", None)
        if f"{module}.{getattr(klass, '__qualname__', None)}" in _TYPE_INDEX:
            if module == "builtins":  # the match is a builtin base: the subclasses' names decide
                found = next(
                    (r for k in specific if (r := _words(k.__name__, NAME_RULES)) is not None),
                    None,
                )
            break
        is_exception = isinstance(klass, type) and issubclass(klass, BaseException)
        if module != "builtins" and is_exception:  # mixins (a temp-file wrapper) say nothing
            specific.append(klass)
    if len(_SPECIFIC_CACHE) >= _TYPE_CACHE_LIMIT:
        _SPECIFIC_CACHE.clear()
    with contextlib.suppress(TypeError):
        _SPECIFIC_CACHE[cls] = found
    return found


def _lookup_mro(cls: type) -> TypeRule | None:
    """Walk the MRO, most specific first, and return the first class the table names."""
    for klass in _mro(cls):
        module = getattr(klass, "__module__", None)
        qualname = getattr(klass, "__qualname__", None)
        if isinstance(module, str) and isinstance(qualname, str):
            rule = _TYPE_INDEX.get(f"{module}.{qualname}")
            if rule is not None:
                return rule
    return None


# _name_rule per (class, table): the weak tables are read for every undecided error, each a walk
# of the MRO with a regex search per class.
# Keyed by the table's id, the table kept in the entry to check it (hashing it costs more).
_NAME_CACHE: dict[tuple[type, int], tuple[tuple[NameRule, ...], NameRule | None]] = {}


def _name_rule(cls: type, rules: tuple[NameRule, ...]) -> NameRule | None:
    """_find_name_rule, cached per class and table."""
    key = (cls, id(rules))
    try:
        entry = _NAME_CACHE[key]
        if entry[0] is rules:
            return entry[1]
    except (KeyError, TypeError):
        pass
    rule = _find_name_rule(cls, rules)
    if len(_NAME_CACHE) >= _TYPE_CACHE_LIMIT:  # dynamically created classes must not leak memory
        _NAME_CACHE.clear()
    with contextlib.suppress(TypeError):  # an unhashable metaclass: just do not cache
        _NAME_CACHE[key] = (rules, rule)
    return rule


def _find_name_rule(cls: type, rules: tuple[NameRule, ...]) -> NameRule | None:
    """The first name rule matching the most specific non-builtin exception class in the MRO."""
    for klass in _mro(cls):
        name = getattr(klass, "__name__", None)
        if getattr(klass, "__module__", None) == "builtins" or not isinstance(name, str):
            continue
        # Mixins are not exceptions: urllib's HTTPError also derives from a temporary-file
        # wrapper, whose name says nothing about the error.
        if not (isinstance(klass, type) and issubclass(klass, BaseException)):
            continue
        rule = _words(name, rules)
        if rule is not None:
            return rule
    return None


def _words(name: str, rules: tuple[NameRule, ...]) -> NameRule | None:
    """The first name rule whose words occur in a class name or service code."""
    for rule in rules:
        if rule.regex.search(name[:200]):
            return rule
    return None


def _mro(cls: type) -> tuple[type, ...]:
    """The class's MRO, or just the class when it has none."""
    mro = getattr(cls, "__mro__", None)
    return mro if isinstance(mro, tuple) else (cls,)


def _from_chain(exc: BaseException) -> ErrorType:
    """Level 4: group members and the cause chain, breadth-first, cycles and depth bounded."""
    seen = {id(exc)}
    frontier = [exc]
    for _ in range(MAX_CHAIN_DEPTH):
        verdicts: list[ErrorType] = []
        next_frontier: list[BaseException] = []
        for current in frontier:
            for inner in _inner_exceptions(current):
                if id(inner) in seen:
                    continue
                seen.add(id(inner))
                next_frontier.append(inner)
                rule = _decide(inner, message_text(inner, None))
                if rule is not None:
                    verdicts.append(rule.error_type)
        if verdicts:
            return _combine(verdicts)
        if not next_frontier:
            break
        frontier = next_frontier
    return ErrorType.UNKNOWN


def _inner_exceptions(exc: BaseException) -> Iterator[BaseException]:
    """Members of a group, then __cause__, __context__ and library wrappers (.orig, .reason)."""
    members = attr(exc, "exceptions") if isinstance(exc, BaseExceptionGroup) else None
    if isinstance(members, tuple | list):
        yield from (m for m in members[:64] if isinstance(m, BaseException))
    for name in ("__cause__", "__context__", "orig", "reason", "last_exc"):
        inner = attr(exc, name)
        if isinstance(inner, BaseException):
            yield inner


def _combine(verdicts: list[ErrorType]) -> ErrorType:
    """Several inner verdicts: a non-retryable one wins, since retrying would repeat it."""
    for verdict in verdicts:
        if verdict not in RETRYABLE:
            return verdict
    return verdicts[0]


def message_text(exception: BaseException | None, error_message: object) -> str:
    """The text to scan: error_message and str(exception), bounded to MAX_SCAN_CHARS."""
    parts: list[str] = []
    if error_message is not None:
        parts.append(to_text(error_message))
    if isinstance(exception, BaseException):
        text = safe_str(exception)
        if text and not (parts and text[:200] in parts[0]):
            parts.append(text)
    return "\n".join(parts)[:MAX_SCAN_CHARS]


def to_text(value: object, limit: int = MAX_SCAN_CHARS) -> str:
    """Any message object as bounded text: bytes decoded leniently, str() guarded."""
    if isinstance(value, str):
        return value[:limit]
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value[: limit * 4]).decode("utf-8", errors="replace")[:limit]
    try:
        text = str(value)
    except Exception:
        return ""
    return text[:limit] if isinstance(text, str) else ""


def safe_str(exc: BaseException) -> str:
    """str(exc), or its args / class name when __str__ itself fails."""
    try:
        text = str(exc)
        if isinstance(text, str):
            return text
    except Exception:
        pass
    try:
        return " ".join(to_text(arg) for arg in exc.args[:8])
    except Exception:
        return ""
