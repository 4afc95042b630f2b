"""classify_error: walk the rule table in its documented order of precedence."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator

from classifier._lazyre import lazy
from classifier._prescreen import PreScreen
from classifier._rulekinds import PatternRule, Rule, TypeRule, first_refinement
from classifier.rules import CODE_RULES, PATTERN_RULES, STATUS_RULES, TYPE_RULES
from classifier.types import RETRYABLE, ErrorType

MAX_SCAN_CHARS = 64 * 1024  # longer messages are cut: the signal sits at the start
MAX_CHAIN_DEPTH = 8  # __cause__ / __context__ / group members followed at most this deep

_TYPE_INDEX: dict[str, TypeRule] = {name: rule for rule in TYPE_RULES for name in rule.names}
_CODE_INDEX = {code: rule for rule in CODE_RULES for code in rule.folded}
_STATUS_INDEX = {status: rule for rule in STATUS_RULES for status in rule.statuses}

_CODE_IN_TEXT = lazy(r"an error occurred \((\w{1,64})\)|\bsqlstate[ :=]*([0-9a-z]{5})\b")

# The pattern rules behind a literal pre-screen: only rules whose anchors occur are tried.
_PATTERNS = PreScreen(PATTERN_RULES)


def classify_error(
    exception: BaseException | None = None, error_message: object = None
) -> ErrorType:
    """Classify a failure from the exception and/or its message; never raises."""
    try:
        return _classify(exception, error_message)
    except Exception:  # the last line of defence: classification must not fail a pipeline
        return ErrorType.UNKNOWN


def explain(exception: BaseException | None = None, error_message: object = None) -> Rule | None:
    """The rule that decides the outer exception (levels 1-3), or None; for docs and tests."""
    try:
        return _decide(exception, message_text(exception, error_message))
    except Exception:
        return None


def _classify(exception: BaseException | None, error_message: object) -> ErrorType:
    """Levels 1-3 on the outer exception, then level 4 (its chain) if they found nothing."""
    rule = _decide(exception, message_text(exception, error_message))
    if rule is not None:
        return rule.error_type
    if isinstance(exception, BaseException):
        return _from_chain(exception)
    return ErrorType.UNKNOWN


def _decide(exception: BaseException | None, text: str) -> Rule | None:
    """Levels 1-3 for one exception and its message text."""
    lowered = text.lower()
    codes = _service_codes(exception) if isinstance(exception, BaseException) else iter(())
    for code in itertools.chain(codes, _message_codes(lowered)):
        code_rule = _CODE_INDEX.get(code.casefold())
        if code_rule is not None:
            return code_rule
    if isinstance(exception, BaseException):
        type_rule = _type_rule(type(exception))
        if type_rule is not None:
            return first_refinement(type_rule.refine, lowered) or type_rule
        status = _http_status(exception)
        status_rule = _STATUS_INDEX.get(status) if status is not None else None
        if status_rule is not None:
            return first_refinement(status_rule.refine, lowered) or status_rule
    return match_patterns(lowered)


def match_patterns(lowered: str) -> PatternRule | None:
    """The earliest pattern rule matching already lower-cased text, or None."""
    return _PATTERNS.first(lowered) if lowered else None


_TYPE_CACHE: dict[type, TypeRule | None] = {}
_TYPE_CACHE_LIMIT = 4096


def _type_rule(cls: type) -> TypeRule | None:
    """The rule for the most specific class in the MRO that the table names (cached per type)."""
    try:
        return _TYPE_CACHE[cls]
    except (KeyError, TypeError):
        pass
    rule = _lookup_mro(cls)
    if len(_TYPE_CACHE) >= _TYPE_CACHE_LIMIT:  # dynamically created classes must not leak memory
        _TYPE_CACHE.clear()
    with contextlib.suppress(TypeError):  # an unhashable metaclass: just do not cache
        _TYPE_CACHE[cls] = rule
    return rule


def _lookup_mro(cls: type) -> TypeRule | None:
    """Walk the MRO, most specific first, and return the first class the table names."""
    for klass in getattr(cls, "__mro__", (cls,)):
        module = getattr(klass, "__module__", None)
        qualname = getattr(klass, "__qualname__", None)
        if isinstance(module, str) and isinstance(qualname, str):
            rule = _TYPE_INDEX.get(f"{module}.{qualname}")
            if rule is not None:
                return rule
    return None


def _service_codes(exc: BaseException) -> Iterator[str]:
    """Machine-readable codes: botocore Error.Code, Google errors[].reason, SQLSTATE."""
    response = _attr(exc, "response")
    if isinstance(response, dict):
        error = response.get("Error")
        if isinstance(error, dict) and isinstance(error.get("Code"), str):
            yield error["Code"]
    errors = _attr(exc, "errors")
    if isinstance(errors, list | tuple):
        for item in errors[:8]:
            if isinstance(item, dict) and isinstance(item.get("reason"), str):
                yield item["reason"]
    for name in ("pgcode", "sqlstate", "reason"):
        value = _attr(exc, name)
        if isinstance(value, str) and 0 < len(value) <= 64:
            yield value


def _message_codes(lowered: str) -> Iterator[str]:
    """Codes quoted in the text: botocore's "An error occurred (Code)" and "SQLSTATE 40001"."""
    head = lowered[:4096]
    if "an error occurred (" in head or "sqlstate" in head:  # substring tests are ~50x cheaper
        for match in _CODE_IN_TEXT.finditer(head):
            yield match.group(1) or match.group(2)


def _http_status(exc: BaseException) -> int | None:
    """An HTTP status from code / status_code / status / response.status_code, if plausible."""
    for owner, name in (
        (exc, "code"),
        (exc, "status_code"),
        (exc, "status"),
        (_attr(exc, "response"), "status_code"),
        (_attr(exc, "response"), "status"),
    ):
        value = _attr(owner, name) if owner is not None else None
        if isinstance(value, str) and value.isdigit() and len(value) == 3:
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
            return value
    return None


def _attr(obj: object, name: str) -> object:
    """getattr that survives properties which raise."""
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


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
    members = _attr(exc, "exceptions") if isinstance(exc, BaseExceptionGroup) else None
    if isinstance(members, tuple | list):
        yield from (m for m in members[:64] if isinstance(m, BaseException))
    for name in ("__cause__", "__context__", "orig", "reason", "last_exc"):
        inner = _attr(exc, name)
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
