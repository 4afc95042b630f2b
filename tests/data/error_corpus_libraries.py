"""Cases for error_corpus_reproduce.py: client libraries, offline (127.0.0.1 only)."""

from __future__ import annotations

import asyncio
import os

from error_corpus_reproduce import TO, D, P, T, V, case, http_server, refused_port, tcp_script

G = "generalisation"
H = "holdout"


# -- requests ----------------------------------------------------------------------------------
def _requests(status: int, headers: dict[str, str] | None = None) -> object:
    import requests

    with http_server(status, headers) as url:
        response = requests.get(url + "/v1/orders", timeout=2)
        return response.raise_for_status()


@case(T, "http", "requests", "raise_for_status on a local 503 with Retry-After")
def requests_503() -> object:
    return _requests(503, {"Retry-After": "120"})


@case(T, "http", "requests", "raise_for_status on a local 429 with Retry-After")
def requests_429() -> object:
    return _requests(429, {"Retry-After": "3"})


@case(
    T, "http", "requests", "raise_for_status on a local 403 with Retry-After (secondary rate limit)"
)
def requests_403_retry_after() -> object:
    return _requests(403, {"Retry-After": "60"})


@case(P, "http", "requests", "raise_for_status on a local 403", H)
def requests_403() -> object:
    return _requests(403)


@case(P, "http", "requests", "raise_for_status on a local 404")
def requests_404() -> object:
    return _requests(404)


@case(V, "http", "requests", "raise_for_status on a local 422", H)
def requests_422() -> object:
    return _requests(422)


@case(T, "http", "requests", "raise_for_status on a local 500", H)
def requests_500() -> object:
    return _requests(500)


@case(TO, "http", "requests", "raise_for_status on a local 504 Gateway Timeout", H)
def requests_504() -> object:
    return _requests(504)


@case(P, "http", "requests", "raise_for_status on a local 401", H)
def requests_401() -> object:
    return _requests(401)


@case(T, "http", "requests", "GET of a refused local port")
def requests_refused() -> object:
    import requests

    return requests.get(f"http://127.0.0.1:{refused_port()}/v1", timeout=2)


@case(TO, "http", "requests", "GET with timeout=0.2 of a server that answers late", H)
def requests_read_timeout() -> object:
    import requests

    with http_server(200, delay=1.0) as url:
        return requests.get(url, timeout=0.2)


@case(T, "http", "requests", "GET of a server that closes without answering", H)
def requests_closed() -> object:
    import requests

    with tcp_script(close_after=True) as port:
        return requests.get(f"http://127.0.0.1:{port}/", timeout=2)


@case(P, "http", "requests", "GET https:// of a plain-HTTP local server (TLS mismatch)", H)
def requests_ssl() -> object:
    import requests

    with http_server(200) as url:
        return requests.get(url.replace("http://", "https://"), timeout=2)


@case(V, "http", "requests", "GET of a URL without a scheme", H)
def requests_schema() -> object:
    import requests

    return requests.get("warehouse.internal/v1/orders", timeout=2)


@case(P, "http", "requests", "GET of a local server that redirects to itself forever", H)
def requests_redirects() -> object:
    import requests

    with http_server(302, {"Location": "/loop"}) as url:
        return requests.get(url + "/loop", timeout=2)


# -- httpx -------------------------------------------------------------------------------------
def _httpx(status: int, headers: dict[str, str] | None = None) -> object:
    import httpx

    with http_server(status, headers) as url:
        return httpx.get(url + "/v1/orders", timeout=2).raise_for_status()


@case(T, "http", "httpx", "raise_for_status on a local 503", H)
def httpx_503() -> object:
    return _httpx(503)


@case(T, "http", "httpx", "raise_for_status on a local 429 with Retry-After")
def httpx_429() -> object:
    return _httpx(429, {"Retry-After": "5"})


@case(P, "http", "httpx", "raise_for_status on a local 404", H)
def httpx_404() -> object:
    return _httpx(404)


@case(V, "http", "httpx", "raise_for_status on a local 400")
def httpx_400() -> object:
    return _httpx(400)


