"""Batch 4, libraries the rule table never names: a blind generalisation set (only reported).

Written after the rules were frozen at commit d724387; labels chosen by the labelling rules in
docs/classifier.md before the classifier saw any entry. pg8000 runs against the PostgreSQL
server named by PIPESTATE_CORPUS_PG.
"""

from __future__ import annotations

import contextlib
import io
import os
import socket
import subprocess
import sys
import tempfile
import threading

from error_corpus_batch3b import _pg8000, _pg8000_run
from error_corpus_batch4 import _raw_http
from error_corpus_reproduce import TO, P, T, V, case, http_server, refused_port, tcp_script

G = "generalisation"


# -- pg8000 against PostgreSQL 15 -----------------------------------------------------------------
for _label, _what, _stmts in (
    (V, "division by zero", ("select 1 / 0",)),
    (
        P,
        "CREATE TABLE that exists",
        ("create table if not exists p84 (a int)", "create table p84 (a int)"),
    ),
    (V, "unknown column", ("select nope from pg_class",)),
    (
        V,
        "NOT NULL violation",
        (
            "drop table if exists p84n; create table p84n (a int not null)",
            "insert into p84n values (null)",
        ),
    ),
    (P, "DROP TABLE of a missing table", ("drop table pg8000_missing_4",)),
    (V, "malformed date literal", ("select '2024-02-30'::date",)),
):
    case(_label, "pg8000", "pg8000", f"pg8000 + PostgreSQL 15: {_what}", G)(
        lambda _s=_stmts: _pg8000_run(*_s)
    )

case(P, "pg8000", "pg8000", "pg8000 + PostgreSQL 15: database that does not exist", G)(
    lambda: _pg8000(database="no_such_db_4")
)


# -- duckdb ---------------------------------------------------------------------------------------
def _duck(*statements: str) -> object:
    import duckdb

    conn = duckdb.connect()
    conn.execute("create table orders (id int primary key, qty int not null)")
    conn.execute("insert into orders values (1, 1)")
    result: object = None
    for statement in statements:
        result = conn.execute(statement)
    return result


for _label, _what, _stmts in (
    (V, "cast of 'abc' to INTEGER", ("select 'abc'::integer",)),
    (V, "unknown scalar function", ("select no_such_fn(1)",)),
    (P, "SELECT from a missing table", ("select * from no_such_table",)),
    (P, "CREATE TABLE that exists", ("create table orders (a int)",)),
    (V, "primary key violation", ("insert into orders values (1, 2)",)),
    (V, "NOT NULL violation", ("insert into orders values (2, null)",)),
    (V, "parser error", ("selec 1",)),
    (V, "cast out of range for TINYINT", ("select 300::tinyint",)),
    (P, "read_csv of a missing file", ("select * from read_csv('/nonexistent/orders4.csv')",)),
):
    case(_label, "duckdb", "duckdb", f"duckdb: {_what}", G)(lambda _s=_stmts: _duck(*_s))


@case(T, "duckdb", "duckdb", "duckdb: open a file another process holds the lock on", G)
def duck_locked() -> object:
    import duckdb

    path = os.path.join(tempfile.mkdtemp(), "held4.duckdb")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ok', flush=True); "
            "time.sleep(20)",
            path,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        holder.stdout.readline()
        return duckdb.connect(path)
    finally:
        holder.kill()
        holder.wait()


# -- paramiko -------------------------------------------------------------------------------------
@case(T, "ssh", "paramiko", "paramiko: connect to a refused port", G)
def ssh_refused() -> object:
    import paramiko

    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    return client.connect("127.0.0.1", port=refused_port(), username="etl", timeout=3)


@case(P, "ssh", "paramiko", "paramiko: key file that does not exist", G)
def ssh_key_missing() -> object:
    import paramiko

    return paramiko.RSAKey.from_private_key_file("/nonexistent/id_rsa4")


# -- pymongo / bson -------------------------------------------------------------------------------
@case(V, "mongodb", "pymongo", "bson.json_util.loads of broken JSON", G)
def bson_json() -> object:
    from bson import json_util

    return json_util.loads('{"a": ')


