"""The ordered rule table: every decision the classifier can make, as data.

Precedence (first decisive level wins):
  1. service error codes (CODE_RULES), then the exception type along its MRO (TYPE_RULES);
  2. an HTTP status on the exception (STATUS_RULES), refined by a reason in the message;
  3. message patterns (PATTERN_RULES), in table order: the earliest rule that matches wins;
  4. the __cause__ / __context__ chain and ExceptionGroup members, when 1-3 found nothing.
Anything unmatched is UNKNOWN, which is not retried.
"""

from __future__ import annotations

from classifier import _codes as _codes_mod
from classifier import _fallback, _patterns
from classifier import _names as _names_mod
from classifier._rulekinds import (
    CodeRule,
    FlagRule,
    HeaderRule,
    PatternRule,
    Rule,
    StatusRule,
    TypeRule,
)
from classifier.types import ErrorType

T, P, TO = ErrorType.TRANSIENT, ErrorType.PERMANENT, ErrorType.TIMEOUT
V, D = ErrorType.VALIDATION_ERROR, ErrorType.DEPENDENCY_FAILURE

# Reasons a service writes into the message that override a bare status (and the 403 type).
RATE_LIMIT_REASON = PatternRule(
    r"ratelimitexceeded|userratelimitexceeded|exceeded rate limits?|rate limit exceeded",
    T,
    "BigQuery / Google answer 403 for rate limits; those clear by themselves",
    ("403 Exceeded rate limits: too many table update operations for this table",),
)
ACCESS_DENIED_REASON = PatternRule(
    r"accessdenied|access denied|permission denied|permission_denied",
    P,
    "403 accessDenied: the credentials lack a permission; a retry will not grant it",
    ("403 Access Denied: Table p:d.t: User does not have permission",),
)
TIMEOUT_REASON = PatternRule(
    r"deadline exceeded|deadline_exceeded|timed out|time-?out|within the (?:permitted|allowed) "
    r"time",
    TO,
    "a 504 that says a deadline passed is a timeout, not an outage",
    ("504 Deadline Exceeded",),
)

BAD_KEY_REASON = PatternRule(
    r"api[ _]key not (?:valid|found)|api_key_invalid|invalid api[ _-]?key",
    P,
    "Google answers a bad API key with 400 INVALID_ARGUMENT; no retry will make the key valid",
    ("400 API key not valid. Please pass a valid API key.",),
)

CONCURRENT_UPDATE_REASON = PatternRule(
    r"could not serialize access|due to concurrent update|transaction is aborted due to "
    r"concurrent|concurrent update",
    T,
    "BigQuery reports a concurrent-update conflict as 400 invalidQuery; it succeeds when retried",
    ("Could not serialize access to table p:d.t due to concurrent update",),
)
RESOURCES_REASON = PatternRule(
    r"resources exceeded|resourcesexceeded|bytes ?billed|bytesbilledlimitexceeded|billing tier|"
    r"billingtierlimitexceeded|quota ?exceeded",
    P,
    "a 400 that hits a resource, billing or quota limit: the same query hits it again",
    ("Query exceeded limit for bytes billed: 1000000. 10485760 or higher required.",),
)

MISSING_OBJECT_REASON = PatternRule(
    r"(?:table|view|relation|schema|database|namespace)(?: or view)? (?:\S+ )?(?:not found|does "
    r"not exist|cannot be found)|not found: |table_or_view_not_found",
    P,
    "the query names a table or view that does not exist",
    ("Table or view not found: model_eval_features_list",),
)

TRY_AGAIN_REASON = PatternRule(
    r"(?:please )?try again|retry (?:later|the request|your request)",
    T,
    "a conflict the server itself calls temporary (S3 OperationAborted: 'Please try again')",
    ("A conflicting conditional operation is currently in progress. Please try again.",),
)

