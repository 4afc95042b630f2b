"""Level 10: weak evidence for an error no rule decided, before settling on UNKNOWN.

Every blind batch so far had a third or more of its misses as UNKNOWN: libraries the table
never names, raising classes whose names say nothing. Their text still carries weak evidence
that follows the labelling rules' own definitions (docs/classifier.md), not any one message:

1. a *status or code named in the text*: an HTTP status with its reason phrase ("409
   Conflict", "HTTP 451"), a gRPC / Google canonical code, errno or getaddrinfo name
   ("NOT_FOUND", "ECONNREFUSED", "EAI_AGAIN"), read through the same status and code
   tables as levels 1 and 5;
2. *words about the input as written* (a position, a byte count, a header, what was
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

from classifier._rulekinds import CodeRule, PatternRule, StatusRule
from classifier.types import ErrorType

T, P, TO = ErrorType.TRANSIENT, ErrorType.PERMANENT, ErrorType.TIMEOUT
V = ErrorType.VALIDATION_ERROR

# A status class when the exact status has no rule of its own: a 4xx the client cannot fix by
# retrying is PERMANENT (labelling rule 5), a 5xx is the server's trouble (rule 3).
STATUS_CLASSES: tuple[StatusRule, ...] = (
    StatusRule(tuple(range(400, 500)), P, "an HTTP 4xx named in the text: the request is refused"),
    StatusRule(tuple(range(500, 600)), T, "an HTTP 5xx named in the text: the server's trouble"),
)

# "409 Conflict", "HTTP 451", "HTTP Error 415", "status code 503", "403 Client Error".
_PHRASES = "|".join(
    sorted({re.escape(s.phrase.lower()) for s in HTTPStatus if s.value >= 400}, key=len)[::-1]
)
_STATUS_TEXT = (
    r"\b(?:https?(?:/[\d.]+)?(?: error| status)?|status(?: code)?|response code)[ :=]{1,3}"
    r"([45]\d\d)\b|\b([45]\d\d)(?: (?:client|server) error)?[ :-]{1,3}"
    rf"({_PHRASES})\b"
)

# Code names as libraries print them, in the original text (case-sensitive): gRPC / Google
# canonical codes ("NOT_FOUND"), errno names ("ECONNREFUSED") and getaddrinfo's ("EAI_AGAIN"),
# each read through its own code table; and an HTTP reason phrase in title case ("Conflict",
# "Unsupported Media Type") through the status table.
_GRPC_TEXT = (
    r"(?<![A-Za-z_])(UNAVAILABLE|RESOURCE_EXHAUSTED|ABORTED|DEADLINE_EXCEEDED|INVALID_ARGUMENT|"
    r"OUT_OF_RANGE|NOT_FOUND|ALREADY_EXISTS|PERMISSION_DENIED|UNAUTHENTICATED|"
    r"FAILED_PRECONDITION|UNIMPLEMENTED|DATA_LOSS)(?![A-Za-z_])"
)
_ERRNO_TEXT = r"(?<![A-Za-z0-9_])(EAI_[A-Z]{4,10}|E[A-Z]{3,14})(?![A-Za-z0-9_])"
_PHRASE_TEXT = (
    r"(?<![A-Za-z])("
    + "|".join(sorted({re.escape(s.phrase) for s in HTTPStatus if s.value >= 400}, key=len)[::-1])
    + r")(?![A-Za-z])"
)

# Words about the input as written (labelling rule 4), the environment (rule 5) and a peer that
# is briefly away (rule 3). Most words come from the rules' own definitions; the few read off
# blind batches 3 and 4 are the ones that did not cost the other batch (leave-one-batch-out,
# docs/classifier.md "Weak evidence"). A word found nowhere else must not decide a retry, so
# TRANSIENT needs words that only a passing condition uses.
WEAK_WORDS: tuple[PatternRule, ...] = (
    PatternRule(
        r"(?:at|in) (?:position|offset|line|column|col|char(?:acter)?|byte|index) \d+|"
        r"(?:position|offset|column|col|char(?:acter)?|byte) \d+|line \d+,? (?:col|pos|char)|"
        r"\d+ (?:bytes?|characters?|chars?)|input|payload|format|syntax|grammar|token|"
        r"expected|expecting|unexpected|unterminated|unbalanced|encod\w*|decod\w*|charset|"
        r"parameter|literal|unknown (?:type|format|kind|encoding|option|flag)|"
        r"not (?:a|an) \w+ (?:file|value)|"
        # read off batch 3 / batch 4 misses
        r"buffer|header|data|stream|undefined|short|underrun|misused|misuse of|value|argument|"
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
        # read off batch 3 / batch 4 misses
        r"locked|incompatible|version|password|decrypt\w*|encrypt\w*|verification",
        P,
        "the text speaks of the environment (a version, something not installed, disabled, "
        "locked or over a limit), not the input: no retry succeeds until someone changes it",
        ("Incompatible version (1.0 instead of 2.0)", "feature X is disabled on this server"),
    ),
)


@functools.cache
def _phrase(status: int) -> str | None:
    """The reason phrase of an HTTP status, lower case, or None when the number has none."""
    try:
        return HTTPStatus(status).phrase.lower()
    except ValueError:
        return None


@functools.cache
def _status_regex() -> re.Pattern[str]:
    """Compiled on first use (import stays cheap)."""
    return re.compile(_STATUS_TEXT)


@functools.cache
def _grpc_regex() -> re.Pattern[str]:
    """Compiled on first use; case-sensitive, as the libraries print the names."""
    return re.compile(_GRPC_TEXT)


def status_in_text(lowered: str, statuses: dict[int, StatusRule]) -> StatusRule | None:
    """The status rule of the first HTTP status named in the text, else its class's rule."""
    found = _status_regex().search(lowered[:4096])
    if found is None:
        return None
    status = int(found.group(1) or found.group(2))
    phrase = found.group(3)
    if phrase is not None and _phrase(status) != phrase:
        return None  # "452 Insufficient storage" is FTP's 452 with HTTP 507's phrase
    rule = statuses.get(status)
    if rule is not None:
        return rule
    return next((r for r in STATUS_CLASSES if status in r.statuses), None)


