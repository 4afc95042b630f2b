"""Structured signals before words: codes, library retry flags, Retry-After and class names."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from classifier import ErrorType, classify_error
from classifier import _signals as signals
from classifier.engine import explain
from classifier.rules import NOT_RETRYABLE_FLAG, RETRY_AFTER, RETRY_FLAG
from tests.strategies.errors import (
    fresh_classifier_caches,  # noqa: F401 - autouse fixture
    stand_in_class,
)

T, P, TO = ErrorType.TRANSIENT, ErrorType.PERMANENT, ErrorType.TIMEOUT
V, D, U = ErrorType.VALIDATION_ERROR, ErrorType.DEPENDENCY_FAILURE, ErrorType.UNKNOWN


def _exc(qualified: str, text: str = "", *args: object, **attributes: object) -> BaseException:
    """A stand-in of that class, built with args (or the text) and carrying attributes."""
    exc = stand_in_class(qualified)(*(args or (text,)))
    for name, value in attributes.items():
        setattr(exc, name, value)
    return exc


class _Response:
    """A response object as requests / httpx attach it."""

    def __init__(self, status_code: int, headers: Any) -> None:
        """Keep status and headers."""
        self.status_code = status_code
        self.headers = headers


class TestSqlState:
    """SQLSTATE codes decide by exact code first, then by class."""

    @pytest.mark.parametrize(
        ("attributes", "expected"),
        [
            ({"pgcode": "40P01"}, T),
            ({"sqlstate": "57014"}, TO),
            ({"pgcode": "28P01"}, P),
            ({"sqlstate": "23505"}, V),
            ({"pgcode": "08006"}, T),  # class 08: connection exception
            ({"pgcode": "53100"}, P),  # exact code beats class 53 (disk full)
            ({"pgcode": "53999"}, T),  # class 53: insufficient resources
            ({"sqlstate": "22999"}, V),  # class 22: data exception
            ({"pgcode": "0A000"}, P),  # class 0A: feature not supported
        ],
    )
    def test_attribute(self, attributes: dict[str, str], expected: ErrorType) -> None:
        """pgcode / sqlstate on the exception decide whatever the message says."""
        exc = _exc("somedriver.Error", "invalid timeout value", **attributes)
        assert classify_error(exc) is expected

    def test_psycopg3_diag(self) -> None:
        """psycopg 3 keeps the code in exc.diag.sqlstate."""

        class Diag:
            sqlstate = "40001"

        assert classify_error(_exc("psycopg.Error", "boom", diag=Diag())) is T

    def test_pyspark_method(self) -> None:
        """pyspark's getSqlState() method is called."""
        exc = _exc("pyspark.errors.exceptions.base.PySparkException", "x")
        exc.getSqlState = lambda: "42P01"  # type: ignore[attr-defined]
        assert classify_error(exc) is P

    def test_sqlstate_in_text(self) -> None:
        """'SQLSTATE: 42703', 'SQLSTATE[08006]' and '(SQLSTATE(40001)' are read from the text."""
        assert classify_error(None, "A column cannot be resolved. SQLSTATE: 42703") is V
        assert classify_error(None, "SQLSTATE[08006] could not talk") is T
        assert classify_error(None, "broken because of SQLSTATE(40001), ErrorCode(1)") is T

    def test_snowflake_no_warehouse_refines_57p03(self) -> None:
        """Snowflake's 57P03 with 'no active warehouse' is permanent, not 'cannot connect now'."""
        text = "SQLSTATE[57P03]: Cannot connect now: 606 No active warehouse selected"
        assert classify_error(None, text) is P
        assert classify_error(_exc("x.Error", "starting up", pgcode="57P03")) is T