@case(T, "http", "httpx", "GET of a refused local port", H)
def httpx_refused() -> object:
    import httpx

    return httpx.get(f"http://127.0.0.1:{refused_port()}/", timeout=2)


@case(TO, "http", "httpx", "GET with a 0.2 s timeout of a server that answers late")
def httpx_timeout() -> object:
    import httpx

    with http_server(200, delay=1.0) as url:
        return httpx.get(url, timeout=0.2)


@case(T, "http", "httpx", "GET of a server that closes without answering")
def httpx_closed() -> object:
    import httpx

    with tcp_script(close_after=True) as port:
        return httpx.get(f"http://127.0.0.1:{port}/", timeout=2)


@case(V, "http", "httpx", "GET of an unsupported URL scheme", H)
def httpx_scheme() -> object:
    import httpx

    return httpx.get("ftp://127.0.0.1/x", timeout=2)


# -- aiohttp -----------------------------------------------------------------------------------
def _aiohttp(url: str, raise_for_status: bool = True, timeout: float = 2.0) -> object:
    import aiohttp

    async def fetch() -> object:
        client_timeout = aiohttp.ClientTimeout(total=timeout)
        async with (
            aiohttp.ClientSession(raise_for_status=raise_for_status, timeout=client_timeout) as s,
            s.get(url) as response,
        ):
            return await response.read()

    return asyncio.run(fetch())


@case(T, "http", "aiohttp", "GET of a local 503 with raise_for_status")
def aiohttp_503() -> object:
    with http_server(503) as url:
        return _aiohttp(url + "/v1")


@case(P, "http", "aiohttp", "GET of a local 403 with raise_for_status", H)
def aiohttp_403() -> object:
    with http_server(403) as url:
        return _aiohttp(url + "/v1")


@case(T, "http", "aiohttp", "GET of a refused local port", H)
def aiohttp_refused() -> object:
    return _aiohttp(f"http://127.0.0.1:{refused_port()}/")


@case(T, "http", "aiohttp", "GET of a server that closes without answering", H)
def aiohttp_closed() -> object:
    with tcp_script(close_after=True) as port:
        return _aiohttp(f"http://127.0.0.1:{port}/")


@case(TO, "http", "aiohttp", "GET with a 0.2 s total timeout of a slow server")
def aiohttp_timeout() -> object:
    with http_server(200, delay=1.0) as url:
        return _aiohttp(url, timeout=0.2)


# -- botocore (offline: a local endpoint) ------------------------------------------------------
def _s3(url: str | None = None) -> object:
    import boto3
    from botocore.config import Config

    os.environ.update(
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE="/nonexistent",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
    )
    creds = (
        {} if url is None else {"aws_access_key_id": "AKIDEXAMPLE", "aws_secret_access_key": "x"}
    )
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        os.environ.pop(key, None)
    return boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=url,
        config=Config(retries={"max_attempts": 1}),
        **creds,
    )


def _s3_error(status: int, code: str, message: str) -> object:
    body = (
        f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>{message}"
        "</Message><RequestId>4442587FB7D0A2F9</RequestId></Error>"
    ).encode()
    with http_server(status, body=body, content_type="application/xml") as url:
        return _s3(url).get_object(Bucket="etl-raw", Key="orders/2024-01-01.csv")


# Messages: Amazon S3's documented error responses for each code.
@case(T, "botocore", "botocore", "get_object against a local endpoint answering 503 SlowDown")
def s3_slowdown() -> object:
    return _s3_error(503, "SlowDown", "Please reduce your request rate.")


@case(P, "botocore", "botocore", "get_object against a local endpoint answering 404 NoSuchKey", H)
def s3_nosuchkey() -> object:
    return _s3_error(404, "NoSuchKey", "The specified key does not exist.")


@case(P, "botocore", "botocore", "get_object against a local endpoint answering 403 AccessDenied")
def s3_denied() -> object:
    return _s3_error(403, "AccessDenied", "Access Denied")


