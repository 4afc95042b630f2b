"""Where machine-readable signals sit on an exception: codes, retry flags, headers, statuses.

Every reader is defensive (properties that raise, odd types, huge values) and imports nothing
from the libraries it reads: classes are recognised by module name, values by shape.
"""

from __future__ import annotations

import contextlib
import errno as _errno
import socket
from collections.abc import Iterator
from typing import Any

from classifier._lazyre import lazy

Code = tuple[str, str]  # (kind, code): the namespace a code is looked up in, and the code

_MYSQL_MODULES: tuple[str, ...] = ("pymysql", "MySQLdb", "mysql.connector", "_mysql_connector")
_MYSQL_MODULES += ("aiomysql", "asyncmy", "mariadb")
_KAFKA_MODULES = ("kafka", "aiokafka", "confluent_kafka", "cimpl")
_SNOWFLAKE_MODULES = ("snowflake",)
_REDIS_MODULES = ("redis", "valkey", "coredis", "aioredis")
_SQLSTATE_ATTRS = ("pgcode", "sqlstate", "sql_state", "sqlState")
_SQLSTATE_METHODS = ("getSqlState",)  # pyspark's PySparkException

# getaddrinfo error numbers by value (they differ between platforms, so read them from socket).
_GAI = "EAI_AGAIN EAI_FAIL EAI_MEMORY EAI_SYSTEM EAI_NONAME EAI_NODATA EAI_ADDRFAMILY"
_GAI_NAMES = {
    getattr(socket, name): name
    for name in (_GAI + " EAI_SERVICE EAI_FAMILY EAI_BADFLAGS").split()
    if isinstance(getattr(socket, name, None), int)
}

# Codes quoted in a message, one regex per marker: each starts with its marker's literal text,
# so the regex engine finds it with a fast literal search and only where the marker occurs (one
# alternation of all of them tried a match at every position: ~9 us on a long message). The
# look-behinds after a marker stand for a word boundary before it.
_TEXT_CODES = (
    ("an error occurred (", "service", lazy(r"an error occurred \((\w{1,64})\)")),  # botocore
    # PostgreSQL, Spark, Databricks, DB2, JDBC drivers
    ("sqlstate", "sqlstate", lazy(r"sqlstate(?<!\wsqlstate)[ :=\[(]*([0-9a-z]{5})\b")),
    ("[errno", "errno-text", lazy(r"\[errno (-?\d{1,5})\]")),  # OSError / gaierror text
    # confluent-kafka KafkaError{code=...}
    ("code=", "kafka", lazy(r"code=(?<!\wcode=)(_?[a-z][a-z_]{2,40}),val=-?\d")),
    # Google "reason: bytesBilledLimitExceeded"
    ("reason:", "service", lazy(r"reason:(?<!\wreason:) ?([a-z][a-z]{5,40})\b")),
    # pg8000: the PostgreSQL error fields as a dict
    ("'c': '", "sqlstate", lazy(r"'v': '[a-z]+', 'c': '([0-9a-z]{5})'")),
    # grpc: "status = StatusCode.UNAVAILABLE"
    ("statuscode.", "grpc", lazy(r"statuscode\.(?<!\wstatuscode\.)([a-z_]{2,30})\b")),
)
_MYSQL_IN_TEXT = lazy(r"(?:^|\) )\((\d{4}), ['\"]|\berror (\d{4}) \([0-9a-z]{5}\)|^(\d{4}) \(")
_SNOWFLAKE_IN_TEXT = lazy(r"^(\d{6}) \(([0-9a-z]{5})\):")


# Every attribute name a reader here (or the engine) asks for. Most exceptions have none of
# them, and a failing getattr costs a raised AttributeError each time, so the names a class
# lacks are remembered per class and only the instance __dict__ is checked for them.
_CANDIDATES = frozenset(
    [
        "pgcode",
        "sqlstate",
        "sql_state",
        "sqlState",
        "diag",
        "getSqlState",
        "response",
        "errors",
        "reason",
        "errno",
        "args",
        "status_code",
        "message",
        "retriable",
        "retryable",
        "is_retryable",
        "is_retriable",
        "is_transient",
        "transient",
        "fatal",
        "_error_labels",
        "headers",
        "retry_after",
        "retry_after_seconds",
        "code",
        "status",
        "exceptions",
        "orig",
        "last_exc",
        "name",
        "__cause__",
        "__context__",
        "sqlite_errorname",
        "smtp_code",
        "recipients",
    ]
)
_ABSENT: dict[type, frozenset[str]] = {}
_ABSENT_LIMIT = 4096