class TestVendorCodes:
    """MySQL, Snowflake, Kafka, Redis and errno codes, each in its own namespace."""

    @pytest.mark.parametrize(
        ("number", "expected"), [(1213, T), (1205, T), (2013, T), (1045, P), (1062, V), (1050, P)]
    )
    def test_mysql_args(self, number: int, expected: ErrorType) -> None:
        """pymysql puts the error number in args[0]."""
        exc = _exc("pymysql.err.OperationalError", "", number, "text that says nothing")
        assert classify_error(exc) is expected

    def test_mysql_connector_errno_and_text(self) -> None:
        """mysql.connector's errno attribute and the '(1213, ...' text form both decide."""
        assert classify_error(_exc("mysql.connector.errors.DatabaseError", "x", errno=1205)) is T
        text = "(pymysql.err.OperationalError) (1213, 'Deadlock found')"
        assert classify_error(None, text) is T
        assert classify_error(None, "ERROR 1045 (28000): Access denied for user 'x'") is P

    def test_mysql_number_not_read_outside_mysql(self) -> None:
        """A '(1213, ...' tuple from another library is not a MySQL code."""
        assert classify_error(_exc("other.Error", "", 1213, "thing")) is U

    @pytest.mark.parametrize(("number", "expected"), [(606, P), (630, TO), (1003, V), (250001, T)])
    def test_snowflake_errno(self, number: int, expected: ErrorType) -> None:
        """Snowflake's own error number beats its SQLSTATE."""
        exc = _exc(
            "snowflake.connector.errors.ProgrammingError", "x", errno=number, sqlstate="57P03"
        )
        assert classify_error(exc) is expected

    def test_snowflake_text_prefix(self) -> None:
        """'000606 (57P03): ...' carries the number in the text."""
        assert classify_error(None, "000606 (57P03): No active warehouse selected") is P

    def test_kafka_python_message_code(self) -> None:
        """kafka-python's class-level message names the broker error."""
        exc = _exc("kafka.errors.BrokerResponseError", "x", message="REBALANCE_IN_PROGRESS")
        assert classify_error(exc) is T

    def test_confluent_kafka_error_name(self) -> None:
        """confluent-kafka's KafkaError in args[0] names the error."""

        class KafkaError:
            def name(self) -> str:
                return "_MSG_TIMED_OUT"

            def retriable(self) -> bool:
                return False

        exc = _exc("confluent_kafka.cimpl.KafkaException", "", KafkaError())
        assert classify_error(exc) is TO
        assert classify_error(None, 'KafkaError{code=_TRANSPORT,val=-195,str="down"}') is T

    @pytest.mark.parametrize(
        ("reply", "expected"),
        [
            ("LOADING Redis is loading", T),
            ("NOAUTH Authentication required.", P),
            ("WRONGTYPE x", V),
        ],
    )
    def test_redis_reply_prefix(self, reply: str, expected: ErrorType) -> None:
        """The first word of a Redis error reply decides."""
        assert classify_error(_exc("redis.exceptions.ResponseError", reply)) is expected

    def test_redis_status_code_attribute(self) -> None:
        """redis-py keeps the stripped prefix in status_code."""
        exc = _exc("redis.exceptions.ResponseError", "Link is down", status_code="MASTERDOWN")
        assert classify_error(exc) is T

    def test_errno_of_oserror(self) -> None:
        """An OSError's errno decides by its symbolic name."""
        assert classify_error(OSError(28, "No space left on device")) is P
        assert classify_error(OSError(111, "x")) is T
        assert classify_error(OSError(110, "x")) is TO

    def test_gaierror_again_vs_noname(self) -> None:
        """getaddrinfo: EAI_AGAIN is transient, EAI_NONAME permanent, also from the text."""
        assert classify_error(socket.gaierror(socket.EAI_AGAIN, "x")) is T
        assert classify_error(socket.gaierror(socket.EAI_NONAME, "x")) is P
        text = f"Failed to resolve 'h' ([Errno {socket.EAI_AGAIN}] Temporary failure)"
        assert classify_error(None, text) is T

    def test_google_reason_in_text(self) -> None:
        """'reason: bytesBilledLimitExceeded' in a 500 message is permanent."""
        text = "500 Query exceeded limit for bytes billed: 1. 2 or higher required.; reason: "
        assert classify_error(None, text + "bytesBilledLimitExceeded") is P

    def test_bigquery_concurrent_update_refines_invalid_query(self) -> None:
        """invalidQuery with 'concurrent update' is transient; plain invalidQuery is not."""
        errors = [{"reason": "invalidQuery"}]
        text = "Could not serialize access to table p:d.t due to concurrent update"
        assert (
            classify_error(_exc("google.api_core.exceptions.BadRequest", text, errors=errors)) is T
        )
        plain = _exc("google.api_core.exceptions.BadRequest", "Syntax error", errors=errors)
        assert classify_error(plain) is V


class TestRetryFlag:
    """The library's own retry flag decides retryability; other levels pick the label."""

    def test_true_flag_overrides_a_permanent_message(self) -> None:
        """retriable=True wins over 'does not exist' (kafka's UnknownTopicOrPartition)."""
        exc = _exc("somelib.Error", "topic does not exist", retriable=True)
        assert classify_error(exc) is T
        assert explain(exc) is RETRY_FLAG

    def test_true_flag_keeps_a_timeout(self) -> None:
        """A retryable verdict (TIMEOUT) is kept under a true flag."""
        assert classify_error(_exc("somelib.Error", "request timed out", retriable=True)) is TO

    def test_method_flag(self) -> None:
        """is_retryable() as a method (neo4j) is called."""
        exc = _exc("somelib.Error", "conflict")
        exc.is_retryable = lambda: True  # type: ignore[attr-defined]
        assert classify_error(exc) is T

    def test_false_flag_only_replaces_unknown(self) -> None:
        """retriable=False turns UNKNOWN into PERMANENT but never overrides a decision."""
        exc = _exc("somelib.Error", "something odd", retriable=False)
        assert classify_error(exc) is P
        assert explain(exc) is NOT_RETRYABLE_FLAG
        assert classify_error(_exc("somelib.Error", "connection reset", retriable=False)) is T

    def test_fatal_wins(self) -> None:
        """confluent-kafka's fatal() marks the error not retryable."""

        class KafkaError:
            def fatal(self) -> bool:
                return True

            def retriable(self) -> bool:
                return True

        exc = _exc("confluent_kafka.cimpl.KafkaException", "", KafkaError())
        assert classify_error(exc) is P

    def test_pymongo_labels(self) -> None:
        """pymongo's TransientTransactionError label is a retry flag."""
        exc = _exc(
            "pymongo.errors.OperationFailure", "odd", _error_labels={"TransientTransactionError"}
        )
        assert classify_error(exc) is T

    def test_raising_flag_is_ignored(self) -> None:
        """A flag method that raises decides nothing."""
        exc = _exc("somelib.Error", "odd")
        exc.retryable = lambda: 1 / 0  # type: ignore[attr-defined]
        assert classify_error(exc) is U


