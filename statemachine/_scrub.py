"""Keep secrets and unencodable text out of the strings a TransitionRecord carries.

Every reason and every string in metadata goes through scrub_text() before it is put in a
record, so no sink (and no store) ever sees a bearer token, a DSN password or a lone surrogate.
classifier.redact costs ~10 us even on a short clean string, so a one-pass screen first asks
whether the text could hold anything redact() would mask; ordinary reasons skip redact().
"""

from __future__ import annotations

import re
from typing import Any

# Bounds: a reason is a sentence, a metadata string a value; neither is a place for a dump.
REASON_LIMIT = 2000
METADATA_STRING_LIMIT = 4096
METADATA_DEPTH = 6
# Redact a little past the cut so a secret straddling it is still recognised whole.
_LOOKAHEAD = 512
# A superset of what classifier.redact can mask: every rule needs ':' or '=' (headers,
# key=value, URL userinfo), a word 'bearer', a PEM '-----' line, 'ya29.', or a run of at
# least 11 token characters (AWS keys, JWTs, vendor tokens). tests/test_secrets.py checks
# the screen against every redaction sample.
_MAY_HOLD_SECRET = re.compile(r"[:=@]|-----|(?i:bearer)|ya29\.|[A-Za-z0-9/+_\-]{11}")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
# Metadata keys the executor writes on every run. Long words trip the screen's 11-character
# rule, and the first redact() compiles ten regexes (~5 ms, a cold start's budget); these are
# constants that redact() leaves unchanged (tests/test_secrets.py checks each), so they skip it.
CLEAN_KEYS = frozenset(
    {
        "attempts",
        "cancel_source",
        "cancelled",
        "cancelled_by",
        "failed_step",
        "max_retries",
        "params",
        "result",
        "result_json_chars",
        "result_omitted",
        "result_truncated",
        "rows_processed",
        "step_index",
        "step_type",
        "steps_completed",
        "steps_failed",
        "timeout_minutes",
        "total_steps",
        "upstream_step",
    }
)
REPLACEMENT = "\ufffd"


def _redact(text: str) -> str:
    from classifier import redact

    return redact(text)


def encodable(text: str) -> str:
    """Replace lone surrogates (which UTF-8 stores and BigQuery refuse) with U+FFFD."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub(REPLACEMENT, text)
    return text


def scrub_text(text: str, limit: int = REASON_LIMIT) -> str:
    """Bound `text` to `limit` characters, mask secrets and make it UTF-8 encodable."""
    if len(text) > limit:
        return encodable(_redact(text[: limit + _LOOKAHEAD])[:limit])
    if _MAY_HOLD_SECRET.search(text) is not None:
        # A mask can be longer than what it hides ("a" -> "***"): cut again after redacting.
        text = _redact(text)[:limit]
    return encodable(text)


def scrub_optional(text: str | None, limit: int = REASON_LIMIT) -> str | None:
    """scrub_text for str values; None stays None, anything else becomes its scrubbed str()."""
    if text is None:
        return None
    if not isinstance(text, str):
        text = safe_str(text)
    return scrub_text(text, limit)


def safe_str(value: object) -> str:
    """str(value), surviving a raising or non-str-returning __str__."""
    try:
        text = str(value)
    except Exception:
        return f"<unprintable {type(value).__qualname__}>"
    return text if isinstance(text, str) else f"<unprintable {type(value).__qualname__}>"


def scrub_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """A copy of metadata whose string keys and values (at any depth) are scrubbed.

    Non-string leaves stay as they are (the record's JSON encoder renders and redacts them);
    containers deeper than METADATA_DEPTH, and cycles, become short placeholder strings.
    """
    return _scrub_mapping(metadata, 0, frozenset())


def _scrub_mapping(value: Any, depth: int, path: frozenset[int]) -> dict[str, Any]:
    inner: frozenset[int] | None = None  # built only for a nested container (rare per record)
    out: dict[Any, Any] = {}
    for key, item in list(value.items()):
        if isinstance(item, str):
            item = scrub_text(item, METADATA_STRING_LIMIT)
        elif isinstance(item, dict | list | tuple):
            if inner is None:
                inner = path | {id(value)}
            item = _scrub_value(item, depth + 1, inner)
        out[_scrub_key(key)] = item
    return out


def _scrub_key(key: Any) -> Any:
    if not isinstance(key, str) or key in CLEAN_KEYS:
        return key
    return scrub_text(key, METADATA_STRING_LIMIT)


def _scrub_value(value: Any, depth: int, path: frozenset[int]) -> Any:
    if isinstance(value, str):
        return scrub_text(value, METADATA_STRING_LIMIT)
    if not isinstance(value, dict | list | tuple):
        return value
    if id(value) in path:
        return f"<cycle: {type(value).__name__}>"
    if depth >= METADATA_DEPTH:
        return f"<{type(value).__name__} nested deeper than {METADATA_DEPTH} levels>"
    if isinstance(value, dict):
        return _scrub_mapping(value, depth, path)
    inner = path | {id(value)}
    return [_scrub_value(item, depth + 1, inner) for item in value]