# A builtin KeyError/ValueError/OSError raised by a library about its own configuration or
# stored objects (a missing archive member, an unknown transport, bad key material) rather than
# about the data it was given.
NOT_THE_DATA_REASON = PatternRule(
    r"no such (?!column|field|function)\w+(?::|$)|"
    r"(?:there is )?no (?:item|member|entry|object|file|resource) named|"
    r"not a valid (?:\w+ ){0,3}?(?:key|certificate)(?: file)?|"
    r"(?:private|secret|signing|encryption|fernet|public) key (?:must be|is (?:invalid|not))|"
    r"\bkey must be (?:exactly )?\d+|"
    r"unable to load (?:the )?(?:pem|der|certificate|(?:private |public )?key)|"
    r"could not deserialize key|invalid (?:private|public) key|"
    r"(?:filename|member|file|item|entry|path) '[^']{1,200}' not found|"
    r"unsupported \w+ type|requires mode|(?:command|operation) (?:is )?not allowed",
    P,
    "a builtin error that names missing configuration, a missing stored object or unusable "
    "key material: not the data; the same call fails again",
    ("There is no item named 'orders.csv' in the archive", "No such transport: sqs2"),
)

# A TypeError a serialiser raises about a value in the data (orjson's 64-bit range, fastavro's
# field types, json's "not JSON serializable") is the input's fault (labelling rule 4 comes
# before rule 5's "bugs (TypeError)").
DATA_VALUE_REASON = PatternRule(
    r"not (?:json |msgpack )?serializable|(?:an? )?(?:integer|int|float|str|string|bytes|"
    r"number|bool(?:ean)?) is required (?:on|for|in) (?:field|column|key)|"
    r"exceeds (?:the )?(?:\d+-bit |valid )?range",
    V,
    "a builtin TypeError about a value in the data being serialised: the same record fails",
    ("Object of type set is not JSON serializable", "Integer exceeds 64-bit range"),
)

SSL_EOF_REASON = PatternRule(
    r"eof occurred in violation of protocol|unexpected_eof_while_reading|"
    r"connection reset by peer|ssl: unexpected eof",
    T,
    "a TLS handshake cut off mid-way is a network hiccup",
    ("[SSL: UNEXPECTED_EOF_WHILE_READING] EOF occurred in violation of protocol (_ssl.c:1006)",),
)


def _names(spec: str) -> tuple[str, ...]:
    """Expand "module [module ...]: Name Name" lines into qualified names (module.Name)."""
    names: list[str] = []
    for line in spec.strip().splitlines():
        modules, _, classes = line.partition(":")
        names.extend(f"{m}.{c}" for m in modules.split() for c in classes.split())
    return tuple(names)


def _codes(spec: str) -> tuple[str, ...]:
    """Split a whitespace-separated list of error codes."""
    return tuple(spec.split())


_BOTOCORE = "botocore `response['Error']['Code']`"
_GOOGLE = "Google errors[].reason / ErrorInfo reason"

