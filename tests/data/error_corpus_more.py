# ruff: noqa: E501 - case tables keep each SQL statement and description on one line
"""Cases for error_corpus_reproduce.py added after the rules were written: only reported.

Every case here is held out ("holdout") or from a library no rule names ("generalisation").
"""

from __future__ import annotations

import sqlite3
import time

from error_corpus_reproduce import TO, P, T, V, case, http_server, refused_port
from error_corpus_servers import (
    _MY,
    _PG,
    _have_redis,
    _my,
    _my_table,
    _pg,
    _pg_table,
    _redis,
    _redis_server,
)

G = "generalisation"
H = "holdout"


@case(V, "sqlite", "python", "sqlite3 call of an unknown SQL function", G)
def sqlite_no_function() -> object:
    return sqlite3.connect(":memory:").execute("select no_such_fn(1)")


@case(V, "sqlite", "python", "sqlite3 incomplete statement", G)
def sqlite_incomplete() -> object:
    return sqlite3.connect(":memory:").execute("select (1")


@case(P, "sqlite", "python", "sqlite3 BEGIN inside a transaction", G)
def sqlite_nested() -> object:
    db = sqlite3.connect(":memory:", isolation_level=None)
    db.execute("begin")
    return db.execute("begin")


@case(V, "duckdb", "duckdb", "read_csv of a file with a ragged row", G)
def duck_csv() -> object:
    import os
    import tempfile

    import duckdb

    path = os.path.join(tempfile.mkdtemp(), "x.csv")
    with open(path, "w") as handle:
        handle.write("id,amount\n1,2\n3,4,5,6\n")
    return (
        duckdb.connect()
        .execute(
            f"select * from read_csv('{path}', strict_mode=true, auto_detect=false, columns={{'id': 'INT', 'amount': 'INT'}})"
        )
        .fetchall()
    )


@case(V, "duckdb", "duckdb", "call of an unknown function", G)
def duck_function() -> object:
    import duckdb

    return duckdb.connect().execute("select no_such_fn(1)")


@case(P, "duckdb", "duckdb", "drop a table a view depends on", G)
def duck_dependency() -> object:
    import duckdb

    db = duckdb.connect()
    db.execute("create table t (a int)")
    db.execute("create index i on t (a)")
    return db.execute("alter table t drop column a")


def _pandas() -> object:
    import pandas

    return pandas


@case(V, "pandas", "pandas", "DataFrame column lookup of a missing column", G)
def pd_keyerror() -> object:
    pd = _pandas()
    return pd.DataFrame({"id": [1]})["amount"]


@case(V, "pandas", "pandas", "read_csv of a ragged file (C parser)", G)
def pd_parser() -> object:
    import io

    pd = _pandas()
    return pd.read_csv(io.StringIO("a,b\n1,2\n3,4,5\n"))


@case(V, "pandas", "pandas", "read_csv of an empty file", G)
def pd_empty() -> object:
    import io

    pd = _pandas()
    return pd.read_csv(io.StringIO(""))


@case(V, "pandas", "pandas", "astype(int) of a column with NaN", G)
def pd_nan() -> object:
    pd = _pandas()
    return pd.Series([1.0, float("nan")]).astype(int)


@case(V, "pandas", "pandas", "to_datetime of an unparseable string", G)
def pd_datetime() -> object:
    pd = _pandas()
    return pd.to_datetime(["2024-01-01", "not a date"], format="%Y-%m-%d")


@case(V, "pandas", "pandas", "merge with validate='one_to_one' on duplicated keys", G)
def pd_merge() -> object:
    pd = _pandas()
    left = pd.DataFrame({"k": [1, 1]})
    return left.merge(pd.DataFrame({"k": [1]}), on="k", validate="one_to_one")


@case(V, "pandas", "pandas", "to_numeric of a non-number", G)
def pd_numeric() -> object:
    pd = _pandas()
    return pd.to_numeric(pd.Series(["1", "x"]))


@case(P, "pandas", "pandas", "read_parquet of a missing file", G)
def pd_parquet() -> object:
    pd = _pandas()
    return pd.read_parquet("/nonexistent/orders.parquet")


def _requests(status: int, headers: dict[str, str] | None = None) -> object:
    import requests

    with http_server(status, headers) as url:
        return requests.get(url + "/v1/orders", timeout=2).raise_for_status()


@case(TO, "http", "requests", "raise_for_status on a local 408", H)
def requests_408() -> object:
    return _requests(408)


@case(P, "http", "requests", "raise_for_status on a local 410", H)
def requests_410() -> object:
    return _requests(410)


@case(V, "http", "requests", "raise_for_status on a local 413", H)
def requests_413() -> object:
    return _requests(413)


@case(T, "http", "requests", "raise_for_status on a local 502", H)
def requests_502() -> object:
    return _requests(502)


@case(T, "http", "httpx", "raise_for_status on a local 502", H)
def httpx_502() -> object:
    import httpx

    with http_server(502) as url:
        return httpx.get(url, timeout=2).raise_for_status()


@case(T, "http", "aiohttp", "GET of a local 429 with Retry-After and raise_for_status", H)
def aiohttp_429() -> object:
    from error_corpus_libraries import _aiohttp

    with http_server(429, {"Retry-After": "2"}) as url:
        return _aiohttp(url + "/v1")


