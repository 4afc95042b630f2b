"""Level 1a tables beyond the cloud SDKs: SQLSTATE, MySQL, Redis, errno and Kafka codes, as data.

Each CodeRule names its *kind* (the namespace a code is looked up in), so "1213" as a MySQL
error number never collides with anything else. classifier/_signals.py says where each kind of
code is read from an exception or its message.
"""

from __future__ import annotations

from classifier._rulekinds import CodeRule, PatternRule
from classifier.types import ErrorType

T, P, TO = ErrorType.TRANSIENT, ErrorType.PERMANENT, ErrorType.TIMEOUT
V = ErrorType.VALIDATION_ERROR

_SQLSTATE = "SQLSTATE (pgcode, sqlstate, diag.sqlstate, getSqlState(), 'SQLSTATE xxxxx')"
_SQLSTATE_CLASS = "SQLSTATE class (first two characters), when the exact code is not listed"
_MYSQL = "MySQL / MariaDB error number (args[0], errno, '(1213, ...)', 'ERROR 1045 (28000)')"
_REDIS = "Redis error reply prefix (the first word of the reply)"
_ERRNO = "errno of an OSError, or '[Errno N]' in the message"
_GAI = "socket.gaierror errno (getaddrinfo EAI_* codes)"
_KAFKA = "Kafka error name (kafka-python message, confluent-kafka KafkaError.name())"
_SQLITE = (
    "SQLite result code name (sqlite3 `sqlite_errorname`; extended codes fall back to the primary)"
)
_SMTP = "SMTP reply code (smtplib `smtp_code`, or each refused recipient's code)"
_SMTP_CLASS = "SMTP reply class (first digit), when the exact code is not listed"


# Snowflake reuses SQLSTATE 57P03 ("cannot connect now") for a session without a warehouse,
# which no retry fixes; its own error number (606) decides when present, this when not.
NO_WAREHOUSE = PatternRule(
    r"no active warehouse",
    P,
    "Snowflake: no active warehouse selected (a configuration or grant problem)",
    ("SQLSTATE[57P03]: Cannot connect now: 606 No active warehouse selected",),
)


def _split(spec: str) -> tuple[str, ...]:
    """Whitespace-separated codes."""
    return tuple(spec.split())


SQLSTATE_RULES: tuple[CodeRule, ...] = (
    CodeRule(
        _split("40001 40P01 40003 55P03 55006 53300 53200 57P01 57P02 57P03 57P05 25006 72000"),
        T,
        "serialization failure, deadlock, lock not available, out of connections or memory, "
        "shutdown or failover in progress",
        _SQLSTATE,
        kind="sqlstate",
        refine=(NO_WAREHOUSE,),
    ),
    CodeRule(
        _split("57014 25P03"),
        TO,
        "statement or idle-transaction timeout fired",
        _SQLSTATE,
        "sqlstate",
    ),
    CodeRule(
        _split(
            "28P01 28000 42501 42P01 3D000 3F000 53100 53400 57P04 58P01 XX001 XX002 42P07 "
            "42P04 42P06 42710 42723 42P05 42P03"
        ),
        P,
        "bad password, no privilege, missing table/database/schema, disk full, corrupted data, "
        "creating a database, schema, object or function that exists",
        _SQLSTATE,
        kind="sqlstate",
    ),
    CodeRule(
        _split("22001 22003 22007 22008 22012 22P02 23502 23503 23505 23514 42601 42703 42804"),
        V,
        "data exception, constraint violation or malformed statement",
        _SQLSTATE,
        kind="sqlstate",
    ),
    CodeRule(
        _split("08 40 53 57 58"),
        T,
        "connection exception, transaction rollback, insufficient resources, operator "
        "intervention, system error",
        _SQLSTATE_CLASS,
        kind="sqlstate-class",
    ),
    CodeRule(
        _split("25 28 0A 0L 0P 2B 2D 2F 38 39 3B 3D 3F 44 54 55 F0 P0"),
        P,
        "transaction state, authorization, unsupported feature, role, routine or configuration "
        "errors",
        _SQLSTATE_CLASS,
        kind="sqlstate-class",
    ),
    CodeRule(
        _split("21 22 23 26 27 42"),
        V,
        "cardinality, data, integrity or syntax/access-rule errors in the statement",
        _SQLSTATE_CLASS,
        kind="sqlstate-class",
    ),
)