CODE_RULES: tuple[CodeRule, ...] = (
    *_codes_mod.SNOWFLAKE_RULES,
    *_codes_mod.MYSQL_RULES,
    *_codes_mod.KAFKA_RULES,
    *_codes_mod.REDIS_RULES,
    *_codes_mod.SQLSTATE_RULES,
    *_codes_mod.ERRNO_RULES,
    *_codes_mod.SQLITE_RULES,
    *_codes_mod.SMTP_RULES,
    *_codes_mod.FTP_RULES,
    *_codes_mod.GRPC_RULES,
    CodeRule(
        _codes(
            """Throttling ThrottlingException ThrottledException RequestThrottledException
            TooManyRequestsException ProvisionedThroughputExceededException
            TransactionInProgressException RequestLimitExceeded BandwidthLimitExceeded
            LimitExceededException RequestThrottled SlowDown PriorRequestNotComplete
            EC2ThrottledException InternalError InternalFailure ServiceUnavailable
            ServiceUnavailableException IDPCommunicationError TransactionConflictException"""
        ),
        T,
        "throttling and server-side codes that botocore's own retry handler retries",
        _BOTOCORE,
    ),
    CodeRule(("RequestTimeout", "RequestTimeoutException"), TO, "request timeout", _BOTOCORE),
    CodeRule(
        _codes(
            """AccessDenied AccessDeniedException UnauthorizedOperation
            UnrecognizedClientException InvalidClientTokenId SignatureDoesNotMatch ExpiredToken
            ExpiredTokenException InvalidAccessKeyId AuthFailure NoSuchKey NoSuchBucket
            NoSuchEntity ResourceNotFoundException OptInRequired InvalidToken"""
        ),
        P,
        "credential, permission and missing-resource codes",
        _BOTOCORE,
    ),
    CodeRule(
        _codes(
            """ValidationException ValidationError InvalidParameterValue InvalidParameterException
            InvalidParameterCombination MissingParameter InvalidRequestException
            SerializationException MalformedPolicyDocument"""
        ),
        V,
        "request validation codes",
        _BOTOCORE,
    ),
    CodeRule(
        _codes(
            """rateLimitExceeded userRateLimitExceeded backendError internalError badGateway
            jobRateLimitExceeded jobBackendError jobInternalError tableUnavailable
            RATE_LIMIT_EXCEEDED"""
        ),
        T,
        "reasons the BigQuery client itself retries (rate limits, backend errors)",
        _GOOGLE,
    ),
    CodeRule(("timeout",), TO, "BigQuery job timeout", _GOOGLE),
    CodeRule(
        _codes(
            """accessDenied forbidden notFound quotaExceeded billingNotEnabled
            billingTierLimitExceeded blocked duplicate responseTooLarge resourcesExceeded
            bytesBilledLimitExceeded
            notImplemented ACCESS_TOKEN_EXPIRED SERVICE_DISABLED API_KEY_INVALID"""
        ),
        P,
        "reasons a retry does not fix (quotaExceeded is a daily/project quota)",
        _GOOGLE,
    ),
    CodeRule(
        ("invalid", "invalidQuery", "required", "invalidParameter"),
        V,
        "a malformed request or query, unless the message says a concurrent update aborted it",
        _GOOGLE,
        refine=(CONCURRENT_UPDATE_REASON,),
    ),
)