@case(T, "http", "urllib3", "PoolManager GET of a refused port with retries=False", H)
def urllib3_refused() -> object:
    import urllib3

    return urllib3.PoolManager().request(
        "GET", f"http://127.0.0.1:{refused_port()}/", retries=False
    )


@case(TO, "http", "urllib3", "PoolManager GET of a slow server with a 0.2 s read timeout", H)
def urllib3_timeout() -> object:
    import urllib3

    with http_server(200, delay=1.0) as url:
        return urllib3.PoolManager().request(
            "GET", url, retries=False, timeout=urllib3.Timeout(read=0.2)
        )


# -- PostgreSQL / MariaDB / Redis, held out ----------------------------------------------------
if _PG:

    @case(P, "postgres", "psycopg2-binary", "PostgreSQL 15: drop a table a view depends on", H)
    def pg_depends() -> object:
        cur = _pg_table()
        cur.execute("create view v as select * from customers")
        return cur.execute("drop table customers")

    @case(P, "postgres", "psycopg2-binary", "PostgreSQL 15: create an existing table", H)
    def pg_exists() -> object:
        return _pg_table().execute("create table orders (a int)")

    @case(V, "postgres", "psycopg2-binary", "PostgreSQL 15: ambiguous column reference", H)
    def pg_ambiguous() -> object:
        return _pg_table().execute("select id from orders, customers")

    @case(V, "postgres", "psycopg2-binary", "PostgreSQL 15: operator does not exist", H)
    def pg_operator() -> object:
        return _pg_table().execute("select 1 from orders where id = 'a'::text")

    @case(
        P, "postgres", "psycopg2-binary", "PostgreSQL 15: ALTER of a table owned by another role", H
    )
    def pg_owner() -> object:
        _pg_table()
        return (
            _pg(user="reader", password="reader").cursor().execute("alter table orders add b int")
        )

    @case(
        TO, "postgres", "psycopg2-binary", "PostgreSQL 15: idle_in_transaction_session_timeout", H
    )
    def pg_idle() -> object:
        conn = _pg()
        conn.autocommit = False
        cur = conn.cursor()
        cur.execute("set idle_in_transaction_session_timeout = 100")
        cur.execute("select 1")
        time.sleep(0.6)
        return cur.execute("select 1")

    @case(V, "postgres", "psycopg2-binary", "PostgreSQL 15: invalid input for an enum", H)
    def pg_enum() -> object:
        cur = _pg_table()
        cur.execute("drop type if exists mood cascade; create type mood as enum ('ok')")
        return cur.execute("select 'bad'::mood")


if _MY:
    for _label, _what, _sql in (
        (V, "column count does not match", "insert into orders values (2)"),
        (
            V,
            "out of range value (strict mode)",
            "insert into orders values (3000000000, 'x', 1, 1)",
        ),
        (
            V,
            "incorrect date value",
            "select cast('2024-13-45' as date) + interval 1 day from dual where str_to_date('x', '%Y') is not null or 1=1; insert into orders (id, email, qty, customer) values (5, 'y', 1, '1x')",
        ),
        (V, "parent row referenced by a foreign key", "delete from customers where id = 1"),
        (P, "create an existing table", "create table orders (a int)"),
        (P, "call of an unknown function", "select no_such_fn(1)"),
    ):
        case(_label, "mysql", "pymysql", f"MariaDB 10.11: {_what}", H)(
            lambda _sql=_sql: [cur.execute(s) for cur in [_my_table()] for s in _sql.split("; ")]
        )

    @case(T, "mysql", "pymysql", "MariaDB 10.11: read-only server (read_only=1, non-admin user)", H)
    def my_read_only() -> object:
        import pymysql

        root = pymysql.connect(unix_socket="/tmp/mdb/my.sock", user="root")
        root.cursor().execute("set global read_only = 1")
        try:
            return _my().cursor().execute("insert into customers values (9)")
        finally:
            root.cursor().execute("set global read_only = 0")


if _have_redis():

    @case(V, "redis", "redis", "Redis 7.0: INCR of a non-integer value", H)
    def rs_incr() -> object:
        with _redis_server() as port:
            client = _redis(port)
            client.set("k", "abc")
            return client.incr("k")

    @case(T, "redis", "redis", "Redis 7.0: connection past maxclients 1", H)
    def rs_maxclients() -> object:
        with _redis_server("--maxclients", "1") as port:
            first = _redis(port)
            first.ping()
            return _redis(port).ping()

    @case(P, "redis", "redis", "Redis 7.0: ACL user without permission for SET", H)
    def rs_noperm() -> object:
        with _redis_server() as port:
            _redis(port).execute_command("ACL", "SETUSER", "reader", "on", ">pw", "~*", "+get")
            return _redis(port, "pw").execute_command("AUTH", "reader", "pw") and __import__(
                "redis"
            ).Redis(port=port, username="reader", password="pw").set("k", "v")

    @case(V, "redis", "redis", "Redis 7.0: EXEC after a queued command with a syntax error", H)
    def rs_execabort() -> object:
        with _redis_server() as port:
            pipe = _redis(port).pipeline(transaction=True)
            pipe.set("k", "v")
            pipe.execute_command("SET")
            return pipe.execute()