@case(V, "mongodb", "pymongo", "pymongo: MongoClient with a port that is not a number", G)
def mongo_port() -> object:
    import pymongo

    return pymongo.MongoClient("mongodb://127.0.0.1:abc/", connect=False)


# -- amqp / kombu ---------------------------------------------------------------------------------
@case(T, "amqp", "amqp", "amqp: server closes the connection during the handshake", G)
def amqp_closed() -> object:
    import amqp

    with tcp_script(close_after=True) as port:
        conn = amqp.Connection(f"127.0.0.1:{port}", connect_timeout=2)
        return conn.connect()


@case(TO, "amqp", "amqp", "amqp: server accepts and never answers (connect_timeout)", G)
def amqp_silent() -> object:
    import amqp

    with tcp_script(replies=[]) as port:
        conn = amqp.Connection(f"127.0.0.1:{port}", connect_timeout=1, read_timeout=1)
        return conn.connect()


# -- jinja2 ---------------------------------------------------------------------------------------
@case(V, "jinja2", "jinja2", "jinja2: unknown filter", G)
def jinja_filter() -> object:
    import jinja2

    return jinja2.Environment().from_string("{{ x | no_such_filter }}")


@case(V, "jinja2", "jinja2", "jinja2: unexpected end of template", G)
def jinja_end() -> object:
    import jinja2

    return jinja2.Environment().from_string("{% if x %}open")


@case(V, "jinja2", "jinja2", "jinja2: StrictUndefined attribute of a dict", G)
def jinja_attr() -> object:
    import jinja2

    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    return env.from_string("{{ row.amount + 1 }}").render(row={"id": 1})


# -- cryptography / nacl / bcrypt -----------------------------------------------------------------
@case(P, "crypto", "cryptography", "cryptography: AESGCM decrypt with another key", G)
def aesgcm_tag() -> object:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = b"0" * 12
    token = AESGCM(AESGCM.generate_key(128)).encrypt(nonce, b"orders", None)
    return AESGCM(AESGCM.generate_key(128)).decrypt(nonce, token, None)


@case(P, "crypto", "cryptography", "cryptography: AESGCM key of the wrong length", G)
def aesgcm_key() -> object:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    return AESGCM(b"short")


@case(P, "crypto", "PyNaCl", "nacl: SecretBox decrypt with another key", G)
def nacl_decrypt() -> object:
    import nacl.secret
    import nacl.utils

    box = nacl.secret.SecretBox(nacl.utils.random(32))
    token = box.encrypt(b"orders")
    return nacl.secret.SecretBox(nacl.utils.random(32)).decrypt(token)


@case(P, "crypto", "PyNaCl", "nacl: SecretBox with a short key", G)
def nacl_key() -> object:
    import nacl.secret

    return nacl.secret.SecretBox(b"short")


@case(V, "crypto", "bcrypt", "bcrypt: checkpw against a malformed stored hash", G)
def bcrypt_hash() -> object:
    import bcrypt

    return bcrypt.checkpw(b"secret", b"not-a-bcrypt-hash")


# -- small parsing libraries ----------------------------------------------------------------------
@case(V, "dateutil", "python-dateutil", "dateutil: day out of range for the month", G)
def dateutil_day() -> object:
    from dateutil import parser

    return parser.parse("2024-02-30")


@case(V, "jmespath", "jmespath", "jmespath: unknown function", G)
def jmespath_fn() -> object:
    import jmespath

    return jmespath.search("no_such_fn(a)", {"a": 1})


@case(V, "idna", "idna", "idna: a label with a disallowed code point", G)
def idna_codepoint() -> object:
    import idna

    return idna.encode("exa_mple.com")


@case(V, "yarl", "yarl", "yarl: URL with a port out of range", G)
def yarl_port() -> object:
    import yarl

    return yarl.URL("http://example.com:99999/").port