@case(P, "botocore", "botocore", "get_object answered 403 InvalidAccessKeyId", H)
def s3_bad_key() -> object:
    return _s3_error(
        403,
        "InvalidAccessKeyId",
        "The AWS Access Key Id you provided does not exist in our records.",
    )


@case(T, "botocore", "botocore", "get_object answered 500 InternalError", H)
def s3_internal() -> object:
    return _s3_error(500, "InternalError", "We encountered an internal error. Please try again.")


@case(TO, "botocore", "botocore", "get_object answered 400 RequestTimeout", H)
def s3_request_timeout() -> object:
    return _s3_error(
        400,
        "RequestTimeout",
        "Your socket connection to the server was not read "
        "from or written to within the timeout period. Idle connections will be closed.",
    )


@case(P, "botocore", "botocore", "get_object answered 400 ExpiredToken")
def s3_expired() -> object:
    return _s3_error(400, "ExpiredToken", "The provided token has expired.")


@case(P, "botocore", "botocore", "get_object answered 404 NoSuchBucket", H)
def s3_nosuchbucket() -> object:
    return _s3_error(404, "NoSuchBucket", "The specified bucket does not exist")


@case(P, "botocore", "botocore", "list_buckets with no credentials configured")
def s3_no_credentials() -> object:
    return _s3().list_buckets()


@case(V, "botocore", "botocore", "get_object with a non-string Bucket (parameter validation)", H)
def s3_param() -> object:
    return _s3().get_object(Bucket=1, Key="x")


@case(T, "botocore", "botocore", "list_buckets against a refused local endpoint", H)
def s3_refused() -> object:
    return _s3(f"http://127.0.0.1:{refused_port()}").list_buckets()


@case(TO, "botocore", "botocore", "list_buckets with read_timeout=0.2 against a slow endpoint")
def s3_read_timeout() -> object:
    import boto3
    from botocore.config import Config

    with http_server(200, delay=1.0) as url:
        client = boto3.client(
            "s3",
            region_name="us-east-1",
            endpoint_url=url,
            aws_access_key_id="AKIDEXAMPLE",
            aws_secret_access_key="x",
            config=Config(read_timeout=0.2, retries={"max_attempts": 1}),
        )
        return client.list_buckets()


# -- SQLAlchemy (over sqlite3 and a refused PostgreSQL/MySQL port) -----------------------------
@case(P, "sqlalchemy", "sqlalchemy", "execute on sqlite of a missing table")
def sa_no_table() -> object:
    import sqlalchemy as sa

    with sa.create_engine("sqlite://").connect() as conn:
        return conn.execute(sa.text("select * from orders"))


@case(V, "sqlalchemy", "sqlalchemy", "execute on sqlite violating a UNIQUE constraint", H)
def sa_unique() -> object:
    import sqlalchemy as sa

    with sa.create_engine("sqlite://").connect() as conn:
        conn.execute(sa.text("create table t (id integer primary key)"))
        conn.execute(sa.text("insert into t values (1)"))
        return conn.execute(sa.text("insert into t values (1)"))


@case(T, "sqlalchemy", "sqlalchemy", "connect via psycopg2 to a refused local port")
def sa_pg_refused() -> object:
    import sqlalchemy as sa

    return sa.create_engine(f"postgresql+psycopg2://etl:pw@127.0.0.1:{refused_port()}/dw").connect()


@case(T, "sqlalchemy", "sqlalchemy", "connect via pymysql to a refused local port", H)
def sa_mysql_refused() -> object:
    import sqlalchemy as sa

    return sa.create_engine(f"mysql+pymysql://etl:pw@127.0.0.1:{refused_port()}/dw").connect()


@case(
    TO, "sqlalchemy", "sqlalchemy", "QueuePool(size 1, overflow 0) checkout with 0.1 s timeout", H
)
def sa_pool_timeout() -> object:
    import sqlalchemy as sa

    engine = sa.create_engine(
        "sqlite:///" + os.path.join(__import__("tempfile").mkdtemp(), "x.db"),
        poolclass=sa.pool.QueuePool,
        pool_size=1,
        max_overflow=0,
        pool_timeout=0.1,
    )
    held = engine.connect()  # noqa: F841 - keeps the only connection checked out
    return engine.connect()


