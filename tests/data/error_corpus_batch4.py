"""Batch 4, libraries the rule table names: a blind held-out set (only reported).

Written after the rules were frozen at commit d724387 (fourth session); every label below was
chosen by the labelling rules in docs/classifier.md before the classifier saw the entry. Run
with PIPESTATE_CORPUS_PG / PIPESTATE_CORPUS_MYSQL set and redis-server on PATH:
`PYTHONPATH=tests/data python tests/data/error_corpus_reproduce.py OUT batch4`.
"""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator

from error_corpus_batch3 import _s3_error, _smtp
from error_corpus_reproduce import TO, P, T, V, case, http_server, refused_port, tcp_script
from error_corpus_servers import _my, _my_table, _pg, _pg_table, _redis, _redis_server

H = "holdout"


# -- PostgreSQL 15 via psycopg2 -------------------------------------------------------------------
for _label, _what, _sql in (
    (V, "cast of 'maybe' to boolean", "select 'maybe'::boolean"),
    (V, "timestamp out of range", "select '294277-01-01 00:00'::timestamp + interval '1 year'"),
    (V, "malformed array literal", "select '{1,2'::int[]"),
    (V, "interval with an unknown unit", "select '5 parsecs'::interval"),
    (V, "function called with the wrong arity", "select left('abc')"),
    (
        V,
        "ON CONFLICT target without a matching unique constraint",
        "insert into orders (id, email) values (9, 'z') on conflict (qty) do nothing",
    ),
    (V, "scalar subquery returning two rows", "select (select 1 union select 2)"),
    (P, "CREATE TABLE that exists", "create table orders (id int)"),
    (P, "DROP SCHEMA that does not exist", "drop schema no_such_schema"),
    (P, "TRUNCATE of a table referenced by a foreign key", "truncate customers"),
    (P, "DROP FUNCTION that does not exist", "drop function no_such_fn(int)"),
    (V, "GROUP BY position past the select list", "select id from orders group by 3"),
    (V, "invalid regular expression", "select 'a' ~ '('"),
):
    case(_label, "postgres", "psycopg2-binary", f"PostgreSQL 15: {_what}", H)(
        lambda _sql=_sql: _pg_table().execute(_sql)
    )


@case(
    P, "postgres", "psycopg2-binary", "PostgreSQL 15: INSERT into a view that is not updatable", H
)
def pg_view_insert() -> object:
    cur = _pg_table()
    cur.execute("create view order_count as select count(*) as n from orders")
    return cur.execute("insert into order_count values (1)")


@case(T, "postgres", "psycopg2-binary", "PostgreSQL 15: role over its CONNECTION LIMIT", H)
def pg_role_limit() -> object:
    cur = _pg().cursor()
    cur.execute("drop role if exists limited4")
    cur.execute("create role limited4 login password 'pw' connection limit 1")
    keep = _pg(user="limited4", password="pw")
    try:
        return _pg(user="limited4", password="pw")
    finally:
        keep.close()


def _pg_plain_role() -> object:
    _pg_table()
    cur = _pg().cursor()
    cur.execute("drop role if exists plain4")
    cur.execute("create role plain4 login password 'pw'")
    return _pg(user="plain4", password="pw").cursor()


@case(P, "postgres", "psycopg2-binary", "PostgreSQL 15: CREATE DATABASE without the privilege", H)
def pg_createdb_denied() -> object:
    return _pg_plain_role().execute("create database plain4_db")


@case(P, "postgres", "psycopg2-binary", "PostgreSQL 15: ALTER TABLE by a role that is not owner", H)
def pg_not_owner() -> object:
    return _pg_plain_role().execute("alter table orders add column note text")


# -- MariaDB 10.11 via pymysql --------------------------------------------------------------------
for _label, _what, _sql in (
    (V, "out of range value (strict)", "insert into orders values (3, 'q', 99999999999, 1)"),
    (V, "operand should contain 1 column", "select (select 1, 2)"),
    (V, "wrong parameter count to a native function", "select concat_ws()"),
    (V, "subquery returns more than one row", "select (select 1 union select 2)"),
    (P, "DROP INDEX that does not exist", "alter table orders drop index nope"),
    (P, "CREATE TABLE that exists", "create table orders (id int)"),
    (P, "TRUNCATE of a table referenced by a foreign key", "truncate table customers"),
    (P, "unknown storage engine", "create table t4 (a int) engine=no_such_engine"),
    (V, "unknown function", "select no_such_fn(1)"),
):
    case(_label, "mysql", "pymysql", f"MariaDB 10.11: {_what}", H)(
        lambda _sql=_sql: [
            cur.execute(s)
            for cur in [_my_table()]
            for s in ("set sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'", _sql)
        ]
    )