class TestRetryAfter:
    """A Retry-After header or attribute means 'come back later', whatever the status."""

    @pytest.mark.parametrize(
        "headers", [{"Retry-After": "30"}, [("retry-after", "30")], {"X-RateLimit-Reset": "9"}]
    )
    def test_response_headers(self, headers: object) -> None:
        """A 403 whose response carries Retry-After is a rate limit."""
        exc = _exc("somelib.HTTPError", "403 Forbidden", response=_Response(403, headers))
        assert classify_error(exc) is T
        assert explain(exc) is RETRY_AFTER

    def test_exception_headers_and_attribute(self) -> None:
        """aiohttp keeps headers on the exception; some SDKs a retry_after number."""
        assert classify_error(_exc("a.Error", "403", headers={"Retry-After": "1"}, status=403)) is T
        assert classify_error(_exc("b.Error", "nope", retry_after=2.5)) is T

    def test_botocore_metadata_headers(self) -> None:
        """botocore keeps headers in ResponseMetadata.HTTPHeaders."""
        response = {
            "ResponseMetadata": {"HTTPStatusCode": 403, "HTTPHeaders": {"retry-after": "5"}}
        }
        assert classify_error(_exc("botocore.exceptions.ClientError", "x", response=response)) is T

    def test_no_header_keeps_status(self) -> None:
        """Without Retry-After a 403 stays permanent, and botocore's status is read."""
        response = {"ResponseMetadata": {"HTTPStatusCode": 403, "HTTPHeaders": {}}}
        assert classify_error(_exc("botocore.exceptions.ClientError", "x", response=response)) is P


class TestClassNames:
    """Words in class names decide for libraries the table never names."""

    @pytest.mark.parametrize(
        ("qualified", "expected"),
        [
            ("elastic_transport.ConnectionTimeout", TO),
            ("openai.RateLimitError", T),
            ("neo4j.exceptions.TransientError", T),
            ("github.GithubException.BadCredentialsException", P),
            ("clickhouse.errors.AuthenticationFailed", P),
            ("great_expectations.exceptions.InvalidConfigError", V),
            ("ftplib.error_perm", P),
            ("ftplib.error_temp", T),
            ("dagster.UpstreamFailure", D),
        ],
    )
    def test_strong_names(self, qualified: str, expected: ErrorType) -> None:
        """A strong word decides even when the message says nothing."""
        assert classify_error(_exc(qualified, "it went wrong")) is expected

    def test_strong_name_beats_message_words(self) -> None:
        """A ConnectionTimeout whose text says 'invalid' is still a timeout."""
        assert classify_error(_exc("x.ConnectionTimeout", "invalid response")) is TO

    def test_base_class_name_is_seen(self) -> None:
        """The MRO is walked: a subclass of a *TimeoutError counts."""
        base = stand_in_class("lib.errors.ReadTimeoutError")
        sub = type("Special", (base,), {"__module__": "lib.errors"})
        assert classify_error(sub("odd")) is TO

    def test_weak_names_only_when_nothing_else(self) -> None:
        """DB-API ProgrammingError decides only an otherwise unknown message."""
        assert classify_error(_exc("somedb.ProgrammingError", "odd")) is V
        assert classify_error(_exc("somedb.ProgrammingError", "permission denied")) is P
        assert classify_error(_exc("somedb.OperationalError", "odd")) is U


class TestFastPath:
    """Plain exceptions skip the attribute readers, with the same result."""

    def test_plain_exception_has_no_signals(self) -> None:
        """A class without signal attributes and an empty __dict__ is plain."""
        assert not signals.has_signals(ValueError("x"))
        assert signals.has_signals(_exc("x.Error", "x", pgcode="40001"))
        assert signals.has_signals(OSError(2, "x"))

    @settings(deadline=None, suppress_health_check=[HealthCheck.differing_executors])
    @given(st.sampled_from(["pgcode", "retriable", "errno", "status_code", "response", "errors"]))
    def test_any_candidate_attribute_makes_it_rich(self, name: str) -> None:
        """Invariant: setting any attribute a reader looks at turns the slow path on."""
        assert signals.has_signals(_exc("lib.Error", "x", **{name: None}))

    def test_attr_skips_absent_names_but_sees_instance_ones(self) -> None:
        """attr() returns None for names a class lacks, unless the instance has them."""
        exc = ValueError("x")
        assert signals.attr(exc, "pgcode") is None
        exc.pgcode = "40001"  # type: ignore[attr-defined]
        assert signals.attr(exc, "pgcode") == "40001"

    def test_attr_survives_raising_property(self) -> None:
        """A property that raises reads as None."""

        class Weird(Exception):
            @property
            def sqlstate(self) -> str:
                raise RuntimeError("boom")

        assert signals.attr(Weird(), "sqlstate") is None
        assert classify_error(Weird("deadlock detected")) is T