@case(V, "sqlalchemy", "sqlalchemy", "create_engine of an unparseable URL", H)
def sa_bad_url() -> object:
    import sqlalchemy as sa

    return sa.create_engine("not a url")


@case(P, "sqlalchemy", "sqlalchemy", "create_engine of an unknown dialect")
def sa_no_dialect() -> object:
    import sqlalchemy as sa

    return sa.create_engine("snowflakey://x/y")


# -- psycopg2 / pymysql / redis-py / kafka-python / pymongo / paramiko without a server ---------
@case(T, "postgres", "psycopg2-binary", "psycopg2.connect to a refused local port")
def pg_refused() -> object:
    import psycopg2

    return psycopg2.connect(
        host="127.0.0.1", port=refused_port(), user="etl", dbname="dw", connect_timeout=2
    )


@case(V, "postgres", "psycopg2-binary", "psycopg2.connect with an unknown DSN option", H)
def pg_bad_dsn() -> object:
    import psycopg2

    return psycopg2.connect("host=127.0.0.1 sslmodes=require")


@case(T, "mysql", "pymysql", "pymysql.connect to a refused local port")
def mysql_refused() -> object:
    import pymysql

    return pymysql.connect(host="127.0.0.1", port=refused_port(), user="etl", connect_timeout=2)


@case(T, "redis", "redis", "redis-py ping of a refused local port")
def redis_refused() -> object:
    import redis

    return redis.Redis(port=refused_port(), socket_connect_timeout=2).ping()


@case(TO, "redis", "redis", "redis-py get with socket_timeout=0.2 of a server that never answers")
def redis_timeout() -> object:
    import redis

    with tcp_script(replies=[]) as port:
        return redis.Redis(port=port, socket_timeout=0.2).get("k")


def _redis_reply(reply: bytes) -> object:
    import redis

    with tcp_script(replies=[reply] * 8) as port:
        return redis.Redis(port=port, socket_timeout=2, protocol=2).set("k", "v")


# The replies are the server's own texts (redis/redis: src/server.c createSharedObjects).
@case(T, "redis", "redis", "redis-py SET answered by a scripted -LOADING reply (src/server.c)", H)
def redis_loading() -> object:
    return _redis_reply(b"-LOADING Redis is loading the dataset in memory\r\n")


@case(P, "redis", "redis", "redis-py SET answered by a scripted -MISCONF reply (src/server.c)")
def redis_misconf() -> object:
    return _redis_reply(
        b"-MISCONF Redis is configured to save RDB snapshots, but it is currently "
        b"not able to persist on disk. Commands that may modify the data set are "
        b"disabled, because this instance is configured to report errors during "
        b"writes if RDB snapshotting fails (stop-writes-on-bgsave-error option). "
        b"Please check the Redis logs for details about the RDB error.\r\n"
    )


@case(TO, "kafka", "kafka-python", "KafkaConsumer with a refused local bootstrap server")
def kafka_no_brokers() -> object:
    import kafka

    return kafka.KafkaConsumer(bootstrap_servers=f"127.0.0.1:{refused_port()}")


def _kafka(name: str, *args: object) -> object:
    import kafka.errors

    raise getattr(kafka.errors, name)(*args)