TYPE_RULES: tuple[TypeRule, ...] = (
    TypeRule(_names("classifier.errors: DependencyFailure"), D, "pipestate's upstream failure"),
    TypeRule(_names("classifier.errors: ValidationError"), V, "pipestate's invalid input/config"),
    TypeRule(
        _names(
            """
            prefect.exceptions: UpstreamTaskError
            celery.exceptions: ChordError
            """
        ),
        D,
        "an orchestrator reports that an upstream task failed",
    ),
    TypeRule(
        _names(
            """
            builtins asyncio.exceptions concurrent.futures._base: TimeoutError
            subprocess: TimeoutExpired
            google.api_core.exceptions: DeadlineExceeded GatewayTimeout RetryError
            requests.exceptions: Timeout ReadTimeout ConnectTimeout
            urllib3.exceptions: TimeoutError ReadTimeoutError ConnectTimeoutError
            botocore.exceptions: ReadTimeoutError ConnectTimeoutError
            httpx httpx._exceptions: TimeoutException ConnectTimeout ReadTimeout WriteTimeout
            httpx httpx._exceptions: PoolTimeout
            aiohttp.client_exceptions: ServerTimeoutError ConnectionTimeoutError
            aiohttp.client_exceptions: SocketTimeoutError
            psycopg2.errors psycopg.errors: QueryCanceled
            asyncpg.exceptions: QueryCanceledError
            sqlalchemy.exc: TimeoutError
            redis.exceptions: TimeoutError
            kafka.errors kafka.common: KafkaTimeoutError RequestTimedOutError
            airflow.exceptions: AirflowTaskTimeout AirflowSensorTimeout
            billiard.exceptions celery.exceptions: TimeLimitExceeded SoftTimeLimitExceeded
            celery.exceptions: TimeoutError
            snowflake.connector.errors: RequestTimeoutError
            """
        ),
        TO,
        "the operation ran past a deadline",
    ),
    TypeRule(
        _names(
            """
            builtins: ConnectionError InterruptedError BlockingIOError
            socket: gaierror herror
            google.api_core.exceptions: TooManyRequests ResourceExhausted ServiceUnavailable
            google.api_core.exceptions: InternalServerError BadGateway Aborted ServerError
            google.auth.exceptions: TransportError
            requests.exceptions: ConnectionError ChunkedEncodingError ProxyError RetryError
            urllib3.exceptions: NewConnectionError NameResolutionError ProtocolError ProxyError
            urllib3.exceptions: ResponseError IncompleteRead
            http.client: IncompleteRead
            botocore.exceptions: EndpointConnectionError ConnectionClosedError HTTPClientError
            botocore.exceptions: ConnectionError
            httpx httpx._exceptions: ConnectError ReadError WriteError NetworkError CloseError
            httpx httpx._exceptions: RemoteProtocolError ProxyError
            aiohttp.client_exceptions: ClientConnectorError ServerDisconnectedError
            aiohttp.client_exceptions: ClientOSError ClientPayloadError ServerConnectionError
            psycopg2.errors psycopg.errors: SerializationFailure DeadlockDetected
            psycopg2.errors psycopg.errors: LockNotAvailable TooManyConnections AdminShutdown
            psycopg2.errors psycopg.errors: CannotConnectNow
            psycopg2.extensions: TransactionRollbackError
            psycopg.errors: TransactionRollback
            asyncpg.exceptions: SerializationError DeadlockDetectedError TooManyConnectionsError
            sqlalchemy.exc: DisconnectionError
            redis.exceptions: ConnectionError BusyLoadingError TryAgainError ClusterDownError
            redis.exceptions: ReadOnlyError MasterDownError
            kafka.errors: NoBrokersAvailable KafkaConnectionError NotLeaderForPartitionError
            kafka.errors: LeaderNotAvailableError
            snowflake.connector.errors: ServiceUnavailableError BadGatewayError
            snowflake.connector.errors: GatewayTimeoutError InternalServerError
            snowflake.connector.errors: OtherHTTPRetryableError
            billiard.exceptions celery.exceptions: WorkerLostError
            """
        ),
        T,
        "network, overload or concurrency trouble that clears by itself",
        refine=(TIMEOUT_REASON,),
    ),
    TypeRule(
        _names(
            """
            ssl: SSLError
            requests.exceptions urllib3.exceptions botocore.exceptions: SSLError
            aiohttp.client_exceptions: ClientSSLError
            """
        ),
        P,
        "a TLS failure is a certificate or protocol mismatch, unless the handshake was cut off",
        refine=(SSL_EOF_REASON,),
    ),
    TypeRule(
        _names("google.api_core.exceptions: Forbidden PermissionDenied"),
        P,
        "the caller lacks a permission, unless the 403 says it is a rate limit",
        refine=(RATE_LIMIT_REASON,),
    ),
    TypeRule(
        _names(
            """
            builtins: PermissionError FileNotFoundError IsADirectoryError NotADirectoryError
            builtins: TypeError AttributeError NameError ImportError NotImplementedError
            builtins: AssertionError ZeroDivisionError IndexError RecursionError
            builtins: FileExistsError MemoryError ProcessLookupError ChildProcessError
            ssl: SSLCertVerificationError
            google.api_core.exceptions: Unauthorized Unauthenticated NotFound AlreadyExists
            google.api_core.exceptions: Conflict FailedPrecondition MethodNotImplemented
            google.api_core.exceptions: DataLoss PreconditionFailed
            google.auth.exceptions: RefreshError DefaultCredentialsError
            requests.exceptions: TooManyRedirects
            http.client: BadStatusLine LineTooLong UnknownProtocol
            botocore.exceptions: NoCredentialsError PartialCredentialsError NoRegionError
            botocore.exceptions: ProfileNotFound UnknownServiceError
            aiohttp.client_exceptions: ClientConnectorCertificateError
            psycopg2.errors psycopg.errors: InvalidPassword InsufficientPrivilege UndefinedTable
            psycopg2.errors psycopg.errors: InvalidAuthorizationSpecification
            psycopg2.errors psycopg.errors: InvalidCatalogName InvalidSchemaName
            asyncpg.exceptions: InvalidPasswordError UndefinedTableError
            asyncpg.exceptions: InsufficientPrivilegeError
            sqlalchemy.exc: NoSuchTableError NoSuchModuleError
            redis.exceptions: AuthenticationError AuthorizationError
            redis.exceptions: AuthenticationWrongNumberOfArgsError
            airflow.exceptions: AirflowFailException
            snowflake.connector.errors: ForbiddenError
            pyarrow.lib: ArrowNotImplementedError ArrowCapacityError ArrowMemoryError
            celery.exceptions: MaxRetriesExceededError
            """
        ),
        P,
        "a missing resource, credential or permission, or a bug: a retry repeats it, unless "
        "it is a serialiser's TypeError about a value in the data",
        refine=(DATA_VALUE_REASON,),
    ),
    TypeRule(
        _names("google.api_core.exceptions: BadRequest InvalidArgument OutOfRange"),
        V,
        "a malformed request, unless the 400 names a bad API key, a concurrent update or a limit",
        refine=(BAD_KEY_REASON, CONCURRENT_UPDATE_REASON, RESOURCES_REASON, RATE_LIMIT_REASON),
    ),
    TypeRule(
        _names(
            """
            builtins: KeyError ValueError UnicodeError UnicodeDecodeError UnicodeEncodeError
            builtins: OverflowError UnicodeTranslateError
            json.decoder: JSONDecodeError
            sqlalchemy.exc: ArgumentError
            requests.exceptions: MissingSchema InvalidSchema InvalidURL InvalidHeader URLRequired
            urllib3.exceptions: LocationParseError
            httpx httpx._exceptions httpcore: InvalidURL UnsupportedProtocol DecodingError
            aiohttp.client_exceptions: InvalidURL
            botocore.exceptions: ParamValidationError ValidationError UnknownParameterError
            botocore.exceptions: RangeError UnknownKeyError InvalidRegionError
            botocore.exceptions: MissingParametersError
            psycopg2.errors psycopg.errors: NotNullViolation UniqueViolation ForeignKeyViolation
            psycopg2.errors psycopg.errors: CheckViolation InvalidTextRepresentation
            psycopg2.errors psycopg.errors: StringDataRightTruncation NumericValueOutOfRange
            psycopg2.errors psycopg.errors: InvalidDatetimeFormat UndefinedColumn SyntaxError
            psycopg2.errors psycopg.errors: DatatypeMismatch DivisionByZero
            psycopg2 psycopg pymysql.err MySQLdb: DataError IntegrityError
            asyncpg.exceptions: NotNullViolationError UniqueViolationError UndefinedColumnError
            asyncpg.exceptions: DataError
            pydantic_core._pydantic_core: ValidationError
            pydantic.error_wrappers pydantic.v1.error_wrappers: ValidationError
            jsonschema.exceptions marshmallow.exceptions: ValidationError
            pandera.errors: SchemaError SchemaErrors
            pyarrow.lib: ArrowInvalid ArrowTypeError ArrowKeyError ArrowIndexError
            cattrs.errors: ClassValidationError
            yaml: YAMLError
            _csv csv binascii xml.parsers.expat: Error
            xml.parsers.expat pyexpat: ExpatError
            tarfile: ReadError HeaderError
            decimal: InvalidOperation ConversionSyntax DivisionByZero DecimalException
            zlib struct re: error
            _lzma lzma: LZMAError
            configparser: Error
            redis.exceptions valkey.exceptions: ResponseError
            """
        ),
        V,
        "the input (data, request or query) is malformed; the same input fails again",
        refine=(NOT_THE_DATA_REASON,),
    ),
)

