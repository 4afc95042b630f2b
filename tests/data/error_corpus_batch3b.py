"""Batch 3, libraries the rule table never names: a blind generalisation set (only reported).

Written after the rules were frozen at commit 73bf9a8; labels chosen by the labelling rules in
docs/classifier.md before the classifier saw any entry. pg8000 runs against the PostgreSQL
server named by PIPESTATE_CORPUS_PG.
"""

from __future__ import annotations

import io
import socket

from error_corpus_reproduce import TO, P, T, V, case, refused_port, tcp_script
from error_corpus_servers import _PG

G = "generalisation"


# -- pymongo / bson (no server needed) ------------------------------------------------------------
@case(V, "mongodb", "pymongo", "pymongo: MongoClient with a non-mongodb URI scheme", G)
def mongo_scheme() -> object:
    import pymongo

    return pymongo.MongoClient("http://127.0.0.1:27017")


@case(V, "mongodb", "pymongo", "bson: ObjectId of a malformed id", G)
def mongo_objectid() -> object:
    import bson

    return bson.ObjectId("xyz")


@case(V, "mongodb", "pymongo", "bson: encode a document with a non-string key", G)
def mongo_key() -> object:
    import bson

    return bson.encode({1: "a"})  # type: ignore[dict-item]


@case(V, "mongodb", "pymongo", "bson: decode garbage bytes", G)
def mongo_decode() -> object:
    import bson

    return bson.decode(b"\x05\x00\x00\x00garbage")


@case(V, "mongodb", "pymongo", "pymongo: database name with a space", G)
def mongo_dbname() -> object:
    import pymongo

    return pymongo.MongoClient(connect=False)["bad name"]


@case(TO, "mongodb", "pymongo", "pymongo: server selection against a server that hangs up", G)
def mongo_hangup() -> object:
    import pymongo

    with tcp_script(close_after=True) as port:
        client = pymongo.MongoClient(f"mongodb://127.0.0.1:{port}", serverSelectionTimeoutMS=400)
        return client.admin.command("ping")


# -- paramiko -------------------------------------------------------------------------------------
@case(P, "ssh", "paramiko", "paramiko: server announces SSH protocol 1.0", G)
def ssh_v1() -> object:
    import paramiko

    with tcp_script(greeting=b"SSH-1.0-OldServer\r\n") as port:
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        return client.connect("127.0.0.1", port, username="u", password="p", timeout=3)


@case(P, "ssh", "paramiko", "paramiko: encrypted private key loaded without a passphrase", G)
def ssh_encrypted_key() -> object:
    import paramiko

    buf = io.StringIO()
    paramiko.RSAKey.generate(1024).write_private_key(buf, password="secret")
    return paramiko.RSAKey.from_private_key(io.StringIO(buf.getvalue()))


@case(P, "ssh", "paramiko", "paramiko: encrypted private key with the wrong passphrase", G)
def ssh_wrong_passphrase() -> object:
    import paramiko

    buf = io.StringIO()
    paramiko.RSAKey.generate(1024).write_private_key(buf, password="secret")
    return paramiko.RSAKey.from_private_key(io.StringIO(buf.getvalue()), password="wrong")


# -- duckdb ---------------------------------------------------------------------------------------
def _duck(*statements: str) -> object:
    import duckdb

    con = duckdb.connect()
    con.execute("create table t (a int, b varchar, check (a >= 0))")
    con.execute("create table u (a int)")
    result: object = None
    for statement in statements:
        result = con.execute(statement)
    return result


for _label, _what, _stmts in (
    (V, "USING column missing on the left side", ("select * from t join u using (z)",)),
    (V, "CREATE TABLE without a name", ("create table (a int)",)),
    (V, "date literal out of range", ("select '2024-13-45'::date",)),
    (V, "malformed JSON cast", ("select '{bad'::json",)),
    (P, "CREATE TABLE that exists", ("create table t (a int)",)),
    (V, "CHECK constraint violated", ("insert into t values (-1, 'x')",)),
    (P, "COPY to a file in a missing directory", ("copy t to '/nonexistent/d/x.csv'",)),
    (V, "cast of 1000 to TINYINT", ("select 1000::tinyint",)),
    (V, "aggregate in WHERE", ("select count(*) from t where count(*) > 1",)),
    (
        P,
        "DROP of a table others depend on",
        (
            "create table p (id int primary key)",
            "create table c (x int references p(id))",
            "drop table p",
        ),
    ),
):
    case(_label, "duckdb", "duckdb", f"duckdb: {_what}", G)(lambda _s=_stmts: _duck(*_s))