MYSQL_RULES: tuple[CodeRule, ...] = (
    CodeRule(
        ("2013",),
        T,
        "lost connection during a query, unless the client says its own read timed out",
        _MYSQL,
        kind="mysql",
        refine=(
            PatternRule(
                r"during query \(timed out\)|read timed out",
                TO,
                "pymysql reports its read_timeout as 2013 '(timed out)': the caller's budget",
                ("(2013, 'Lost connection to MySQL server during query (timed out)')",),
            ),
        ),
    ),
    CodeRule(
        _split(
            "1205 1213 1040 1053 1077 1080 1152 1158 1159 1160 1161 1290 1927 2002 2003 2006 "
            "2055 1614 3572 4031 1226 1317"
        ),
        T,
        "lock wait, deadlock, too many connections, server gone away or shutting down, "
        "read-only replica during failover",
        _MYSQL,
        kind="mysql",
    ),
    CodeRule(_split("3024 1969"), TO, "max_execution_time / statement timeout", _MYSQL, "mysql"),
    CodeRule(
        _split(
            "1044 1045 1049 1050 1051 1142 1143 1146 1227 1698 1820 1862 2059 1114 1021 3118 "
            "1007 1008 1099 1109 1091 1701 1286 1396"
        ),
        P,
        "access denied, unknown database or table, password expired, table full, database "
        "exists or missing, table locked for read, dropping a missing key, truncating a "
        "referenced table, unknown storage engine, user exists",
        _MYSQL,
        kind="mysql",
    ),
    CodeRule(
        _split(
            "1048 1054 1062 1064 1136 1264 1265 1292 1364 1366 1406 1411 1451 1452 3140 "
            "1052 1110 1171 4025 3819"
        ),
        V,
        "bad value, unknown column, duplicate key, syntax error, foreign key or check failure",
        _MYSQL,
        kind="mysql",
    ),
)

REDIS_RULES: tuple[CodeRule, ...] = (
    CodeRule(
        _split(
            "LOADING READONLY MASTERDOWN TRYAGAIN CLUSTERDOWN BUSY NOREPLICAS MOVED ASK UNBLOCKED"
        ),
        T,
        "the server is loading, failing over or busy: the same command succeeds later",
        _REDIS,
        kind="redis",
    ),
    CodeRule(
        _split("NOAUTH WRONGPASS NOPERM OOM MISCONF NOSCRIPT BUSYGROUP NOGROUP BUSYKEY NOPROTO"),
        P,
        "authentication, ACL, memory limit or persistence misconfiguration; a consumer group "
        "or key that exists (or does not)",
        _REDIS,
        kind="redis",
    ),
    CodeRule(
        _split("WRONGTYPE CROSSSLOT EXECABORT"),
        V,
        "the command does not fit the data",
        _REDIS,
        "redis",
    ),
)

ERRNO_RULES: tuple[CodeRule, ...] = (
    CodeRule(
        _split(
            "ECONNREFUSED ECONNRESET ECONNABORTED EHOSTUNREACH ENETUNREACH ENETDOWN EPIPE "
            "EAGAIN EWOULDBLOCK EBUSY EINTR EHOSTDOWN ENOBUFS EMFILE ENFILE ESHUTDOWN "
            "ENOTCONN"
        ),
        T,
        "the network or the peer is briefly unreachable, or the system is briefly out of handles",
        _ERRNO,
        kind="errno",
    ),
    CodeRule(_split("ETIMEDOUT"), TO, "the connection attempt timed out", _ERRNO, "errno"),
    CodeRule(
        _split(
            "ENOENT EACCES EPERM ENOSPC EDQUOT EROFS EISDIR ENOTDIR ENOTEMPTY EEXIST "
            "ENAMETOOLONG ELOOP EXDEV EFBIG ENOMEM"
        ),
        P,
        "missing file, no permission, disk full or read-only: a retry repeats it",
        _ERRNO,
        kind="errno",
    ),
    CodeRule(_split("EINVAL"), V, "an invalid argument", _ERRNO, "errno"),
    CodeRule(
        _split("EAI_AGAIN EAI_MEMORY EAI_SYSTEM EAI_FAIL"),
        T,
        "getaddrinfo says try again: the resolver is briefly unavailable",
        _GAI,
        kind="gai",
    ),
    CodeRule(
        _split("EAI_NONAME EAI_NODATA EAI_ADDRFAMILY EAI_SERVICE EAI_FAMILY EAI_BADFLAGS"),
        P,
        "the name does not exist (or has no address): a retry resolves it the same way",
        _GAI,
        kind="gai",
    ),
)

