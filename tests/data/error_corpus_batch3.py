"""Batch 3, libraries the rule table names: a blind held-out set (only reported).

Written after the rules were frozen at commit 73bf9a8 (labelling rules fe2aebd); every label
below was chosen by the labelling rules in docs/classifier.md before the classifier saw the
entry. Run with PIPESTATE_CORPUS_PG / PIPESTATE_CORPUS_MYSQL set and redis-server on PATH.
"""

from __future__ import annotations

import contextlib
import sqlite3

from error_corpus_reproduce import TO, P, T, V, case, http_server, refused_port, tcp_script
from error_corpus_servers import _my, _my_table, _pg, _pg_table, _redis, _redis_server

H = "holdout"


# -- PostgreSQL 15 via psycopg2 -------------------------------------------------------------------
for _label, _what, _sql in (
    (V, "INSERT with more values than columns", "insert into customers (id) values (2, 3)"),
    (V, "square root of a negative number", "select sqrt(-1)"),
    (V, "malformed uuid literal", "select 'xyz'::uuid"),
    (V, "malformed json literal", "select '{bad'::jsonb"),
    (V, "numeric field overflow", "select 10::numeric(2,1)"),
    (P, "DROP TABLE of a table that does not exist", "drop table no_such_table"),
    (P, "CREATE SCHEMA that exists", "create schema public"),
    (V, "ungrouped column next to an aggregate", "select count(*), email from orders"),
    (V, "negative LIMIT", "select * from orders limit -1"),
    (P, "ALTER TABLE DROP COLUMN of a missing column", "alter table orders drop column nope"),
    (V, "operator that does not exist for the types", "select now() + 1"),
    (P, "COPY from a file that does not exist", "copy orders from '/nonexistent/orders.csv'"),
    (P, "requested length too large", "select repeat('x', 2000000000)"),
    (V, "collation that does not exist", "select 'a' collate \"nope\""),
    (P, "SET ROLE to a role that does not exist", "set role nobody_role"),
    (V, "ORDER BY position past the select list", "select id from orders order by 5"),
    (V, "invalid regular expression flag", "select regexp_replace('a', 'a', 'b', 'z')"),
    (V, "value out of range for smallint", "select 40000::smallint"),
):
    case(_label, "postgres", "psycopg2-binary", f"PostgreSQL 15: {_what}", H)(
        lambda _sql=_sql: _pg_table().execute(_sql)
    )


@case(P, "postgres", "psycopg2-binary", "PostgreSQL 15: CREATE DATABASE that exists", H)
def pg_db_exists() -> object:
    return _pg().cursor().execute("create database postgres")


@case(P, "postgres", "psycopg2-binary", "PostgreSQL 15: VACUUM inside a transaction block", H)
def pg_vacuum_in_tx() -> object:
    conn = _pg()
    conn.autocommit = False
    return conn.cursor().execute("vacuum")


@case(P, "postgres", "psycopg2-binary", "PostgreSQL 15: login as a role without LOGIN", H)
def pg_nologin() -> object:
    cur = _pg().cursor()
    cur.execute("drop role if exists nologin_role; create role nologin_role password 'pw'")
    return _pg(user="nologin_role", password="pw")


@case(T, "postgres", "psycopg2-binary", "PostgreSQL 15: backend terminated by an admin", H)
def pg_admin_terminate() -> object:
    victim = _pg()
    pid = victim.get_backend_pid()
    _pg().cursor().execute(f"select pg_terminate_backend({pid})")
    return victim.cursor().execute("select 1")


# -- MariaDB 10.11 via pymysql --------------------------------------------------------------------
for _label, _what, _sql in (
    (P, "DROP TABLE of an unknown table", "drop table no_such"),
    (P, "CREATE DATABASE that exists", "create database ps16"),
    (V, "GROUP BY an unknown column", "select 1 from orders group by nope"),
    (V, "malformed JSON text", "select json_extract('{bad', '$.a')"),
    (V, "ambiguous column", "select id from orders, customers"),
    (P, "ADD COLUMN that exists", "alter table orders add column qty int"),
    (P, "DROP DATABASE that does not exist", "drop database no_such_db"),
    (P, "USE of an unknown database", "use no_such_db"),
    (V, "UNION of selects with different column counts", "select 1 union select 1, 2"),
    (V, "CREATE TABLE with a duplicate column", "create table t2 (a int, a int)"),
    (P, "unknown information_schema table", "select * from information_schema.nope"),
    (V, "division by zero in strict mode", "insert into orders values (5, 'q', 1/0, 1)"),
):
    case(_label, "mysql", "pymysql", f"MariaDB 10.11: {_what}", H)(
        lambda _sql=_sql: [cur.execute(s) for cur in [_my_table()] for s in _sql.split("; ")]
    )