@case(P, "duckdb", "duckdb", "duckdb: connect to a file in a missing directory", G)
def duck_open() -> object:
    import duckdb

    return duckdb.connect("/nonexistent/d/warehouse.duckdb")


@case(P, "duckdb", "duckdb", "duckdb: execute on a closed connection", G)
def duck_closed() -> object:
    import duckdb

    con = duckdb.connect()
    con.close()
    return con.execute("select 1")


@case(V, "duckdb", "duckdb", "duckdb: read_parquet of a CSV file", G)
def duck_parquet() -> object:
    import duckdb

    with open("/tmp/s16/orders.csv", "w") as handle:
        handle.write("id,amount\n1,2\n")
    return duckdb.sql("select * from read_parquet('/tmp/s16/orders.csv')").fetchall()


# -- ftplib / poplib / imaplib against scripted servers -------------------------------------------
def _ftp(reply: bytes, command: str = "RETR orders.csv") -> object:
    import ftplib

    login = [b"331 Password required\r\n", b"230 Logged in\r\n", b"200 Type set to I\r\n", reply]
    with tcp_script(greeting=b"220 FTP ready\r\n", replies=login) as port:
        ftp = ftplib.FTP()
        ftp.connect("127.0.0.1", port, timeout=3)
        ftp.login("etl", "pw")
        ftp.voidcmd("TYPE I")
        return ftp.sendcmd(command)


for _label, _what, _reply in (
    (P, "550 no such file", b"550 orders.csv: No such file or directory.\r\n"),
    (T, "452 insufficient storage", b"452 Insufficient storage space in system.\r\n"),
    (V, "501 syntax error in parameters", b"501 Syntax error in parameters or arguments.\r\n"),
    (T, "425 cannot open data connection", b"425 Can't open data connection.\r\n"),
):
    case(_label, "ftp", "python", f"ftplib: {_what}", G)(lambda _r=_reply: _ftp(_r))


def _pop(reply: bytes) -> object:
    import poplib

    with tcp_script(greeting=b"+OK POP3 ready\r\n", replies=[b"+OK\r\n", reply]) as port:
        pop = poplib.POP3("127.0.0.1", port, timeout=3)
        pop.user("etl")
        return pop.pass_("pw")


case(P, "mail", "python", "poplib: -ERR [AUTH] on PASS", G)(
    lambda: _pop(b"-ERR [AUTH] Authentication failed.\r\n")
)
case(T, "mail", "python", "poplib: -ERR [SYS/TEMP] on PASS", G)(
    lambda: _pop(b"-ERR [SYS/TEMP] Mailbox is locked by another session, try again later\r\n")
)


# -- http.client ----------------------------------------------------------------------------------
def _http_client(reply: bytes) -> object:
    import http.client

    with tcp_script(replies=[reply]) as port:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
        conn.request("GET", "/v1/orders")
        return conn.getresponse().read()