# kafka-python's broker errors (dpkp/kafka-python: kafka/errors.py), raised as its client does.
for _name, _label, _split in (
    ("RequestTimedOutError", TO, "tune"),
    ("NotLeaderForPartitionError", T, "tune"),
    ("LeaderNotAvailableError", T, H),
    ("UnknownTopicOrPartitionError", T, "tune"),
    ("NotEnoughReplicasError", T, H),
    ("CoordinatorNotAvailableError", T, "tune"),
    ("RebalanceInProgressError", T, H),
    ("TopicAuthorizationFailedError", P, "tune"),
    ("GroupAuthorizationFailedError", P, H),
    ("MessageSizeTooLargeError", P, "tune"),
    ("InvalidTopicError", V, H),
    ("RecordListTooLargeError", P, H),
    ("TopicAlreadyExistsError", P, "tune"),
    ("CorruptRecordError", V, H),
    ("OffsetOutOfRangeError", P, H),
    ("NotCoordinatorError", T, H),
    ("NetworkExceptionError", T, "tune"),
    ("PolicyViolationError", V, H),
    ("KafkaTimeoutError", TO, "tune"),
    ("NodeNotReadyError", T, H),
):
    case(_label, "kafka", "kafka-python", f"kafka.errors.{_name} as the client raises it", _split)(
        lambda _name=_name: _kafka(_name, "broker reply for the request")
    )


@case(
    TO, "mongodb", "pymongo", "MongoClient ping of a refused port (serverSelectionTimeoutMS=300)", G
)
def mongo_selection() -> object:
    import pymongo

    client = pymongo.MongoClient(
        f"mongodb://127.0.0.1:{refused_port()}", serverSelectionTimeoutMS=300
    )
    return client.admin.command("ping")


@case(V, "mongodb", "pymongo", "MongoClient of a malformed URI", G)
def mongo_uri() -> object:
    import pymongo

    return pymongo.MongoClient("mongodb://etl:p@ss:word@127.0.0.1:1/")


@case(T, "ssh", "paramiko", "SSHClient.connect to a refused local port", G)
def ssh_refused() -> object:
    import paramiko

    client = paramiko.SSHClient()
    return client.connect("127.0.0.1", port=refused_port(), username="etl", timeout=2)


@case(T, "ssh", "paramiko", "SSHClient.connect to a server that closes before the banner", G)
def ssh_banner() -> object:
    import paramiko

    with tcp_script(close_after=True) as port:
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        return client.connect("127.0.0.1", port=port, username="etl", timeout=2, banner_timeout=2)


@case(P, "ssh", "paramiko", "RSAKey.from_private_key_file of a missing key file", G)
def ssh_key_missing() -> object:
    import paramiko

    return paramiko.RSAKey.from_private_key_file("/nonexistent/id_rsa")


# -- data libraries --------------------------------------------------------------------------
@case(V, "arrow", "pyarrow", "pa.array of a str into int64")
def arrow_convert() -> object:
    import pyarrow as pa

    return pa.array(["12", "abc"], type=pa.int64())


@case(V, "arrow", "pyarrow", "pa.array of 300 into int8", H)
def arrow_range() -> object:
    import pyarrow as pa

    return pa.array([300], type=pa.int8())


@case(V, "arrow", "pyarrow", "cast of a string column to int32", H)
def arrow_cast() -> object:
    import pyarrow as pa

    return pa.array(["1", "x"]).cast(pa.int32())


@case(V, "arrow", "pyarrow", "pa.table with columns of different lengths")
def arrow_lengths() -> object:
    import pyarrow as pa

    return pa.table({"a": [1, 2], "b": [1]})


@case(V, "arrow", "pyarrow", "pa.array of a dict into int64 (ArrowTypeError)", H)
def arrow_type() -> object:
    import pyarrow as pa

    return pa.array([{"a": 1}], type=pa.int64())


@case(P, "arrow", "pyarrow", "cast int64 to a struct type (not implemented)")
def arrow_not_implemented() -> object:
    import pyarrow as pa

    return pa.array([1]).cast(pa.struct([("a", pa.int8())]))


@case(V, "arrow", "pyarrow", "parquet.read_table of a file that is not parquet", H)
def arrow_parquet() -> object:
    import tempfile

    import pyarrow.parquet as pq

    path = os.path.join(tempfile.mkdtemp(), "x.parquet")
    with open(path, "wb") as handle:
        handle.write(b"id,name\n1,a\n")
    return pq.read_table(path)


@case(P, "duckdb", "duckdb", "select from a missing table", G)
def duck_catalog() -> object:
    import duckdb

    return duckdb.connect().execute("select * from orders")


