"""Level 10: weak evidence for an error no rule decided, before settling on UNKNOWN.

Every blind batch so far had a third or more of its misses as UNKNOWN: libraries the table
never names, raising classes whose names say nothing. Their text still carries weak evidence
that follows the labelling rules' own definitions (docs/classifier.md), not any one message:

1. a *status or code named in the text*: an HTTP status with its reason phrase ("409
   Conflict", "HTTP 451"), a gRPC / Google canonical code, errno or getaddrinfo name
   ("NOT_FOUND", "ECONNREFUSED", "EAI_AGAIN"), read through the same status and code
   tables as levels 1 and 5;
2. *words in the class's own name* that no strong name rule knew ("UsageError",
   "QuotaExceeded", "NotReadyError"), the library's own category;
3. *words about the input as written* (a position, a byte count, a header, what was
   expected) make it VALIDATION_ERROR; *words about the environment* (a version, something
   not installed, disabled, locked or over a limit) make it PERMANENT. The first such word
   in the text decides: messages lead with what went wrong.

Only an otherwise UNKNOWN verdict reaches this level, so it never overrides a rule; with no
evidence at all the verdict stays UNKNOWN (the seed: "treated as permanent").
"""

from __future__ import annotations

import functools
import re
from http import HTTPStatus

from classifier import _codes
from classifier._lazyre import lazy
from classifier._prescreen import _Screen, build_screen, trie_regex
from classifier._rulekinds import CodeRule, NameRule, PatternRule, StatusRule
from classifier.types import ErrorType

T, P, TO = ErrorType.TRANSIENT, ErrorType.PERMANENT, ErrorType.TIMEOUT
V = ErrorType.VALIDATION_ERROR

# A status class when the exact status has no rule of its own: a 4xx the client cannot fix by
# retrying is PERMANENT (labelling rule 5), a 5xx is the server's trouble (rule 3).
STATUS_CLASSES: tuple[StatusRule, ...] = (
    StatusRule(tuple(range(400, 500)), P, "an HTTP 4xx named in the text: the request is refused"),
    StatusRule(tuple(range(500, 600)), T, "an HTTP 5xx named in the text: the server's trouble"),
)

# Words about the input as written (labelling rule 4) and about the environment (rule 5). Most
# come from the rules' own definitions; the few read off blind batches 3 and 4 neither fixed nor
# cost anything in the other batch (measured leave-one-batch-out with each batch's frozen
# rules). No word makes an error TRANSIENT: a retry needs better evidence than a word no rule
# knew.
WEAK_WORDS: tuple[PatternRule, ...] = (
    PatternRule(
        r"(?:at|in) (?:position|offset|line|column|col|char(?:acter)?|byte|index) \d+|"
        r"(?:position|offset|column|col|char(?:acter)?|byte) \d+|line \d+,? (?:col|pos|char)|"
        r"(?<=\d )(?:bytes?|characters?|chars?)|input|payload|format|syntax|grammar|token|"
        r"expected|expecting|unexpected|unbalanced|encod\w*|decod\w*|charset|"
        r"parameter|literal|unknown (?:type|format|kind|encoding|option|flag)|"
        r"not (?:a|an) \w+ (?:file|value)|"
        # read off batch 3's misses, then batch 4's
        r"buffer|header|data|stream|undefined|unterminated|"
        r"short|underrun|misused|misuse of|value|argument|"
        r"(?:does not|doesn't|must) (?:start|begin|end) with|"
        r"(?:could not|cannot|can't|unable to) be (?:determined|recogni[sz]ed|interpreted)",
        V,
        "the text speaks of the input as written (a position, a byte count, a header, what "
        "was expected): the same input fails again",
        ("unpack requires a buffer of 4 bytes", "Short substrate on input"),
    ),
    PatternRule(
        r"not (?:installed|available|configured|enabled|supported|permitted|allowed|loaded|"
        r"registered)|disabled|license|licence|privilege|credential|certificate|signature|"
        r"denied|refused by policy|limit|exceeds?|exceeded|capacity|no longer|expired|revoked|"
        r"read[ -]only|"
        # read off batch 3's misses, then batch 4's
        r"locked|incompatible|version|password|decrypt\w*|encrypt\w*|verification",
        P,
        "the text speaks of the environment (a version, something not installed, disabled, "
        "locked or over a limit), not the input: no retry succeeds until someone changes it",
        ("Incompatible version (1.0 instead of 2.0)", "feature X is disabled on this server"),
    ),
)


# Words in a class name that no strong name rule (table 4) knew, for an otherwise UNKNOWN error:
# the vocabulary of the labelling rules' definitions, as libraries name their classes. They come
# before the text's weak words (the library's own category), after a status or code it names.
WEAK_NAMES: tuple[NameRule, ...] = (
    NameRule(
        r"Usage|Argument|Lexer|Tokeni[sz]|Serializ|Deserializ|Marshal|UnknownFormat|"
        r"MissingField|RequiredField|Duplicate(?:Key|Entry|Value|Record)",
        V,
        "the class names the input (arguments, serialised data, fields): the same input fails",
        ("UsageError", "DeserializationError", "MissingField"),
    ),
    NameRule(
        r"Quota|LimitExceeded|StorageFull|DiskFull|Access(?:Error|Exception)|"
        r"Auth(?:Error|Exception|Failed)|Login|Permission|MissingDependency|"
        r"Version(?:Conflict|Mismatch|Error)",
        P,
        "the class names the environment (quota, storage, access, versions): no retry fixes it",
        ("QuotaExceeded", "AuthError", "VersionConflict"),
    ),
    NameRule(
        r"NotReady|Socket(?:Error|Exception)?$|Exhausted|Lock(?:Error|Exception|Conflict)$",
        T,
        "the class names a passing condition (not ready yet, a socket, a lock held elsewhere)",
        ("NotReadyError", "SocketError", "LockError"),
    ),
)