@functools.cache
def _errno_regex() -> re.Pattern[str]:
    """Compiled on first use; errno names are upper case."""
    return re.compile(_ERRNO_TEXT)


@functools.cache
def _phrase_regex() -> re.Pattern[str]:
    """Compiled on first use; reason phrases in title case, as servers send them."""
    return re.compile(_PHRASE_TEXT)


@functools.cache
def _phrase_statuses() -> dict[str, int]:
    """Reason phrase -> HTTP status (4xx and 5xx)."""
    return {s.phrase: s.value for s in HTTPStatus if s.value >= 400}


def code_in_text(text: str, codes: dict[tuple[str, str], CodeRule]) -> CodeRule | None:
    """The code rule of the first gRPC code, errno or getaddrinfo name in the original text."""
    head = text[:4096]
    found = _grpc_regex().search(head)
    if found is not None:
        return codes.get(("grpc", found.group(1).casefold()))
    for name in _errno_regex().findall(head):
        kind = "gai" if name.startswith("EAI_") else "errno"
        rule = codes.get((kind, name.casefold()))
        if rule is not None:
            return rule
    return None


def phrase_in_text(text: str, statuses: dict[int, StatusRule]) -> StatusRule | None:
    """The status rule of the first HTTP reason phrase (title case) in the original text."""
    found = _phrase_regex().search(text[:4096])
    if found is None:
        return None
    status = _phrase_statuses()[found.group(1)]
    rule = statuses.get(status)
    return rule if rule is not None else next(r for r in STATUS_CLASSES if status in r.statuses)


def weak_words(lowered: str) -> PatternRule | None:
    """The weak-word rule whose first word occurs earliest in the text, or None."""
    best: tuple[int, PatternRule] | None = None
    for rule in WEAK_WORDS:
        found = rule.regex.search(lowered[:4096])
        if found is not None and (best is None or found.start() < best[0]):
            best = (found.start(), rule)
    return best[1] if best is not None else None