def _absent_on(cls: type) -> frozenset[str]:
    """Candidate names the class itself does not provide (none if it has a __getattr__)."""
    try:
        if getattr(cls, "__getattr__", None) is not None:
            return frozenset()
        absent = frozenset(name for name in _CANDIDATES if not hasattr(cls, name))
    except Exception:
        return frozenset()
    if len(_ABSENT) >= _ABSENT_LIMIT:  # dynamically created classes must not leak memory
        _ABSENT.clear()
    with contextlib.suppress(TypeError):
        _ABSENT[cls] = absent
    return absent


def _cached(table: dict[type, Any], cls: type) -> Any:
    """table[cls], or None when absent or when the class is unhashable (an odd metaclass)."""
    try:
        return table.get(cls)
    except TypeError:
        return None


# Every exception has these; they carry no signal of their own.
_TRIVIAL = frozenset({"args", "__cause__", "__context__"})
_PLAIN_ARGS = (str, bytes, int, float, type(None), BaseException, dict, list, tuple)
_RICH: dict[type, bool] = {}


def has_signals(exc: BaseException) -> bool:
    """False when neither the class nor the instance has any attribute a reader looks at.

    Most exceptions are plain (a message and a class), and skipping every reader for them keeps
    classify_error within its budget of a few microseconds.
    """
    cls = type(exc)
    rich = _cached(_RICH, cls)
    if rich is None:
        absent = _cached(_ABSENT, cls)
        if absent is None:
            absent = _absent_on(cls)
        rich = bool(_CANDIDATES - absent - _TRIVIAL)
        if len(_RICH) >= _ABSENT_LIMIT:
            _RICH.clear()
        with contextlib.suppress(TypeError):
            _RICH[cls] = rich
    if rich or _first_arg(exc) is not None:  # confluent-kafka: a KafkaError object in args[0]
        return True
    instance = getattr(exc, "__dict__", None)
    return isinstance(instance, dict) and bool(instance) and not _CANDIDATES.isdisjoint(instance)


def attr(obj: object, name: str) -> object:
    """getattr that survives properties which raise, and skips names the object cannot have."""
    cls = type(obj)
    absent = _cached(_ABSENT, cls)
    if absent is None:
        absent = _absent_on(cls)
    if name in absent:
        instance = getattr(obj, "__dict__", None)
        if not isinstance(instance, dict) or name not in instance:
            return None
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


def _module(exc: BaseException) -> str:
    """The exception class's module name ('' when odd)."""
    module = getattr(type(exc), "__module__", "")
    return module if isinstance(module, str) else ""


def _call(obj: object, name: str) -> object:
    """obj.name() for a zero-argument method, None when absent or raising."""
    method = attr(obj, name)
    if not callable(method):
        return None
    try:
        return method()
    except Exception:
        return None


def _short_str(value: object, limit: int = 64) -> str | None:
    """value when it is a non-empty str of at most limit characters."""
    return value if isinstance(value, str) and 0 < len(value) <= limit else None


def _int(value: object) -> int | None:
    """value as an int (bools refused), None otherwise."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def exception_codes(exc: BaseException) -> Iterator[Code]:
    """Codes the exception carries as attributes, strongest (most specific) first."""
    module = _module(exc)
    if module.startswith(_MYSQL_MODULES):
        args = attr(exc, "args")
        number = _int(args[0]) if isinstance(args, tuple) and args else None
        number = number if number is not None else _int(attr(exc, "errno"))
        if number is not None:
            yield "mysql", str(number)
    if module.startswith(_SNOWFLAKE_MODULES):
        number = _int(attr(exc, "errno"))
        if number is not None:
            yield "snowflake", str(number)
    if module.startswith(_KAFKA_MODULES):
        yield from _kafka_codes(exc)
    if module.startswith(_REDIS_MODULES):  # redis-py keeps the reply's prefix in status_code
        prefix = _short_str(attr(exc, "status_code"))
        if prefix is not None:
            yield "redis", prefix
    yield from _sqlstates(exc)
    yield from _sqlite_codes(exc)
    if isinstance(exc, OSError):
        yield from _errno_codes(exc)
        yield from _smtp_codes(exc)
    yield from _service_codes(exc)


def _sqlite_codes(exc: BaseException) -> Iterator[Code]:
    """sqlite3's result code name; an extended code (SQLITE_BUSY_SNAPSHOT) then its primary."""
    name = _short_str(attr(exc, "sqlite_errorname"))
    if name is not None and name.startswith("SQLITE_"):
        yield "sqlite", name
        primary = "_".join(name.split("_", 2)[:2])
        if primary != name:
            yield "sqlite", primary


