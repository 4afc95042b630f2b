"""Cases for error_corpus_reproduce.py written after the second rule pass: only reported.

These entries ("batch": 2) were added after every rule change, and no rule was changed after
they were measured; they give the held-out figure of the rules as committed.
"""

from __future__ import annotations

import sqlite3

from error_corpus_reproduce import P, T, V, case, http_server
from error_corpus_servers import (
    _MY,
    _PG,
    _have_redis,
    _my_table,
    _pg,
    _pg_table,
    _redis,
    _redis_server,
)

G = "generalisation"
H = "holdout"


@case(V, "sqlite", "python", "sqlite3 text into an INTEGER PRIMARY KEY", G)
def sqlite_mismatch() -> object:
    db = sqlite3.connect(":memory:")
    db.execute("create table t (id integer primary key)")
    return db.execute("insert into t values ('abc')")


@case(P, "sqlite", "python", "sqlite3 release of an unknown savepoint", G)
def sqlite_savepoint() -> object:
    return sqlite3.connect(":memory:", isolation_level=None).execute("release sp1")


@case(V, "stdlib", "python", "pickle.loads of bytes that are not a pickle", G)
def bad_pickle() -> object:
    import pickle

    return pickle.loads(b"xyz")


@case(V, "stdlib", "python", "ElementTree.fromstring of malformed XML", G)
def bad_xml() -> object:
    import xml.etree.ElementTree as ET

    return ET.fromstring("<a><b></a>")


@case(V, "stdlib", "python", "base64.b64decode(validate=True) of a bad string", G)
def bad_base64() -> object:
    import base64

    return base64.b64decode("abc$", validate=True)


@case(V, "stdlib", "python", "uuid.UUID of a malformed id", H)
def bad_uuid() -> object:
    import uuid

    return uuid.UUID("not-a-uuid")


@case(P, "urllib", "python", "urlopen https:// of a plain-HTTP local server", G)
def urllib_tls() -> object:
    import urllib.request

    with http_server(200) as url:
        return urllib.request.urlopen(url.replace("http://", "https://"), timeout=2)


@case(V, "pandas", "pandas", "pivot with duplicate index entries", G)
def pd_pivot() -> object:
    import pandas as pd

    df = pd.DataFrame({"k": [1, 1], "c": ["a", "a"], "v": [1, 2]})
    return df.pivot(index="k", columns="c", values="v")


@case(V, "pandas", "pandas", "join of frames with overlapping columns and no suffix", G)
def pd_overlap() -> object:
    import pandas as pd

    return pd.DataFrame({"a": [1]}).join(pd.DataFrame({"a": [2]}))


@case(V, "pandas", "pandas", "assigning three column names to two columns", G)
def pd_length() -> object:
    import pandas as pd

    df = pd.DataFrame({"a": [1], "b": [2]})
    df.columns = ["x", "y", "z"]
    return df


@case(V, "duckdb", "duckdb", "NULL into a NOT NULL column", G)
def duck_not_null() -> object:
    import duckdb

    db = duckdb.connect()
    db.execute("create table t (a int not null)")
    return db.execute("insert into t values (null)")


@case(V, "duckdb", "duckdb", "INSERT naming a column the table does not have", G)
def duck_no_column() -> object:
    import duckdb

    db = duckdb.connect()
    db.execute("create table t (a int)")
    return db.execute("insert into t (b) values (1)")


@case(V, "mongodb", "pymongo", "bson encode of an object it cannot encode", G)
def bson_encode() -> object:
    import bson

    return bson.encode({"a": object()})


@case(P, "mongodb", "pymongo", "use of a closed MongoClient", G)
def mongo_closed() -> object:
    import pymongo

    client = pymongo.MongoClient("mongodb://127.0.0.1:1", connect=False)
    client.close()
    return client.db.c.find_one()


@case(P, "ssh", "paramiko", "RSAKey from a file that is not a private key", G)
def ssh_bad_key() -> object:
    import os
    import tempfile

    import paramiko

    path = os.path.join(tempfile.mkdtemp(), "id_rsa")
    with open(path, "w") as handle:
        handle.write("not a key\n")
    return paramiko.RSAKey.from_private_key_file(path)


@case(V, "http", "requests", "GET of a URL with an unclosed IPv6 bracket", H)
def requests_bad_url() -> object:
    import requests

    return requests.get("http://[::1/v1", timeout=2)


def _s3_error(status: int, code: str, message: str) -> object:
    from error_corpus_libraries import _s3_error as s3_error

    return s3_error(status, code, message)


# Messages: Amazon S3's documented error responses for each code.
@case(V, "botocore", "botocore", "get_object answered 400 InvalidBucketName", H)
def s3_bad_bucket() -> object:
    return _s3_error(400, "InvalidBucketName", "The specified bucket is not valid.")


@case(P, "botocore", "botocore", "get_object answered 400 EntityTooLarge", H)
def s3_too_large() -> object:
    return _s3_error(
        400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed object size."
    )


@case(T, "botocore", "botocore", "get_object answered 503 ServiceUnavailable", H)
def s3_unavailable() -> object:
    return _s3_error(503, "ServiceUnavailable", "Reduce your request rate.")


@case(P, "botocore", "botocore", "get_object answered 412 PreconditionFailed", H)
def s3_precondition() -> object:
    return _s3_error(
        412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold"
    )


if _PG:
    for _label, _what, _sql in (
        (V, "parameter type that cannot be determined", "prepare p as select $1; execute p(1)"),
        (V, "column listed twice in an INSERT", "insert into customers (id, id) values (1, 2)"),
        (V, "invalid regular expression", "select 'a' ~ '('"),
        (P, "permission denied for schema", "set role reader; create table public.x (a int)"),
    ):
        case(_label, "postgres", "psycopg2-binary", f"PostgreSQL 15: {_what}", H)(
            lambda _sql=_sql: _pg_table().execute(_sql)
        )

    @case(
        P, "postgres", "psycopg2-binary", "PostgreSQL 15: connect as a role that does not exist", H
    )
    def pg_no_role() -> object:
        return _pg(user="nobody", password="x")


if _MY:
    for _label, _what, _sql in (
        (V, "field without a default value (strict mode)", "insert into customers () values ()"),
        (
            V,
            "incorrect datetime value (strict mode)",
            "create table d (t datetime); insert into d values ('2024-13-45 00:00:00')",
        ),
        (P, "DROP of a column that does not exist", "alter table orders drop column nope"),
    ):
        case(_label, "mysql", "pymysql", f"MariaDB 10.11: {_what}", H)(
            lambda _sql=_sql: [cur.execute(s) for cur in [_my_table()] for s in _sql.split("; ")]
        )


if _have_redis():

    @case(V, "redis", "redis", "Redis 7.0: unknown command", H)
    def rs_unknown() -> object:
        with _redis_server() as port:
            return _redis(port).execute_command("FOO", "bar")

    @case(V, "redis", "redis", "Redis 7.0: SELECT of a database index out of range", H)
    def rs_select() -> object:
        with _redis_server() as port:
            return _redis(port).execute_command("SELECT", "99")