TYPE_RULES = (
    *TYPE_RULES,
    TypeRule(
        _names(
            """
            pyspark.errors.exceptions.captured pyspark.sql.utils: AnalysisException
            pyspark.errors.exceptions.captured pyspark.sql.utils: ParseException
            pyspark.errors.exceptions.captured pyspark.sql.utils: IllegalArgumentException
            """
        ),
        V,
        "Spark could not analyse the query, unless it names a table or view that does not exist",
        refine=(MISSING_OBJECT_REASON,),
    ),
)

STATUS_RULES: tuple[StatusRule, ...] = (
    StatusRule((408,), TO, "HTTP 408 Request Timeout"),
    StatusRule((504,), T, "HTTP 504 Gateway Timeout: a backend overran", refine=(TIMEOUT_REASON,)),
    StatusRule(
        (429, 500, 502, 503),
        T,
        "HTTP 429 Too Many Requests / 5xx server trouble, unless it says a time budget ran out",
        refine=(TIMEOUT_REASON,),
    ),
    StatusRule(
        (403,),
        P,
        "HTTP 403 Forbidden, unless the service says it is a rate limit",
        refine=(RATE_LIMIT_REASON, ACCESS_DENIED_REASON),
    ),
    StatusRule(
        (401, 404, 405, 410, 412, 451, 501),
        P,
        "HTTP 401/404/405/410/412/451/501: retrying changes nothing",
    ),
    StatusRule(
        (409,),
        P,
        "HTTP 409 Conflict: the resource's state conflicts, unless the server says to try again",
        refine=(TRY_AGAIN_REASON,),
    ),
    StatusRule(
        (400, 413, 414, 415, 416, 422, 431),
        V,
        "HTTP 400/413-416/422/431: the request itself is malformed, unless it names a bad API "
        "key, a concurrent update or a limit",
        refine=(BAD_KEY_REASON, CONCURRENT_UPDATE_REASON, RESOURCES_REASON, RATE_LIMIT_REASON),
    ),
)