@case(V, "click", "click", "click: an option value outside a Choice", G)
def click_choice() -> object:
    import click

    @click.command()
    @click.option("--mode", type=click.Choice(["full", "delta"]))
    def cli(mode: str) -> None:
        pass

    return cli.main(["--mode", "partial"], standalone_mode=False)


@case(V, "click", "click", "click: an option the command does not have", G)
def click_option() -> object:
    import click

    @click.command()
    def cli() -> None:
        pass

    return cli.main(["--no-such-option"], standalone_mode=False)


@case(V, "packaging", "packaging", "packaging: SpecifierSet of a malformed specifier", G)
def packaging_spec() -> object:
    from packaging.specifiers import SpecifierSet

    return SpecifierSet("=>1.0")


@case(V, "asn1", "asn1crypto", "asn1crypto: load of bytes that are not DER", G)
def asn1_load() -> object:
    from asn1crypto import core

    return core.load(b"\x30\x82\xff")


@case(V, "asn1", "pyasn1", "pyasn1: DER decode of garbage", G)
def pyasn1_decode() -> object:
    from pyasn1.codec.der import decoder

    return decoder.decode(b"\x02\x05\x01")


# -- grpc status codes from a real server ---------------------------------------------------------
def _grpc_abort(code_name: str) -> object:
    from concurrent import futures

    import grpc

    def handler(request: bytes, context: grpc.ServicerContext) -> bytes:
        context.abort(getattr(grpc.StatusCode, code_name), "rejected by the handler")
        return b""

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "etl.Loader", {"Load": grpc.unary_unary_rpc_method_handler(handler)}
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            return channel.unary_unary("/etl.Loader/Load")(b"x", timeout=5)
    finally:
        server.stop(0)


for _label, _code in (
    (T, "UNAVAILABLE"),
    (T, "RESOURCE_EXHAUSTED"),
    (V, "INVALID_ARGUMENT"),
    (P, "PERMISSION_DENIED"),
    (P, "NOT_FOUND"),
    (P, "ALREADY_EXISTS"),
    (P, "UNAUTHENTICATED"),
    (T, "ABORTED"),
):
    case(_label, "grpc", "grpcio", f"grpc: server aborts with {_code}", G)(
        lambda _c=_code: _grpc_abort(_c)
    )


@case(P, "grpc", "grpcio", "grpc: call to a method the server does not have", G)
def grpc_unimplemented() -> object:
    from concurrent import futures

    import grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            return channel.unary_unary("/etl.Loader/Missing")(b"x", timeout=5)
    finally:
        server.stop(0)


# -- websockets -----------------------------------------------------------------------------------
def _ws(url: str) -> object:
    from websockets.sync.client import connect

    with connect(url, open_timeout=3) as ws:
        return ws.recv()


@case(T, "websockets", "websockets", "websockets: connect to a refused port", G)
def ws_refused() -> object:
    return _ws(f"ws://127.0.0.1:{refused_port()}/feed")


@case(P, "websockets", "websockets", "websockets: upgrade answered with HTTP 404", G)
def ws_404() -> object:
    reply = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    with _raw_http(reply) as port:
        return _ws(f"ws://127.0.0.1:{port}/feed")


@case(T, "websockets", "websockets", "websockets: upgrade answered with HTTP 503", G)
def ws_503() -> object:
    reply = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    with _raw_http(reply) as port:
        return _ws(f"ws://127.0.0.1:{port}/feed")


# -- standard-library modules the table never names -----------------------------------------------
@case(V, "stdlib", "python", "email.utils.parsedate_to_datetime of garbage", G)
def email_date() -> object:
    import email.utils

    return email.utils.parsedate_to_datetime("yesterday-ish")


@case(V, "stdlib", "python", "gzip.decompress of bytes that are not gzip", G)
def gzip_bad() -> object:
    import gzip

    return gzip.decompress(b"orders,qty\n1,2\n")


@case(P, "stdlib", "python", "shutil.copy of a file that does not exist", G)
def shutil_copy() -> object:
    import shutil

    return shutil.copy("/nonexistent/export4.csv", tempfile.mkdtemp())