KAFKA_RULES: tuple[CodeRule, ...] = (
    CodeRule(
        _split(
            """REQUEST_TIMED_OUT _TIMED_OUT _MSG_TIMED_OUT _TIMED_OUT_QUEUE
            KafkaTimeoutError"""
        ),
        TO,
        "the broker or the client's own deadline passed",
        _KAFKA,
        kind="kafka",
    ),
    CodeRule(
        _split(
            """_TRANSPORT _ALL_BROKERS_DOWN _RESOLVE _DESTROY _QUEUE_FULL _WAIT_COORD
            LEADER_NOT_AVAILABLE NOT_LEADER_FOR_PARTITION NOT_LEADER_OR_FOLLOWER
            NETWORK_EXCEPTION COORDINATOR_LOAD_IN_PROGRESS COORDINATOR_NOT_AVAILABLE
            NOT_COORDINATOR NOT_ENOUGH_REPLICAS NOT_ENOUGH_REPLICAS_AFTER_APPEND
            NOT_CONTROLLER REBALANCE_IN_PROGRESS CONCURRENT_TRANSACTIONS KAFKA_STORAGE_ERROR
            UNKNOWN_TOPIC_OR_PART UNKNOWN_LEADER_EPOCH FENCED_LEADER_EPOCH
            OFFSET_NOT_AVAILABLE THROTTLING_QUOTA_EXCEEDED REPLICA_NOT_AVAILABLE
            NoBrokersAvailable KafkaConnectionError NodeNotReadyError"""
        ),
        T,
        "leader election, rebalance, coordinator moves and broker outages clear by themselves",
        _KAFKA,
        kind="kafka",
    ),
    CodeRule(
        _split(
            """TOPIC_AUTHORIZATION_FAILED GROUP_AUTHORIZATION_FAILED
            CLUSTER_AUTHORIZATION_FAILED TRANSACTIONAL_ID_AUTHORIZATION_FAILED
            SASL_AUTHENTICATION_FAILED _AUTHENTICATION _SSL MESSAGE_SIZE_TOO_LARGE
            _MSG_SIZE_TOO_LARGE RECORD_LIST_TOO_LARGE TOPIC_ALREADY_EXISTS
            UNSUPPORTED_VERSION UNSUPPORTED_SASL_MECHANISM _UNKNOWN_TOPIC
            _UNKNOWN_PARTITION OFFSET_OUT_OF_RANGE _FATAL INVALID_PRODUCER_EPOCH
            PRODUCER_FENCED TRANSACTION_COORDINATOR_FENCED"""
        ),
        P,
        "authorization, size limits, missing topics and fenced producers: a retry repeats them",
        _KAFKA,
        kind="kafka",
    ),
    CodeRule(
        _split(
            """INVALID_TOPIC_EXCEPTION INVALID_TOPIC INVALID_PARTITIONS INVALID_REPLICATION_FACTOR
            INVALID_CONFIG INVALID_REQUEST INVALID_REQUIRED_ACKS INVALID_TIMESTAMP
            CORRUPT_MESSAGE INVALID_RECORD POLICY_VIOLATION _INVALID_ARG INVALID_GROUP_ID"""
        ),
        V,
        "an invalid topic, configuration, record or request",
        _KAFKA,
        kind="kafka",
    ),
)

_SNOWFLAKE = "Snowflake error number (errno, or the 6-digit prefix of the message)"

SNOWFLAKE_RULES: tuple[CodeRule, ...] = (
    CodeRule(
        _split("250001 250003 390144"), T, "could not reach Snowflake", _SNOWFLAKE, "snowflake"
    ),
    CodeRule(
        _split("630 604"),
        TO,
        "statement or warehouse timeout; cancelled on timeout",
        _SNOWFLAKE,
        "snowflake",
    ),
    CodeRule(
        _split("606 2003 2043 3001 390100 390114 390189 390201 390102"),
        P,
        "no active warehouse, missing or unauthorised object, bad or expired credentials "
        "(Snowflake reports some of these with SQLSTATE 57P03/02000, so its own number decides)",
        _SNOWFLAKE,
        kind="snowflake",
    ),
    CodeRule(
        _split("1003 904 100038 100040 100035 2262 100069 100072"),
        V,
        "SQL compilation error, invalid identifier, a value that does not parse",
        _SNOWFLAKE,
        kind="snowflake",
    ),
)