class TestSignalEdges:
    """Boundaries of the readers that mutation testing showed untested."""

    @pytest.mark.parametrize(
        ("value", "expected"),
        [(503, T), ("503", T), ("404", P), (600, None), (99, None), (True, None), ("5033", None)],
    )
    def test_http_status_bounds(self, value: object, expected: ErrorType | None) -> None:
        """Statuses are ints or 3-digit strings in 100..599; bools and out-of-range values not."""
        got = signals.http_status(_exc("lib.Error", "x", status_code=value))
        assert got == (int(value) if expected is not None else None)  # type: ignore[call-overload]
        if expected is not None:
            assert classify_error(_exc("lib.Error", "odd", status_code=value)) is expected

    def test_http_status_sources(self) -> None:
        """code, status, response.status and botocore's HTTPStatusCode are all read."""
        assert signals.http_status(_exc("l.E", "x", code=429)) == 429
        assert signals.http_status(_exc("l.E", "x", code=599)) == 599
        assert signals.http_status(_exc("l.E", "x", code=100)) == 100
        assert signals.http_status(_exc("l.E", "x", status=502)) == 502
        assert signals.http_status(_exc("l.E", "x", response=_Response(404, {}))) == 404
        botocore = {"ResponseMetadata": {"HTTPStatusCode": 503}}
        assert signals.http_status(_exc("l.E", "x", response=botocore)) == 503
        assert signals.http_status(_exc("l.E", "x", response={"ResponseMetadata": {}})) is None

    def test_errno_text_both_signs(self) -> None:
        """'[Errno N]' maps positive numbers to errno names, negative ones to getaddrinfo."""
        assert list(signals._errno_text(111)) == [("errno", "ECONNREFUSED")]
        assert list(signals._errno_text(socket.EAI_NONAME)) == [("gai", "EAI_NONAME")]
        assert list(signals._errno_text(99999)) == []
        text = f"HTTPConnection: Failed to resolve 'x' ([Errno {socket.EAI_NONAME}] Name unknown)"
        assert classify_error(None, text) is P

    def test_class_with_getattr_is_always_read(self) -> None:
        """A class with __getattr__ may produce any attribute, so nothing is skipped."""

        class Dynamic(Exception):
            def __getattr__(self, name: str) -> object:
                return "40001" if name == "pgcode" else None

        assert signals._absent_on(Dynamic) == frozenset()
        assert classify_error(Dynamic("odd")) is T

    def test_absent_names_are_only_the_missing_ones(self) -> None:
        """A class attribute is never treated as absent."""

        class WithFlag(Exception):
            retriable = True

        absent = signals._absent_on(WithFlag)
        assert "retriable" not in absent
        assert "pgcode" in absent
        assert classify_error(WithFlag("topic does not exist")) is T


def _os_exc(qualified: str, text: str, **attributes: object) -> BaseException:
    """A stand-in OSError subclass of that qualified name, carrying attributes."""
    cls = stand_in_class(qualified, (OSError,))
    exc = cls(text)
    for name, value in attributes.items():
        setattr(exc, name, value)
    return exc


class TestFamilyCodes:
    """SQLite result codes, SMTP replies, unlisted service codes read as words, mixins skipped."""

    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            ("SQLITE_BUSY", T),
            ("SQLITE_BUSY_SNAPSHOT", T),
            ("SQLITE_LOCKED_SHAREDCACHE", T),
            ("SQLITE_READONLY", P),
            ("SQLITE_READONLY_DBMOVED", P),
            ("SQLITE_NOTADB", P),
            ("SQLITE_CONSTRAINT_UNIQUE", V),
            ("SQLITE_MISMATCH", V),
        ],
    )
    def test_sqlite_result_codes(self, name: str, expected: ErrorType) -> None:
        """sqlite3's sqlite_errorname decides; an extended code falls back to its primary."""
        exc = _exc("sqlite3.OperationalError", "text that says nothing", sqlite_errorname=name)
        assert classify_error(exc) is expected

    def test_sqlite_generic_error_code_leaves_it_to_the_message(self) -> None:
        """SQLITE_ERROR is every statement error: the message decides, not the code."""
        exc = _exc("sqlite3.OperationalError", "no such table: t", sqlite_errorname="SQLITE_ERROR")
        assert classify_error(exc) is P
        odd = _exc("sqlite3.OperationalError", "nothing", sqlite_errorname="NOT_SQLITE_BUSY")
        assert classify_error(odd) is U

    @pytest.mark.parametrize(
        ("code", "expected"), [(421, T), (451, T), (550, P), (554, P), (501, V)]
    )
    def test_smtp_reply_code(self, code: int, expected: ErrorType) -> None:
        """smtplib's smtp_code: exact codes, then the reply class (4 transient, 5 permanent)."""
        exc = _os_exc("smtplib.SMTPDataError", "text that says nothing", smtp_code=code)
        assert classify_error(exc) is expected

    def test_smtp_refused_recipients(self) -> None:
        """SMTPRecipientsRefused carries one (code, reply) per address; their codes decide."""
        refused = {"a@example.com": (450, b"4.2.0 mailbox busy")}
        exc = _os_exc("smtplib.SMTPRecipientsRefused", str(refused), recipients=refused)
        assert classify_error(exc) is T
        bad = {"a@example.com": [550, "5.1.1 user unknown"]}
        assert classify_error(_os_exc("smtplib.SMTPRecipientsRefused", "x", recipients=bad)) is P
        assert classify_error(_os_exc("smtplib.SMTPRecipientsRefused", "x", recipients=[])) is U

    @pytest.mark.parametrize(
        ("code", "expected"),
        [("InvalidBucketName", V), ("EntityTooLarge", P), ("PreconditionFailed", P)],
    )
    def test_unlisted_service_code_read_as_words(self, code: str, expected: ErrorType) -> None:
        """A botocore code the table does not list is read with the class-name words."""
        exc = _exc("botocore.exceptions.ClientError", "An error occurred", response={})
        exc.response = {"Error": {"Code": code}}  # type: ignore[attr-defined]
        assert classify_error(exc) is expected

    def test_service_code_with_spaces_is_not_read_as_words(self) -> None:
        """A reason phrase ('Service Unavailable Now') is not an identifier and says nothing."""
        exc = _exc("other.Error", "nothing here", reason="Timeout Unavailable")
        assert classify_error(exc) is U

    def test_non_exception_mixin_names_are_not_read(self) -> None:
        """A mixin that is not an exception (a temp-file wrapper) lends the error no words."""
        mixin = type("_TemporaryFileWrapper", (), {"__module__": "tempfile"})
        cls = type("HTTPError", (OSError, mixin), {"__module__": "urllib.error"})
        exc = cls("HTTP Error 401: Unauthorized")
        exc.code = 401
        assert classify_error(exc) is P
        plain = type("HTTPError", (OSError, mixin), {"__module__": "urllib.error"})("nothing")
        assert classify_error(plain) is U

    def test_redis_plain_response_error_is_a_rejected_command(self) -> None:
        """redis-py's ResponseError with no known prefix is an 'ERR' reply: the command is wrong."""
        assert (
            classify_error(_exc("redis.exceptions.ResponseError", "DB index is out of range")) is V
        )
        loading = _exc("redis.exceptions.ResponseError", "LOADING Redis is loading the dataset")
        assert classify_error(loading) is T

    @pytest.mark.parametrize(
        ("qualified", "expected"),
        [
            ("pickle.UnpicklingError", V),
            ("zipfile.BadZipFile", V),
            ("pymongo.errors.InvalidOperation", P),
            ("decimal.InvalidOperation", V),
            ("_csv.Error", V),
        ],
    )
    def test_data_format_and_misuse_names(self, qualified: str, expected: ErrorType) -> None:
        """Unpickling/zip/csv errors are bad data; an invalid operation on a client is misuse."""
        assert classify_error(_exc(qualified, "text that says nothing")) is expected