@case(P, "stdlib", "python", "os.rmdir of a directory that is not empty", G)
def rmdir_full() -> object:
    path = tempfile.mkdtemp()
    open(os.path.join(path, "x"), "w").close()
    return os.rmdir(path)


@case(P, "stdlib", "python", "open() of a directory for writing", G)
def open_dir() -> object:
    return open(tempfile.mkdtemp(), "w")


@case(P, "stdlib", "python", "os.open with O_EXCL of a file that exists", G)
def open_excl() -> object:
    fd, path = tempfile.mkstemp()
    os.close(fd)
    return os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)


@case(V, "stdlib", "python", "uuid.UUID of a malformed string", G)
def uuid_bad() -> object:
    import uuid

    return uuid.UUID("1234-not-a-uuid")


@case(V, "stdlib", "python", "pickle.loads of garbage", G)
def pickle_bad() -> object:
    import pickle

    return pickle.loads(b"\x80\x04not a pickle")


@case(V, "stdlib", "python", "tomllib: an unterminated string", G)
def toml_string() -> object:
    import tomllib

    return tomllib.loads('name = "orders\n')


@case(P, "stdlib", "python", "zoneinfo: a time zone key that does not exist", G)
def zoneinfo_missing() -> object:
    import zoneinfo

    return zoneinfo.ZoneInfo("Nowhere/Atlantis")


@case(V, "stdlib", "python", "ipaddress.ip_network with host bits set", G)
def ip_network() -> object:
    import ipaddress

    return ipaddress.ip_network("10.0.0.1/24")


@case(V, "stdlib", "python", "fractions.Fraction('1/0')", G)
def fraction_zero() -> object:
    import fractions

    return fractions.Fraction("1/0")


@case(V, "stdlib", "python", "statistics.mean of no data", G)
def stats_empty() -> object:
    import statistics

    return statistics.mean([])


@case(V, "stdlib", "python", "codecs.decode of text that is not hex", G)
def codecs_hex() -> object:
    import codecs

    return codecs.decode("zz", "hex")


@case(V, "stdlib", "python", "http.cookies: a cookie name with illegal characters", G)
def cookie_key() -> object:
    from http import cookies

    jar = cookies.SimpleCookie()
    jar["bad key"] = "1"
    return jar


@case(T, "stdlib", "python", "xmlrpc.client: call to a refused port", G)
def xmlrpc_refused() -> object:
    import xmlrpc.client

    return xmlrpc.client.ServerProxy(f"http://127.0.0.1:{refused_port()}/RPC2").load()


@case(P, "stdlib", "python", "xmlrpc.client: endpoint answers 404", G)
def xmlrpc_404() -> object:
    import xmlrpc.client

    with http_server(404) as url:
        return xmlrpc.client.ServerProxy(f"{url}/RPC2").load()


@case(V, "stdlib", "python", "urllib.parse.urlsplit of an invalid IPv6 URL", G)
def urlsplit_v6() -> object:
    import urllib.parse

    return urllib.parse.urlsplit("http://[::1/x")


@case(P, "stdlib", "python", "poplib: server rejects the password", G)
def pop_password() -> object:
    import poplib

    replies = [b"+OK\r\n", b"-ERR [AUTH] Authentication failed.\r\n"]
    with tcp_script(greeting=b"+OK POP3 ready\r\n", replies=replies) as port:
        client = poplib.POP3("127.0.0.1", port, timeout=3)
        client.user("etl")
        return client.pass_("wrong")


@case(T, "stdlib", "python", "multiprocessing.connection.Client to a refused port", G)
def mp_refused() -> object:
    from multiprocessing.connection import Client

    return Client(("127.0.0.1", refused_port()))


@case(P, "stdlib", "python", "multiprocessing.connection: wrong authkey", G)
def mp_authkey() -> object:
    from multiprocessing.connection import Client, Listener

    listener = Listener(("127.0.0.1", 0), authkey=b"right")

    def accept() -> None:
        with contextlib.suppress(Exception):
            listener.accept()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        return Client(listener.address, authkey=b"wrong")
    finally:
        listener.close()