# SQLite result codes (https://sqlite.org/rescode.html), as sqlite3 exposes them since Python
# 3.11. SQLITE_ERROR is the generic code for any statement error, so it is not listed: the
# message decides those.
SQLITE_RULES: tuple[CodeRule, ...] = (
    CodeRule(
        _split("SQLITE_BUSY SQLITE_LOCKED SQLITE_PROTOCOL"),
        T,
        "another connection holds the lock: the same statement succeeds once it is released",
        _SQLITE,
        kind="sqlite",
    ),
    CodeRule(
        _split(
            """SQLITE_READONLY SQLITE_CANTOPEN SQLITE_NOTADB SQLITE_CORRUPT SQLITE_FULL
            SQLITE_PERM SQLITE_AUTH SQLITE_MISUSE SQLITE_IOERR SQLITE_NOLFS SQLITE_NOTFOUND"""
        ),
        P,
        "the file cannot be opened or written, is not a database, is corrupt or full, or the "
        "connection is misused: a retry repeats it",
        _SQLITE,
        kind="sqlite",
    ),
    CodeRule(
        _split("SQLITE_CONSTRAINT SQLITE_MISMATCH SQLITE_TOOBIG SQLITE_RANGE SQLITE_FORMAT"),
        V,
        "a constraint, type, size or parameter-index violation by the data or statement",
        _SQLITE,
        kind="sqlite",
    ),
)

# SMTP reply codes (RFC 5321 section 4.2): 4yz is a transient negative completion, 5yz a
# permanent one; 501 is a syntax error in the parameters (a malformed address).
SMTP_RULES: tuple[CodeRule, ...] = (
    CodeRule(_split("501 553"), V, "a malformed address or parameter", _SMTP, kind="smtp"),
    CodeRule(
        _split("4"), T, "transient negative completion: try again later", _SMTP_CLASS, "smtp-class"
    ),
    CodeRule(_split("5"), P, "permanent negative completion", _SMTP_CLASS, "smtp-class"),
)

_FTP = "FTP reply code (the first three digits of an ftplib error)"
_FTP_CLASS = "FTP reply class (first digit), when the exact code is not listed"

# FTP reply codes (RFC 959 section 4.2): 4yz transient negative completion, 5yz permanent;
# 501 is a syntax error in the parameters.
FTP_RULES: tuple[CodeRule, ...] = (
    CodeRule(_split("501"), V, "a syntax error in the parameters", _FTP, kind="ftp"),
    CodeRule(
        _split("4"), T, "transient negative completion: try again later", _FTP_CLASS, "ftp-class"
    ),
    CodeRule(_split("5"), P, "permanent negative completion", _FTP_CLASS, "ftp-class"),
)

_GRPC = "gRPC status code name ('status = StatusCode.UNAVAILABLE' in grpc's error text)"

# gRPC status codes (grpc/doc/statuscodes.md): the server's own verdict, the same for every
# gRPC library (google-cloud clients, grpcio, grpclib). CANCELLED and UNKNOWN say nothing.
GRPC_RULES: tuple[CodeRule, ...] = (
    CodeRule(
        _split("UNAVAILABLE RESOURCE_EXHAUSTED ABORTED INTERNAL"),
        T,
        "the service is unavailable, out of capacity or aborted the call on a conflict",
        _GRPC,
        kind="grpc",
    ),
    CodeRule(("DEADLINE_EXCEEDED",), TO, "the call's deadline passed", _GRPC, kind="grpc"),
    CodeRule(_split("INVALID_ARGUMENT OUT_OF_RANGE"), V, "the request is malformed", _GRPC, "grpc"),
    CodeRule(
        _split(
            "NOT_FOUND ALREADY_EXISTS PERMISSION_DENIED UNAUTHENTICATED FAILED_PRECONDITION "
            "UNIMPLEMENTED DATA_LOSS"
        ),
        P,
        "missing or existing resource, credentials, state or an unimplemented method",
        _GRPC,
        kind="grpc",
    ),
)