@case(P, "mysql", "pymysql", "MariaDB 10.11: INSERT into a table locked for READ", H)
def my_read_lock() -> object:
    cur = _my_table()
    cur.execute("lock tables orders read")
    return cur.execute("insert into orders values (9, 'z', 1, 1)")


@case(TO, "mysql", "pymysql", "MariaDB 10.11: query past max_statement_time", H)
def my_statement_time() -> object:
    cur = _my().cursor()
    cur.execute("set session max_statement_time = 0.2")
    return cur.execute("select sleep(2) from (select 1 union select 2) t")


# -- Redis 7.0 via redis-py -----------------------------------------------------------------------
def _redis_call(*command: object, setup: tuple[tuple[object, ...], ...] = ()) -> object:
    with _redis_server() as port:
        client = _redis(port)
        for args in setup:
            client.execute_command(*args)
        return client.execute_command(*command)


for _label, _what, _command, _setup in (
    (
        V,
        "HINCRBYFLOAT on a non-float field",
        ("hincrbyfloat", "h", "f", 1),
        (("hset", "h", "f", "x"),),
    ),
    (V, "ZADD with a score that is not a float", ("zadd", "z", "abc", "m"), ()),
    (V, "CONFIG SET of an unknown option", ("config", "set", "nope", "1"), ()),
    (V, "SETRANGE with a negative offset", ("setrange", "k", -1, "x"), ()),
    (
        V,
        "EVAL of a script that calls an unknown command",
        ("eval", "return redis.call('nope')", 0),
        (),
    ),
    (V, "EVAL of a script that does not compile", ("eval", "return (", 0), ()),
    (V, "XADD with the ID 0-0", ("xadd", "s", "0-0", "f", "v"), ()),
    (
        P,
        "XGROUP CREATE of a group that exists",
        ("xgroup", "create", "s", "g", "$"),
        (("xadd", "s", "*", "f", "v"), ("xgroup", "create", "s", "g", "$")),
    ),
    (
        P,
        "XREADGROUP on a group that does not exist",
        ("xreadgroup", "group", "g", "c", "streams", "s", ">"),
        (("xadd", "s", "*", "f", "v"),),
    ),
):
    case(_label, "redis", "redis", f"Redis 7.0: {_what}", H)(
        lambda _c=_command, _s=_setup: _redis_call(*_c, setup=_s)
    )


@case(P, "redis", "redis", "Redis 7.0: ACL user reading a key outside its key pattern", H)
def rs_acl_key() -> object:
    with _redis_server() as port:
        _redis(port).execute_command("acl", "setuser", "etl", "on", ">pw", "~allowed:*", "+get")
        import redis

        return redis.Redis(port=port, username="etl", password="pw").get("secret")


# -- HTTP clients against a scripted 127.0.0.1 server ---------------------------------------------
def _requests(status: int, **kwargs: object) -> object:
    import requests

    with http_server(status, **kwargs) as url:  # type: ignore[arg-type]
        return requests.get(f"{url}/v1/orders", timeout=3).raise_for_status()


def _httpx(status: int) -> object:
    import httpx

    with http_server(status) as url:
        return httpx.get(f"{url}/v1/orders", timeout=3).raise_for_status()


for _label, _status in ((P, 409), (V, 415), (T, 507), (P, 405)):
    case(_label, "http", "requests", f"requests: HTTP {_status} raise_for_status", H)(
        lambda _status=_status: _requests(_status)
    )
for _label, _status in ((P, 409), (V, 422), (T, 529), (P, 451)):
    case(_label, "http", "httpx", f"httpx: HTTP {_status} raise_for_status", H)(
        lambda _status=_status: _httpx(_status)
    )


@case(TO, "http", "httpx", "httpx: read timeout against a slow server", H)
def httpx_read_timeout() -> object:
    import httpx

    with http_server(200, delay=2.0) as url:
        return httpx.get(url, timeout=0.3)


@case(V, "http", "requests", "requests: header value with a newline", H)
def requests_bad_header() -> object:
    import requests

    return requests.get("http://127.0.0.1:1/", headers={"X-Id": "a\nb"}, timeout=1)