PATTERN_RULES = _patterns.PATTERN_RULES
NAME_RULES = _names_mod.NAME_RULES
WEAK_NAME_RULES = _names_mod.WEAK_NAME_RULES

# The library's own retry decision. True overrides a non-retryable verdict (kafka-python's
# UnknownTopicOrPartitionError is retriable although its text says "does not exist"); False is a
# default in most libraries (kafka-python's base class, confluent-kafka's KafkaError), so it only
# turns an otherwise UNKNOWN verdict into PERMANENT.
RETRY_FLAG = FlagRule(
    ("retriable", "retryable", "is_retryable", "is_retriable", "is_transient", "transient"),
    T,
    "the library marks the error retriable (kafka retriable, confluent retriable(), neo4j "
    "is_retryable(), pymongo TransientTransactionError / RetryableWriteError labels)",
)
NOT_RETRYABLE_FLAG = FlagRule(
    (*RETRY_FLAG.attributes, "fatal"),
    P,
    "the library marks the error not retriable (or fatal) and nothing else decided",
)
RETRY_AFTER = HeaderRule(
    ("retry-after", "x-ms-retry-after-ms", "x-ratelimit-reset", "ratelimit-reset"),
    ("retry_after", "retry_after_seconds"),
    T,
    "the server said when to come back (Retry-After), whatever the status",
)

# The whole ordered table, level by level, for the engine, the docs and the tests.
RULES: tuple[tuple[str, tuple[Rule, ...]], ...] = (
    ("1a. error codes (vendor, SQLSTATE, errno, service)", CODE_RULES),
    ("1b. Retry-After", (RETRY_AFTER,)),
    ("1c. exception type (MRO, qualified names)", TYPE_RULES),
    ("1d. exception class names (any library)", NAME_RULES),
    ("2. HTTP status on the exception", STATUS_RULES),
    ("3. message patterns", PATTERN_RULES),
    ("5. retry flag set by the library", (RETRY_FLAG, NOT_RETRYABLE_FLAG)),
    ("6. DB-API base class names", WEAK_NAME_RULES),
    (
        "10. weak evidence (otherwise UNKNOWN)",
        (*_fallback.STATUS_CLASSES, *_fallback.WEAK_NAMES, *_fallback.WEAK_WORDS),
    ),
)