class TestSecondPass:
    """Rules added after batch 3 was measured (so batch 3 is no longer blind for them)."""

    @pytest.mark.parametrize(
        ("sqlstate", "expected"),
        [("42P04", P), ("42P06", P), ("42710", P), ("25001", P), ("25006", T), ("42601", V)],
    )
    def test_sqlstate_duplicate_objects_and_transaction_state(
        self, sqlstate: str, expected: ErrorType
    ) -> None:
        """Creating what exists and class 25 are PERMANENT; read-only 25006 stays TRANSIENT."""
        exc = _exc("psycopg2.errors.Error", "text that says nothing", pgcode=sqlstate)
        assert classify_error(exc) is expected

    @pytest.mark.parametrize("number", [1007, 1008, 1099, 1109])
    def test_mysql_schema_state_codes(self, number: int) -> None:
        """Database exists / missing, table locked for READ, unknown information_schema table."""
        exc = _exc("pymysql.err.OperationalError", "", number, "text that says nothing")
        assert classify_error(exc) is P

    @pytest.mark.parametrize("prefix", ["BUSYGROUP", "NOGROUP", "BUSYKEY"])
    def test_redis_group_and_key_prefixes(self, prefix: str) -> None:
        """Redis replies about a consumer group or key that exists (or not) are PERMANENT."""
        exc = _exc("redis.exceptions.ResponseError", f"{prefix} text that says nothing")
        assert classify_error(exc) is P

    @pytest.mark.parametrize(
        ("reply", "expected"),
        [("501 Syntax error", V), ("550 No such file", P), ("452 No space", T), ("425 x", T)],
    )
    def test_ftp_reply_codes(self, reply: str, expected: ErrorType) -> None:
        """ftplib errors carry the reply: 501 is a syntax error, 4yz transient, 5yz permanent."""
        assert classify_error(_exc("ftplib.error_perm", reply)) is expected
        assert classify_error(_exc("other.error_perm", reply)) is P  # outside ftplib: the name

    @pytest.mark.parametrize(
        ("status", "expected"), [(409, P), (451, P), (412, P), (415, V), (416, V), (431, V)]
    )
    def test_more_http_statuses(self, status: int, expected: ErrorType) -> None:
        """409/412/451 will not change on retry; 415/416/431 are malformed requests."""
        assert classify_error(_exc("other.HTTPError", "nothing", code=status)) is expected

    def test_conflict_that_says_try_again_is_transient(self) -> None:
        """A 409 whose text says to try again (S3 OperationAborted) is TRANSIENT."""
        exc = _exc("other.HTTPError", "conflicting operation in progress. Please try again.")
        exc.code = 409  # type: ignore[attr-defined]
        assert classify_error(exc) is T

    def test_status_outranks_class_name_words(self) -> None:
        """websockets' InvalidStatus says 'Invalid' for any status: the status decides."""
        for status, expected in ((403, P), (503, T), (400, V)):
            exc = _exc("websockets.exceptions.InvalidStatus", "rejected", code=status)
            assert classify_error(exc) is expected
        assert classify_error(_exc("websockets.exceptions.InvalidStatus", "rejected")) is V

    @pytest.mark.parametrize(
        "text",
        [
            "Cannot operate on a closed cursor.",
            "Connection Error: Connection already closed!",
            "This session is closed",
            "Cannot use MongoClient after close",
        ],
    )
    def test_closed_handle_is_permanent(self, text: str) -> None:
        """Using a handle the program closed itself is a bug a retry repeats."""
        assert classify_error(None, text) is P

    def test_server_closing_the_connection_stays_transient(self) -> None:
        """The closed-handle wording does not swallow a server that closed the connection."""
        assert classify_error(None, "Connection closed by server.") is T
        assert classify_error(None, "server closed the connection unexpectedly") is T

    def test_kafka_not_enough_replicas(self) -> None:
        """Too few in-sync replicas clears once they catch up, in any client's wording."""
        assert classify_error(None, "Broker: Not enough in-sync replicas") is T
        assert (
            classify_error(None, "org.apache.kafka.common.errors.NotEnoughReplicasException") is T
        )

    @pytest.mark.parametrize(
        ("qualified", "expected"),
        [
            ("jinja2.exceptions.UndefinedError", V),
            ("sqlalchemy.exc.NoResultFound", P),
            ("sqlalchemy.exc.ResourceClosedError", P),
            ("paramiko.ssh_exception.IncompatiblePeer", P),
            ("botocore.errorfactory.InvalidObjectState", P),
            ("botocore.errorfactory.BucketAlreadyOwnedByYou", P),
            ("http.client.BadStatusLine", P),
            ("http.client.IncompleteRead", T),
            ("zlib.error", V),
            ("configparser.Error", V),
        ],
    )
    def test_second_pass_names(self, qualified: str, expected: ErrorType) -> None:
        """Class-name words and stdlib types added in the second pass."""
        assert classify_error(_exc(qualified, "text that says nothing")) is expected