@case(P, "http", "aiohttp", "aiohttp: HTTP 401 raise_for_status", H)
def aiohttp_401() -> object:
    return _aiohttp(401)


@case(V, "http", "aiohttp", "aiohttp: resp.json() on an HTML body", H)
def aiohttp_not_json() -> object:
    return _aiohttp(200, json=True)


def _aiohttp(status: int, json: bool = False) -> object:
    import asyncio

    import aiohttp

    async def go(url: str) -> object:
        async with aiohttp.ClientSession() as session, session.get(url) as resp:
            if json:
                return await resp.json()
            return resp.raise_for_status()

    with http_server(status, body=b"<html></html>", content_type="text/html") as url:
        return asyncio.run(go(url))


# -- botocore against a scripted S3 endpoint ------------------------------------------------------
def _s3_error(status: int, code: str, message: str, call: str = "get_object") -> object:
    import boto3
    from botocore.config import Config

    body = (
        f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
        f"<Message>{message}</Message><RequestId>R1</RequestId></Error>"
    ).encode()
    with http_server(status, body=body, content_type="application/xml") as url:
        client = boto3.client(
            "s3",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="AKIDEXAMPLE",
            aws_secret_access_key="x",
            config=Config(retries={"total_max_attempts": 1}),
        )
        if call == "create_bucket":
            return client.create_bucket(Bucket="reports")
        return client.get_object(Bucket="reports", Key="2024/orders.csv")


for _label, _status, _code, _message, _call in (
    (
        P,
        403,
        "InvalidObjectState",
        "The operation is not valid for the object's storage class",
        "get_object",
    ),
    (
        P,
        409,
        "BucketAlreadyOwnedByYou",
        "Your previous request to create the named bucket succeeded and you already own it.",
        "create_bucket",
    ),
    (
        P,
        403,
        "RequestTimeTooSkewed",
        "The difference between the request time and the current time is too large.",
        "get_object",
    ),
    (V, 416, "InvalidRange", "The requested range is not satisfiable", "get_object"),
    (
        T,
        409,
        "OperationAborted",
        "A conflicting conditional operation is currently in progress against this resource. "
        "Please try again.",
        "create_bucket",
    ),
    (
        P,
        400,
        "TooManyBuckets",
        "You have attempted to create more buckets than allowed",
        "create_bucket",
    ),
    (
        P,
        403,
        "AccountProblem",
        "There is a problem with your AWS account that prevents the operation from completing "
        "successfully.",
        "get_object",
    ),
    (V, 400, "InvalidArgument", "Invalid Argument", "get_object"),
):
    case(_label, "botocore", "botocore", f"botocore S3 error {_code} ({_status})", H)(
        lambda _s=_status, _c=_code, _m=_message, _k=_call: _s3_error(_s, _c, _m, _k)
    )


# -- SQLAlchemy -----------------------------------------------------------------------------------
def _sa_sqlite() -> object:
    import sqlalchemy as sa

    engine = sa.create_engine("sqlite://")
    conn = engine.connect()
    conn.execute(sa.text("create table t (id integer primary key, name text unique)"))
    conn.execute(sa.text("insert into t values (1, 'a'), (2, 'b')"))
    return conn


@case(P, "sqlalchemy", "SQLAlchemy", "SQLAlchemy + sqlite3: query of a missing table", H)
def sa_missing_table() -> object:
    import sqlalchemy as sa

    return _sa_sqlite().execute(sa.text("select * from nope"))  # type: ignore[attr-defined]


@case(V, "sqlalchemy", "SQLAlchemy", "SQLAlchemy + sqlite3: UNIQUE violation", H)
def sa_unique() -> object:
    import sqlalchemy as sa

    return _sa_sqlite().execute(sa.text("insert into t values (3, 'a')"))  # type: ignore[attr-defined]


@case(P, "sqlalchemy", "SQLAlchemy", "SQLAlchemy: .one() on an empty result", H)
def sa_no_result() -> object:
    import sqlalchemy as sa

    conn = _sa_sqlite()
    return conn.execute(sa.text("select * from t where id = 9")).one()  # type: ignore[attr-defined]


@case(V, "sqlalchemy", "SQLAlchemy", "SQLAlchemy: .one() on two rows", H)
def sa_multiple() -> object:
    import sqlalchemy as sa

    return _sa_sqlite().execute(sa.text("select * from t")).one()  # type: ignore[attr-defined]