def _smtp_codes(exc: OSError) -> Iterator[Code]:
    """smtplib's reply code, or the codes of the refused recipients (a dict of (code, msg))."""
    code = _int(attr(exc, "smtp_code"))
    if code is not None:
        yield "smtp", str(code)
    recipients = attr(exc, "recipients")
    if isinstance(recipients, dict):
        for reply in list(recipients.values())[:8]:
            if isinstance(reply, tuple | list) and reply and _int(reply[0]) is not None:
                yield "smtp", str(reply[0])


def _sqlstates(exc: BaseException) -> Iterator[Code]:
    """SQLSTATE from psycopg/asyncpg/Snowflake/Databricks attributes or pyspark's method."""
    values = [attr(exc, name) for name in _SQLSTATE_ATTRS]
    values.append(attr(attr(exc, "diag"), "sqlstate"))
    values += [_call(exc, name) for name in _SQLSTATE_METHODS]
    for value in values:
        if isinstance(value, str) and len(value) == 5 and value.isalnum():
            yield "sqlstate", value


def _kafka_codes(exc: BaseException) -> Iterator[Code]:
    """kafka-python's class-level message ('REQUEST_TIMED_OUT'), confluent-kafka's name()."""
    message = _short_str(attr(exc, "message"))
    if message is not None and message.replace("_", "").isalpha() and message.isupper():
        yield "kafka", message
    args = attr(exc, "args")
    if isinstance(args, tuple) and args:
        name = _short_str(_call(args[0], "name"))
        if name is not None:
            yield "kafka", name


def _errno_codes(exc: OSError) -> Iterator[Code]:
    """The errno of an OSError by its symbolic name; getaddrinfo codes for gaierror."""
    number = _int(attr(exc, "errno"))
    if number is None:
        return
    if isinstance(exc, socket.gaierror):
        name = _GAI_NAMES.get(number)
        if name is not None:
            yield "gai", name
        return
    name = _errno.errorcode.get(number)
    if name is not None:
        yield "errno", name


def _service_codes(exc: BaseException) -> Iterator[Code]:
    """botocore Error.Code, Google errors[].reason / ErrorInfo reason."""
    response = attr(exc, "response")
    if isinstance(response, dict):
        error = response.get("Error")
        if isinstance(error, dict) and isinstance(error.get("Code"), str):
            yield "service", error["Code"]
    errors = attr(exc, "errors")
    if isinstance(errors, list | tuple):
        for item in errors[:8]:
            if isinstance(item, dict) and isinstance(item.get("reason"), str):
                yield "service", item["reason"]
    reason = _short_str(attr(exc, "reason"))
    if reason is not None:
        yield "service", reason


