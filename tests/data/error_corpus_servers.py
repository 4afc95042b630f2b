"""Cases for error_corpus_reproduce.py against real local servers (skipped when absent).

PostgreSQL (PIPESTATE_CORPUS_PG="host port user password db"), MariaDB (PIPESTATE_CORPUS_MYSQL,
same shape) and Redis (redis-server on PATH, started here per case on a free port).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator

from error_corpus_reproduce import TO, P, T, V, case, refused_port

H = "holdout"
_PG = os.environ.get("PIPESTATE_CORPUS_PG", "").split()
_MY = os.environ.get("PIPESTATE_CORPUS_MYSQL", "").split()


# -- PostgreSQL 15 via psycopg2 ----------------------------------------------------------------
def _pg(user: str | None = None, password: str | None = None, db: str | None = None) -> object:
    import psycopg2

    host, port, default_user, default_password, default_db = _PG
    conn = psycopg2.connect(
        host=host,
        port=int(port),
        user=user or default_user,
        password=password or default_password,
        dbname=db or default_db,
        connect_timeout=3,
    )
    conn.autocommit = True
    return conn


def _pg_table() -> object:
    conn = _pg()
    cur = conn.cursor()
    cur.execute("drop table if exists orders cascade; drop table if exists customers cascade")
    cur.execute("create table customers (id int primary key)")
    cur.execute(
        "create table orders (id int primary key, email varchar(10) not null unique, "
        "qty int check (qty > 0), customer int references customers(id), placed date)"
    )
    cur.execute("insert into customers values (1)")
    cur.execute("insert into orders values (1, 'a@b.c', 1, 1, '2024-01-01')")
    return cur


def _pg_case(label: str, what: str, sql: str, split: str = "tune") -> None:
    case(label, "postgres", "psycopg2-binary", f"PostgreSQL 15: {what}", split)(
        lambda: _pg_table().execute(sql)
    )


for _label, _what, _sql, _split in (
    (V, "duplicate key", "insert into orders values (2, 'a@b.c', 1, 1, null)", "tune"),
    (V, "NULL into NOT NULL", "insert into orders values (2, null, 1, 1, null)", H),
    (V, "CHECK violation", "insert into orders values (2, 'x', -1, 1, null)", "tune"),
    (V, "foreign key violation", "insert into orders values (2, 'x', 1, 99, null)", H),
    (V, "invalid integer input", "select 'abc'::int", "tune"),
    (V, "division by zero", "select 1/0", H),
    (
        V,
        "value too long for varchar(10)",
        "insert into orders values (2, 'abcdefghijkl', 1, 1, null)",
        H,
    ),
    (V, "integer out of range", "select 2147483647::int + 1", "tune"),
    (V, "syntax error", "selec * from orders", H),
    (V, "undefined column", "select amount from orders", "tune"),
    (V, "invalid date", "select '2024-13-45'::date", H),
    (V, "undefined function", "select no_such_fn(1)", H),
    (P, "undefined table", "select * from events", "tune"),
    (P, "missing schema", "create table staging.x (a int)", H),
    (TO, "statement_timeout = 100ms", "set statement_timeout = 100; select pg_sleep(2)", "tune"),
    (T, "write in a read-only transaction", "begin read only; insert into customers values (5)", H),
):
    _pg_case(_label, _what, _sql, _split)


@case(P, "postgres", "psycopg2-binary", "PostgreSQL 15: wrong password")
def pg_password() -> object:
    return _pg(password="wrong")


@case(P, "postgres", "psycopg2-binary", "PostgreSQL 15: database that does not exist", H)
def pg_no_db() -> object:
    return _pg(db="no_such_db")


@case(P, "postgres", "psycopg2-binary", "PostgreSQL 15: table without privilege (role reader)")
def pg_privilege() -> object:
    _pg_table()
    return _pg(user="reader", password="reader").cursor().execute("select * from orders")


@case(
    T, "postgres", "psycopg2-binary", "PostgreSQL 15: second connection of a role limited to 1", H
)
def pg_too_many() -> object:
    first = _pg(user="reader", password="reader")  # noqa: F841 - holds the only slot
    return _pg(user="reader", password="reader")


@case(T, "postgres", "psycopg2-binary", "PostgreSQL 15: backend terminated by pg_terminate_backend")
def pg_terminated() -> object:
    conn = _pg()
    pid = conn.get_backend_pid()
    _pg().cursor().execute("select pg_terminate_backend(%s)", (pid,))
    time.sleep(0.2)
    return conn.cursor().execute("select 1")


@case(T, "postgres", "psycopg2-binary", "PostgreSQL 15: lock_timeout on a row locked elsewhere", H)
def pg_lock_timeout() -> object:
    _pg_table()
    holder = _pg()
    holder.autocommit = False
    holder.cursor().execute("select * from orders where id = 1 for update")
    cur = _pg().cursor()
    cur.execute("set lock_timeout = 100")
    return cur.execute("update orders set qty = 2 where id = 1")


def _pg_two(sql_a: tuple[str, str], sql_b: tuple[str, str], level: str) -> object:
    """Two transactions interleaved so that the second fails (deadlock or serialization)."""
    _pg_table()
    _pg().cursor().execute("insert into customers values (2)")
    a, b = _pg(), _pg()
    a.autocommit = b.autocommit = False
    a.set_session(isolation_level=level)
    b.set_session(isolation_level=level)
    ca, cb = a.cursor(), b.cursor()
    ca.execute(sql_a[0])
    cb.execute(sql_b[0])
    errors: list[BaseException] = []

    def second_a() -> None:
        try:
            ca.execute(sql_a[1])
            a.commit()
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=second_a)
    thread.start()
    time.sleep(0.3)
    try:
        cb.execute(sql_b[1])
        b.commit()
    except BaseException as exc:
        errors.append(exc)
    thread.join()
    raise errors[0]


@case(
    T,
    "postgres",
    "psycopg2-binary",
    "PostgreSQL 15: two transactions locking rows in opposite order",
)
def pg_deadlock() -> object:
    return _pg_two(
        ("update customers set id = id where id = 1", "update customers set id = id where id = 2"),
        ("update customers set id = id where id = 2", "update customers set id = id where id = 1"),
        "READ COMMITTED",
    )


@case(T, "postgres", "psycopg2-binary", "PostgreSQL 15: concurrent update under REPEATABLE READ", H)
def pg_serialization() -> object:
    _pg_table()
    a, b = _pg(), _pg()
    a.autocommit = b.autocommit = False
    a.set_session(isolation_level="REPEATABLE READ")
    b.set_session(isolation_level="REPEATABLE READ")
    a.cursor().execute("select * from orders")
    b.cursor().execute("update orders set qty = 3 where id = 1")
    b.commit()
    return a.cursor().execute("update orders set qty = 4 where id = 1")


@case(T, "postgres", "psycopg2-binary", "PostgreSQL 15: connect to a refused port", H)
def pg_refused() -> object:
    import psycopg2

    return psycopg2.connect(host="127.0.0.1", port=refused_port(), user="etl", connect_timeout=2)


# -- MariaDB via pymysql -----------------------------------------------------------------------
def _my(user: str | None = None, password: str | None = None, db: str | None = None) -> object:
    import pymysql

    host, port, default_user, default_password, default_db = _MY
    return pymysql.connect(
        host=host,
        port=int(port),
        user=user or default_user,
        password=password or default_password,
        database=db or default_db,
        connect_timeout=3,
        autocommit=True,
    )


def _my_table() -> object:
    cur = _my().cursor()
    cur.execute("set sql_mode = 'STRICT_ALL_TABLES'")
    cur.execute("drop table if exists orders")
    cur.execute("drop table if exists customers")
    cur.execute("create table customers (id int primary key) engine=innodb")
    cur.execute(
        "create table orders (id int primary key, email varchar(10) not null unique, "
        "qty int, customer int, foreign key (customer) references customers(id)) engine=innodb"
    )
    cur.execute("insert into customers values (1)")
    cur.execute("insert into orders values (1, 'a@b.c', 1, 1)")
    return cur


for _label, _what, _sql, _split in (
    (V, "duplicate entry", "insert into orders values (2, 'a@b.c', 1, 1)", "tune"),
    (V, "NULL into NOT NULL", "insert into orders values (2, null, 1, 1)", H),
    (
        V,
        "data too long (strict mode)",
        "insert into orders values (2, 'abcdefghijkl', 1, 1)",
        "tune",
    ),
    (V, "incorrect integer value (strict mode)", "insert into orders values (2, 'x', 'abc', 1)", H),
    (V, "foreign key violation", "insert into orders values (2, 'x', 1, 99)", H),
    (V, "syntax error", "selec * from orders", "tune"),
    (V, "unknown column", "select amount from orders", H),
    (P, "table does not exist", "select * from events", "tune"),
):
    case(_label, "mysql", "pymysql", f"MariaDB 10.11: {_what}", _split)(
        lambda _sql=_sql: [cur.execute(s) for cur in [_my_table()] for s in _sql.split("; ")]
    )


@case(P, "mysql", "pymysql", "MariaDB 10.11: wrong password")
def my_password() -> object:
    return _my(password="wrong")


@case(P, "mysql", "pymysql", "MariaDB 10.11: unknown database", H)
def my_no_db() -> object:
    return _my(db="no_such_db")


@case(P, "mysql", "pymysql", "MariaDB 10.11: INSERT without the privilege (user reader)", H)
def my_denied() -> object:
    _my_table()
    return (
        _my(user="reader", password="reader").cursor().execute("insert into customers values (7)")
    )


@case(T, "mysql", "pymysql", "MariaDB 10.11: lock wait timeout (innodb_lock_wait_timeout=1)")
def my_lock_wait() -> object:
    _my_table()
    holder = _my()
    holder.autocommit(False)
    holder.cursor().execute("select * from orders where id = 1 for update")
    return _my().cursor().execute("update orders set qty = 2 where id = 1")


@case(T, "mysql", "pymysql", "MariaDB 10.11: deadlock between two transactions", H)
def my_deadlock() -> object:
    cur = _my_table()
    cur.execute("insert into customers values (2)")
    a, b = _my(), _my()
    a.autocommit(False)
    b.autocommit(False)
    ca, cb = a.cursor(), b.cursor()
    ca.execute("update customers set id = id where id = 1")
    cb.execute("update customers set id = id where id = 2")
    errors: list[BaseException] = []

    def second_a() -> None:
        try:
            ca.execute("update customers set id = id where id = 2")
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=second_a)
    thread.start()
    time.sleep(0.3)
    try:
        cb.execute("update customers set id = id where id = 1")
    except BaseException as exc:
        errors.append(exc)
    thread.join()
    raise errors[0]


@case(T, "mysql", "pymysql", "MariaDB 10.11: query on a connection killed by the server")
def my_killed() -> object:
    conn = _my()
    other = _my()
    other.cursor().execute(f"kill {conn.thread_id()}")
    time.sleep(0.2)
    return conn.cursor().execute("select 1")


# -- Redis 7 (redis-server started per case) ---------------------------------------------------
@contextlib.contextmanager
def _redis_server(*args: str) -> Iterator[int]:
    """A redis-server on a free 127.0.0.1 port with extra arguments, stopped afterwards."""
    port = refused_port()
    workdir = tempfile.mkdtemp()
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--dir",
            workdir,
            *args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            with contextlib.suppress(OSError):
                import socket

                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(5)
        shutil.rmtree(workdir, ignore_errors=True)


def _redis(port: int, password: str | None = None) -> object:
    import redis

    return redis.Redis(port=port, password=password, socket_timeout=3)


def _have_redis() -> bool:
    return shutil.which("redis-server") is not None


if _have_redis():

    @case(P, "redis", "redis", "Redis 7.0: command without AUTH on a server with requirepass", H)
    def rs_noauth() -> object:
        with _redis_server("--requirepass", "s3cret") as port:
            return _redis(port).set("k", "v")

    @case(P, "redis", "redis", "Redis 7.0: AUTH with the wrong password")
    def rs_wrongpass() -> object:
        with _redis_server("--requirepass", "s3cret") as port:
            return _redis(port, "wrong").set("k", "v")

    @case(P, "redis", "redis", "Redis 7.0: SET past maxmemory with noeviction", H)
    def rs_oom() -> object:
        with _redis_server("--maxmemory", "1", "--maxmemory-policy", "noeviction") as port:
            return _redis(port).set("k", "v" * 1000)

    @case(V, "redis", "redis", "Redis 7.0: LPUSH onto a string key")
    def rs_wrongtype() -> object:
        with _redis_server() as port:
            client = _redis(port)
            client.set("k", "v")
            return client.lpush("k", "x")

    @case(T, "redis", "redis", "Redis 7.0: write to a read-only replica of an unreachable master")
    def rs_readonly() -> object:
        with _redis_server("--replicaof", "127.0.0.1", str(refused_port())) as port:
            return _redis(port).set("k", "v")

    @case(T, "redis", "redis", "Redis 7.0: read on a replica with replica-serve-stale-data no", H)
    def rs_masterdown() -> object:
        with _redis_server(
            "--replicaof", "127.0.0.1", str(refused_port()), "--replica-serve-stale-data", "no"
        ) as port:
            return _redis(port).get("k")

    @case(P, "redis", "redis", "Redis 7.0: EVALSHA of an unknown script", H)
    def rs_noscript() -> object:
        with _redis_server() as port:
            return _redis(port).evalsha("a" * 40, 0)

    @case(
        T, "redis", "redis", "Redis 7.0: command while a Lua script runs past busy-reply-threshold"
    )
    def rs_busy() -> object:
        with _redis_server("--busy-reply-threshold", "100") as port:
            runner = threading.Thread(
                target=lambda: (
                    contextlib.suppress(Exception).__enter__()
                    or _safe(lambda: _redis(port).eval("local i=0 while i < 3e8 do i=i+1 end", 0))
                ),
                daemon=True,
            )
            runner.start()
            time.sleep(0.4)
            try:
                return _redis(port).get("k")
            finally:
                with contextlib.suppress(Exception):
                    _redis(port).script_kill()


def _safe(func: object) -> None:
    with contextlib.suppress(Exception):
        func()  # type: ignore[operator]