@case(V, "duckdb", "duckdb", "syntax error", G)
def duck_parser() -> object:
    import duckdb

    return duckdb.connect().execute("selec 1")


@case(V, "duckdb", "duckdb", "cast of 'abc' to INTEGER", G)
def duck_conversion() -> object:
    import duckdb

    return duckdb.connect().execute("select 'abc'::integer")


@case(V, "duckdb", "duckdb", "duplicate primary key", G)
def duck_constraint() -> object:
    import duckdb

    db = duckdb.connect()
    db.execute("create table t (id integer primary key)")
    db.execute("insert into t values (1)")
    return db.execute("insert into t values (1)")


@case(V, "duckdb", "duckdb", "unknown column", G)
def duck_binder() -> object:
    import duckdb

    db = duckdb.connect()
    db.execute("create table t (id integer)")
    return db.execute("select amount from t")


@case(P, "duckdb", "duckdb", "read_csv of a missing file", G)
def duck_io() -> object:
    import duckdb

    return duckdb.connect().execute("select * from read_csv('/nonexistent/orders.csv')")


@case(V, "duckdb", "duckdb", "integer overflow in an expression", G)
def duck_range() -> object:
    import duckdb

    return duckdb.connect().execute("select 2147483647::integer + 1::integer")


@case(V, "validation", "pydantic", "model_validate of a record with a missing and a bad field")
def pydantic_model() -> object:
    import pydantic

    class Order(pydantic.BaseModel):
        id: int
        amount: float

    return Order.model_validate({"amount": "x"})


@case(V, "validation", "jsonschema", "validate of a record against a schema", H)
def jsonschema_validate() -> object:
    import jsonschema

    return jsonschema.validate(
        {"id": "x"}, {"type": "object", "properties": {"id": {"type": "integer"}}}
    )


@case(V, "validation", "marshmallow", "Schema.load of a record with a bad field", H)
def marshmallow_load() -> object:
    import marshmallow

    class Order(marshmallow.Schema):
        id = marshmallow.fields.Int(required=True)

    return Order().load({"id": "x"})


# -- Celery / billiard -------------------------------------------------------------------------
@case(D, "orchestrator", "celery", "celery.exceptions.ChordError as the chord unlock raises it")
def celery_chord() -> object:
    from celery.exceptions import ChordError

    raise ChordError(
        f"Dependency {'97de6f3f-ea67-4517-a21c-d867c61fcb47'} raised {ValueError('x')!r}"
    )


@case(
    TO,
    "orchestrator",
    "celery",
    "billiard TimeLimitExceeded as the pool raises it (hard limit 60 s)",
)
def celery_time_limit() -> object:
    from billiard.exceptions import TimeLimitExceeded

    raise TimeLimitExceeded(60.0)


@case(TO, "orchestrator", "celery", "billiard SoftTimeLimitExceeded as the worker raises it", H)
def celery_soft_limit() -> object:
    from billiard.exceptions import SoftTimeLimitExceeded

    raise SoftTimeLimitExceeded()


@case(T, "orchestrator", "celery", "billiard WorkerLostError as the pool raises it (SIGKILL)", H)
def celery_worker_lost() -> object:
    from billiard.exceptions import WorkerLostError

    raise WorkerLostError("Worker exited prematurely: signal 9 (SIGKILL) Job: 12.")


@case(TO, "orchestrator", "celery", "AsyncResult.get(timeout=0.1) of a task that never ran")
def celery_result_timeout() -> object:
    import celery

    app = celery.Celery(broker="memory://", backend="cache+memory://")
    return app.AsyncResult("5f5b4c3a-0000-4000-8000-000000000000").get(timeout=0.1, interval=0.05)


@case(P, "orchestrator", "celery", "MaxRetriesExceededError as Task.retry raises it", H)
def celery_max_retries() -> object:
    from celery.exceptions import MaxRetriesExceededError

    raise MaxRetriesExceededError("Can't retry etl.load[5f5b4c3a] args:() kwargs:{}")
