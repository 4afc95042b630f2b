"""Batch 5, libraries no earlier batch used: a blind generalisation set (only reported).

Written in the fifth session by a labeller who never read the classifier's rules or ran it;
labels chosen by the labelling rules in docs/classifier.md ("Labelling rules (the corpus)")
before any classifier saw an entry. asyncpg / psycopg 3 run against the PostgreSQL server named by
PIPESTATE_CORPUS_PG, mysql-connector-python against PIPESTATE_CORPUS_MYSQL; every HTTP service
(Elasticsearch, Azure Blob, ClickHouse, an OAuth token endpoint) is a scripted 127.0.0.1 server
answering with the error body the service documents.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
import threading
import time

from error_corpus_batch4 import _raw_http
from error_corpus_reproduce import TO, D, P, T, V, case, http_server, refused_port, tcp_script

G = "generalisation"


def _pg_args() -> dict[str, object]:
    host, port, user, password, db = os.environ["PIPESTATE_CORPUS_PG"].split()
    return {"host": host, "port": int(port), "user": user, "password": password, "database": db}


_SETUP = (
    "drop table if exists stock5 cascade",
    "create table stock5 (sku text primary key, qty int not null check (qty >= 0))",
    "insert into stock5 values ('A-1', 3)",
)


# -- asyncpg against PostgreSQL 15 -----------------------------------------------------------------
def _asyncpg(*statements: str, args: tuple[object, ...] = (), **connect: object) -> object:
    import asyncio

    import asyncpg

    async def go() -> object:
        conn = await asyncpg.connect(**{**_pg_args(), **connect})
        try:
            for statement in _SETUP:
                await conn.execute(statement)
            result: object = None
            for statement in statements:
                result = await conn.execute(statement, *args)
            return result
        finally:
            await conn.close()

    return asyncio.run(go())


for _label, _what, _stmts, _args in (
    (V, "duplicate key", ("insert into stock5 values ('A-1', 1)",), ()),
    (P, "missing table", ("select * from no_such_table_5",), ()),
    (V, "syntax error", ("selct 1",), ()),
    (V, "NOT NULL violation", ("insert into stock5 values ('B-2', null)",), ()),
    (V, "CHECK violation", ("update stock5 set qty = -1",), ()),
    (V, "argument of the wrong type", ("update stock5 set qty = $1",), ("many",)),
    (TO, "statement_timeout", ("set statement_timeout = 100", "select pg_sleep(2)"), ()),
    (V, "division by zero", ("select 1 / 0",), ()),
):
    case(_label, "asyncpg", "asyncpg", f"asyncpg + PostgreSQL 15: {_what}", G)(
        lambda _s=_stmts, _a=_args: _asyncpg(*_s, args=_a)
    )


@case(P, "asyncpg", "asyncpg", "asyncpg + PostgreSQL 15: wrong password", G)
def asyncpg_password() -> object:
    return _asyncpg(password="wrong")


@case(T, "asyncpg", "asyncpg", "asyncpg: connect to a refused port", G)
def asyncpg_refused() -> object:
    return _asyncpg(host="127.0.0.1", port=refused_port())


@case(T, "asyncpg", "asyncpg", "asyncpg + PostgreSQL 15: role over its connection limit", G)
def asyncpg_role_limit() -> object:
    import asyncio

    import asyncpg

    async def go() -> object:
        args = {**_pg_args(), "user": "reader", "password": "reader"}
        keep = await asyncpg.connect(**args)
        try:
            return await asyncpg.connect(**args)
        finally:
            await keep.close()

    return asyncio.run(go())


@case(P, "asyncpg", "asyncpg", "asyncpg: two queries at once on one connection", G)
def asyncpg_busy() -> object:
    import asyncio

    import asyncpg

    async def go() -> object:
        conn = await asyncpg.connect(**_pg_args())
        try:
            return await asyncio.gather(conn.fetch("select pg_sleep(0.3)"), conn.fetch("select 1"))
        finally:
            await conn.close()

    return asyncio.run(go())


# -- psycopg 3 against PostgreSQL 15 ---------------------------------------------------------------
def _psycopg(
    *statements: str, params: tuple[object, ...] | None = None, **connect: object
) -> object:
    import psycopg

    args = {**_pg_args(), **connect}
    args["dbname"] = args.pop("database")
    with psycopg.connect(autocommit=True, connect_timeout=3, **args) as conn:  # type: ignore[arg-type]
        for statement in _SETUP:
            conn.execute(statement)
        result: object = None
        for statement in statements:
            result = conn.execute(statement, params)  # type: ignore[arg-type]
        return result


for _label, _what, _stmts, _params in (
    (V, "CHECK violation", ("insert into stock5 values ('C-3', -5)",), None),
    (V, "unknown function", ("select no_such_fn5(qty) from stock5",), None),
    (TO, "statement_timeout", ("set statement_timeout = 100", "select pg_sleep(2)"), None),
    (V, "two parameters for one placeholder", ("select %s",), (1, 2)),
    (P, "CREATE DATABASE that exists", ("create database etl",), None),
    (V, "invalid input for numeric", ("select 'ten'::numeric",), None),
):
    case(_label, "psycopg", "psycopg", f"psycopg 3 + PostgreSQL 15: {_what}", G)(
        lambda _s=_stmts, _p=_params: _psycopg(*_s, params=_p)
    )


@case(
    P, "psycopg", "psycopg", "psycopg 3 + PostgreSQL 15: DROP TABLE by a role that is not owner", G
)
def psycopg_privilege() -> object:
    _psycopg()
    return _psycopg("select * from stock5", user="reader", password="reader")


@case(T, "psycopg", "psycopg", "psycopg 3: connect to a refused port", G)
def psycopg_refused() -> object:
    return _psycopg(port=refused_port())


@case(TO, "psycopg", "psycopg", "psycopg 3: connect_timeout against a silent server", G)
def psycopg_silent() -> object:
    import psycopg

    with tcp_script() as port:
        return psycopg.connect(host="127.0.0.1", port=port, user="etl", connect_timeout=2)


@case(V, "psycopg", "psycopg", "psycopg 3: connection string that does not parse", G)
def psycopg_bad_conninfo() -> object:
    import psycopg

    return psycopg.connect("host=127.0.0.1 port")


# -- mysql-connector-python against MariaDB 10.11 --------------------------------------------------
def _mysql_args() -> dict[str, object]:
    host, port, user, password, db = os.environ["PIPESTATE_CORPUS_MYSQL"].split()
    return {"host": host, "port": int(port), "user": user, "password": password, "database": db}


def _myconn(*statements: str, **connect: object) -> object:
    import mysql.connector

    conn = mysql.connector.connect(**{**_mysql_args(), "connection_timeout": 3, **connect})
    conn.autocommit = True
    cur = conn.cursor()
    for statement in (
        "set sql_mode = 'STRICT_ALL_TABLES'",
        "drop table if exists stock5",
        "create table stock5 (sku varchar(8) primary key, qty int not null) engine=innodb",
        "insert into stock5 values ('A-1', 3)",
        *statements,
    ):
        cur.execute(statement)
    return cur


for _label, _what, _stmts in (
    (P, "missing table", ("select * from no_such_table_5",)),
    (V, "duplicate key", ("insert into stock5 values ('A-1', 1)",)),
    (V, "syntax error", ("selec * from stock5",)),
    (V, "data too long", ("insert into stock5 values ('ABCDEFGHIJ', 1)",)),
    (V, "NULL into NOT NULL", ("insert into stock5 values ('B-2', null)",)),
    (V, "unknown column", ("update stock5 set price = 1",)),
):
    case(
        _label,
        "mysql-connector",
        "mysql-connector-python",
        f"mysql-connector + MariaDB: {_what}",
        G,
    )(lambda _s=_stmts: _myconn(*_s))


@case(P, "mysql-connector", "mysql-connector-python", "mysql-connector: wrong password", G)
def myconn_password() -> object:
    return _myconn(password="wrong")


@case(P, "mysql-connector", "mysql-connector-python", "mysql-connector: unknown database", G)
def myconn_no_db() -> object:
    return _myconn(database="no_such_db_5")


@case(T, "mysql-connector", "mysql-connector-python", "mysql-connector: refused port", G)
def myconn_refused() -> object:
    return _myconn(port=refused_port())


@case(T, "mysql-connector", "mysql-connector-python", "mysql-connector: lock wait timeout", G)
def myconn_lock_wait() -> object:
    import mysql.connector

    _myconn()
    holder = mysql.connector.connect(**_mysql_args())
    holder.start_transaction()
    holder.cursor().execute("select * from stock5 where sku = 'A-1' for update")
    try:
        other = mysql.connector.connect(**_mysql_args())
        return other.cursor().execute("update stock5 set qty = 1 where sku = 'A-1'")
    finally:
        holder.rollback()


# -- elasticsearch-py against a scripted server ----------------------------------------------------
_ES_HEADERS = {"X-Elastic-Product": "Elasticsearch"}


def _es_error(status: int, kind: str, reason: str, call: str = "get") -> object:
    from elasticsearch import Elasticsearch

    body = json.dumps(
        {
            "error": {
                "root_cause": [{"type": kind, "reason": reason}],
                "type": kind,
                "reason": reason,
            },
            "status": status,
        }
    ).encode()
    with http_server(
        status, headers=_ES_HEADERS, body=body, content_type="application/json"
    ) as url:
        client = Elasticsearch(url, max_retries=0, retry_on_status=())
        if call == "create":
            return client.create(index="orders", id="1", document={"qty": 1})
        if call == "search":
            return client.search(index="orders", query={"match": {"sku": "A-1"}})
        return client.get(index="orders", id="1")


for _label, _status, _kind, _reason, _call in (
    (P, 404, "index_not_found_exception", "no such index [orders]", "get"),
    (V, 400, "parsing_exception", "unknown query [matc]", "search"),
    (
        P,
        401,
        "security_exception",
        "unable to authenticate user [etl] for REST request [/orders/_doc/1]",
        "get",
    ),
    (
        P,
        409,
        "version_conflict_engine_exception",
        "[1]: version conflict, document already exists (current version [1])",
        "create",
    ),
    (
        T,
        429,
        "es_rejected_execution_exception",
        "rejected execution of coordinating operation [coordinating_and_primary_bytes=0, "
        "replica_bytes=0, all_bytes=0, coordinating_operation_bytes=120, max_coordinating_and_"
        "primary_bytes=0]",
        "search",
    ),
    (
        P,
        403,
        "cluster_block_exception",
        "index [orders] blocked by: [FORBIDDEN/12/index read-only / allow delete (api)];",
        "create",
    ),
):
    case(_label, "elasticsearch", "elasticsearch", f"elasticsearch: {_status} {_kind}", G)(
        lambda _s=_status, _k=_kind, _r=_reason, _c=_call: _es_error(_s, _k, _r, _c)
    )


@case(T, "elasticsearch", "elasticsearch", "elasticsearch: connect to a refused port", G)
def es_refused() -> object:
    from elasticsearch import Elasticsearch

    return Elasticsearch(f"http://127.0.0.1:{refused_port()}", max_retries=0).info()


@case(TO, "elasticsearch", "elasticsearch", "elasticsearch: request_timeout on a slow server", G)
def es_timeout() -> object:
    from elasticsearch import Elasticsearch

    with http_server(200, headers=_ES_HEADERS, delay=2.0, content_type="application/json") as url:
        return Elasticsearch(url, max_retries=0, request_timeout=0.3).info()


# -- azure-storage-blob against a scripted server --------------------------------------------------
def _azure(status: int, code: str, message: str, call: str = "download") -> object:
    from azure.storage.blob import BlobServiceClient

    body = (
        f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code>'
        f"<Message>{message}\nRequestId:5a1c\nTime:2024-01-01T00:00:00.0000000Z</Message></Error>"
    ).encode()
    headers = {"x-ms-error-code": code, "x-ms-request-id": "5a1c"}
    with http_server(status, headers=headers, body=body, content_type="application/xml") as url:
        service = BlobServiceClient(
            f"{url}/devstoreaccount1",
            credential={"account_name": "devstoreaccount1", "account_key": "a2V5"},
            retry_total=0,
        )
        if call == "create":
            return service.create_container("reports")
        return service.get_blob_client("reports", "2024/orders.csv").download_blob().readall()


for _label, _status, _code, _message, _call in (
    (P, 404, "BlobNotFound", "The specified blob does not exist.", "download"),
    (
        P,
        403,
        "AuthenticationFailed",
        "Server failed to authenticate the request. Make sure the value of Authorization header "
        "is formed correctly including the signature.",
        "download",
    ),
    (
        T,
        503,
        "ServerBusy",
        "The server is currently unable to receive requests. Please retry your request.",
        "download",
    ),
    (P, 409, "ContainerAlreadyExists", "The specified container already exists.", "create"),
    (
        V,
        400,
        "InvalidResourceName",
        "The specifed resource name contains invalid characters.",
        "create",
    ),
    (P, 404, "ContainerNotFound", "The specified container does not exist.", "download"),
):
    case(_label, "azure", "azure-storage-blob", f"azure-storage-blob: {_status} {_code}", G)(
        lambda _s=_status, _c=_code, _m=_message, _k=_call: _azure(_s, _c, _m, _k)
    )


@case(V, "azure", "azure-storage-blob", "azure-storage-blob: malformed connection string", G)
def azure_bad_conn() -> object:
    from azure.storage.blob import BlobServiceClient

    return BlobServiceClient.from_connection_string("AccountName=devstoreaccount1;nonsense")


# -- ClickHouse (clickhouse-connect) against a scripted HTTP interface -----------------------------
def _clickhouse(code: int, name: str, text: str, status: int = 500) -> object:
    import clickhouse_connect

    body = f"Code: {code}. DB::Exception: {text}. ({name}) (version 24.3.1.1)\n".encode()
    headers = {"X-ClickHouse-Exception-Code": str(code), "X-ClickHouse-Server-Display-Name": "ch"}
    with http_server(status, headers=headers, body=body) as url:
        port = int(url.rsplit(":", 1)[1])
        return clickhouse_connect.get_client(
            host="127.0.0.1",
            port=port,
            username="etl",
            autogenerate_session_id=False,
            query_retries=0,
        )


for _label, _code, _name, _text, _status in (
    (P, 60, "UNKNOWN_TABLE", "Table default.orders5 does not exist", 404),
    (
        V,
        62,
        "SYNTAX_ERROR",
        "Syntax error: failed at position 1 ('selec'): selec 1. Expected one of: Query, SELECT",
        400,
    ),
    (
        P,
        516,
        "AUTHENTICATION_FAILED",
        "etl: Authentication failed: password is incorrect, or there is no user with such name",
        403,
    ),
    (TO, 159, "TIMEOUT_EXCEEDED", "Timeout exceeded: elapsed 5.000 seconds, maximum: 5", 500),
    (
        P,
        241,
        "MEMORY_LIMIT_EXCEEDED",
        "Memory limit (for query) exceeded: would use 9.31 GiB (attempt to allocate chunk of "
        "4194304 bytes), maximum: 9.31 GiB",
        500,
    ),
):
    case(_label, "clickhouse", "clickhouse-connect", f"clickhouse-connect: {_name}", G)(
        lambda _c=_code, _n=_name, _t=_text, _s=_status: _clickhouse(_c, _n, _t, _s)
    )


# -- google-auth ----------------------------------------------------------------------------------
def _rsa_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@case(P, "google-auth", "google-auth", "google-auth: token endpoint answers invalid_grant", G)
def gauth_invalid_grant() -> object:
    import google.auth.transport.requests
    from google.oauth2 import service_account

    body = json.dumps(
        {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
    ).encode()
    with http_server(400, body=body, content_type="application/json") as url:
        creds = service_account.Credentials.from_service_account_info(
            {
                "type": "service_account",
                "client_email": "etl@proj.iam.gserviceaccount.com",
                "private_key": _rsa_pem(),
                "private_key_id": "k1",
                "token_uri": f"{url}/token",
            },
            scopes=["https://www.googleapis.com/auth/bigquery"],
        )
        return creds.refresh(google.auth.transport.requests.Request())


@case(V, "google-auth", "google-auth", "google-auth: service account info missing fields", G)
def gauth_missing_fields() -> object:
    from google.oauth2 import service_account

    return service_account.Credentials.from_service_account_info({"type": "service_account"})


@case(P, "google-auth", "google-auth", "google-auth: GOOGLE_APPLICATION_CREDENTIALS missing", G)
def gauth_missing_file() -> object:
    import google.auth

    saved = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    os.environ["GOOGLE_APPLICATION_CREDENTIALS"] = "/tmp/no_such_dir_5/key.json"
    try:
        return google.auth.default()
    finally:
        if saved is None:
            del os.environ["GOOGLE_APPLICATION_CREDENTIALS"]
        else:
            os.environ["GOOGLE_APPLICATION_CREDENTIALS"] = saved


# -- httpcore -------------------------------------------------------------------------------------
@case(T, "httpcore", "httpcore", "httpcore: connect to a refused port", G)
def httpcore_refused() -> object:
    import httpcore

    with httpcore.ConnectionPool() as pool:
        return pool.request("GET", f"http://127.0.0.1:{refused_port()}/")


@case(TO, "httpcore", "httpcore", "httpcore: read timeout against a slow server", G)
def httpcore_read_timeout() -> object:
    import httpcore

    with http_server(200, delay=2.0) as url, httpcore.ConnectionPool() as pool:
        return pool.request("GET", url, extensions={"timeout": {"read": 0.3}})


@case(T, "httpcore", "httpcore", "httpcore: server closes without a response", G)
def httpcore_disconnect() -> object:
    import httpcore

    with _raw_http(b"") as port, httpcore.ConnectionPool() as pool:
        return pool.request("GET", f"http://127.0.0.1:{port}/")


@case(V, "httpcore", "httpcore", "httpcore: URL without a scheme", G)
def httpcore_no_scheme() -> object:
    import httpcore

    with httpcore.ConnectionPool() as pool:
        return pool.request("GET", "127.0.0.1/orders")


# -- polars ---------------------------------------------------------------------------------------
@case(V, "polars", "polars", "polars: select of a missing column", G)
def polars_column() -> object:
    import polars as pl

    return pl.DataFrame({"sku": ["A-1"], "qty": [1]}).select("price")


@case(V, "polars", "polars", "polars: strict cast of 'many' to Int64", G)
def polars_cast() -> object:
    import polars as pl

    return pl.Series("qty", ["1", "many"]).cast(pl.Int64)


@case(V, "polars", "polars", "polars: DataFrame of columns with different lengths", G)
def polars_shape() -> object:
    import polars as pl

    return pl.DataFrame({"sku": ["A-1", "B-2"], "qty": [1]})


@case(P, "polars", "polars", "polars: read_csv of a missing file", G)
def polars_missing() -> object:
    import polars as pl

    return pl.read_csv("/tmp/no_such_dir_5/orders.csv")


@case(V, "polars", "polars", "polars: read_parquet of bytes that are not parquet", G)
def polars_not_parquet() -> object:
    import polars as pl

    return pl.read_parquet(io.BytesIO(b"sku,qty\nA-1,1\n"))


@case(V, "polars", "polars", "polars: vertical concat of frames with different columns", G)
def polars_concat() -> object:
    import polars as pl

    return pl.concat([pl.DataFrame({"a": [1]}), pl.DataFrame({"b": [1]})])


# -- openpyxl --------------------------------------------------------------------------------------
@case(P, "openpyxl", "openpyxl", "openpyxl: sheet that the workbook lacks", G)
def openpyxl_sheet() -> object:
    import openpyxl

    return openpyxl.Workbook()["Orders"]


@case(V, "openpyxl", "openpyxl", "openpyxl: cell at row 0", G)
def openpyxl_row0() -> object:
    import openpyxl

    return openpyxl.Workbook().active.cell(row=0, column=1)


@case(V, "openpyxl", "openpyxl", "openpyxl: a control character in a cell value", G)
def openpyxl_illegal() -> object:
    import openpyxl

    openpyxl.Workbook().active["A1"] = "total\x01"


@case(P, "openpyxl", "openpyxl", "openpyxl: load_workbook of a missing file", G)
def openpyxl_missing() -> object:
    import openpyxl

    return openpyxl.load_workbook("/tmp/no_such_dir_5/orders.xlsx")


# -- lxml / msgpack / orjson / fastavro / cerberus / pyyaml / toml ---------------------------------
@case(V, "lxml", "lxml", "lxml: mismatched tag", G)
def lxml_syntax() -> object:
    from lxml import etree

    return etree.fromstring(b"<orders><order></orders>")


@case(V, "lxml", "lxml", "lxml: XPath that does not compile", G)
def lxml_xpath() -> object:
    from lxml import etree

    return etree.XPath("//order[@id=")


@case(V, "lxml", "lxml", "lxml: document invalid against an XML Schema", G)
def lxml_schema() -> object:
    from lxml import etree

    schema = etree.XMLSchema(
        etree.fromstring(
            b'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">'
            b'<xs:element name="qty" type="xs:integer"/></xs:schema>'
        )
    )
    return schema.assertValid(etree.fromstring(b"<qty>many</qty>"))


@case(P, "lxml", "lxml", "lxml: parse of a missing file", G)
def lxml_missing() -> object:
    from lxml import etree

    return etree.parse("/tmp/no_such_dir_5/orders.xml")


@case(V, "msgpack", "msgpack", "msgpack: array header longer than the input", G)
def msgpack_truncated() -> object:
    import msgpack

    return msgpack.unpackb(b"\x93\x01")


@case(V, "msgpack", "msgpack", "msgpack: extra bytes after the object", G)
def msgpack_extra() -> object:
    import msgpack

    return msgpack.unpackb(msgpack.packb({"qty": 1}) + b"\x01")


@case(V, "orjson", "orjson", "orjson: single-quoted JSON", G)
def orjson_quotes() -> object:
    import orjson

    return orjson.loads("{'sku': 'A-1'}")


@case(V, "orjson", "orjson", "orjson: integer wider than 64 bits", G)
def orjson_big() -> object:
    import orjson

    return orjson.dumps({"id": 2**70})


@case(V, "fastavro", "fastavro", "fastavro: schema naming an unknown type", G)
def fastavro_unknown_type() -> object:
    import fastavro

    return fastavro.parse_schema(
        {"type": "record", "name": "Order", "fields": [{"name": "qty", "type": "integr"}]}
    )


@case(V, "fastavro", "fastavro", "fastavro: record with a string in an int field", G)
def fastavro_bad_record() -> object:
    import fastavro

    schema = fastavro.parse_schema(
        {"type": "record", "name": "Order", "fields": [{"name": "qty", "type": "int"}]}
    )
    return fastavro.writer(io.BytesIO(), schema, [{"qty": "many"}])


@case(V, "fastavro", "fastavro", "fastavro: reader over bytes that are not Avro", G)
def fastavro_not_avro() -> object:
    import fastavro

    return list(fastavro.reader(io.BytesIO(b"sku,qty\nA-1,1\n")))


@case(V, "cerberus", "Cerberus", "cerberus: schema with an unknown type", G)
def cerberus_schema() -> object:
    import cerberus

    return cerberus.Validator({"qty": {"type": "integr"}})


@case(V, "yaml", "PyYAML", "PyYAML: unclosed flow sequence", G)
def yaml_unclosed() -> object:
    import yaml

    return yaml.safe_load("tables: [orders, customers\nschedule: daily\n")


@case(V, "yaml", "PyYAML", "PyYAML: safe_load of a python/object tag", G)
def yaml_tag() -> object:
    import yaml

    return yaml.safe_load("step: !!python/object/apply:os.system ['true']\n")


@case(V, "toml", "toml", "toml: value missing after '='", G)
def toml_missing_value() -> object:
    import toml

    return toml.loads("[source]\nurl =\n")


# -- pika / paho-mqtt / fsspec ---------------------------------------------------------------------
@case(T, "amqp", "pika", "pika: connect to a refused port", G)
def pika_refused() -> object:
    import pika

    params = pika.ConnectionParameters(
        host="127.0.0.1", port=refused_port(), connection_attempts=1, socket_timeout=2
    )
    return pika.BlockingConnection(params)


@case(V, "mqtt", "paho-mqtt", "paho-mqtt: publish to a topic with a wildcard", G)
def paho_wildcard() -> object:
    import paho.mqtt.client as mqtt

    return mqtt.Client(mqtt.CallbackAPIVersion.VERSION2).publish("orders/#", b"1")


@case(V, "mqtt", "paho-mqtt", "paho-mqtt: connect with an empty host", G)
def paho_host() -> object:
    import paho.mqtt.client as mqtt

    return mqtt.Client(mqtt.CallbackAPIVersion.VERSION2).connect("", 1883)


@case(P, "fsspec", "fsspec", "fsspec: cat of a missing path in the memory filesystem", G)
def fsspec_memory() -> object:
    import fsspec

    return fsspec.filesystem("memory").cat("/landing/no_such_5.csv")


@case(P, "fsspec", "fsspec", "fsspec: HTTP file that answers 404", G)
def fsspec_http_404() -> object:
    import fsspec

    with http_server(404) as url, fsspec.open(f"{url}/landing/orders.csv") as handle:
        return handle.read()


@case(P, "fsspec", "fsspec", "fsspec: s3:// without s3fs installed", G)
def fsspec_no_s3fs() -> object:
    import fsspec

    return fsspec.filesystem("s3")


# -- standard library modules no earlier batch used -----------------------------------------------
@case(V, "stdlib", "python", "graphlib: a cycle between two steps", G)
def graphlib_cycle() -> object:
    import graphlib

    return list(
        graphlib.TopologicalSorter({"load": {"extract"}, "extract": {"load"}}).static_order()
    )


@case(T, "stdlib", "python", "fcntl.flock LOCK_NB on a file locked by another handle", G)
def flock_busy() -> object:
    import fcntl

    path = tempfile.mktemp(suffix=".lock")
    first = open(path, "w")  # noqa: SIM115 - held while the second handle tries
    fcntl.flock(first, fcntl.LOCK_EX)
    try:
        with open(path, "w") as second:
            return fcntl.flock(second, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        first.close()


@case(P, "stdlib", "python", "os.kill of a process that does not exist", G)
def kill_missing() -> object:
    import subprocess

    proc = subprocess.Popen(["true"])
    proc.wait()
    return os.kill(proc.pid, 0)


@case(P, "stdlib", "python", "locale.setlocale to a locale that is not installed", G)
def locale_missing() -> object:
    import locale

    return locale.setlocale(locale.LC_ALL, "xx_XX.UTF-8")


@case(P, "stdlib", "python", "gettext.translation of a domain without catalogs", G)
def gettext_missing() -> object:
    import gettext

    return gettext.translation(
        "pipestate_reports", localedir="/tmp/no_such_dir_5", languages=["de"]
    )


@case(V, "stdlib", "python", "array of 300 into a signed char array", G)
def array_overflow() -> object:
    import array

    return array.array("b", [300])


@case(V, "stdlib", "python", "base64.b32decode of a non-base32 string", G)
def b32_bad() -> object:
    import base64

    return base64.b32decode("orders==")


@case(V, "stdlib", "python", "netrc: a file with an unknown token", G)
def netrc_bad() -> object:
    import netrc

    path = tempfile.mktemp()
    with open(path, "w") as handle:
        handle.write("machine db.example.com login etl passwd x\n")
    os.chmod(path, 0o600)
    return netrc.netrc(path)


@case(P, "stdlib", "python", "imaplib: LOGIN rejected", G)
def imap_login() -> object:
    import imaplib
    import socketserver

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            self.wfile.write(b"* OK IMAP4rev1 ready\r\n")
            for line in self.rfile:
                tag, command = line.split(b" ")[:2]
                if command.upper().startswith(b"CAPABILITY"):
                    self.wfile.write(
                        b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n" + tag + b" OK done\r\n"
                    )
                    continue
                reply = b" NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)\r\n"
                self.wfile.write(tag + reply)

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        imap = imaplib.IMAP4("127.0.0.1", server.server_address[1], timeout=3)
        return imap.login("etl", "wrong")
    finally:
        server.shutdown()
        server.server_close()


@case(TO, "stdlib", "python", "concurrent.futures: result(timeout) of a slow task", G)
def futures_timeout() -> object:
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(time.sleep, 1.0).result(timeout=0.2)


@case(V, "stdlib", "python", "xml.sax: not well-formed document", G)
def sax_bad() -> object:
    import xml.sax

    return xml.sax.parseString(b"<orders><order id=1/></orders>", xml.sax.ContentHandler())


_ = (contextlib, threading)


# -- more connection, lock and time-budget failures (the kinds a pipeline meets most) --------------
def _pg_two_async(level: str) -> object:
    """asyncpg: two transactions locking rows in opposite order, or racing on one row."""
    import asyncio

    import asyncpg

    async def go() -> object:
        setup = await asyncpg.connect(**_pg_args())
        for statement in _SETUP:
            await setup.execute(statement)
        await setup.execute("insert into stock5 values ('B-2', 1)")
        await setup.close()
        a = await asyncpg.connect(**_pg_args())
        b = await asyncpg.connect(**_pg_args())
        try:
            await a.execute(f"begin isolation level {level}")
            await b.execute(f"begin isolation level {level}")
            if level == "read committed":
                await a.execute("update stock5 set qty = 1 where sku = 'A-1'")
                await b.execute("update stock5 set qty = 1 where sku = 'B-2'")
                results = await asyncio.gather(
                    a.execute("update stock5 set qty = 2 where sku = 'B-2'"),
                    b.execute("update stock5 set qty = 2 where sku = 'A-1'"),
                    return_exceptions=True,
                )
            else:
                await a.execute("select * from stock5")
                await b.execute("update stock5 set qty = 7 where sku = 'A-1'")
                await b.execute("commit")
                results = [await a.execute("update stock5 set qty = 8 where sku = 'A-1'")]
            for result in results:
                if isinstance(result, BaseException):
                    raise result
            return results
        finally:
            await a.close()
            await b.close()

    return asyncio.run(go())


case(T, "asyncpg", "asyncpg", "asyncpg + PostgreSQL 15: deadlock between two transactions", G)(
    lambda: _pg_two_async("read committed")
)
case(
    T, "asyncpg", "asyncpg", "asyncpg + PostgreSQL 15: concurrent update under REPEATABLE READ", G
)(lambda: _pg_two_async("repeatable read"))


@case(T, "asyncpg", "asyncpg", "asyncpg + PostgreSQL 15: backend terminated during a query", G)
def asyncpg_terminated() -> object:
    import asyncio

    import asyncpg

    async def go() -> object:
        conn = await asyncpg.connect(**_pg_args())
        admin = await asyncpg.connect(**_pg_args())
        pid = conn.get_server_pid()
        try:
            query = asyncio.ensure_future(conn.fetch("select pg_sleep(3)"))
            await asyncio.sleep(0.3)
            await admin.execute(f"select pg_terminate_backend({pid})")
            return await query
        finally:
            await admin.close()

    return asyncio.run(go())


@case(T, "psycopg", "psycopg", "psycopg 3 + PostgreSQL 15: lock_timeout on a locked row", G)
def psycopg_lock_timeout() -> object:
    import psycopg

    args = _pg_args()
    args["dbname"] = args.pop("database")
    _psycopg()
    with psycopg.connect(**args) as holder:  # type: ignore[arg-type]
        holder.execute("select * from stock5 where sku = 'A-1' for update")
        with psycopg.connect(autocommit=True, **args) as other:  # type: ignore[arg-type]
            other.execute("set lock_timeout = 100")
            return other.execute("update stock5 set qty = 9 where sku = 'A-1'")


@case(T, "psycopg", "psycopg", "psycopg 3 + PostgreSQL 15: backend terminated by an admin", G)
def psycopg_terminated() -> object:
    import psycopg

    args = _pg_args()
    args["dbname"] = args.pop("database")
    with psycopg.connect(autocommit=True, **args) as conn:  # type: ignore[arg-type]
        pid = conn.info.backend_pid
        with psycopg.connect(autocommit=True, **args) as admin:  # type: ignore[arg-type]
            admin.execute("select pg_terminate_backend(%s)", (pid,))
        time.sleep(0.2)
        return conn.execute("select 1")


@case(T, "mysql-connector", "mysql-connector-python", "mysql-connector: deadlock", G)
def myconn_deadlock() -> object:
    import mysql.connector

    _myconn("insert into stock5 values ('B-2', 1)")
    a = mysql.connector.connect(**_mysql_args())
    b = mysql.connector.connect(**_mysql_args())
    a.start_transaction()
    b.start_transaction()
    ca, cb = a.cursor(), b.cursor()
    ca.execute("update stock5 set qty = 1 where sku = 'A-1'")
    cb.execute("update stock5 set qty = 1 where sku = 'B-2'")
    errors: list[BaseException] = []

    def second_a() -> None:
        try:
            ca.execute("update stock5 set qty = 2 where sku = 'B-2'")
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=second_a)
    thread.start()
    time.sleep(0.3)
    try:
        cb.execute("update stock5 set qty = 2 where sku = 'A-1'")
    except BaseException as exc:
        errors.append(exc)
    thread.join()
    a.rollback()
    b.rollback()
    raise errors[0]


@case(TO, "mysql-connector", "mysql-connector-python", "mysql-connector: silent server", G)
def myconn_silent() -> object:
    import mysql.connector

    with tcp_script() as port:
        return mysql.connector.connect(
            host="127.0.0.1", port=port, user="etl", password="etl", connection_timeout=1
        )


for _label, _status, _kind, _reason in (
    (T, 503, "master_not_discovered_exception", "no master node discovered"),
):
    case(_label, "elasticsearch", "elasticsearch", f"elasticsearch: {_status} {_kind}", G)(
        lambda _s=_status, _k=_kind, _r=_reason: _es_error(_s, _k, _r, "search")
    )

for _label, _status, _code, _message in (
    (
        T,
        500,
        "InternalError",
        "The server encountered an internal error. Please retry the request.",
    ),
    (
        TO,
        500,
        "OperationTimedOut",
        "The operation could not be completed within the permitted time.",
    ),
):
    case(_label, "azure", "azure-storage-blob", f"azure-storage-blob: {_status} {_code}", G)(
        lambda _s=_status, _c=_code, _m=_message: _azure(_s, _c, _m)
    )


@case(T, "azure", "azure-storage-blob", "azure-storage-blob: endpoint on a refused port", G)
def azure_refused() -> object:
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient(
        f"http://127.0.0.1:{refused_port()}/devstoreaccount1",
        credential={"account_name": "devstoreaccount1", "account_key": "a2V5"},
        retry_total=0,
    )
    return service.get_blob_client("reports", "x.csv").download_blob().readall()


for _label, _code, _name, _text, _status in (
    (
        T,
        202,
        "TOO_MANY_SIMULTANEOUS_QUERIES",
        "Too many simultaneous queries. Maximum: 100",
        500,
    ),
    (
        T,
        252,
        "TOO_MANY_PARTS",
        "Too many parts (300 with average size of 12.00 KiB) in table 'default.orders5'. Merges "
        "are processing significantly slower than inserts",
        500,
    ),
    (
        TO,
        209,
        "SOCKET_TIMEOUT",
        "Timeout exceeded while reading from socket (10.0.0.7:9000, 300000 ms)",
        500,
    ),
):
    case(_label, "clickhouse", "clickhouse-connect", f"clickhouse-connect: {_name}", G)(
        lambda _c=_code, _n=_name, _t=_text, _s=_status: _clickhouse(_c, _n, _t, _s)
    )


@case(T, "clickhouse", "clickhouse-connect", "clickhouse-connect: refused port", G)
def clickhouse_refused() -> object:
    import clickhouse_connect

    return clickhouse_connect.get_client(host="127.0.0.1", port=refused_port(), query_retries=0)


@case(TO, "httpcore", "httpcore", "httpcore: pool timeout with the only connection busy", G)
def httpcore_pool_timeout() -> object:
    import httpcore

    with http_server(200, delay=1.5) as url, httpcore.ConnectionPool(max_connections=1) as pool:
        busy = threading.Thread(target=lambda: pool.request("GET", url), daemon=True)
        busy.start()
        time.sleep(0.3)
        try:
            return pool.request("GET", url, extensions={"timeout": {"pool": 0.2}})
        finally:
            busy.join()


@case(T, "google-auth", "google-auth", "google-auth: token endpoint on a refused port", G)
def gauth_refused() -> object:
    import google.auth.transport.requests
    from google.oauth2 import service_account

    creds = service_account.Credentials.from_service_account_info(
        {
            "type": "service_account",
            "client_email": "etl@proj.iam.gserviceaccount.com",
            "private_key": _rsa_pem(),
            "private_key_id": "k1",
            "token_uri": f"http://127.0.0.1:{refused_port()}/token",
        },
        scopes=["https://www.googleapis.com/auth/bigquery"],
    )
    return creds.refresh(google.auth.transport.requests.Request())


@case(D, "stdlib", "python", "asyncio.TaskGroup: one task of the group failed", G)
def taskgroup_failed() -> object:
    import asyncio

    async def extract() -> None:
        raise ConnectionResetError("[Errno 104] Connection reset by peer")

    async def go() -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(extract())
            group.create_task(asyncio.sleep(1))

    return asyncio.run(go())


@case(T, "psycopg", "psycopg", "psycopg 3 + PostgreSQL 15: SERIALIZABLE read/write dependency", G)
def psycopg_serializable() -> object:
    import psycopg

    args = _pg_args()
    args["dbname"] = args.pop("database")
    _psycopg()
    a = psycopg.connect(**args)  # type: ignore[arg-type]
    b = psycopg.connect(**args)  # type: ignore[arg-type]
    try:
        a.execute("set transaction isolation level serializable")
        b.execute("set transaction isolation level serializable")
        a.execute("select sum(qty) from stock5")
        b.execute("select sum(qty) from stock5")
        a.execute("insert into stock5 values ('S-1', 1)")
        b.execute("insert into stock5 values ('S-2', 1)")
        a.commit()
        return b.commit()
    finally:
        a.close()
        b.close()


@case(
    T,
    "mysql-connector",
    "mysql-connector-python",
    "mysql-connector: user over MAX_USER_CONNECTIONS",
    G,
)
def myconn_user_limit() -> object:
    import mysql.connector

    admin = mysql.connector.connect(**_mysql_args())
    cur = admin.cursor()
    cur.execute("drop user if exists 'lim5b'@'127.0.0.1'")
    cur.execute("create user 'lim5b'@'127.0.0.1' identified by 'pw' with max_user_connections 1")
    cur.execute("grant select on etl.* to 'lim5b'@'127.0.0.1'")
    keep = mysql.connector.connect(**{**_mysql_args(), "user": "lim5b", "password": "pw"})
    try:
        return mysql.connector.connect(**{**_mysql_args(), "user": "lim5b", "password": "pw"})
    finally:
        keep.close()
        admin.close()


for _label, _code, _name, _text, _status in (
    (
        T,
        210,
        "NETWORK_ERROR",
        "Connection reset by peer, while writing to socket (10.0.0.8:9000)",
        500,
    ),
    (T, 999, "KEEPER_EXCEPTION", "Connection loss, path: /clickhouse/tables/orders5/replicas", 500),
):
    case(_label, "clickhouse", "clickhouse-connect", f"clickhouse-connect: {_name}", G)(
        lambda _c=_code, _n=_name, _t=_text, _s=_status: _clickhouse(_c, _n, _t, _s)
    )


@case(T, "elasticsearch", "elasticsearch", "elasticsearch: 502 from a proxy in front", G)
def es_502() -> object:
    from elasticsearch import Elasticsearch

    body = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
    with http_server(502, body=body, content_type="text/html") as url:
        return Elasticsearch(url, max_retries=0, retry_on_status=()).info()
