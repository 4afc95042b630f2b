"""Batch 5, libraries the rule table names: a blind held-out set (only reported).

Written in the fifth session by a labeller who never read the classifier's rules or ran it:
every label below was chosen by the labelling rules in docs/classifier.md ("Labelling rules
(the corpus)") before any classifier saw the entry. Reproduce with
tests/data/error_corpus_batch5_run.py (PIPESTATE_CORPUS_PG / PIPESTATE_CORPUS_MYSQL set,
redis-server on PATH).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import tempfile
import threading
import time

from error_corpus_batch3 import _s3_error, _smtp
from error_corpus_batch4 import _bq
from error_corpus_reproduce import TO, P, T, V, case, http_server, refused_port, tcp_script
from error_corpus_servers import _my, _my_table, _pg, _pg_table, _redis, _redis_server

H = "holdout"


# -- PostgreSQL 15 via psycopg2 -------------------------------------------------------------------
for _label, _what, _sql in (
    (V, "cast of 'zz' to uuid", "select 'zz'::uuid"),
    (V, "numeric field overflow for numeric(5,2)", "select 12345.678::numeric(5,2)"),
    (V, "invalid UTF-8 byte in convert_from", "select convert_from('\\xff'::bytea, 'UTF8')"),
    (V, "ambiguous column reference in a join", "select id from orders, customers"),
    (V, "malformed JSON literal", "select '{\"a\":'::json"),
    (V, "operator integer = text", "select 1 = 'a'::text"),
    (V, "INSERT with more values than columns", "insert into customers (id) values (1, 2)"),
    (P, "CREATE INDEX with the name of an existing relation", "create index orders on orders(id)"),
    (P, "DROP INDEX that does not exist", "drop index no_such_index_5"),
    (
        P,
        "DROP TABLE of a table other objects depend on",
        "drop table customers",
    ),
    (V, "column used twice in an INSERT list", "insert into customers (id, id) values (1, 2)"),
    (V, "aggregate in WHERE", "select id from orders where count(*) > 1"),
):
    case(_label, "postgres", "psycopg2-binary", f"PostgreSQL 15: {_what}", H)(
        lambda _sql=_sql: _pg_table().execute(_sql)
    )


@case(V, "postgres", "psycopg2-binary", "PostgreSQL 15: value outside an enum type", H)
def pg_enum() -> object:
    cur = _pg_table()
    cur.execute(
        "drop type if exists order_state5; create type order_state5 as enum ('new', 'paid')"
    )
    return cur.execute("select 'shipped'::order_state5")


@case(V, "postgres", "psycopg2-binary", "PostgreSQL 15: value violating a domain CHECK", H)
def pg_domain() -> object:
    cur = _pg_table()
    cur.execute("drop domain if exists pos5; create domain pos5 as int check (value > 0)")
    return cur.execute("select (-3)::pos5")


@case(P, "postgres", "psycopg2-binary", "PostgreSQL 15: CREATE TABLE in public by a plain role", H)
def pg_public_create() -> object:
    cur = _pg().cursor()
    cur.execute("drop role if exists plain5")
    cur.execute("create role plain5 login password 'pw'")
    return _pg(user="plain5", password="pw").cursor().execute("create table t5 (a int)")


@case(TO, "postgres", "psycopg2-binary", "PostgreSQL 15: idle_in_transaction_session_timeout", H)
def pg_idle_tx() -> object:
    conn = _pg()
    conn.autocommit = False
    cur = conn.cursor()
    cur.execute("set idle_in_transaction_session_timeout = 100")
    cur.execute("select 1")
    time.sleep(0.6)
    return cur.execute("select 1")


@case(T, "postgres", "psycopg2-binary", "PostgreSQL 15: SERIALIZABLE read/write dependency", H)
def pg_serializable() -> object:
    cur = _pg_table()
    cur.execute("insert into customers values (2)")
    a, b = _pg(), _pg()
    a.autocommit = b.autocommit = False
    a.set_session(isolation_level="SERIALIZABLE")
    b.set_session(isolation_level="SERIALIZABLE")
    ca, cb = a.cursor(), b.cursor()
    ca.execute("select sum(id) from customers")
    cb.execute("select sum(id) from customers")
    ca.execute("insert into customers values (10)")
    cb.execute("insert into customers values (11)")
    a.commit()
    return b.commit()


@case(TO, "postgres", "psycopg2-binary", "PostgreSQL 15: connect_timeout, server never answers", H)
def pg_connect_timeout() -> object:
    import psycopg2

    with tcp_script() as port:
        return psycopg2.connect(host="127.0.0.1", port=port, user="etl", connect_timeout=2)


@case(V, "postgres", "psycopg2-binary", "psycopg2: connection string that does not parse", H)
def pg_bad_dsn() -> object:
    import psycopg2

    return psycopg2.connect("host=127.0.0.1 port")


@case(P, "postgres", "psycopg2-binary", "psycopg2: execute on a closed cursor", H)
def pg_closed_cursor() -> object:
    cur = _pg().cursor()
    cur.close()
    return cur.execute("select 1")


# -- MariaDB 10.11 via pymysql ---------------------------------------------------------------------
def _my_run(*statements: str) -> object:
    cur = _my_table()
    cur.execute(
        "set sql_mode = 'STRICT_ALL_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'"
    )
    cur.execute("drop table if exists events5")
    cur.execute(
        "create table events5 (id int primary key, at datetime, n tinyint, "
        "note varchar(20) character set utf8mb3) engine=innodb"
    )
    result: object = None
    for statement in statements:
        result = cur.execute(statement)
    return result


for _label, _what, _sql in (
    (V, "incorrect datetime value", "insert into events5 values (1, '2024-02-30 25:00', 1, 'x')"),
    (V, "out of range value for a tinyint", "insert into events5 values (1, null, 300, 'x')"),
    (V, "column count does not match value count", "insert into events5 values (1, null)"),
    (V, "call of a function that does not exist", "select no_such_fn5(1)"),
    (P, "CREATE TABLE that exists", "create table events5 (a int)"),
    (P, "DROP INDEX that does not exist", "alter table events5 drop index no_such_idx"),
    (P, "DROP TABLE of a missing table", "drop table no_such_table5"),
    (V, "division by zero in strict mode", "insert into events5 values (1, null, 1/0, 'x')"),
    (V, "4-byte character into a utf8mb3 column", "insert into events5 values (1, null, 1, '😀')"),
    (P, "CREATE TABLE with an unknown storage engine", "create table t5 (a int) engine=nope"),
    (V, "GROUP BY of an unknown column", "select count(*) from events5 group by nope"),
):
    case(_label, "mysql", "pymysql", f"MariaDB 10.11: {_what}", H)(lambda _sql=_sql: _my_run(_sql))


@case(P, "mysql", "pymysql", "MariaDB 10.11: SELECT on mysql.user by a limited user", H)
def my_select_denied() -> object:
    return _my(user="reader", password="reader").cursor().execute("select * from mysql.user")


@case(T, "mysql", "pymysql", "MariaDB 10.11: user over MAX_USER_CONNECTIONS", H)
def my_user_limit() -> object:
    cur = _my().cursor()
    cur.execute("drop user if exists 'lim5'@'127.0.0.1'")
    cur.execute("create user 'lim5'@'127.0.0.1' identified by 'pw' with max_user_connections 1")
    cur.execute("grant select on etl.* to 'lim5'@'127.0.0.1'")
    keep = _my(user="lim5", password="pw")
    try:
        return _my(user="lim5", password="pw")
    finally:
        keep.close()


@case(T, "mysql", "pymysql", "pymysql: connect to a refused port", H)
def my_refused() -> object:
    import pymysql

    return pymysql.connect(host="127.0.0.1", port=refused_port(), user="etl", connect_timeout=2)


# -- Redis 7 via redis-py --------------------------------------------------------------------------
def _redis_cmd(*command: object, setup: tuple[tuple[object, ...], ...] = ()) -> object:
    with _redis_server() as port:
        client = _redis(port)
        for args in setup:
            client.execute_command(*args)
        return client.execute_command(*command)


for _label, _what, _command, _setup in (
    (V, "INCR of a non-integer value", ("incr", "k"), (("set", "k", "abc"),)),
    (V, "GET with no key (wrong arity)", ("get",), ()),
    (V, "an unknown command", ("nosuchcmd5", "k"), ()),
    (V, "SET with both NX and XX", ("set", "k", "v", "nx", "xx"), ()),
    (P, "RENAME of a missing key", ("rename", "missing5", "other"), ()),
    (V, "SETBIT with a negative offset", ("setbit", "k", -1, 1), ()),
    (V, "EXPIRE with a non-integer time", ("expire", "k", "soon"), (("set", "k", "v"),)),
):
    case(_label, "redis", "redis", f"Redis 7.0: {_what}", H)(
        lambda _c=_command, _s=_setup: _redis_cmd(*_c, setup=_s)
    )


@case(P, "redis", "redis", "Redis 7.0: ACL user running a command it was not granted", H)
def rs_noperm_cmd() -> object:
    import redis

    with _redis_server() as port:
        _redis(port).execute_command("acl", "setuser", "etl5", "on", ">pw", "~*", "+get")
        return redis.Redis(port=port, username="etl5", password="pw").set("k", "v")


@case(T, "redis", "redis", "redis-py: connect to a refused port", H)
def rs_refused() -> object:
    import redis

    return redis.Redis(port=refused_port(), socket_connect_timeout=2).ping()


@case(TO, "redis", "redis", "redis-py: socket_timeout against a server that never replies", H)
def rs_silent() -> object:
    import redis

    with tcp_script(replies=[]) as port:
        return redis.Redis(port=port, socket_timeout=0.3).ping()


@case(V, "redis", "redis", "redis-py: from_url of an unsupported scheme", H)
def rs_bad_url() -> object:
    import redis

    return redis.Redis.from_url("htp://127.0.0.1:6379/0")


# -- requests / httpx / aiohttp / urllib against a scripted 127.0.0.1 server -----------------------
def _requests(status: int, body: bytes = b"") -> object:
    import requests

    with http_server(status, body=body) as url:
        return requests.get(f"{url}/v1/orders", timeout=3).raise_for_status()


for _label, _status in ((V, 400), (P, 401), (P, 413), (T, 503)):
    case(_label, "http", "requests", f"requests: HTTP {_status} from raise_for_status (5)", H)(
        lambda _status=_status: _requests(_status)
    )


@case(V, "http", "requests", "requests: URL without a scheme", H)
def requests_no_scheme() -> object:
    import requests

    return requests.get("orders.csv", timeout=1)


@case(V, "http", "requests", "requests: URL without a host", H)
def requests_no_host() -> object:
    import requests

    return requests.get("http://", timeout=1)


@case(V, "http", "requests", "requests: resp.json() of an HTML body", H)
def requests_not_json() -> object:
    import requests

    with http_server(200, body=b"<html>maintenance</html>", content_type="text/html") as url:
        return requests.get(url, timeout=3).json()


@case(P, "http", "requests", "requests: a redirect loop", H)
def requests_redirects() -> object:
    import requests

    with http_server(302, headers={"Location": "/again"}) as url:
        return requests.get(url, timeout=3)


@case(T, "http", "requests", "requests: connect to a refused port (5)", H)
def requests_refused() -> object:
    import requests

    return requests.post(f"http://127.0.0.1:{refused_port()}/ingest", json={}, timeout=2)


def _httpx(status: int) -> object:
    import httpx

    with http_server(status) as url:
        return httpx.post(f"{url}/v1/load", timeout=3).raise_for_status()


for _label, _status in ((V, 400), (P, 401), (TO, 408), (T, 500)):
    case(_label, "http", "httpx", f"httpx: HTTP {_status} POST raise_for_status", H)(
        lambda _status=_status: _httpx(_status)
    )


@case(V, "http", "httpx", "httpx: URL without a protocol", H)
def httpx_no_scheme() -> object:
    import httpx

    return httpx.get("127.0.0.1/orders", timeout=1)


@case(T, "http", "httpx", "httpx: connect to a refused port (5)", H)
def httpx_refused() -> object:
    import httpx

    return httpx.get(f"http://127.0.0.1:{refused_port()}/orders", timeout=2)


@case(TO, "http", "httpx", "httpx: pool timeout with one connection busy", H)
def httpx_pool() -> object:
    import httpx

    with http_server(200, delay=1.5) as url:
        limits = httpx.Limits(max_connections=1)
        timeout = httpx.Timeout(5.0, pool=0.2)
        with httpx.Client(limits=limits, timeout=timeout) as client:
            busy = threading.Thread(target=lambda: client.get(url), daemon=True)
            busy.start()
            time.sleep(0.3)
            try:
                return client.get(url)
            finally:
                busy.join()


@case(P, "http", "httpx", "httpx: a redirect loop with follow_redirects", H)
def httpx_redirects() -> object:
    import httpx

    with http_server(302, headers={"Location": "/again"}) as url:
        return httpx.get(url, follow_redirects=True, timeout=3)


@case(V, "http", "httpx", "httpx: gzip Content-Encoding over a body that is not gzip", H)
def httpx_bad_gzip() -> object:
    import httpx

    with http_server(200, headers={"Content-Encoding": "gzip"}, body=b"not gzip") as url:
        return httpx.get(url, timeout=3)


def _aiohttp(url: str, **kwargs: object) -> object:
    import asyncio

    import aiohttp

    async def go() -> object:
        async with aiohttp.ClientSession(**kwargs) as session, session.get(url) as resp:  # type: ignore[arg-type]
            resp.raise_for_status()
            return await resp.read()

    return asyncio.run(go())


for _label, _status in ((V, 400), (P, 404), (T, 503)):
    case(_label, "http", "aiohttp", f"aiohttp: HTTP {_status} raise_for_status (5)", H)(
        lambda _status=_status: _aiohttp_status(_status)
    )


def _aiohttp_status(status: int) -> object:
    with http_server(status) as url:
        return _aiohttp(f"{url}/v1/orders")


@case(T, "http", "aiohttp", "aiohttp: connect to a refused port (5)", H)
def aiohttp_refused() -> object:
    return _aiohttp(f"http://127.0.0.1:{refused_port()}/orders")


@case(TO, "http", "aiohttp", "aiohttp: sock_read timeout against a slow server", H)
def aiohttp_sock_read() -> object:
    import aiohttp

    with http_server(200, delay=2.0) as url:
        return _aiohttp(url, timeout=aiohttp.ClientTimeout(sock_read=0.3))


@case(V, "http", "aiohttp", "aiohttp: URL that is not absolute", H)
def aiohttp_relative() -> object:
    return _aiohttp("/v1/orders")


@case(P, "http", "aiohttp", "aiohttp: a redirect loop", H)
def aiohttp_redirects() -> object:
    with http_server(302, headers={"Location": "/again"}) as url:
        return _aiohttp(url)


def _urllib(status: int) -> object:
    import urllib.request

    with http_server(status) as url:
        return urllib.request.urlopen(f"{url}/v1/orders", timeout=3)


for _label, _status in ((P, 401), (V, 400), (T, 429), (P, 404)):
    case(_label, "http", "python", f"urllib.request: HTTP {_status} (5)", H)(
        lambda _status=_status: _urllib(_status)
    )


@case(V, "http", "python", "urllib.request: URL with an unknown type", H)
def urllib_unknown_type() -> object:
    import urllib.request

    return urllib.request.urlopen("orders.csv", timeout=1)


@case(T, "http", "python", "urllib.request: connect to a refused port (5)", H)
def urllib_refused() -> object:
    import urllib.request

    return urllib.request.urlopen(f"http://127.0.0.1:{refused_port()}/x", timeout=2)


@case(V, "http", "python", "http.client: port that is not a number", H)
def http_client_port() -> object:
    import http.client

    return http.client.HTTPConnection("127.0.0.1:abc")


# -- botocore against a scripted endpoint ----------------------------------------------------------
for _label, _status, _code, _message, _call in (
    (P, 404, "NoSuchBucket", "The specified bucket does not exist", "get_object"),
    (T, 503, "SlowDown", "Please reduce your request rate.", "get_object"),
    (
        P,
        403,
        "InvalidAccessKeyId",
        "The AWS Access Key Id you provided does not exist in our records.",
        "get_object",
    ),
    (P, 400, "ExpiredToken", "The provided token has expired.", "get_object"),
    (V, 400, "InvalidBucketName", "The specified bucket is not valid.", "create_bucket"),
    (
        V,
        400,
        "MalformedXML",
        "The XML you provided was not well-formed or did not validate against our published schema",
        "create_bucket",
    ),
    (T, 500, "InternalError", "We encountered an internal error. Please try again.", "get_object"),
):
    case(_label, "botocore", "botocore", f"botocore S3 error {_code} ({_status}) (5)", H)(
        lambda _s=_status, _c=_code, _m=_message, _k=_call: _s3_error(_s, _c, _m, _k)
    )


def _dynamo(status: int, code: str, message: str) -> object:
    import boto3
    from botocore.config import Config

    body = json.dumps(
        {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": message}
    ).encode()
    with http_server(status, body=body, content_type="application/x-amz-json-1.0") as url:
        client = boto3.client(
            "dynamodb",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="AKIDEXAMPLE",
            aws_secret_access_key="x",
            config=Config(retries={"total_max_attempts": 1}),
        )
        return client.put_item(TableName="orders", Item={"id": {"S": "1"}})


for _label, _status, _code, _message in (
    (V, 400, "ConditionalCheckFailedException", "The conditional request failed"),
    (
        T,
        400,
        "ProvisionedThroughputExceededException",
        "The level of configured provisioned throughput for the table was exceeded. "
        "Consider increasing your provisioning level with the UpdateTable API.",
    ),
    (P, 400, "ResourceNotFoundException", "Requested resource not found"),
    (
        V,
        400,
        "ValidationException",
        "One or more parameter values were invalid: Missing the key id in the item",
    ),
    (T, 400, "ThrottlingException", "Rate of requests exceeds the allowed throughput."),
):
    case(_label, "botocore", "botocore", f"botocore DynamoDB {_code} ({_status})", H)(
        lambda _s=_status, _c=_code, _m=_message: _dynamo(_s, _c, _m)
    )


@case(V, "botocore", "botocore", "botocore: get_object without the required Key", H)
def boto_param() -> object:
    import boto3

    client = boto3.client(
        "s3", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b"
    )
    return client.get_object(Bucket="reports")


@case(TO, "botocore", "botocore", "botocore: read_timeout against a slow endpoint", H)
def boto_read_timeout() -> object:
    import boto3
    from botocore.config import Config

    with http_server(200, delay=2.0) as url:
        client = boto3.client(
            "s3",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="a",
            aws_secret_access_key="b",
            config=Config(read_timeout=0.3, retries={"total_max_attempts": 1}),
        )
        return client.list_buckets()


# -- google-cloud-bigquery against a scripted endpoint (documented error bodies) -------------------
for _label, _status, _reason, _message in (
    (V, 400, "invalidQuery", "Syntax error: Unexpected keyword FROM at [1:8]"),
    (P, 409, "duplicate", "Already Exists: Table proj:sales.orders"),
    (
        P,
        403,
        "quotaExceeded",
        "Quota exceeded: Your project exceeded quota for free query bytes scanned.",
    ),
    (P, 404, "notFound", "Not found: Table proj:sales.orders was not found in location US"),
    (P, 403, "responseTooLarge", "Response too large to return."),
    (P, 401, "unauthorized", "Request had invalid authentication credentials."),
    (T, 500, "internalError", "Internal error encountered."),
):
    case(_label, "bigquery", "google-cloud-bigquery", f"BigQuery {_reason} ({_status}) (5)", H)(
        lambda _s=_status, _r=_reason, _m=_message: _bq(_s, _r, _m)
    )


# -- sqlite3 ---------------------------------------------------------------------------------------
def _sqlite(*statements: str, fk: bool = False) -> object:
    conn = sqlite3.connect(":memory:")
    if fk:
        conn.execute("pragma foreign_keys = on")
    conn.execute("create table customers (id integer primary key)")
    conn.execute("create table orders (id integer primary key, customer int references customers)")
    result: object = None
    for statement in statements:
        result = conn.execute(statement)
    return result


for _label, _what, _stmts, _fk in (
    (V, "call of an unknown function", ("select nope5(1)",), False),
    (V, "ambiguous column in a join", ("select id from orders, customers",), False),
    (V, "FOREIGN KEY violation", ("insert into orders values (1, 9)",), True),
    (P, "RELEASE of a missing savepoint", ("release sp5",), False),
    (P, "CREATE INDEX with an existing name", ("create index i5 on orders(id)",) * 2, False),
):
    case(_label, "sqlite", "python", f"sqlite3 (5): {_what}", H)(
        lambda _s=_stmts, _f=_fk: _sqlite(*_s, fk=_f)
    )


@case(P, "sqlite", "python", "sqlite3: INSERT on a database opened read-only", H)
def sqlite_readonly() -> object:
    path = tempfile.mktemp(suffix=".db")
    sqlite3.connect(path).execute("create table t (a int)").connection.commit()
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True).execute("insert into t values (1)")


@case(P, "sqlite", "python", "sqlite3: connect to a path in a missing directory", H)
def sqlite_missing_dir() -> object:
    return sqlite3.connect("/tmp/no_such_dir_5/x/warehouse.db")


@case(V, "sqlite", "python", "sqlite3: a dict bound to a positional parameter list", H)
def sqlite_bad_param() -> object:
    return sqlite3.connect(":memory:").execute("select ?", ({"a": 1},))


# -- SQLAlchemy ------------------------------------------------------------------------------------
def _sa_pg() -> object:
    import os

    import sqlalchemy as sa

    host, port, user, password, db = os.environ["PIPESTATE_CORPUS_PG"].split()
    return sa.create_engine(f"postgresql+psycopg2://{user}:{password}@{host}:{port}/{db}")


@case(P, "sqlalchemy", "SQLAlchemy", "SQLAlchemy: reflect a table that does not exist", H)
def sa_no_table() -> object:
    import sqlalchemy as sa

    engine = sa.create_engine("sqlite://")
    return sa.Table("events5", sa.MetaData(), autoload_with=engine)


@case(P, "sqlalchemy", "SQLAlchemy", "SQLAlchemy: fetchall on a result that returns no rows", H)
def sa_no_rows() -> object:
    import sqlalchemy as sa

    with sa.create_engine("sqlite://").connect() as conn:
        return conn.execute(sa.text("create table t (a int)")).fetchall()


@case(V, "sqlalchemy", "SQLAlchemy", "SQLAlchemy + psycopg2: unknown column", H)
def sa_pg_column() -> object:
    import sqlalchemy as sa

    _pg_table()
    with _sa_pg().connect() as conn:  # type: ignore[attr-defined]
        return conn.execute(sa.text("select amount5 from orders"))


@case(TO, "sqlalchemy", "SQLAlchemy", "SQLAlchemy + psycopg2: statement_timeout", H)
def sa_pg_timeout() -> object:
    import sqlalchemy as sa

    with _sa_pg().connect() as conn:  # type: ignore[attr-defined]
        conn.execute(sa.text("set statement_timeout = 100"))
        return conn.execute(sa.text("select pg_sleep(2)"))


@case(P, "sqlalchemy", "SQLAlchemy", "SQLAlchemy + psycopg2: wrong password", H)
def sa_pg_password() -> object:
    import os

    import sqlalchemy as sa

    host, port, user, _, db = os.environ["PIPESTATE_CORPUS_PG"].split()
    engine = sa.create_engine(f"postgresql+psycopg2://{user}:wrong@{host}:{port}/{db}")
    return engine.connect()


@case(V, "sqlalchemy", "SQLAlchemy", "SQLAlchemy + pymysql: duplicate primary key", H)
def sa_my_duplicate() -> object:
    import os

    import sqlalchemy as sa

    _my_table()
    host, port, user, password, db = os.environ["PIPESTATE_CORPUS_MYSQL"].split()
    engine = sa.create_engine(f"mysql+pymysql://{user}:{password}@{host}:{port}/{db}")
    with engine.connect() as conn:
        return conn.execute(sa.text("insert into customers values (1)"))


# -- pyarrow ---------------------------------------------------------------------------------------
@case(V, "pyarrow", "pyarrow", "pyarrow.parquet: read of a file that is not parquet", H)
def pq_not_parquet() -> object:
    import pyarrow.parquet as pq

    with tempfile.NamedTemporaryFile(suffix=".parquet", delete=False) as handle:
        handle.write(b"id,qty\n1,2\n")
    return pq.read_table(handle.name)


@case(V, "pyarrow", "pyarrow", "pyarrow.csv: a value that does not convert to int64", H)
def csv_convert() -> object:
    import io

    import pyarrow as pa
    import pyarrow.csv as pcsv

    options = pcsv.ConvertOptions(column_types={"qty": pa.int64()})
    return pcsv.read_csv(io.BytesIO(b"id,qty\n1,2\n2,many\n"), convert_options=options)


@case(V, "pyarrow", "pyarrow", "pyarrow: pa.array of ints typed as string", H)
def pa_int_as_string() -> object:
    import pyarrow as pa

    return pa.array([1, 2], type=pa.string())


@case(V, "pyarrow", "pyarrow", "pyarrow: Table.select of a missing column", H)
def pa_select_missing() -> object:
    import pyarrow as pa

    return pa.table({"id": [1]}).select(["qty"])


@case(V, "pyarrow", "pyarrow", "pyarrow: safe cast of 1.5 to int64", H)
def pa_truncate() -> object:
    import pyarrow as pa

    return pa.array([1.5]).cast(pa.int64())


@case(V, "pyarrow", "pyarrow", "pyarrow: cast of 300 to int8", H)
def pa_int8() -> object:
    import pyarrow as pa

    return pa.array([300]).cast(pa.int8())


# -- pydantic --------------------------------------------------------------------------------------
def _order_model() -> type:
    import datetime
    from typing import Literal

    import pydantic

    class Order(pydantic.BaseModel):
        id: int
        email: str = pydantic.Field(min_length=3)
        placed: datetime.date
        state: Literal["new", "paid"]

    return Order


_GOOD = {"id": 1, "email": "a@b.c", "placed": "2024-01-01", "state": "new"}
for _what, _change in (
    ("missing required field", {"id": None}),
    ("string shorter than min_length", {"email": "a"}),
    ("date field given '2024-13-01'", {"placed": "2024-13-01"}),
    ("Literal field given another value", {"state": "shipped"}),
):
    case(V, "pydantic", "pydantic", f"pydantic: {_what}", H)(
        lambda _c=_change: _order_model().model_validate(
            {k: v for k, v in {**_GOOD, **_c}.items() if v is not None}
        )
    )


# -- jsonschema ------------------------------------------------------------------------------------
_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]+$"},
        "tags": {"type": "array", "maxItems": 2},
    },
    "additionalProperties": False,
}
for _what, _doc in (
    ("string where an integer is required", {"id": "abc"}),
    ("string not matching a pattern", {"sku": "abc"}),
    ("additional property not allowed", {"id": 1, "note": "x"}),
    ("array longer than maxItems", {"tags": [1, 2, 3]}),
):
    case(V, "jsonschema", "jsonschema", f"jsonschema: {_what}", H)(
        lambda _d=_doc: __import__("jsonschema").validate(_d, _SCHEMA)
    )


@case(V, "jsonschema", "jsonschema", "jsonschema: a schema with an unknown type", H)
def jsonschema_bad_schema() -> object:
    import jsonschema

    return jsonschema.validate({}, {"type": "nope"})


# -- smtplib against a scripted server -------------------------------------------------------------
_EHLO = b"250-mx.example.com\r\n250 SIZE 1000\r\n"
for _label, _what, _replies in (
    (P, "550 on RCPT TO", [_EHLO, b"250 ok\r\n", b"550 5.1.1 User unknown\r\n"]),
    (T, "452 on RCPT TO", [_EHLO, b"250 ok\r\n", b"452 4.2.2 Insufficient system storage\r\n"]),
    (P, "553 on MAIL FROM", [_EHLO, b"553 5.7.1 Sender address rejected: not owned\r\n"]),
    (
        T,
        "421 on DATA",
        [_EHLO, b"250 ok\r\n", b"250 ok\r\n", b"421 4.3.2 Service shutting down\r\n"],
    ),
    (
        P,
        "554 after the message body",
        [
            _EHLO,
            b"250 ok\r\n",
            b"250 ok\r\n",
            b"354 go ahead\r\n",
            b"554 5.7.1 Message rejected as spam\r\n",
        ],
    ),
):
    case(_label, "smtp", "python", f"smtplib (5): {_what}", H)(lambda _r=_replies: _smtp(_r))


@case(P, "smtp", "python", "smtplib: login rejected with 535", H)
def smtp_auth() -> object:
    import smtplib

    replies = [b"250-mx.example.com\r\n250 AUTH PLAIN\r\n", b"535 5.7.8 Authentication failed\r\n"]
    with (
        tcp_script(greeting=b"220 mx.example.com ESMTP\r\n", replies=replies) as port,
        contextlib.closing(smtplib.SMTP("127.0.0.1", port, timeout=3)) as smtp,
    ):
        return smtp.login("etl", "wrong")


@case(T, "smtp", "python", "smtplib: connect to a refused port", H)
def smtp_refused() -> object:
    import smtplib

    return smtplib.SMTP("127.0.0.1", refused_port(), timeout=2)


# -- kafka-python ----------------------------------------------------------------------------------
@case(V, "kafka", "kafka-python", "kafka-python: producer given an unknown option", H)
def kafka_unknown_option() -> object:
    from kafka import KafkaProducer

    return KafkaProducer(bootstrap_servers="127.0.0.1:1", linger_msec=5)


@case(TO, "kafka", "kafka-python", "kafka-python: admin client with no reachable broker", H)
def kafka_admin_refused() -> object:
    from kafka import KafkaAdminClient

    return KafkaAdminClient(
        bootstrap_servers=f"127.0.0.1:{refused_port()}", request_timeout_ms=1500
    )


_ = (_redis_server, _pg)


# -- more connection, lock and time-budget failures (the kinds a pipeline meets most) --------------
@case(T, "mysql", "pymysql", "MariaDB 10.11: query interrupted by KILL QUERY", H)
def my_kill_query() -> object:
    conn = _my()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            conn.cursor().execute("select sleep(3)")
        except BaseException as exc:
            errors.append(exc)

    runner = threading.Thread(target=run)
    runner.start()
    time.sleep(0.4)
    _my().cursor().execute(f"kill query {conn.thread_id()}")
    runner.join()
    if errors:
        raise errors[0]
    return conn.cursor().execute("select 1")


@case(T, "sqlalchemy", "SQLAlchemy", "SQLAlchemy + pymysql: lock wait timeout", H)
def sa_my_lock_wait() -> object:
    import os

    import sqlalchemy as sa

    _my_table()
    holder = _my()
    holder.autocommit(False)
    holder.cursor().execute("select * from orders where id = 1 for update")
    host, port, user, password, db = os.environ["PIPESTATE_CORPUS_MYSQL"].split()
    engine = sa.create_engine(f"mysql+pymysql://{user}:{password}@{host}:{port}/{db}")
    try:
        with engine.connect() as conn:
            return conn.execute(sa.text("update orders set qty = 5 where id = 1"))
    finally:
        holder.rollback()


def _chunked_then_close() -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/csv\r\n\r\n5\r\nid,qt"
    )


@case(T, "http", "httpx", "httpx: chunked body cut off by the server", H)
def httpx_chunked() -> object:
    import httpx
    from error_corpus_batch4 import _raw_http

    with _raw_http(_chunked_then_close()) as port:
        return httpx.get(f"http://127.0.0.1:{port}/export", timeout=3).content


@case(T, "http", "aiohttp", "aiohttp: chunked body cut off by the server", H)
def aiohttp_chunked() -> object:
    from error_corpus_batch4 import _raw_http

    with _raw_http(_chunked_then_close()) as port:
        return _aiohttp(f"http://127.0.0.1:{port}/export")


for _label, _status, _code, _message in (
    (
        T,
        400,
        "TransactionConflictException",
        "Transaction is ongoing for the item",
    ),
    (
        T,
        400,
        "RequestLimitExceeded",
        "Throughput exceeds the current throughput limit for your account. Please contact AWS "
        "Support at https://aws.amazon.com/support request a limit increase",
    ),
):
    case(_label, "botocore", "botocore", f"botocore DynamoDB {_code} ({_status})", H)(
        lambda _s=_status, _c=_code, _m=_message: _dynamo(_s, _c, _m)
    )


for _label, _status, _reason, _message in (
    (
        T,
        403,
        "jobRateLimitExceeded",
        "Exceeded rate limits: too many concurrent queries for this project_and_region.",
    ),
    (T, 502, "badGateway", "Bad Gateway"),
):
    case(_label, "bigquery", "google-cloud-bigquery", f"BigQuery {_reason} ({_status}) (5)", H)(
        lambda _s=_status, _r=_reason, _m=_message: _bq(_s, _r, _m)
    )


@case(T, "smtp", "python", "smtplib (5): 451 on MAIL FROM", H)
def smtp_451_mail() -> object:
    return _smtp([_EHLO, b"451 4.7.1 Greylisted, please try again in 300 seconds\r\n"])


@case(TO, "http", "httpx", "httpx: write timeout against a server that never reads", H)
def httpx_write_timeout() -> object:
    import socket

    import httpx

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]
    try:
        timeout = httpx.Timeout(5.0, write=0.3)
        return httpx.post(
            f"http://127.0.0.1:{port}/upload", content=b"x" * 64_000_000, timeout=timeout
        )
    finally:
        listener.close()


@case(TO, "sqlalchemy", "SQLAlchemy", "SQLAlchemy + pymysql: query past max_statement_time", H)
def sa_my_statement_time() -> object:
    import os

    import sqlalchemy as sa

    host, port, user, password, db = os.environ["PIPESTATE_CORPUS_MYSQL"].split()
    engine = sa.create_engine(f"mysql+pymysql://{user}:{password}@{host}:{port}/{db}")
    with engine.connect() as conn:
        conn.execute(sa.text("set session max_statement_time = 0.2"))
        return conn.execute(sa.text("select sleep(2) from (select 1 union select 2) t"))