case(P, "http", "python", "http.client: the server answers with a non-HTTP status line", G)(
    lambda: _http_client(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
)
case(P, "http", "python", "http.client: header line longer than 65536 bytes", G)(
    lambda: _http_client(b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n")
)


@case(V, "http", "python", "http.client: non-numeric port in the host", G)
def http_bad_port() -> object:
    import http.client

    return http.client.HTTPConnection("warehouse.internal:abc")


# -- stdlib modules the table does not name -------------------------------------------------------
@case(V, "stdlib", "python", "tomllib: a key defined twice", G)
def toml_dup() -> object:
    import tomllib

    return tomllib.loads("a = 1\na = 2\n")


@case(V, "stdlib", "python", "configparser: an option defined twice", G)
def ini_dup() -> object:
    import configparser

    return configparser.ConfigParser().read_string("[s]\na = 1\na = 2\n")


@case(P, "stdlib", "python", "zipfile: read of a member the archive lacks", G)
def zip_member() -> object:
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("a.csv", "x")
    return zipfile.ZipFile(buf).read("orders.csv")


@case(V, "stdlib", "python", "lzma.decompress of garbage", G)
def lzma_bad() -> object:
    import lzma

    return lzma.decompress(b"garbage bytes")


@case(V, "stdlib", "python", "zlib.decompress of garbage", G)
def zlib_bad() -> object:
    import zlib

    return zlib.decompress(b"garbage bytes")


@case(V, "stdlib", "python", "bz2.decompress of garbage", G)
def bz2_bad() -> object:
    import bz2

    return bz2.decompress(b"garbage bytes")


@case(V, "stdlib", "python", "ipaddress.ip_address of 999.1.1.1", G)
def ip_bad() -> object:
    import ipaddress

    return ipaddress.ip_address("999.1.1.1")


@case(V, "stdlib", "python", "datetime.fromisoformat with month 13", G)
def iso_bad() -> object:
    import datetime

    return datetime.date.fromisoformat("2024-13-01")


@case(V, "stdlib", "python", "plistlib.loads of garbage", G)
def plist_bad() -> object:
    import plistlib

    return plistlib.loads(b"garbage")


@case(V, "stdlib", "python", "struct.unpack of a short buffer", G)
def struct_short() -> object:
    import struct

    return struct.unpack(">I", b"ab")


@case(P, "stdlib", "python", "os.mkdir of a directory that exists", G)
def mkdir_exists() -> object:
    import os

    return os.mkdir("/tmp")


@case(V, "stdlib", "python", "shlex.split of an unclosed quote", G)
def shlex_bad() -> object:
    import shlex

    return shlex.split('"abc')


@case(V, "stdlib", "python", "re.compile of an unterminated group", G)
def re_bad() -> object:
    import re

    return re.compile("(")


# -- dnspython ------------------------------------------------------------------------------------
@case(TO, "dns", "dnspython", "dnspython: resolver lifetime against a silent nameserver", G)
def dns_timeout() -> object:
    import dns.resolver

    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = silent.getsockname()[1]
    try:
        return resolver.resolve("warehouse.example.com", "A", lifetime=0.5)
    finally:
        silent.close()


@case(V, "dns", "dnspython", "dnspython: a label longer than 63 octets", G)
def dns_label() -> object:
    import dns.name

    return dns.name.from_text("a" * 64 + ".example.com")


@case(V, "dns", "dnspython", "dnspython: an A record that is not an address", G)
def dns_rdata() -> object:
    import dns.rdata
    import dns.rdataclass
    import dns.rdatatype

    return dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.A, "999.1.1.1")


# -- kombu / amqp ---------------------------------------------------------------------------------
@case(T, "amqp", "kombu", "kombu: connect to a refused AMQP port", G)
def kombu_refused() -> object:
    import kombu

    with kombu.Connection(f"amqp://guest:guest@127.0.0.1:{refused_port()}//") as conn:
        return conn.connect()


@case(P, "amqp", "kombu", "kombu: unknown transport in the URL", G)
def kombu_transport() -> object:
    import kombu

    return kombu.Connection("nosuchtransport://localhost//").connect()


# -- jinja2 ---------------------------------------------------------------------------------------
@case(V, "jinja2", "jinja2", "jinja2: StrictUndefined variable in a template", G)
def jinja_undefined() -> object:
    import jinja2

    return jinja2.Template("{{ run.date }}", undefined=jinja2.StrictUndefined).render()


@case(V, "jinja2", "jinja2", "jinja2: template with a syntax error", G)
def jinja_syntax() -> object:
    import jinja2

    return jinja2.Template("select * from t where {% if %}")


@case(P, "jinja2", "jinja2", "jinja2: template that is not in the loader", G)
def jinja_missing() -> object:
    import jinja2

    return jinja2.Environment(loader=jinja2.DictLoader({})).get_template("orders.sql")


# -- cryptography / packaging / dateutil / jmespath / idna ----------------------------------------
@case(P, "crypto", "cryptography", "cryptography: Fernet.decrypt of a token for another key", G)
def fernet_token() -> object:
    from cryptography.fernet import Fernet

    token = Fernet(Fernet.generate_key()).encrypt(b"x")
    return Fernet(Fernet.generate_key()).decrypt(token)


@case(P, "crypto", "cryptography", "cryptography: Fernet with a short key", G)
def fernet_key() -> object:
    from cryptography.fernet import Fernet

    return Fernet(b"short")


@case(P, "crypto", "cryptography", "cryptography: load_pem_private_key of garbage", G)
def pem_garbage() -> object:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    return load_pem_private_key(
        b"-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n", None
    )


@case(V, "packaging", "packaging", "packaging: Version of a malformed version", G)
def pkg_version() -> object:
    from packaging.version import Version

    return Version("1.0-nope-x")


@case(V, "packaging", "packaging", "packaging: Requirement with a dangling operator", G)
def pkg_requirement() -> object:
    from packaging.requirements import Requirement

    return Requirement("pipestate>=")


@case(V, "dateutil", "python-dateutil", "dateutil: parse of a string that is no date", G)
def dateutil_parse() -> object:
    from dateutil import parser

    return parser.parse("not a date at all")


@case(V, "jmespath", "jmespath", "jmespath: unterminated expression", G)
def jmespath_parse() -> object:
    import jmespath

    return jmespath.search("orders[", {})


@case(V, "idna", "idna", "idna: a label longer than 63 characters", G)
def idna_long() -> object:
    import idna

    return idna.encode("a" * 64 + ".example.com")


# -- grpc -----------------------------------------------------------------------------------------
def _grpc(port: int, timeout: float) -> object:
    import grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary("/warehouse.Orders/Get")
        return call(b"", timeout=timeout)


@case(T, "grpc", "grpcio", "grpc: unary call to a refused port", G)
def grpc_refused() -> object:
    return _grpc(refused_port(), 2.0)


@case(TO, "grpc", "grpcio", "grpc: unary call past its deadline (server never answers)", G)
def grpc_deadline() -> object:
    with tcp_script(replies=[b""] * 0) as port:
        return _grpc(port, 0.3)


# -- websockets -----------------------------------------------------------------------------------
def _ws(uri: str) -> object:
    from websockets.sync.client import connect

    with connect(uri, open_timeout=3) as ws:
        return ws.recv()


@case(V, "websockets", "websockets", "websockets: an http:// URI", G)
def ws_uri() -> object:
    return _ws("http://127.0.0.1:1/feed")


case(P, "websockets", "websockets", "websockets: handshake answered 403", G)(
    lambda: _ws_status(403)
)
case(T, "websockets", "websockets", "websockets: handshake answered 503", G)(
    lambda: _ws_status(503)
)


def _ws_status(status: int) -> object:
    reply = f"HTTP/1.1 {status} Nope\r\nContent-Length: 0\r\n\r\n".encode()
    with tcp_script(replies=[reply]) as port:
        return _ws(f"ws://127.0.0.1:{port}/feed")


# -- pg8000 against PostgreSQL 15 -----------------------------------------------------------------
def _pg8000(**overrides: object) -> object:
    import pg8000

    host, port, user, password, db = _PG
    params: dict[str, object] = {"host": host, "port": int(port), "user": user}
    params.update({"password": password, "database": db, "timeout": 3})
    params.update(overrides)
    return pg8000.connect(**params)


def _pg8000_run(*statements: str) -> object:
    conn = _pg8000()
    conn.autocommit = True  # type: ignore[attr-defined]
    cur = conn.cursor()  # type: ignore[attr-defined]
    result: object = None
    for statement in statements:
        result = cur.execute(statement)
    return result


for _label, _what, _stmts in (
    (P, "SELECT from a missing table", ("select * from pg8000_nope",)),
    (V, "syntax error", ("selec 1",)),
    (
        V,
        "UNIQUE violation",
        (
            "drop table if exists p8; create table p8 (id int primary key)",
            "insert into p8 values (1)",
            "insert into p8 values (1)",
        ),
    ),
    (TO, "statement timeout", ("set statement_timeout = 100", "select pg_sleep(2)")),
    (V, "invalid input syntax for integer", ("select 'abc'::int + 1",)),
):
    case(_label, "pg8000", "pg8000", f"pg8000 + PostgreSQL 15: {_what}", G)(
        lambda _s=_stmts: _pg8000_run(*_s)
    )

case(P, "pg8000", "pg8000", "pg8000 + PostgreSQL 15: wrong password", G)(
    lambda: _pg8000(password="wrong")
)
case(T, "pg8000", "pg8000", "pg8000: connection refused", G)(lambda: _pg8000(port=refused_port()))
