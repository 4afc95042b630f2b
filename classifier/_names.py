"""Class-name rules: words in an exception class's own name, for libraries the table never names.

Every well-kept library names its exceptions for what happened (RateLimitError,
ConnectionTimeout, AuthenticationFailed, DataError...). The strong names decide before the
message is read; the weak ones (PEP 249's DB-API base classes) only when nothing else did.
Names are matched case-sensitively as CamelCase words, on the class and its bases (builtins
excluded: the type table decides those).
"""

from __future__ import annotations

from classifier._rulekinds import NameRule
from classifier.types import ErrorType

T, P, TO = ErrorType.TRANSIENT, ErrorType.PERMANENT, ErrorType.TIMEOUT
V, D = ErrorType.VALIDATION_ERROR, ErrorType.DEPENDENCY_FAILURE

NAME_RULES: tuple[NameRule, ...] = (
    NameRule(r"Upstream(?:Task|Step|Job|Dependency)?(?:Fail|Error)", D, "an upstream failure"),
    NameRule(
        r"Time(?:d)?[Oo]ut|Deadline(?:Exceeded)?|TimeLimit|Expired?Deadline",
        TO,
        "the class says a deadline passed",
        ("ConnectionTimeout", "SoftTimeLimitExceeded", "DeadlineExceeded"),
    ),
    NameRule(
        r"Throttl|RateLimit|TooManyRequests|Unavailable|Transient|Retr[yi]able|TryAgain|Temporar|"
        r"error_temp|"
        r"Deadlock|SerializationFailure|Connection(?:Error|Refused|Reset|Aborted|Closed|Lost)|"
        r"ConnectError|Disconnect|NetworkError|ServerError|InternalServerError|BadGateway|"
        r"Overloaded|ServiceBusy|LockTimeout|LeaderNotAvailable|NotLeader|NoBrokers|"
        r"Unreachable|Busy(?:Error|Exception)?$",
        T,
        "the class says the service is briefly unreachable, busy or conflicting",
        ("ServiceUnavailableError", "RateLimitError", "TransientError", "ConnectionError"),
    ),
    NameRule(
        r"Column\w*(?:NotFound|Missing)|(?:NoSuch|Unknown|Missing)Column|ShapeError|"
        r"IllegalCharacter",
        V,
        "the class names a column the data lacks or data of the wrong shape: the input "
        "(labelling rules' tie: a column is not a stored object)",
        ("ColumnNotFoundError", "ShapeError"),
    ),
    NameRule(
        r"Authenticat|Unauthori[sz]ed|Unauthenticated|Forbidden|PermissionDenied|AccessDenied|"
        r"NotAuthori[sz]ed|AuthorizationFail|Credential|Password|NotFound|DoesNotExist|NoSuch|"
        r"Already(?:Exists|Owned)|NotImplemented|NotSupported|Unsupported|Certificate|"
        r"InvalidToken|Incompatible|^No[A-Z]\w*Found|Closed(?:Error)?$|"
        r"Permanent|error_perm|"
        r"ExpiredToken|TokenExpired|InvalidOperation|Invalid\w*State|IllegalState|TooLarge|"
        r"PreconditionFailed|Denied|DependentObject|OutOfMemory|InvalidTag|InvalidSignature|"
        r"Unresolvable|TooManyRedirects",
        P,
        "the class says a credential, permission or resource is missing",
        ("AuthenticationFailed", "NotFoundError", "NoCredentialsError"),
    ),
    NameRule(
        r"Validation|Invalid|Schema|Integrity|DataError|Parse|Syntax|Decode|Malformed|Mismatch|"
        r"Constraint|BadRequest|Unprocessable|TypeError|ValueError|^Bad[A-Z]|Unpickl|BadZip|"
        r"Decompress|Undefined|Overflow|OutOfRange|RangeError|Corrupt|Truncat|Conversion|"
        r"Encoding|Format(?:Error|Exception)",
        V,
        "the class says the input is malformed",
        ("ValidationError", "InvalidArgument", "IntegrityError", "ParserError"),
    ),
)

# PEP 249 (DB-API 2.0) base classes: every driver has them, and each says something, but less
# than the message; they decide only when the message, codes and chain said nothing.
# OperationalError is deliberately absent: sqlite3 and duckdb raise it for statement errors
# too ("no such function", "incomplete input"), so it says nothing about retrying.
WEAK_NAME_RULES: tuple[NameRule, ...] = (
    NameRule(
        r"^InterfaceError$",
        T,
        "DB-API InterfaceError: the connection to the database, not the statement",
        ("InterfaceError",),
    ),
    NameRule(
        r"^ProgrammingError$",
        V,
        "DB-API ProgrammingError: the statement is wrong",
        ("ProgrammingError",),
    ),
    NameRule(r"^NotSupportedError$", P, "DB-API NotSupportedError: the database cannot do it", ()),
)