@case(V, "stdlib", "python", "dbm.open of a file that is no database", G)
def dbm_bad() -> object:
    import dbm

    path = os.path.join(tempfile.mkdtemp(), "cache4")
    with open(path, "wb") as handle:
        handle.write(b"orders,qty\n" * 100)
    return dbm.open(path, "r")


@case(P, "stdlib", "python", "zipfile: writestr on an archive opened for reading", G)
def zip_mode() -> object:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.txt", "x")
    return zipfile.ZipFile(buffer).writestr("b.txt", "y")


@case(TO, "stdlib", "python", "queue.get past its timeout", G)
def queue_empty() -> object:
    import queue

    return queue.Queue().get(timeout=0.05)


@case(V, "stdlib", "python", "argparse: an int option given 'x'", G)
def argparse_int() -> object:
    import argparse

    parser = argparse.ArgumentParser(exit_on_error=False)
    parser.add_argument("--limit", type=int)
    return parser.parse_args(["--limit", "x"])


@case(V, "stdlib", "python", "string.Template.substitute without a value", G)
def template_missing() -> object:
    import string

    return string.Template("select * from $table").substitute({})


@case(V, "stdlib", "python", "wave.open of a file that is not WAV", G)
def wave_bad() -> object:
    import wave

    return wave.open(io.BytesIO(b"ID3 not a wav file at all"))


@case(V, "stdlib", "python", "ast.literal_eval of an expression", G)
def literal_eval() -> object:
    import ast

    return ast.literal_eval("__import__('os')")


@case(V, "stdlib", "python", "calendar.monthrange of month 13", G)
def month_13() -> object:
    import calendar

    return calendar.monthrange(2024, 13)


@case(V, "stdlib", "python", "unicodedata.lookup of an unknown name", G)
def unicode_name() -> object:
    import unicodedata

    return unicodedata.lookup("NO SUCH CHARACTER NAME")


@case(P, "stdlib", "python", "hashlib.new of an unsupported algorithm", G)
def hashlib_unknown() -> object:
    import hashlib

    return hashlib.new("no-such-hash")


@case(P, "stdlib", "python", "importlib.import_module of a missing plugin", G)
def import_missing() -> object:
    import importlib

    return importlib.import_module("pipeline_plugins_4.loader")


@case(T, "stdlib", "python", "socket.create_connection to a refused port", G)
def socket_refused() -> object:
    return socket.create_connection(("127.0.0.1", refused_port()), timeout=3)


@case(TO, "grpc", "grpcio", "grpc: server aborts with DEADLINE_EXCEEDED", G)
def grpc_deadline_status() -> object:
    return _grpc_abort("DEADLINE_EXCEEDED")


@case(T, "ftp", "python", "ftplib: 421 greeting", G)
def ftp_421() -> object:
    import ftplib

    greeting = b"421 Too many users, try again later\r\n"
    with tcp_script(greeting=greeting, close_after=True) as port:
        return ftplib.FTP().connect("127.0.0.1", port, timeout=3)


@case(T, "stdlib", "python", "poplib: [SYS/TEMP] reply to PASS", G)
def pop_temp() -> object:
    import poplib

    replies = [b"+OK\r\n", b"-ERR [SYS/TEMP] Mailbox temporarily unavailable\r\n"]
    with tcp_script(greeting=b"+OK POP3 ready\r\n", replies=replies) as port:
        client = poplib.POP3("127.0.0.1", port, timeout=3)
        client.user("etl")
        return client.pass_("secret")


@case(TO, "stdlib", "python", "xmlrpc.client: read timeout against a slow server", G)
def xmlrpc_timeout() -> object:
    import xmlrpc.client

    class Slow(xmlrpc.client.Transport):
        def make_connection(self, host: object) -> object:
            conn = super().make_connection(host)  # type: ignore[arg-type]
            conn.timeout = 0.3
            return conn

    with http_server(200, body=b"x", delay=2) as url:
        return xmlrpc.client.ServerProxy(f"{url}/RPC2", transport=Slow()).load()