@case(P, "mysql", "pymysql", "MariaDB 10.11: CREATE USER that exists", H)
def my_user_exists() -> object:
    cur = _my().cursor()
    cur.execute("create user if not exists 'dup4'@'%' identified by 'x'")
    return cur.execute("create user 'dup4'@'%' identified by 'x'")


@case(TO, "mysql", "pymysql", "pymysql: read_timeout on a server that never greets", H)
def my_silent() -> object:
    import pymysql

    with tcp_script(replies=[]) as port:
        return pymysql.connect(host="127.0.0.1", port=port, connect_timeout=1, read_timeout=1)


# -- Redis 7.0 via redis-py -----------------------------------------------------------------------
def _redis_cmd(
    *args: object, server: tuple[str, ...] = (), setup: tuple[tuple, ...] = ()
) -> object:
    with _redis_server(*server) as port:
        client = _redis(port)
        for step in setup:
            client.execute_command(*step)
        return client.execute_command(*args)


for _label, _what, _args, _setup, _server in (
    (V, "INCR of a non-integer value", ("INCR", "k"), (("SET", "k", "abc"),), ()),
    (V, "an unknown command", ("NOSUCHCMD", "x"), (), ()),
    (V, "GET with no key", ("GET",), (), ()),
    (V, "SET with both NX and XX", ("SET", "k", "v", "NX", "XX"), (), ()),
    (V, "EVAL of a script that does not compile", ("EVAL", "return +", "0"), (), ()),
    (V, "CONFIG SET of an unknown parameter", ("CONFIG", "SET", "no-such-param", "1"), (), ()),
    (P, "DEBUG with the debug command disabled", ("DEBUG", "SLEEP", "0"), (), ()),
    (P, "MODULE LOAD with the module command disabled", ("MODULE", "LOAD", "/x.so"), (), ()),
    (V, "ZADD with a score that is not a number", ("ZADD", "z", "abc", "m"), (), ()),
    (P, "RENAME of a key that does not exist", ("RENAME", "nokey", "other"), (), ()),
):
    case(_label, "redis", "redis", f"Redis 7.0: {_what}", H)(
        lambda _a=_args, _s=_setup, _v=_server: _redis_cmd(*_a, server=_v, setup=_s)
    )


@case(TO, "redis", "redis", "Redis 7.0: BLPOP longer than socket_timeout", H)
def redis_socket_timeout() -> object:
    import redis

    with _redis_server() as port:
        return redis.Redis(port=port, socket_timeout=0.3).blpop(["empty"], timeout=5)


@case(T, "redis", "redis", "Redis 7.0: command while a script is busy", H)
def redis_busy() -> object:
    import redis

    with _redis_server("--busy-reply-threshold", "100") as port:
        runner = redis.Redis(port=port)
        thread = threading.Thread(
            target=_swallow, args=(lambda: runner.eval("while true do end", 0),), daemon=True
        )
        thread.start()
        time.sleep(0.5)
        other = redis.Redis(port=port, socket_timeout=3)
        try:
            return other.get("k")
        finally:
            with contextlib.suppress(Exception):
                other.script_kill()
            thread.join(3)


def _swallow(func: object) -> None:
    with contextlib.suppress(Exception):
        func()  # type: ignore[operator]


