"""Cases for error_corpus_reproduce.py: the standard library and client libraries, offline.

Labels are the right answer for a pipeline step (would a later attempt succeed?), by hand.
split: "tune" entries were used while writing the rules, "holdout" entries only reported,
"generalisation" entries come from libraries the rule table never names (only reported).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import urllib.request
import zipfile

from error_corpus_reproduce import TO, D, P, T, V, case, http_server, refused_port, tcp_script

G = "generalisation"
H = "holdout"


# -- sqlite3 (standard library; no rule names it) -----------------------------------------------
def _sqlite() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    db.execute(
        "create table t (id integer primary key, name text not null unique, "
        "n integer check (n > 0), p integer references t(id))"
    )
    db.execute("pragma foreign_keys = on")
    db.execute("insert into t values (1, 'a', 1, null)")
    return db


@case(P, "sqlite", "python", "sqlite3 select from a missing table", G)
def sqlite_no_table() -> object:
    return _sqlite().execute("select * from missing")


@case(V, "sqlite", "python", "sqlite3 duplicate insert into a UNIQUE column", G)
def sqlite_unique() -> object:
    return _sqlite().execute("insert into t values (2, 'a', 1, null)")


@case(V, "sqlite", "python", "sqlite3 NULL into a NOT NULL column", G)
def sqlite_not_null() -> object:
    return _sqlite().execute("insert into t values (2, null, 1, null)")


@case(V, "sqlite", "python", "sqlite3 CHECK constraint", G)
def sqlite_check() -> object:
    return _sqlite().execute("insert into t values (2, 'b', -1, null)")


@case(V, "sqlite", "python", "sqlite3 FOREIGN KEY constraint", G)
def sqlite_fk() -> object:
    return _sqlite().execute("insert into t values (2, 'b', 1, 99)")


@case(V, "sqlite", "python", "sqlite3 syntax error", G)
def sqlite_syntax() -> object:
    return _sqlite().execute("selec * from t")


@case(V, "sqlite", "python", "sqlite3 unknown column", G)
def sqlite_column() -> object:
    return _sqlite().execute("select amount from t")


@case(P, "sqlite", "python", "sqlite3 create an existing table", G)
def sqlite_exists() -> object:
    return _sqlite().execute("create table t (x)")


@case(V, "sqlite", "python", "sqlite3 wrong number of bindings", G)
def sqlite_bindings() -> object:
    return _sqlite().execute("select ?", (1, 2))


@case(P, "sqlite", "python", "sqlite3 use of a closed connection", G)
def sqlite_closed() -> object:
    db = _sqlite()
    db.close()
    return db.execute("select 1")


@case(T, "sqlite", "python", "sqlite3 write while another connection holds the write lock", G)
def sqlite_locked() -> object:
    path = os.path.join(tempfile.mkdtemp(), "x.db")
    first = sqlite3.connect(path, isolation_level=None)
    first.execute("create table x (a)")
    first.execute("begin exclusive")
    second = sqlite3.connect(path, timeout=0)
    return second.execute("insert into x values (1)")


@case(P, "sqlite", "python", "sqlite3 open a file in a missing directory", G)
def sqlite_open() -> object:
    return sqlite3.connect("/nonexistent-dir/x.db")


@case(P, "sqlite", "python", "sqlite3 open a file that is not a database", G)
def sqlite_notadb() -> object:
    path = os.path.join(tempfile.mkdtemp(), "x.db")
    with open(path, "wb") as handle:
        handle.write(b"not a database at all" * 100)
    return sqlite3.connect(path).execute("select * from sqlite_master")


@case(P, "sqlite", "python", "sqlite3 write to a read-only database", G)
def sqlite_readonly() -> object:
    path = os.path.join(tempfile.mkdtemp(), "x.db")
    sqlite3.connect(path).execute("create table x (a)")
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True).execute("insert into x values (1)")


@case(V, "sqlite", "python", "sqlite3 bind an unsupported Python type", G)
def sqlite_type() -> object:
    return _sqlite().execute("select ?", (object(),))


# -- urllib / http.client (standard library; not named) ----------------------------------------
def _urlopen(url: str) -> object:
    return urllib.request.urlopen(url, timeout=2)


@case(T, "urllib", "python", "urlopen of a 503 with Retry-After from a local server", G)
def urllib_503() -> object:
    with http_server(503, {"Retry-After": "30"}) as url:
        return _urlopen(url)


@case(P, "urllib", "python", "urlopen of a 404 from a local server", G)
def urllib_404() -> object:
    with http_server(404) as url:
        return _urlopen(url + "/missing")


@case(P, "urllib", "python", "urlopen of a 401 from a local server", G)
def urllib_401() -> object:
    with http_server(401) as url:
        return _urlopen(url)


@case(T, "urllib", "python", "urlopen of a 502 from a local server", G)
def urllib_502() -> object:
    with http_server(502) as url:
        return _urlopen(url)


@case(V, "urllib", "python", "urlopen of a 400 from a local server", G)
def urllib_400() -> object:
    with http_server(400) as url:
        return _urlopen(url)


@case(T, "urllib", "python", "urlopen of a refused local port", G)
def urllib_refused() -> object:
    return _urlopen(f"http://127.0.0.1:{refused_port()}/")


@case(TO, "urllib", "python", "urlopen with timeout=0.2 against a server that answers late", G)
def urllib_timeout() -> object:
    with http_server(200, delay=1.0) as url:
        return urllib.request.urlopen(url, timeout=0.2).read()


@case(T, "urllib", "python", "urlopen against a server that closes without answering", G)
def urllib_remote_closed() -> object:
    with tcp_script(close_after=True) as port:
        return _urlopen(f"http://127.0.0.1:{port}/")


@case(V, "urllib", "python", "urlopen of an unknown URL scheme", G)
def urllib_scheme() -> object:
    return _urlopen("htp://example/")


# -- other standard-library modules a pipeline uses ---------------------------------------------
@case(V, "stdlib", "python", "json.loads of truncated JSON", H)
def json_truncated() -> object:
    return json.loads('{"a": 1')


@case(V, "stdlib", "python", "datetime.strptime with a value that does not fit the format", H)
def strptime() -> object:
    import datetime as dt

    return dt.datetime.strptime("2024-13-45", "%Y-%m-%d")


@case(V, "stdlib", "python", "int() of a non-numeric CSV cell", H)
def int_cell() -> object:
    return int("12a")


@case(V, "stdlib", "python", "zipfile on a file that is not a zip archive", G)
def bad_zip() -> object:
    path = os.path.join(tempfile.mkdtemp(), "x.zip")
    with open(path, "wb") as handle:
        handle.write(b"plain text")
    return zipfile.ZipFile(path)


@case(V, "stdlib", "python", "gzip.decompress of data that is not gzip", G)
def bad_gzip() -> object:
    import gzip

    return gzip.decompress(b"plain text, not gzip")


@case(V, "stdlib", "python", "csv reader in strict mode on a malformed quote", G)
def bad_csv() -> object:
    import csv
    import io

    return list(csv.reader(io.StringIO('a,"b"c\n'), strict=True))


@case(V, "stdlib", "python", "tomllib on a malformed document", G)
def bad_toml() -> object:
    import tomllib

    return tomllib.loads("a = = 1")


@case(V, "stdlib", "python", "decimal.Decimal of a non-number with the InvalidOperation trap", G)
def bad_decimal() -> object:
    import decimal

    return decimal.Decimal("12,5")


@case(P, "stdlib", "python", "subprocess.run(check=True) of a command exiting 1", G)
def called_process() -> object:
    return subprocess.run([sys.executable, "-c", "raise SystemExit(1)"], check=True)


@case(TO, "stdlib", "python", "subprocess.run with timeout=0.2 of a slow command", H)
def subprocess_timeout() -> object:
    return subprocess.run([sys.executable, "-c", "import time; time.sleep(3)"], timeout=0.2)


@case(P, "stdlib", "python", "open() of a missing input file", H)
def missing_file() -> object:
    return open("/nonexistent/input/orders.csv")


@case(P, "stdlib", "python", "open() of a directory", H)
def open_dir() -> object:
    return open("/tmp")


@case(T, "stdlib", "python", "socket.create_connection to a refused local port", H)
def socket_refused() -> object:
    return socket.create_connection(("127.0.0.1", refused_port()), timeout=1)


@case(TO, "stdlib", "python", "asyncio.wait_for of a slow coroutine", H)
def asyncio_timeout() -> object:
    return asyncio.run(asyncio.wait_for(asyncio.sleep(2), 0.05))


@case(P, "stdlib", "python", "getaddrinfo of a name under the reserved .invalid TLD", H)
def dns_invalid() -> object:
    return socket.getaddrinfo("etl-warehouse.invalid", 5432)


@case(T, "smtp", "python", "smtplib against a server greeting 421 (service not available)", G)
def smtp_421() -> object:
    import smtplib

    with tcp_script(b"421 4.3.2 Service not available, closing transmission channel\r\n") as port:
        return smtplib.SMTP("127.0.0.1", port, timeout=2)


@case(P, "smtp", "python", "smtplib login answered 535 5.7.8 (bad credentials)", G)
def smtp_535() -> object:
    import smtplib

    replies = [
        b"250-local\r\n250 AUTH PLAIN\r\n",
        b"535 5.7.8 Username and Password not accepted.\r\n",
    ] + [b"221 Bye\r\n"] * 3
    with tcp_script(b"220 local ESMTP\r\n", replies) as port:
        client = smtplib.SMTP("127.0.0.1", port, timeout=2)
        return client.login("etl", "wrong")


@case(P, "smtp", "python", "smtplib sendmail with every recipient refused (550 5.1.1)", G)
def smtp_550() -> object:
    import smtplib

    replies = [
        b"250 local\r\n",
        b"250 2.1.0 Ok\r\n",
        b"550 5.1.1 <x@example.com>: Recipient "
        b"address rejected: User unknown in local recipient table\r\n",
        b"221 Bye\r\n",
    ]
    with tcp_script(b"220 local ESMTP\r\n", replies) as port:
        client = smtplib.SMTP("127.0.0.1", port, timeout=2)
        return client.sendmail("etl@example.com", ["x@example.com"], "Subject: x\r\n\r\nx")


@case(T, "smtp", "python", "smtplib against a server that closes the connection", G)
def smtp_closed() -> object:
    import smtplib

    with tcp_script(close_after=True) as port:
        return smtplib.SMTP("127.0.0.1", port, timeout=2)


@case(P, "ftp", "python", "ftplib login answered 530 Login incorrect", G)
def ftp_530() -> object:
    import ftplib

    replies = [b"331 Please specify the password.\r\n", b"530 Login incorrect.\r\n"]
    with tcp_script(b"220 (vsFTPd 3.0.3)\r\n", replies) as port:
        client = ftplib.FTP()
        client.connect("127.0.0.1", port, timeout=2)
        return client.login("etl", "wrong")


@case(T, "ftp", "python", "ftplib login answered 421 Too many connections", G)
def ftp_421() -> object:
    import ftplib

    with tcp_script(b"421 There are too many connections from your internet address.\r\n") as port:
        client = ftplib.FTP()
        return client.connect("127.0.0.1", port, timeout=2)


@case(P, "ftp", "python", "ftplib RETR answered 550 (no such file)", G)
def ftp_550() -> object:
    import ftplib

    replies = [
        b"331 Please specify the password.\r\n",
        b"230 Login successful.\r\n",
        b"550 Could not get file size.\r\n",
    ]
    with tcp_script(b"220 (vsFTPd 3.0.3)\r\n", replies) as port:
        client = ftplib.FTP()
        client.connect("127.0.0.1", port, timeout=2)
        client.login("etl", "pw")
        return client.sendcmd("SIZE missing.csv")


@case(P, "stdlib", "python", "importlib of a processor module that is not installed", H)
def import_missing() -> object:
    import importlib

    return importlib.import_module("acme_processors.transform")


@case(D, "orchestrator", "python", "pipestate itself: pipestate DependencyFailure", H)
def own_dependency() -> object:
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
    from classifier.errors import DependencyFailure

    raise DependencyFailure("Step load skipped: upstream step extract failed")