# Statuses and codes named in the text: "409 Conflict", "HTTP 451", "HTTP Error 415", "status
# code 503" (the phrase must be the number's own); gRPC / Google canonical codes ("NOT_FOUND"),
# errno names ("ECONNREFUSED") and getaddrinfo's ("EAI_AGAIN"), in upper case as libraries
# print them; an HTTP reason phrase in title case ("Conflict"). They share one anchor scan of
# the lower-cased text with the weak words (the pattern pre-screen's machinery); the case is
# checked on the original text afterwards.
_STATUSES = tuple(s for s in HTTPStatus if s.value >= 400)
_NAMED_CODES = {
    code: rule.kind
    for rule in (*_codes.ERRNO_RULES, *_codes.GRPC_RULES)
    for code in rule.codes
    if rule.kind in ("errno", "gai", "grpc")
}


def _alternatives(pattern: str) -> list[str]:
    """The top-level alternatives of a regex (split at "|" outside groups and classes)."""
    parts, depth, start, escaped, in_class = [], 0, 0, False, False
    for index, char in enumerate(pattern):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char in "()":
            depth += 1 if char == "(" else -1
        elif char == "|" and depth == 0:
            parts.append(pattern[start:index])
            start = index + 1
    return [*parts, pattern[start:]]


@functools.cache
def _phrases() -> str:
    """HTTP reason phrases of 4xx and 5xx, lower case, as one trie."""
    return trie_regex(s.phrase.lower() for s in _STATUSES)


def _named_rules() -> list[tuple[str, PatternRule]]:
    """(kind, rule) for statuses, code names and reason phrases (group 1: the number)."""
    marker = r"(?:https?(?:/[\d.]+)?(?: error| status)?|status(?: code)?|response code)"
    return [
        ("number", PatternRule(rf"{marker}[ :=]{{1,3}}([45]\d\d)", P, "status")),
        ("code", PatternRule(trie_regex(c.lower() for c in _NAMED_CODES), P, "code name")),
        ("phrase", PatternRule(_phrases(), P, "reason phrase")),
    ]


@functools.cache
def _screen() -> tuple[_Screen, tuple[tuple[str, PatternRule, PatternRule | None], ...]]:
    """One anchor pre-screen over the named kinds and every weak word's alternatives.

    Each entry is (kind, rule to match, weak-word rule it stands for); the same mechanism as
    the pattern rules' pre-screen, so one scan of the text finds every candidate position.
    """
    entries: list[tuple[str, PatternRule, PatternRule | None]] = [
        (kind, rule, None) for kind, rule in _named_rules()
    ]
    for word_rule in WEAK_WORDS:
        entries.extend(
            ("word", PatternRule(alt, word_rule.error_type, word_rule.reason), word_rule)
            for alt in _alternatives(word_rule.pattern)
        )
    return build_screen([rule for _, rule, _ in entries]), tuple(entries)


# The status number a phrase follows, anchored at the phrase (its own digits would make every
# digit of a message a candidate position for the scan).
_NUMBER_BEFORE = lazy(r"(?<!\d)([45]\d\d)(?: (?:client|server) error)?[ :-]{1,3}$")


@functools.cache
def _statuses_by_phrase() -> dict[str, int]:
    """Reason phrase (lower case) -> HTTP status, 4xx and 5xx."""
    return {s.phrase.lower(): s.value for s in _STATUSES}


def _status(status: int, statuses: dict[int, StatusRule]) -> StatusRule | None:
    """The status's own rule, else its class's."""
    rule = statuses.get(status)
    return rule or next((r for r in STATUS_CLASSES if status in r.statuses), None)


Named = StatusRule | CodeRule


def weak_evidence(
    text: str, statuses: dict[int, StatusRule], codes: dict[tuple[str, str], CodeRule]
) -> Named | PatternRule | None:
    """The first status or code named in the text that a table knows, else the first weak word."""
    head = text[:4096]
    lowered = head.lower()
    screen, entries = _screen()
    if screen.scanner is None:  # pragma: no cover - every entry has anchors
        return None
    word: PatternRule | None = None
    for hit in screen.scanner.finditer(" " + lowered):
        position = hit.start()  # the scan reads " " + text: this is the anchor's own index
        for index in screen.rules_at[hit.group(1)]:
            kind, rule, word_rule = entries[index]
            if word_rule is not None and word is not None:
                continue  # a weak word was found earlier; only a name can still decide
            found = rule.regex.match(lowered, position)
            if found is None:
                continue
            if word_rule is not None:
                word = word_rule
                continue
            named = _named(kind, found, head, statuses, codes)
            if named is not None:
                return named
    return word


def _named(
    kind: str,
    found: re.Match[str],
    head: str,
    statuses: dict[int, StatusRule],
    codes: dict[tuple[str, str], CodeRule],
) -> Named | None:
    """The rule a status or code match names, when the table knows it and the case is right."""
    if kind == "number":
        return _status(int(found[1]), statuses)
    original = head[found.start() : found.end()]
    if kind == "code" and original.isupper():
        name = original.upper()
        return codes.get((_NAMED_CODES.get(name, ""), name.casefold()))
    if kind != "phrase":
        return None
    status = _statuses_by_phrase()[original.lower()]
    number = _NUMBER_BEFORE.search(head[max(0, found.start() - 24) : found.start()].lower())
    if number is not None:  # "409 Conflict", "415 Client Error: Unsupported Media Type"
        # "452 Insufficient storage" is FTP's 452 with HTTP 507's phrase: not a status.
        return _status(status, statuses) if int(number[1]) == status else None
    return _status(status, statuses) if original.istitle() else None  # "Conflict", not prose