class TestUnhashableClasses:
    """The per-class caches never break classification."""

    def test_unhashable_metaclass_still_classifies(self) -> None:
        """A class whose metaclass is unhashable is read, twice, without a cache."""
        meta = type("Meta", (type,), {"__hash__": None, "__eq__": lambda a, b: a is b})
        cls = meta("Err", (Exception,), {"__module__": "lib"})
        for _ in range(2):
            exc = cls("nothing to see")
            exc.status_code = 503
            assert classify_error(exc) is T

    def test_cached_class_is_read_again(self) -> None:
        """The second exception of a class with signals is classified like the first."""
        cls = stand_in_class("lib.Thing")
        for status, expected in ((503, T), (404, P), (503, T)):
            exc = cls("nothing to see")
            exc.status_code = status  # type: ignore[attr-defined]
            assert classify_error(exc) is expected

    def test_status_only_on_response_status(self) -> None:
        """aiohttp-style responses carry the code in .status."""
        exc = _exc("lib.ClientError", "nothing to see")
        exc.response = type("R", (), {"status": 503})()  # type: ignore[attr-defined]
        assert classify_error(exc) is T


class TestErrnoAttribute:
    """The errno attribute decides even when the text does not quote it."""

    def test_errno_without_text(self) -> None:
        """An OSError subclass with errno ECONNREFUSED and a bland message is TRANSIENT."""
        import errno

        exc = stand_in_class("lib.Oops", (OSError,))("nothing to see")
        exc.errno = errno.ECONNREFUSED  # type: ignore[attr-defined]
        assert classify_error(exc) is T
        exc.errno = errno.ENOENT  # type: ignore[attr-defined]
        assert classify_error(exc) is P