@case(P, "sqlalchemy", "SQLAlchemy", "SQLAlchemy: execute on a closed connection", H)
def sa_closed() -> object:
    import sqlalchemy as sa

    conn = _sa_sqlite()
    conn.close()  # type: ignore[attr-defined]
    return conn.execute(sa.text("select 1"))  # type: ignore[attr-defined]


@case(TO, "sqlalchemy", "SQLAlchemy", "SQLAlchemy: QueuePool exhausted (pool_timeout=0.1)", H)
def sa_pool_timeout() -> object:
    import sqlalchemy as sa

    engine = sa.create_engine(
        "sqlite:////tmp/s16/pool.db",
        pool_size=1,
        max_overflow=0,
        pool_timeout=0.1,
        poolclass=sa.pool.QueuePool,
    )
    held = engine.connect()
    try:
        return engine.connect()
    finally:
        held.close()


@case(T, "sqlalchemy", "SQLAlchemy", "SQLAlchemy + psycopg2: connection refused", H)
def sa_refused() -> object:
    import sqlalchemy as sa

    url = f"postgresql+psycopg2://u:p@127.0.0.1:{refused_port()}/db"
    return sa.create_engine(url).connect()


# -- pyarrow --------------------------------------------------------------------------------------
@case(V, "arrow", "pyarrow", "pyarrow: pa.array of mixed int and str", H)
def pa_mixed() -> object:
    import pyarrow as pa

    return pa.array([1, "a"])


@case(V, "arrow", "pyarrow", "pyarrow: cast of 'a' to int64", H)
def pa_cast() -> object:
    import pyarrow as pa

    return pa.array(["a"]).cast(pa.int64())


@case(V, "arrow", "pyarrow", "pyarrow: IPC stream from garbage bytes", H)
def pa_ipc() -> object:
    import pyarrow as pa

    return pa.ipc.open_stream(b"garbage bytes that are not arrow")


@case(V, "arrow", "pyarrow", "pyarrow: integer division by zero", H)
def pa_divide() -> object:
    import pyarrow as pa
    import pyarrow.compute as pc

    return pc.divide(pa.array([1]), pa.array([0]))


@case(V, "arrow", "pyarrow", "pyarrow: concat_tables with different schemas", H)
def pa_concat() -> object:
    import pyarrow as pa

    return pa.concat_tables([pa.table({"a": [1]}), pa.table({"b": ["x"]})])


@case(P, "arrow", "pyarrow", "pyarrow: read_table of a missing parquet file", H)
def pa_missing() -> object:
    import pyarrow.parquet as pq

    return pq.read_table("/nonexistent/orders.parquet")


# -- pydantic / jsonschema ------------------------------------------------------------------------
@case(V, "validation", "pydantic", "pydantic: int field given 'abc'", H)
def pyd_int() -> object:
    import pydantic

    class Order(pydantic.BaseModel):
        qty: int

    return Order(qty="abc")


@case(V, "validation", "pydantic", "pydantic: model_validate_json of broken JSON", H)
def pyd_json() -> object:
    import pydantic

    class Order(pydantic.BaseModel):
        qty: int

    return Order.model_validate_json('{"qty": ')


@case(V, "validation", "jsonschema", "jsonschema: missing required property", H)
def js_required() -> object:
    import jsonschema

    return jsonschema.validate({"a": 1}, {"type": "object", "required": ["b"]})


# -- sqlite3 (result codes) -----------------------------------------------------------------------
def _sq(*statements: str, strict: bool = False) -> object:
    db = sqlite3.connect(":memory:", isolation_level=None)
    db.execute("create table t (a integer, b text)" + (" strict" if strict else ""))
    result: object = None
    for statement in statements:
        result = db.execute(statement)
    return result


for _label, _what, _stmts, _strict in (
    (
        V,
        "TEXT into an INTEGER column of a STRICT table",
        ("insert into t values ('x', 'y')",),
        True,
    ),
    (
        P,
        "ATTACH of a file in a missing directory",
        ("attach database '/nonexistent/d/x.db' as x",),
        False,
    ),
    (V, "json() of malformed JSON", ("select json('{bad')",), False),
    (V, "abs() of the smallest integer", ("select abs(-9223372036854775808)",), False),
    (P, "CREATE INDEX on a missing table", ("create index i on nope(a)",), False),
    (V, "INSERT naming a column the table lacks", ("insert into t(nope) values (1)",), False),
):
    case(_label, "sqlite", "python", f"sqlite3: {_what}", H)(
        lambda _s=_stmts, _k=_strict: _sq(*_s, strict=_k)
    )


