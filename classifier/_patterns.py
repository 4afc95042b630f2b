"""Level 3 of the rule table: message patterns, most specific first; the earliest match wins.

Patterns are lower case (the text is lower-cased once) and implicitly wrapped in word
boundaries, so "401" inside "14017 rows" matches nothing.
"""

from __future__ import annotations

from classifier._rulekinds import PatternRule
from classifier.types import ErrorType

T, P, TO = ErrorType.TRANSIENT, ErrorType.PERMANENT, ErrorType.TIMEOUT
V, D = ErrorType.VALIDATION_ERROR, ErrorType.DEPENDENCY_FAILURE

# A bare HTTP status number, not a count ("401 rows"), a line number or part of a decimal.
# The digits come first and the look-behinds after them, so the scanner fails fast elsewhere.
_NUM_GUARD_AFTER = r"(?![.,]\d)(?!\s*(?:rows?|records?|items?|bytes?|ms|msec|seconds?|files?))"


def _status(*codes: int) -> str:
    """Regex for bare HTTP status numbers with the guards above."""
    alternatives = "|".join(
        f"{code}(?<!line {code})(?<!port {code})(?<![.,:/#-]{code})" for code in codes
    )
    return f"(?:{alternatives}){_NUM_GUARD_AFTER}"


PATTERN_RULES: tuple[PatternRule, ...] = (
    # -- dependency failures: a step that never ran says so before anything else -------------
    PatternRule(
        r"upstream[ _-](?!connect|request|server|response|host|proxy|timeout|reset)"
        r"(?:task|step|job|dependenc(?:y|ies)|node|asset|op)?s?[ _-]?"
        r"(?:\w+ ){0,4}?(?:failed|failure|error(?:ed)?|not (?:successful|completed))"
        r"|upstream_failed",
        D,
        "an upstream task/step failed, so this one did not run",
        ("Upstream task failed", "Task skipped: upstream_failed"),
    ),
    PatternRule(
        r"(?:dependenc(?:y|ies)|parent (?:task|step|job)s?)\b.{0,80}?(?:failed|did not succeed|"
        r"not successful|were not met)",
        D,
        "a declared dependency did not succeed",
        ("Dependencies for step load failed: ['extract']. Not executing.",),
    ),
    PatternRule(
        r"requires all upstream tasks to have succeeded|did not reach a .{0,12}completed.{0,3} "
        r"state|(?:skipped|not executed|not run) because .{0,80}?(?:failed|did not succeed)",
        D,
        "orchestrator (Airflow trigger rule / Prefect state) refuses to run after a failure",
        ("Upstream task run 'x' did not reach a 'COMPLETED' state.",),
    ),
    PatternRule(
        r"the external (?:dag|task_group|tasks?) .{0,160}?failed|dependency \S{1,80} raised|"
        r"(?:some|one or more) (?:of the )?upstream tasks? (?:failed|did not succeed)|"
        r"chord (?:\w+ ){0,3}?(?:failed|raised|errored)|unhandled errors? in a taskgroup|"
        r"skipp(?:ed|ing) (?:step \S{1,80} )?(?:due to|because of) (?:skipped |failed )?"
        r"(?:upstream|dependencies)",
        D,
        "Airflow external DAG/task, Celery chord dependency, Prefect/Dagster skipped upstream",
        (
            "The external DAG etl_daily failed.",
            "Dependency 97de6f3f-ea67-4517-a21c-d867c61fcb47 raised ValueError('Something')",
        ),
    ),
    # -- unambiguous permanent causes that also mention connections or retries ---------------
    PatternRule(
        r"password authentication failed|authentication failed|invalid (?:username|user name)"
        r"(?:/| or )password|access denied for user|login failed for user|incorrect username "
        r"or password|invalid credentials|bad credentials|no pg_hba\.conf entry|bad password|"
        r"not permitted to (?:log ?in|connect|access|perform|run|execute|use)|"
        r"operation not permitted|(?:command|operation) (?:is )?not allowed",
        P,
        "the credentials are wrong; retrying will not fix them",
        ('FATAL:  password authentication failed for user "postgres"',),
    ),
    PatternRule(
        r"not a valid (?:\w+ ){0,3}?(?:key|certificate)(?: file)?|"
        r"(?:private|secret|signing|encryption|fernet|public) key (?:must be|is (?:invalid|not))|"
        r"unable to load (?:the )?(?:pem|der|certificate|(?:private |public )?key)|"
        r"could not deserialize key|invalid (?:private|public) key|bad decrypt|"
        r"(?:private )?key is encrypted|no (?:private )?key (?:was )?(?:given|provided|found)|"
        r"\bkey must be (?:exactly )?\d+|decryption failed|failed verification|invalidtag",
        P,
        "key or certificate material that cannot be loaded: configuration, not data; the "
        "same key fails again",
        (
            "not a valid RSA private key file",
            "Fernet key must be 32 url-safe base64-encoded bytes.",
        ),
    ),
    PatternRule(
        r"certificate verify failed|certificate_verify_failed|self[ -]signed certificate|"
        r"hostname mismatch|certificate has expired|wrong version number|"
        r"unable to get local issuer certificate",
        P,
        "TLS certificate or protocol mismatch",
        ("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed",),
    ),
    PatternRule(
        r"invalid_grant|token (?:has been )?(?:expired or )?revoked|"
        r"(?:token|credentials?|api key|password|signature) (?:is |are |has |have )?(?:been )?"
        r"(?:invalid|expired|revoked)|login (?:failed|denied|incorrect)|denie[sd] access|"
        r"security token included in the request is (?:invalid|expired)|"
        r"invalidclienttokenid|signaturedoesnotmatch|request signature we calculated does not "
        r"match|expiredtoken|unrecognizedclientexception|the aws access key id you provided",
        P,
        "expired, revoked or wrong credentials",
        ("The security token included in the request is invalid.",),
    ),
    PatternRule(
        r"quota exceeded for quota (?:metric|group)\b.{0,160}?per (?:minute|second|100 seconds)|"
        r"(?:rate|requests?)[ _-]?limit(?:s|ed|ing)?(?: exceeded| reached| hit)?|"
        r"ratelimitexceeded|userratelimitexceeded|exceeded rate limits?|too many requests|"
        r"throttl\w*|slow ?down|request ?limit ?exceeded|provisionedthroughputexceeded\w*|"
        r"resource[ _]exhausted|rate exceeded|"
        r"(?:requests?|queries|calls|operations|writes|reads) per (?:minute|second|100 seconds)",
        T,
        "rate limits and throttling clear after a pause",
        (
            "Exceeded rate limits: too many table update operations for this table",
            "An error occurred (ThrottlingException): Rate exceeded",
            "429 Too Many Requests",
        ),
    ),
    PatternRule(
        r"quota ?exceeded|exceeded (?:your |the )?quota|billing (?:has not been|is not) "
        r"enabled|billingnotenabled|insufficient (?:funds|credits)",
        P,
        "a hard (daily/project) quota or billing limit: waiting minutes will not help",
        ("Quota exceeded: Your project exceeded quota for free query bytes scanned.",),
    ),
    PatternRule(
        r"(?:operate on|use) a closed|operation on (?:a )?closed|already closed|"
        r"another operation is in progress|"
        r"(?:connection|cursor|session|client|"
        r"database|handle) (?:is|has been) closed|after close",
        P,
        "the program used a handle it had closed itself; a retry runs the same code",
        ("Cannot operate on a closed database.", "Connection already closed!"),
    ),
    PatternRule(
        r"other objects depend on it|(?:cannot|can't|could not|unable to) drop\b.{0,80}?"
        r"(?:because|depends?|remaining|referenc\w+)|still (?:referenced|in use) by|"
        r"(?:cannot|can't) (?:start|begin|open|nest) a transaction (?:with)?in a transaction|"
        r"(?:within|inside) a transaction|no transaction is (?:active|in progress)|"
        r"there is no transaction in progress|transaction (?:is )?already (?:active|started|"
        r"in progress)|no such savepoint",
        P,
        "the state of stored objects or of the session forbids the statement (dependent "
        "objects, transaction nesting); the same statement fails again",
        (
            "cannot drop table customers because other objects depend on it",
            "cannot start a transaction within a transaction",
        ),
    ),
    PatternRule(
        r"lock[ -]wait timeout",
        T,
        "a lock-wait timeout is a lock conflict (labelling rule 3): the transaction succeeds "
        "once the other one commits",
        ("Lock wait timeout exceeded; try restarting transaction",),
    ),
    # -- timeouts -----------------------------------------------------------------------------
    PatternRule(
        r"deadline[ _]exceeded|deadline of [\d.]+s exceeded|statement timeout|"
        r"canceling statement due to (?:statement|lock) timeout|read timed? ?out|"
        r"(?:connect|connection|read|write|socket|request|operation|gateway|pool|job|query)"
        r"[ _-]?time[ d]?[ -]?out(?:error|exception)?|timed? ?out|timeout(?:error|exception)?|"
        r"time limit exceeded|execution expired|took too long|errno 110|etimedout|"
        r"time (?:limit|budget) (?:exceeded|reached|expired)|exceeded (?:its |the )?(?:time "
        r"(?:limit|budget)|runtime)|(?:did not|didn't|failed to|could not) (?:\w+ ){0,2}?within "
        r"[\d.]+ ?(?:ms|s|secs?|seconds?|minutes?)|"
        r"(?:failed|unable) to \w+(?: \w+){0,4}? after [\d.,]+ ?(?:ms|s|secs?|seconds?|"
        r"minutes?)|timeout of [\d,.]+ ?(?:ms|s|secs?|seconds?|second\(s\))",
        TO,
        "a deadline passed; a later attempt may finish in time",
        (
            "504 Deadline Exceeded",
            "Read timed out. (read timeout=30)",
            "canceling statement due to statement timeout",
        ),
    ),
    # -- transient: concurrency, connections, overload ---------------------------------------
    PatternRule(
        r"could not serialize access|serializ(?:ation|able) failure|serializationfailure|"
        r"deadlock(?:s|ed)?(?: found| detected)?|deadlockdetected|lock wait timeout exceeded|"
        r"could not obtain lock|lock not available|concurrent update|"
        r"could not set lock on file|conflicting lock is held|database (?:table )?is locked|"
        r"transaction (?:was )?aborted|write conflict|conflicting transaction",
        T,
        "a concurrency conflict; the transaction succeeds when retried",
        ("could not serialize access due to concurrent update", "deadlock detected"),
    ),
    PatternRule(
        r"not enough (?:in-sync )?replicas|notenoughreplicas\w*|fewer in-sync replicas",
        T,
        "Kafka: too few in-sync replicas right now; the broker accepts the write once they "
        "catch up",
        ("Broker: Not enough in-sync replicas",),
    ),
    PatternRule(
        r"connection (?:was )?(?:refused|reset|aborted|closed|lost|dropped|broken|"
        r"terminated)(?: by peer)?|reset by peer|broken pipe|econnrefused|econnreset|epipe|"
        r"errno (?:32|54|61|104|111|113)|remote end closed connection|"
        r"server (?:(?:unexpectedly )?closed (?:the )?connection|disconnected|has gone away)|"
        r"lost connection to (?:mysql )?server|could not connect to (?:server|host)|"
        r"failed to (?:establish a new )?connect\w*|unable to connect|cannot connect|"
        r"connect(?:ion)? (?:error|failure|failed)|connectionerror|connectionrefusederror|"
        r"connectionreseterror|no route to host|network (?:is )?unreachable|"
        r"eof occurred in violation of protocol|unexpected eof|incompleteread|eof detected|"
        r"remotedisconnected|serverdisconnectederror|clientconnectorerror|actively refused|"
        r"error \d+ connecting to|could not connect to|socket closed|rst_stream|goaway|"
        r"stream removed|brokers? (?:are|is) down|all_brokers_down|transport failure|"
        r"error reading (?:\w+ ){0,3}?(?:banner|socket|stream|response)|socket hang up|"
        r"(?:peer|server|remote(?: host| end)?|host|other side) (?:\w+ ){0,2}?closed (?:the )?"
        r"connection|connection (?:was )?closed by|(?:could not|unable to|cannot|failed to) "
        r"(?:obtain|get|acquire|check out) (?:a )?connection|leader election|"
        r"election in progress|rolled back (?:\w+ ){0,3}?(?:conflict|deadlock|serializ\w+)",
        T,
        "the connection failed or dropped; the peer is usually back soon",
        (
            "[Errno 111] Connection refused",
            "Connection reset by peer",
            "server closed the connection unexpectedly",
        ),
    ),
    PatternRule(
        r"name or service not known|temporary failure in name resolution|nodename nor "
        r"servname provided|getaddrinfo failed|failed to resolve|name resolution|"
        r"could not translate host name|no address associated with hostname|"
        r"dns (?:lookup|resolution) (?:failed|error)",
        T,
        "DNS resolution failed; usually a blip in the resolver",
        ("[Errno -2] Name or service not known",),
    ),
    PatternRule(
        r"service (?:is )?(?:temporarily )?unavailable|temporar(?:y|ily)\b.{0,30}?"
        r"(?:unavailable|failure|error|issue|problem|overloaded)|try again|retry (?:later|after)|"
        r"please retry|retryable|backend ?error|internal ?error|internal server error|"
        r"bad gateway|server ?error|overloaded|too many connections|remaining connection slots|"
        r"database system is (?:starting up|shutting down|in recovery mode)|"
        r"(?:server|database|node|broker|service|instance|cluster) is (?:starting up|shutting "
        r"down|restarting|in recovery)|pool (?:is )?exhausted|failover in progress|"
        r"during failover|fail(?:ing|s) over|lock conflict|lock contention|"
        r"too many (?:\w+ ){0,2}?connections|(?:is )?loading the dataset|still loading|"
        r"too many (?:simultaneous|concurrent|parallel) (?:queries|requests)|too many parts|"
        r"connection loss|max_user_connections|"
        r"administrator command|max retries exceeded|too many \d{3} error responses|"
        r"too many clients|read only replica|readonly you can't write|readonly replica|"
        r"no brokers available|leader not available|not leader for partition|busy ?loading|"
        r"clusterdown|the cluster is down|tryagain|insufficient capacity|capacity exceeded|"
        r"(?:currently|is) unavailable|unavailable: |503 unavailable|unavailable$",
        T,
        "the service is overloaded, restarting or failing over",
        (
            "503 Service Unavailable",
            "Resource temporarily unavailable, try again later",
            "the database system is starting up",
        ),
    ),
    # -- validation ---------------------------------------------------------------------------
    PatternRule(
        r"violates (?:not-null|unique|foreign key|check|exclusion) constraint|"
        r"null value in column|duplicate key value|invalid input syntax|value too long for "
        r"type|numeric field overflow|out of range for type|invalid input value for enum|"
        r"integrity ?error|unique constraint failed|not null constraint failed|duplicate entry|"
        r"cannot be null|may not be null|must not be null|required field|"
        r"constraint .{1,80}? (?:is )?violated|constraint violation|"
        r"(?:unique(?:ness)?|foreign key|check|not-null|exclusion) violation",
        V,
        "the data violates a schema or constraint",
        ('null value in column "id" violates not-null constraint',),
    ),
    PatternRule(
        r"column .{1,80}? does not exist|unrecognized name|unknown column|no such column|"
        r"(?:missing|unknown) (?:input )?columns?|not in index|are in the \[(?:index|columns)\]|"
        r"keyerror|has no column|invalid column name|no field named|referenced column|"
        r"column .{1,80}? not found|(?:scalar )?function .{1,80}? does not exist|no such function|"
        r"wrong number of arguments|is not an integer|operator does not exist|"
        r"ambiguous column|column reference .{1,80}? is ambiguous|error binding parameter|"
        r"no operator matches|unknown (?:function|operator)s?|"
        r"(?:too many|not enough) values to unpack",
        V,
        "the input lacks a column the step expects",
        ('column "amount" does not exist', "\"['amount'] not in index\""),
    ),
    PatternRule(
        r"validation ?(?:error|exception|failed)|failed validation|schema validation|"
        r"\d+ validation errors? for|is a required property|is not valid under any of|"
        r"is not of type|does not match (?=')|additional properties are not allowed|"
        r"field required|missing (?:\w+ ){0,3}?required|required (?:field|property|parameter|"
        r"argument|column|key)s? (?:is |are )?missing|invalid (?:\w+ ){0,2}?input|"
        r"invalid (?:value|literal|parameter|argument|format|syntax|json|request|query)\w*|"
        r"invalid (?:url|uri|dsn|connection string|e-?mail address|address|scheme)|"
        r"(?:does not|doesn't|did not|could not|cannot|can't) (?:be )?parsed?|"
        r"not a valid (?:uuid|integer|int|number|float|decimal|date|datetime|time|timestamp|"
        r"e-?mail|url|uri|json|value|identifier|choice|boolean)|"
        r"(?:field|parameter|argument|column|property|option|value) .{1,80}? is "
        r"(?:required|missing)|"
        r"mismatched (?:data ?)?types?|(?:date|time|timestamp|year|month|day|value|number) "
        r"(?:is )?out of range|"
        r"invalidquery|syntax error|parse error|could not (?:parse|convert)|cannot parse|"
        r"failed to parse|malformed|expecting value|jsondecodeerror|bad request|"
        r"unprocessable entity|schema mismatch|type mismatch|unexpected (?:type|token|keyword)|"
        r"unknown (?:parameter|key|field|argument)|value out of range|out of range for|"
        r"doesn'?t match (?:a |the )?(?:supported|expected|required) format|"
        r"(?:numeric|date|timestamp|time|boolean) value .{0,80}? is not recognized|"
        r"codec can'?t (?:decode|encode)|incomplete input|unknown url type|"
        r"invalid \w+ value|illegal (?:\w+ ){0,2}?(?:key|character|value|name|argument|format|"
        r"input)s?|(?:a )?value is required for|"
        r"(?:integer|numeric|arithmetic|bigint|int(?:8|16|32|64|128)|float(?:ing point)?) "
        r"overflow|overflow in (?:addition|subtraction|multiplication|division|conversion|cast)|"
        r"out of range error|invalid (?:\w+ ){0,2}?(?:data|stream|header|block)(?: type)?|"
        r"corrupt(?:ed)? (?:\w+ ){0,2}?(?:data|input|stream|record|archive|message|payload)|"
        r"not a (?:gzip|zip|bzip2|tar|xz|lzma|parquet|csv|json) file|"
        r"truncated (?:data|file|input|stream|record)|"
        r"unexpected end of (?:data|file|input|stream|json|archive)",
        V,
        "the request, query or record is malformed",
        (
            "1 validation error for Model",
            "'name' is a required property",
            'invalid input syntax for type integer: "abc"',
        ),
    ),
    # -- permanent: auth, permissions, missing things ----------------------------------------
    PatternRule(
        r"unauthori[sz]ed|unauthenticated|not authori[sz]ed|authori[sz]ation failed|"
        r"no (?:\w+ )?permissions? (?:to|for|on)|lacks? (?:the )?(?:\w+ )?(?:permission|privilege)|"
        r"account (?:is |has been )?(?:suspended|disabled|deactivated|locked)|"
        r"authenticat\w* (?:failed|failure|"
        r"required|error)|access ?denied|accessdenied|permission[ _]denied|forbidden|"
        r"insufficient (?:permissions?|privileges?|scopes?)|does not have (?:\w+\.)*\w* ?"
        r"(?:permission|access)|must be owner|invalid (?:\w+ ){0,2}?(?:api[ _-]?)?(?:key|token)|"
        r"api key not valid|no credentials|credentials? (?:not found|expired|invalid)|"
        r"could not (?:load|find|automatically determine) credentials|"
        r"missing (?:\w+ ){0,2}?(?:credentials?|token|api key)",
        P,
        "authentication or authorization failed",
        (
            "401 Unauthorized",
            "Permission denied",
            "Access Denied",
            "API key not valid. Please pass a valid API key.",
        ),
    ),
    PatternRule(
        r"not (?:been |be )?found|notfound|does not exist|doesn'?t exist|no such (?:file|table|"
        r"bucket|key|object|host|dataset|relation|database|schema|index|topic|directory)|"
        r"nosuch\w+|not exist|unknown (?:database|table|dataset|project|bucket|topic)|"
        r"has been deleted|was deleted|has been (?:dropped|removed)|resource ?not ?found|"
        r"unable to open (?:database )?file|"
        r"no files? (?:found|matched)|not in the graph|no such \w+|unresolvable|"
        r"(?:there is )?no (?:item|member|entry|object|file|key|resource|record) named",
        P,
        "the referenced resource does not exist",
        ("Not found: Table p:d.t was not found in location US", 'relation "events" does not exist'),
    ),
    PatternRule(
        r"not implemented|not supported|unsupported|already exists|alreadyexists|"
        r"out of (?:disk|storage)(?: space)?|disk (?:is )?full|insufficient (?:storage|disk)|"
        r"out of memory|no space left on device|disk quota exceeded|read-only file system|"
        r"too large|payload too large|response too large|resources exceeded|"
        r"exceeded resource limits|returned non-zero exit status|"
        r"maximum recursion depth|division by zero|has no attribute|is not defined|"
        r"no module named|cannot import name|object is not (?:callable|subscriptable|iterable)",
        P,
        "a limit or bug that a retry reproduces exactly",
        ("Already Exists: Table p:d.t", "No space left on device"),
    ),
    # -- bare HTTP status numbers, the weakest evidence, last -------------------------------
    PatternRule(_status(408), TO, "HTTP 408 Request Timeout", ("HTTP Error 408",)),
    PatternRule(
        _status(429, 500, 502, 503, 504),
        T,
        "HTTP 429/5xx: overload or a failing backend",
        ("HTTP 503", "status 502"),
    ),
    PatternRule(
        _status(401, 403, 404, 405, 410),
        P,
        "HTTP 401/403/404: credentials, permission, missing",
        ("Error 401", "got 403 from server"),
    ),
    PatternRule(_status(400, 422), V, "HTTP 400/422: the request is malformed", ("HTTP 400",)),
)