class TestFourthPass:
    """Family rules from batch 3's remaining misses, written before batch 4 was built."""

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("cannot drop table a because other objects depend on it", P),
            ("Cannot drop column: table only has one column remaining!", P),
            ("could not drop the table because it is referenced by c", P),
            ("drop table a", U),
            ("cannot start a transaction within a transaction", P),
            ("there is no transaction in progress", P),
            ("no such savepoint: sp1", P),
        ],
    )
    def test_stored_object_and_session_state(self, text: str, expected: ErrorType) -> None:
        """Dependent objects and transaction nesting are PERMANENT; a bare DROP says nothing."""
        assert classify_error(None, text) is expected

    @pytest.mark.parametrize(
        "text",
        [
            "not a valid RSA private key file",
            "Fernet key must be 32 url-safe base64-encoded bytes.",
            "Unable to load PEM file. See the FAQ",
            "Could not deserialize key data.",
            'role "r" is not permitted to log in',
            "[Errno 1] Operation not permitted",
        ],
    )
    def test_key_material_and_login_refusals_are_permanent(self, text: str) -> None:
        """Unusable keys and refused logins are configuration: PERMANENT, message alone."""
        assert classify_error(None, text) is P

    @pytest.mark.parametrize(
        ("cls", "text", "expected"),
        [
            ("builtins.KeyError", "\"There is no item named 'a.csv' in the archive\"", P),
            ("builtins.KeyError", "'No such transport: sqs2'", P),
            ("builtins.ValueError", "not a valid RSA private key file", P),
            ("builtins.ValueError", "Fernet key must be 32 url-safe base64-encoded bytes.", P),
            ("builtins.KeyError", "'no such column: x'", V),
            ("builtins.ValueError", "invalid literal for int() with base 10: 'x'", V),
        ],
    )
    def test_builtin_data_errors_that_name_no_data(
        self, cls: str, text: str, expected: ErrorType
    ) -> None:
        """A builtin data error naming missing configuration or key material is PERMANENT."""
        assert classify_error(_exc(cls, text)) is expected

    @pytest.mark.parametrize(
        "text",
        [
            "integer overflow",
            "Out of Range Error: Overflow in addition of INT32 (2147483647 + 1)!",
            "Invalid data stream",
            "Error -3 while decompressing data: invalid stored block lengths",
            "corrupted record payload at offset 10",
            "Not a gzip file (b'xx')",
            "unexpected end of data",
        ],
    )
    def test_overflow_and_corrupt_data_are_validation(self, text: str) -> None:
        """Arithmetic overflow and corrupt or truncated input are VALIDATION_ERROR."""
        assert classify_error(None, text) is V

    def test_stack_overflow_is_not_data(self) -> None:
        """Only numeric overflow is data: a stack overflow is not read as VALIDATION_ERROR."""
        assert classify_error(None, "stack overflow in frame 3") is not V

    @pytest.mark.parametrize(
        "text", ["Error reading SSH protocol banner", "error reading from socket response"]
    )
    def test_protocol_read_failures_are_transient(self, text: str) -> None:
        """A read cut off mid-handshake is a network hiccup: TRANSIENT."""
        assert classify_error(None, text) is T

    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            ("HostUnreachableError", T),
            ("ResourceBusy", T),
            ("PermissionDeniedError", P),
            ("DependentObjectsStillExist", P),
            ("OutOfMemoryError", P),
            ("NumericOverflow", V),
            ("OutOfRangeException", V),
            ("CorruptRecordError", V),
            ("DataTruncation", V),
            ("ConversionError", V),
            ("EncodingError", V),
            ("FormatError", V),
            ("SMTPRecipientsRefused", U),
        ],
    )
    def test_class_name_words(self, name: str, expected: ErrorType) -> None:
        """Class-name words of unknown libraries decide, with text that says nothing."""
        assert classify_error(_exc(f"somelib.errors.{name}", "text that says nothing")) is expected

    @pytest.mark.parametrize(
        ("instance", "expected"),
        [
            (FileExistsError("text that says nothing"), P),
            (MemoryError("text that says nothing"), P),
            (ProcessLookupError("text that says nothing"), P),
            (ChildProcessError("text that says nothing"), P),
            (OverflowError("text that says nothing"), V),
            (UnicodeTranslateError("x", 0, 1, "text that says nothing"), V),
        ],
    )
    def test_more_builtin_types(self, instance: BaseException, expected: ErrorType) -> None:
        """Builtin types the table now names decide without words."""
        assert classify_error(instance) is expected


class TestAfterBatch4:
    """Rules added after batch 4 was measured (so batch 4 is no longer blind for them)."""

    @pytest.mark.parametrize(
        ("status", "expected"),
        [
            ("UNAVAILABLE", T),
            ("RESOURCE_EXHAUSTED", T),
            ("ABORTED", T),
            ("DEADLINE_EXCEEDED", TO),
            ("INVALID_ARGUMENT", V),
            ("NOT_FOUND", P),
            ("ALREADY_EXISTS", P),
            ("UNIMPLEMENTED", P),
            ("CANCELLED", U),
        ],
    )
    def test_grpc_status_in_text(self, status: str, expected: ErrorType) -> None:
        """grpc's error text names the status code; the code decides, whatever the details say."""
        text = (
            "<_InactiveRpcError of RPC that terminated with:\n"
            f'\tstatus = StatusCode.{status}\n\tdetails = "rejected by the handler"\n>'
        )
        assert classify_error(_exc("grpc._channel._InactiveRpcError", text)) is expected

    @pytest.mark.parametrize(("code", "expected"), [("22012", V), ("42P07", P), ("40001", T)])
    def test_pg8000_field_dict(self, code: str, expected: ErrorType) -> None:
        """pg8000 prints the PostgreSQL error fields as a dict; its 'C' field is the SQLSTATE."""
        text = f"{{'S': 'ERROR', 'V': 'ERROR', 'C': '{code}', 'M': 'text that says nothing'}}"
        assert classify_error(_exc("pg8000.dbapi.ProgrammingError", text)) is expected

    def test_pg8000_field_dict_needs_the_severity_fields(self) -> None:
        """A bare 'C': '22012' elsewhere in a message is not read as a SQLSTATE."""
        assert classify_error(None, "{'C': '22012'}") is U

    @pytest.mark.parametrize(
        ("number", "text", "expected"),
        [
            (2013, "Lost connection to MySQL server during query (timed out)", TO),
            (2013, "Lost connection to MySQL server during query", T),
            (1091, "Can't DROP INDEX `nope`; check that it exists", P),
            (1701, "Cannot truncate a table referenced in a foreign key constraint", P),
            (1286, "Unknown storage engine 'x'", P),
            (1396, "Operation CREATE USER failed for 'u'@'%'", P),
        ],
    )
    def test_mysql_codes(self, number: int, text: str, expected: ErrorType) -> None:
        """pymysql's read timeout is 2013 '(timed out)'; schema-state codes are PERMANENT."""
        exc = _exc("pymysql.err.OperationalError", "", number, text)
        assert classify_error(exc) is expected

    @pytest.mark.parametrize(
        ("cls", "text", "expected"),
        [
            ("redis.exceptions.ResponseError", "DEBUG command not allowed. If the option", P),
            ("redis.exceptions.ResponseError", "no such key", P),
            ("redis.exceptions.ResponseError", "syntax error", V),
            ("builtins.ValueError", "AESGCM key must be 128, 192, or 256 bits.", P),
            ("builtins.ValueError", "unsupported hash type no-such-hash", P),
            ("builtins.ValueError", "write() requires mode 'w', 'x', or 'a'", P),
            ("builtins.KeyError", "\"filename 'orders.csv' not found\"", P),
            ("builtins.KeyError", "\"undefined character name 'NO SUCH CHARACTER NAME'\"", V),
            ("lzma.LZMAError", "Input format not supported by decoder", V),
        ],
    )
    def test_data_errors_that_name_configuration(
        self, cls: str, text: str, expected: ErrorType
    ) -> None:
        """Data-error types whose text names a disabled command, key size or missing member."""
        assert classify_error(_exc(cls, text)) is expected

    def test_library_subclass_name_outranks_its_builtin_base(self) -> None:
        """zoneinfo's ZoneInfoNotFoundError is a KeyError; its own name (NotFound) decides."""
        cls = stand_in_class("zoneinfo._common.ZoneInfoNotFoundError", (KeyError,))
        assert classify_error(cls("No time zone found with key X")) is P
        plain = stand_in_class("somelib.errors.RowProblem", (KeyError,))
        assert classify_error(plain("text that says nothing")) is V

    def test_library_type_rule_is_not_overridden_by_names(self) -> None:
        """A library class the table names keeps its rule even when its name has other words."""
        base = stand_in_class("requests.exceptions.ConnectionError")
        cls = stand_in_class("somelib.errors.NotFoundThing", (base,))
        assert classify_error(cls("text that says nothing")) is T

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("Server unexpectedly closed connection", T),
            ("argument --limit: invalid int value: 'x'", V),
            ("Illegal key 'bad key'", V),
            ("A value is required for bind parameter 'amount'", V),
            ("Unresolvable: urn:example:missing-schema", P),
            ("Decryption failed. Ciphertext failed verification", P),
        ],
    )
    def test_message_families(self, text: str, expected: ErrorType) -> None:
        """Wording families from batch 4's misses, message alone."""
        assert classify_error(None, text) is expected

    @pytest.mark.parametrize("name", ["InvalidTag", "InvalidSignature", "Unresolvable"])
    def test_crypto_and_reference_class_names(self, name: str) -> None:
        """A failed tag or signature check means a wrong key: PERMANENT, not malformed input."""
        assert classify_error(_exc(f"somelib.{name}", "")) is P