def message_codes(lowered: str, raw: str, exc: BaseException | None) -> Iterator[Code]:
    """Codes quoted in the text: botocore, SQLSTATE, [Errno N], KafkaError{code=..}, MySQL."""
    head = lowered[:4096]
    # Substring tests are ~50x cheaper than a regex scan; only markers present are searched.
    found: list[tuple[int, str, str]] = []
    for marker, kind, regex in _TEXT_CODES:
        if marker in head:
            found.extend((match.start(), kind, match.group(1)) for match in regex.finditer(head))
    found.sort()  # text order across kinds: the first code with a rule decides
    for _, kind, value in found:
        if kind == "errno-text":
            yield from _errno_text(int(value))
        else:
            yield kind, value
    if "mysql" in head or (exc is not None and _module(exc).startswith(_MYSQL_MODULES)):
        for match in _MYSQL_IN_TEXT.finditer(head):
            yield "mysql", next(group for group in match.groups() if group)
    if head[:1].isdigit():
        snowflake = _SNOWFLAKE_IN_TEXT.match(head)
        if snowflake is not None:
            yield "snowflake", str(int(snowflake.group(1)))
            yield "sqlstate", snowflake.group(2)
    if raw[:3].isdigit() and exc is not None and _module(exc) == "ftplib":
        yield "ftp", raw[:3]  # ftplib's errors are the server's reply, which starts with its code
    if raw[:1].isspace():
        raw = raw.lstrip()
    # An all-capitals first word makes the first two characters upper case (or letter + space):
    # most messages fail this test without the split below.
    if raw[:2].isupper():
        first = raw[:12].split(" ", 1)[0]
        if first.isupper() and first.isalpha():
            yield "redis", first


def _errno_text(number: int) -> Iterator[Code]:
    """'[Errno N]' in a message: negative numbers are getaddrinfo codes."""
    name = _GAI_NAMES.get(number) if number < 0 else _errno.errorcode.get(number)
    if name is not None:
        yield ("gai" if number < 0 else "errno"), name


def retry_flag(exc: BaseException, attributes: tuple[str, ...]) -> bool | None:
    """The library's own retry decision: an attribute or method, or confluent's KafkaError."""
    for owner in (exc, _first_arg(exc)):
        if owner is None:
            continue
        if _call(owner, "fatal") is True:
            return False
        for name in attributes:
            value = attr(owner, name)
            if callable(value):
                value = _call(owner, name)
            if isinstance(value, bool):
                return value
    labels = attr(exc, "_error_labels")  # pymongo: TransientTransactionError, RetryableWriteError
    if isinstance(labels, set | frozenset | list | tuple) and any(
        isinstance(label, str) and ("Transient" in label or "Retryable" in label)
        for label in labels
    ):
        return True
    return None


def _first_arg(exc: BaseException) -> object:
    """args[0] when it is an object that may carry a flag (confluent-kafka's KafkaError)."""
    try:
        args = exc.args
    except Exception:  # an args property that raises
        return None
    if isinstance(args, tuple) and args and not isinstance(args[0], _PLAIN_ARGS):
        return args[0]
    return None


def has_header(exc: BaseException, headers: tuple[str, ...], attributes: tuple[str, ...]) -> bool:
    """True when the server said when to come back (Retry-After header or attribute)."""
    for name in attributes:
        value = attr(exc, name)
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            return True
    response = attr(exc, "response")
    candidates = [attr(exc, "headers"), attr(response, "headers")]
    if isinstance(response, dict):
        metadata = response.get("ResponseMetadata")
        if isinstance(metadata, dict):
            candidates.append(metadata.get("HTTPHeaders"))
    for found in candidates:
        keys = _header_names(found)
        if keys and any(header in keys for header in headers):
            return True
    return False


def _header_names(headers: object) -> set[str]:
    """Lower-cased header names of a mapping or a list of pairs (bounded)."""
    try:
        if hasattr(headers, "keys"):
            names = list(headers.keys())[:200]
        elif isinstance(headers, list | tuple):
            names = [pair[0] for pair in headers[:200] if isinstance(pair, tuple | list) and pair]
        else:
            return set()
    except Exception:
        return set()
    return {name.lower() for name in names if isinstance(name, str)}


def http_status(exc: BaseException) -> int | None:
    """An HTTP status from code / status_code / status / response.*, if plausible."""
    response = attr(exc, "response")
    owners: list[tuple[object, str]] = [
        (exc, "code"),
        (exc, "status_code"),
        (exc, "status"),
        (response, "status_code"),
        (response, "status"),
    ]
    for owner, name in owners:
        value = attr(owner, name) if owner is not None else None
        if isinstance(value, str) and value.isdigit() and len(value) == 3:
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
            return value
    if isinstance(response, dict):  # botocore: ResponseMetadata.HTTPStatusCode
        metadata = response.get("ResponseMetadata")
        value = metadata.get("HTTPStatusCode") if isinstance(metadata, dict) else None
        if isinstance(value, int) and not isinstance(value, bool) and 100 <= value <= 599:
            return value
    return None