# -- HTTP clients the table names -----------------------------------------------------------------
def _requests(status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> object:
    import requests

    with http_server(status, headers=headers, body=body) as url:
        return requests.get(f"{url}/v2/items", timeout=3).raise_for_status()


def _httpx(status: int, body: bytes = b"") -> object:
    import httpx

    with http_server(status, body=body) as url:
        return httpx.get(f"{url}/api/export", timeout=3).raise_for_status()


def _aiohttp(status: int) -> object:
    import asyncio

    import aiohttp

    async def fetch(url: str) -> object:
        async with (
            aiohttp.ClientSession(raise_for_status=True) as session,
            session.get(f"{url}/ingest") as response,
        ):
            return await response.read()

    with http_server(status) as url:
        return asyncio.run(fetch(url))


def _urllib(status: int) -> object:
    import urllib.request

    with http_server(status) as url:
        return urllib.request.urlopen(f"{url}/feed.json", timeout=3)


case(T, "http", "requests", "requests: HTTP 429 with Retry-After", H)(
    lambda: _requests(429, headers={"Retry-After": "2"})
)
case(T, "http", "requests", "requests: HTTP 502", H)(lambda: _requests(502))
case(P, "http", "requests", "requests: HTTP 405", H)(lambda: _requests(405))
case(T, "http", "httpx", "httpx: HTTP 503", H)(lambda: _httpx(503))
case(P, "http", "httpx", "httpx: HTTP 404", H)(lambda: _httpx(404))
case(P, "http", "httpx", "httpx: HTTP 409", H)(lambda: _httpx(409))
case(T, "http", "aiohttp", "aiohttp: HTTP 500", H)(lambda: _aiohttp(500))
case(P, "http", "aiohttp", "aiohttp: HTTP 403", H)(lambda: _aiohttp(403))
case(P, "http", "python", "urllib.request: HTTP 410", H)(lambda: _urllib(410))
case(V, "http", "python", "urllib.request: HTTP 422", H)(lambda: _urllib(422))


@case(V, "http", "requests", "requests: URL with an unclosed IPv6 bracket", H)
def requests_bad_url() -> object:
    import requests

    return requests.get("http://[::1/x", timeout=3)


@contextlib.contextmanager
def _raw_http(reply: bytes) -> Iterator[int]:
    """A server that reads one request, writes reply verbatim and closes the socket."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = listener.accept()
                with conn:
                    conn.recv(65536)
                    if reply:
                        conn.sendall(reply)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield int(listener.getsockname()[1])
    finally:
        listener.close()


@case(T, "http", "aiohttp", "aiohttp: server closes without a response", H)
def aiohttp_disconnect() -> object:
    import asyncio

    import aiohttp

    async def fetch(port: int) -> object:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/x") as response,
        ):
            return await response.read()

    with _raw_http(b"") as port:
        return asyncio.run(fetch(port))


@case(T, "http", "requests", "requests: body shorter than its Content-Length", H)
def requests_short_body() -> object:
    import requests

    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\nshort"
    with _raw_http(reply) as port:
        return requests.get(f"http://127.0.0.1:{port}/x", timeout=3).content


@case(T, "http", "httpx", "httpx: server closes without a response", H)
def httpx_disconnect() -> object:
    import httpx

    with _raw_http(b"") as port:
        return httpx.get(f"http://127.0.0.1:{port}/x", timeout=3)


@case(P, "http", "requests", "requests: server that answers with a non-HTTP line", H)
def requests_bad_status_line() -> object:
    import requests

    with _raw_http(b"SSH-2.0-OpenSSH_9.2\r\n") as port:
        return requests.get(f"http://127.0.0.1:{port}/x", timeout=3)


# -- botocore against a scripted S3 endpoint ------------------------------------------------------
for _label, _status, _code, _message, _call in (
    (P, 404, "NoSuchUpload", "The specified multipart upload does not exist.", "get_object"),
    (P, 409, "BucketAlreadyExists", "The requested bucket name is not available.", "create_bucket"),
    (T, 503, "SlowDown", "Please reduce your request rate.", "get_object"),
    (T, 500, "InternalError", "We encountered an internal error. Please try again.", "get_object"),
    (
        P,
        403,
        "InvalidAccessKeyId",
        "The AWS access key ID you provided does not exist in our records.",
        "get_object",
    ),
    (
        V,
        400,
        "MalformedXML",
        "The XML you provided was not well-formed or did not validate against our published "
        "schema.",
        "create_bucket",
    ),
    (P, 400, "KeyTooLongError", "Your key is too long.", "get_object"),
    (
        P,
        405,
        "MethodNotAllowed",
        "The specified method is not allowed against this resource.",
        "get_object",
    ),
    (T, 503, "ServiceUnavailable", "Service is unable to handle request.", "get_object"),
    (
        P,
        400,
        "InvalidBucketState",
        "The request is not valid with the current state of the bucket.",
        "create_bucket",
    ),
):
    case(_label, "botocore", "botocore", f"botocore S3 error {_code} ({_status})", H)(
        lambda _s=_status, _c=_code, _m=_message, _k=_call: _s3_error(_s, _c, _m, _k)
    )


# -- Google BigQuery client against a scripted endpoint (documented error bodies) -----------------
def _bq(status: int, reason: str, message: str) -> object:
    import json

    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    body = json.dumps(
        {
            "error": {
                "code": status,
                "message": message,
                "errors": [{"message": message, "domain": "global", "reason": reason}],
                "status": "",
            }
        }
    ).encode()
    with http_server(status, body=body, content_type="application/json") as url:
        client = bigquery.Client(
            project="proj",
            credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
            client_options=ClientOptions(api_endpoint=url),
        )
        return client.get_table("proj.sales.orders", retry=None)


for _label, _status, _reason, _message in (
    (
        T,
        403,
        "rateLimitExceeded",
        "Exceeded rate limits: too many api requests per user per method",
    ),
    (P, 404, "notFound", "Not found: Dataset proj:sales"),
    (T, 500, "backendError", "An internal error occurred and the request could not be completed."),
    (
        P,
        403,
        "accessDenied",
        "Access Denied: Table proj:sales.orders: Permission bigquery.tables.get denied",
    ),
    (T, 503, "backendError", "Visibility check was unavailable. Please retry the request."),
    (P, 403, "billingNotEnabled", "Billing has not been enabled for this project."),
):
    case(_label, "bigquery", "google-cloud-bigquery", f"BigQuery {_reason} ({_status})", H)(
        lambda _s=_status, _r=_reason, _m=_message: _bq(_s, _r, _m)
    )


# -- sqlite3 --------------------------------------------------------------------------------------
def _sqlite(*statements: str) -> object:
    conn = sqlite3.connect(":memory:")
    conn.execute("create table orders (id integer primary key, qty int check (qty > 0))")
    result: object = None
    for statement in statements:
        result = conn.execute(statement)
    return result


for _label, _what, _stmts in (
    (V, "text into an INTEGER PRIMARY KEY", ("insert into orders (id) values ('x')",)),
    (V, "row value misused", ("select (1, 2)",)),
    (V, "function called with too many arguments", ("select abs(1, 2)",)),
    (P, "COMMIT without a transaction", ("commit",)),
    (V, "statement with a NUL character", ("select 1\x00",)),
    (P, "DROP TABLE of a missing table", ("drop table no_such_table",)),
):
    case(_label, "sqlite", "python", f"sqlite3: {_what}", H)(lambda _s=_stmts: _sqlite(*_s))


@case(V, "sqlite", "python", "sqlite3: positional placeholder given a dict", H)
def sqlite_dict_positional() -> object:
    return sqlite3.connect(":memory:").execute("select ?", {"a": 1})


@case(T, "sqlite", "python", "sqlite3: write while another connection holds the lock", H)
def sqlite_locked() -> object:
    import os
    import tempfile

    path = os.path.join(tempfile.mkdtemp(), "lock4.db")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("create table t (a int)")
    holder.execute("begin exclusive")
    return sqlite3.connect(path, timeout=0.05).execute("select * from t")


# -- SQLAlchemy -----------------------------------------------------------------------------------
@case(V, "sqlalchemy", "SQLAlchemy", "SQLAlchemy: text() without a value for a bind parameter", H)
def sa_missing_bind() -> object:
    import sqlalchemy as sa

    with sa.create_engine("sqlite://").connect() as conn:
        return conn.execute(sa.text("select :amount"))


@case(V, "sqlalchemy", "SQLAlchemy", "SQLAlchemy: create_engine of a malformed URL", H)
def sa_bad_url() -> object:
    import sqlalchemy as sa

    return sa.create_engine("this is not a url")


@case(P, "sqlalchemy", "SQLAlchemy", "SQLAlchemy: create_engine of an unknown dialect", H)
def sa_no_dialect() -> object:
    import sqlalchemy as sa

    return sa.create_engine("nosuchdb://u@h/d")


@case(T, "sqlalchemy", "SQLAlchemy", "SQLAlchemy + pymysql: connection refused", H)
def sa_mysql_refused() -> object:
    import sqlalchemy as sa

    engine = sa.create_engine(f"mysql+pymysql://u:p@127.0.0.1:{refused_port()}/d")
    with engine.connect() as conn:
        return conn.execute(sa.text("select 1"))


# -- pyarrow, pydantic, jsonschema ----------------------------------------------------------------
@case(V, "arrow", "pyarrow", "pyarrow: Table.from_pydict with columns of different lengths", H)
def arrow_lengths() -> object:
    import pyarrow as pa

    return pa.Table.from_pydict({"a": [1, 2], "b": [1]})


@case(V, "arrow", "pyarrow", "pyarrow.csv: a row with too many columns", H)
def arrow_csv_columns() -> object:
    import io

    from pyarrow import csv

    return csv.read_csv(io.BytesIO(b"a,b\n1,2\n3,4,5\n"))


@case(V, "arrow", "pyarrow", "pyarrow.json: a line that is not JSON", H)
def arrow_json() -> object:
    import io

    from pyarrow import json

    return json.read_json(io.BytesIO(b'{"a": 1}\n{"a": \n'))


@case(V, "validation", "pydantic", "pydantic: extra field with extra='forbid'", H)
def pydantic_extra() -> object:
    import pydantic

    class Order(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(extra="forbid")
        id: int

    return Order.model_validate({"id": 1, "note": "x"})


@case(V, "validation", "pydantic", "pydantic: list field given an int", H)
def pydantic_list() -> object:
    import pydantic

    class Batch(pydantic.BaseModel):
        ids: list[int]

    return Batch.model_validate({"ids": 5})


@case(V, "validation", "jsonschema", "jsonschema: value outside an enum", H)
def jsonschema_enum() -> object:
    import jsonschema

    schema = {"type": "object", "properties": {"status": {"enum": ["new", "paid"]}}}
    return jsonschema.validate({"status": "lost"}, schema)


@case(P, "validation", "jsonschema", "jsonschema: $ref that cannot be resolved", H)
def jsonschema_ref() -> object:
    import jsonschema

    return jsonschema.validate({"a": 1}, {"$ref": "urn:example:missing-schema"})


# -- smtplib --------------------------------------------------------------------------------------
_EHLO = b"250-mx.example.com\r\n250 SIZE 1000\r\n"
for _label, _what, _replies in (
    (P, "554 on MAIL FROM", [_EHLO, b"554 5.7.1 Sender blocked by policy\r\n"]),
    (T, "421 on RCPT TO", [_EHLO, b"250 ok\r\n", b"421 4.7.0 Too many connections, closing\r\n"]),
    (P, "550 on RCPT TO", [_EHLO, b"250 ok\r\n", b"550 5.7.1 Relaying denied\r\n"]),
):
    case(_label, "smtp", "python", f"smtplib: {_what}", H)(lambda _r=_replies: _smtp(_r))


@case(T, "smtp", "python", "smtplib: 421 greeting", H)
def smtp_421_greeting() -> object:
    import smtplib

    with tcp_script(greeting=b"421 4.3.2 Service not available\r\n", close_after=True) as port:
        return smtplib.SMTP("127.0.0.1", port, timeout=3)


# -- kafka-python ---------------------------------------------------------------------------------
@case(
    TO,
    "kafka",
    "kafka-python",
    "kafka-python: metadata wait against a broker that never answers",
    H,
)
def kafka_metadata_timeout() -> object:
    from kafka import KafkaProducer

    with tcp_script(replies=[]) as port:
        producer = KafkaProducer(
            bootstrap_servers=f"127.0.0.1:{port}", api_version=(2, 5, 0), max_block_ms=1000
        )
        try:
            return producer.send("orders", b"x").get(timeout=2)
        finally:
            producer.close(timeout=0)


# -- stdlib modules the table names ---------------------------------------------------------------
@case(V, "stdlib", "python", "csv: strict reader and an unterminated quote", H)
def csv_strict() -> object:
    import csv

    return list(csv.reader(['a,"b'], strict=True))


@case(V, "stdlib", "python", "json.loads of single-quoted keys", H)
def json_single_quotes() -> object:
    import json

    return json.loads("{'a': 1}")


@case(V, "stdlib", "python", "json.dumps of a set", H)
def json_set() -> object:
    import json

    return json.dumps({"ids": {1, 2}})


@case(V, "stdlib", "python", "xml.etree: mismatched tag", H)
def etree_mismatch() -> object:
    import xml.etree.ElementTree as ET

    return ET.fromstring("<a><b></a>")


@case(P, "stdlib", "python", "tarfile: getmember of a member the archive lacks", H)
def tar_member() -> object:
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        archive.addfile(tarfile.TarInfo("a.txt"), io.BytesIO(b""))
    buffer.seek(0)
    return tarfile.open(fileobj=buffer).getmember("orders.csv")


@case(V, "stdlib", "python", "decimal: Decimal of 'abc' with the trap set", H)
def decimal_abc() -> object:
    import decimal

    with decimal.localcontext() as ctx:
        ctx.traps[decimal.InvalidOperation] = True
        return decimal.Decimal("1.5") + decimal.Decimal("abc")


@case(V, "stdlib", "python", "zlib: a truncated stream", H)
def zlib_truncated() -> object:
    import zlib

    return zlib.decompress(zlib.compress(b"orders" * 20)[:-4])


@case(V, "stdlib", "python", "struct.pack of 300 into a signed byte", H)
def struct_range() -> object:
    import struct

    return struct.pack("b", 300)


@case(V, "stdlib", "python", "re.compile with a group name used twice", H)
def re_group_twice() -> object:
    import re

    return re.compile("(?P<a>x)(?P<a>y)")


@case(V, "stdlib", "python", "binascii: b64decode(validate=True) of non-alphabet bytes", H)
def b64_validate() -> object:
    import base64

    return base64.b64decode(b"ab$d", validate=True)


@case(T, "stdlib", "python", "ssl: server that closes during the handshake", H)
def ssl_eof() -> object:
    import ssl

    with _raw_http(b"") as port:
        context = ssl.create_default_context()
        with socket.create_connection(("127.0.0.1", port), timeout=3) as raw:
            return context.wrap_socket(raw, server_hostname="localhost")


@case(T, "http", "python", "http.client: server closes without a response", H)
def http_client_disconnect() -> object:
    import http.client

    with _raw_http(b"") as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
        conn.request("GET", "/")
        return conn.getresponse()


@case(P, "stdlib", "python", "subprocess.run of a missing executable", H)
def subprocess_missing() -> object:
    import subprocess

    return subprocess.run(["/usr/bin/no-such-tool-4"], check=True)


@case(P, "stdlib", "python", "subprocess.check_output of a command that exits 2", H)
def subprocess_exit() -> object:
    import subprocess

    return subprocess.check_output(["sh", "-c", "exit 2"])


@case(TO, "stdlib", "python", "subprocess.run past its timeout", H)
def subprocess_timeout() -> object:
    import subprocess

    return subprocess.run(["sleep", "3"], timeout=0.2)


# -- more transient and timeout cases (the retry figure needs them) -------------------------------
@case(
    T, "postgres", "psycopg2-binary", "PostgreSQL 15: SELECT FOR UPDATE NOWAIT on a locked row", H
)
def pg_nowait() -> object:
    _pg_table()
    holder = _pg()
    holder.autocommit = False
    holder.cursor().execute("select * from orders where id = 1 for update")
    try:
        return _pg().cursor().execute("select * from orders where id = 1 for update nowait")
    finally:
        holder.rollback()


@case(T, "redis", "redis", "Redis 7.0: write with min-replicas-to-write and no replica", H)
def redis_noreplicas() -> object:
    with _redis_server("--min-replicas-to-write", "1") as port:
        return _redis(port).set("k", "v")


@case(T, "redis", "redis", "Redis 7.0: connect beyond maxclients", H)
def redis_maxclients() -> object:
    import redis

    with _redis_server("--maxclients", "1") as port:
        first = redis.Redis(port=port)
        first.ping()
        return redis.Redis(port=port, socket_timeout=3).ping()


case(T, "http", "httpx", "httpx: HTTP 429", H)(lambda: _httpx(429))
case(T, "http", "aiohttp", "aiohttp: HTTP 502", H)(lambda: _aiohttp(502))
case(T, "http", "aiohttp", "aiohttp: HTTP 429", H)(lambda: _aiohttp(429))
case(T, "http", "python", "urllib.request: HTTP 503", H)(lambda: _urllib(503))


@case(TO, "http", "python", "urllib.request: read timeout against a slow server", H)
def urllib_timeout() -> object:
    import urllib.request

    with http_server(200, body=b"x", delay=2) as url:
        return urllib.request.urlopen(f"{url}/slow", timeout=0.3).read()


@case(TO, "http", "requests", "requests: read timeout against a slow server (POST)", H)
def requests_timeout() -> object:
    import requests

    with http_server(200, body=b"x", delay=2) as url:
        return requests.post(f"{url}/upload", data=b"rows", timeout=(1, 0.3))


for _label, _what, _replies in (
    (T, "452 on RCPT TO", [_EHLO, b"250 ok\r\n", b"452 4.3.1 Insufficient system storage\r\n"]),
):
    case(_label, "smtp", "python", f"smtplib: {_what}", H)(lambda _r=_replies: _smtp(_r))