class TestTextCodesInOrder:
    """Codes quoted in a message are read per marker, then taken in text order."""

    def test_the_code_earlier_in_the_text_decides(self) -> None:
        """SQLSTATE 40001 before [Errno 2]: TRANSIENT; the other way round: PERMANENT."""
        assert classify_error(None, "SQLSTATE 40001 then [Errno 2] x") is T
        assert classify_error(None, "[Errno 2] x then SQLSTATE 40001") is P

    @pytest.mark.parametrize(
        "text", ["nosqlstate 40001", "xcode=_transport,val=-195", "statusstatuscode.aborted"]
    )
    def test_a_marker_inside_a_word_is_not_read(self, text: str) -> None:
        """The markers need a word boundary before them, as the one-regex scan had."""
        assert classify_error(None, text) is U

    def test_every_occurrence_is_read(self) -> None:
        """An unlisted code first does not hide a listed one later in the text."""
        assert classify_error(None, "SQLSTATE zz999 and later SQLSTATE 40001") is T


class TestSpecificNameMixins:
    """The library-class-over-builtin-base rule reads exception classes only."""

    def test_a_mixin_name_does_not_decide(self) -> None:
        """A non-exception mixin named like a word rule (Temporary...) lends no words."""
        mixin = type("TemporaryFileWrapper", (), {"__module__": "tempfile"})
        cls = type("RowProblem", (mixin, KeyError), {"__module__": "somelib.errors"})
        assert classify_error(cls("text that says nothing")) is V


class TestCodesOnlyInAttributes:
    """Codes carried only by attributes or args, never shown in str(): the readers alone decide."""

    @staticmethod
    def _quiet(qualified: str, *args: object, **attributes: object) -> BaseException:
        """A stand-in whose str() says nothing, with the given args and attributes."""
        base = stand_in_class(qualified)
        cls = type(base.__name__, (base,), {"__module__": base.__module__, "__str__": _nothing})
        exc = cls(*args)
        for name, value in attributes.items():
            setattr(exc, name, value)
        return exc

    def test_mysql_number_in_errno(self) -> None:
        """mysql.connector keeps it in .errno: 1045 (access denied) is PERMANENT."""
        exc = self._quiet("mysql.connector.errors.DatabaseError", "x", errno=1045)
        assert classify_error(exc) is P

    def test_code_of_an_inner_exception_decides(self) -> None:
        """A wrapper that says nothing: the SQLSTATE on its __cause__ decides (chain level)."""
        inner = self._quiet("psycopg2.errors.Error", "x", pgcode="40001")
        outer = self._quiet("somelib.errors.WrapperProblem", "x")
        outer.__cause__ = inner
        assert classify_error(outer) is T


def _nothing(self: BaseException) -> str:
    """A __str__ that carries no signal."""
    return "text that says nothing"