@case(V, "sqlite", "python", "sqlite3: named parameter without a value", H)
def sq_named() -> object:
    return sqlite3.connect(":memory:").execute("select :x", {})


@case(P, "sqlite", "python", "sqlite3: execute on a closed cursor", H)
def sq_closed_cursor() -> object:
    cur = sqlite3.connect(":memory:").cursor()
    cur.close()
    return cur.execute("select 1")


@case(V, "sqlite", "python", "sqlite3: two statements in one execute()", H)
def sq_two() -> object:
    return sqlite3.connect(":memory:").execute("select 1; select 2")


# -- smtplib (reply codes) against a scripted server ----------------------------------------------
def _smtp(replies: list[bytes]) -> object:
    import smtplib

    greeting = b"220 mx.example.com ESMTP\r\n"
    with (
        tcp_script(greeting=greeting, replies=replies) as port,
        contextlib.closing(smtplib.SMTP("127.0.0.1", port, timeout=3)) as smtp,
    ):
        return smtp.sendmail("etl@example.com", ["ops@example.com"], "Subject: x\r\n\r\nbody")


_EHLO = b"250-mx.example.com\r\n250 SIZE 1000\r\n"
for _label, _what, _replies in (
    (T, "450 on RCPT TO", [_EHLO, b"250 ok\r\n", b"450 4.2.0 Mailbox busy, try later\r\n"]),
    (
        P,
        "552 on DATA",
        [_EHLO, b"250 ok\r\n", b"250 ok\r\n", b"552 5.3.4 Message size exceeds fixed limit\r\n"],
    ),
    (P, "530 on MAIL FROM", [_EHLO, b"530 5.7.0 Authentication required\r\n"]),
    (
        T,
        "451 after the message body",
        [
            _EHLO,
            b"250 ok\r\n",
            b"250 ok\r\n",
            b"354 go\r\n",
            b"451 4.3.0 Local error in processing\r\n",
        ],
    ),
    (V, "501 on MAIL FROM", [_EHLO, b"501 5.1.7 Bad sender address syntax\r\n"]),
):
    case(_label, "smtp", "python", f"smtplib: {_what}", H)(lambda _r=_replies: _smtp(_r))


# -- stdlib modules the table names ---------------------------------------------------------------
@case(P, "stdlib", "python", "csv: a field larger than field_size_limit", H)
def csv_too_large() -> object:
    import csv
    import io

    csv.field_size_limit(10)
    try:
        return list(csv.reader(io.StringIO("a" * 50 + "\n")))
    finally:
        csv.field_size_limit(131072)


@case(V, "stdlib", "python", "decimal: division by zero with the trap set", H)
def decimal_div() -> object:
    import decimal

    return decimal.Decimal(1) / decimal.Decimal(0)


@case(V, "stdlib", "python", "tarfile.open of bytes that are not an archive", H)
def tar_garbage() -> object:
    import io
    import tarfile

    return tarfile.open(fileobj=io.BytesIO(b"not a tar archive at all" * 40))


@case(V, "stdlib", "python", "json.loads of an empty string", H)
def json_empty() -> object:
    import json

    return json.loads("")


@case(V, "stdlib", "python", "xml.dom.minidom.parseString of an unclosed element", H)
def minidom_bad() -> object:
    import xml.dom.minidom

    return xml.dom.minidom.parseString("<orders>")


@case(P, "stdlib", "python", "ssl: certificate verification against a self-signed server", H)
def ssl_self_signed() -> object:
    import socket
    import ssl
    import subprocess
    import threading

    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "/tmp/s16/key.pem",
            "-out",
            "/tmp/s16/cert.pem",
            "-days",
            "1",
        ],
        check=True,
        capture_output=True,
    )
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain("/tmp/s16/cert.pem", "/tmp/s16/key.pem")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        with contextlib.suppress(Exception):
            server_ctx.wrap_socket(conn, server_side=True)
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    try:
        raw = socket.create_connection(("127.0.0.1", port), timeout=3)
        return ssl.create_default_context().wrap_socket(raw, server_hostname="localhost")
    finally:
        listener.close()
