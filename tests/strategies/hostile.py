"""Hostile inputs (configs, error messages, metadata, identifiers, secrets) and store helpers."""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

from persistence import LoggerSettings, MetadataLogger, SQLiteStore
from statemachine import PipelineRun, StepRun, TransitionSink
from statemachine.spec import PIPELINE, STEP
from tests.strategies.events import running_pipeline

# -- secrets -----------------------------------------------------------------------------------

# The values that must never reach a store; each test embeds them in realistic text.
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJldGwtcm9ib3QiLCJpYXQiOjE1MTYyMzkwMjJ9."
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
API_KEY = "k9Qz7rT2mX4vB8nL1pW6yH3j"
DB_PASSWORD = "S3cr3tP4ss"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
PRIVATE_KEY_BODY = (
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0/IzW7yW\n"
    "R7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxKLxoS2tFczGkPLPgizskuemMghRniWaoLcyehkd3q"
)
PRIVATE_KEY_BLOCK = (
    f"-----BEGIN RSA PRIVATE KEY-----\n{PRIVATE_KEY_BODY}\n-----END RSA PRIVATE KEY-----"
)
# Every fragment here is a substring no stored byte may contain.
SECRET_VALUES: tuple[str, ...] = (
    JWT,
    JWT.split(".")[2],  # the signature alone
    API_KEY,
    DB_PASSWORD,
    AWS_SECRET,
    PRIVATE_KEY_BODY.splitlines()[0],
    PRIVATE_KEY_BODY.splitlines()[1],
)
# Messages as a failing step would raise them, one per secret kind.
SECRET_MESSAGES: dict[str, str] = {
    "bearer": f"401 from https://api.example.com/v1/rows: headers={{Authorization: Bearer {JWT}}}",
    "api_key": f"request rejected; sent headers X-API-Key: {API_KEY} and Accept: */*",
    "dsn": f"could not connect to postgresql://etl:{DB_PASSWORD}@db:5432/x (connection refused)",
    "aws": f"boto config error: aws_secret_access_key={AWS_SECRET} region=eu-west-1",
    "private_key": f"cannot load key file:\n{PRIVATE_KEY_BLOCK}\nbad padding",
}


# -- error messages ----------------------------------------------------------------------------

HUGE_MESSAGE_CHARS = 10 * 1024 * 1024


class RaisingStr(Exception):
    """An exception whose __str__ (and __repr__) raise."""

    def __str__(self) -> str:
        raise RuntimeError("__str__ exploded")

    def __repr__(self) -> str:
        raise RuntimeError("__repr__ exploded")


class NonStrStr(Exception):
    """An exception whose __str__ returns something that is not a str."""

    def __str__(self) -> Any:
        return 42


def hostile_messages() -> dict[str, object]:
    """Named hostile exception payloads: huge, binary, lone surrogates, control characters."""
    return {
        "huge": "E" * HUGE_MESSAGE_CHARS,
        "huge_with_secret_at_end": "x" * (HUGE_MESSAGE_CHARS - 64) + SECRET_MESSAGES["dsn"],
        "binary": bytes(range(256)) * 4,
        "surrogates": "bad \ud800 half \udfff pair \udc80\udcff end",
        "controls": "nul\x00bell\x07esc\x1b[31mred\r\nline2\u2028sep",
        "empty": "",
    }


def error_texts() -> st.SearchStrategy[str]:
    """Any text, lone surrogates and control characters included, sometimes long."""
    return st.one_of(
        st.text(max_size=300),
        st.text(st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1),
        st.builds(lambda s, n: s * n, st.text(min_size=1, max_size=5), st.integers(1, 20_000)),
    )


# -- metadata ----------------------------------------------------------------------------------


class Unprintable:
    """An object whose __str__ and __repr__ raise."""

    def __str__(self) -> str:
        raise RuntimeError("no str for you")

    def __repr__(self) -> str:
        raise RuntimeError("no repr either")


class UnprintableKey(Unprintable):
    """A hashable unprintable object, for use as a dict key."""

    def __hash__(self) -> int:
        return 7


def cyclic_dict() -> dict[str, Any]:
    """A dict that contains itself."""
    d: dict[str, Any] = {"name": "loop"}
    d["self"] = d
    return d


def cyclic_list() -> list[Any]:
    """A list that contains itself."""
    items: list[Any] = [1]
    items.append(items)
    return items


def non_json_values() -> st.SearchStrategy[object]:
    """Values json.dumps refuses: datetimes, Decimals, bytes, sets, cycles, unprintables."""
    return st.one_of(
        st.datetimes(timezones=st.just(dt.UTC)),
        st.dates(),
        st.decimals(allow_nan=True, allow_infinity=True),
        st.binary(max_size=64),
        st.frozensets(st.integers(), max_size=5),
        st.sets(st.text(max_size=5), max_size=5),
        st.builds(cyclic_dict),
        st.builds(cyclic_list),
        st.builds(Unprintable),
        st.builds(object),
        st.complex_numbers(allow_nan=False, allow_infinity=False),
        st.just(decimal.Decimal("NaN")),
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(min_value=2**70, max_value=2**80),
        error_texts(),
    )


def hostile_metadata() -> st.SearchStrategy[dict[Any, Any]]:
    """Metadata dicts mixing JSON values, non-JSON values and odd keys, a few levels deep."""
    keys = st.one_of(
        st.text(max_size=10), st.integers(), st.builds(UnprintableKey), st.tuples(st.integers())
    )
    leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20))
    values = st.recursive(
        st.one_of(leaves, non_json_values()),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
        ),
        max_leaves=8,
    )
    return st.dictionaries(keys, values, max_size=5)


# -- configs -----------------------------------------------------------------------------------

CONFIG_FIELDS = ("pipeline_id", "description", "timeout_minutes", "retry", "concurrency", "steps")
STEP_FIELDS = ("step_id", "processor", "config", "depends_on", "timeout_minutes", "max_retries")


def yaml_values(max_leaves: int = 12) -> st.SearchStrategy[object]:
    """Values PyYAML's safe dumper can write: random types at random depth."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=40),
        st.binary(max_size=20),
        st.dates(),
        st.datetimes(),
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(st.one_of(st.text(max_size=10), st.integers()), inner, max_size=4),
        ),
        max_leaves=max_leaves,
    )


_REQUIRED_STEP = ("step_id", "processor")


@st.composite
def config_documents(draw: st.DrawFn) -> object:
    """A config-shaped document with random types at every field (sometimes a valid value)."""
    step_values = {
        "step_id": st.one_of(st.just("s1"), yaml_values()),
        "processor": st.one_of(st.just("generic.noop"), yaml_values()),
        "config": st.one_of(st.just({}), yaml_values()),
        "depends_on": st.one_of(st.just([]), yaml_values()),
        "timeout_minutes": yaml_values(),
        "max_retries": yaml_values(),
    }
    doc_values = {
        "pipeline_id": st.one_of(st.just("p1"), yaml_values()),
        "description": yaml_values(),
        "timeout_minutes": yaml_values(),
        "retry": yaml_values(),
        "concurrency": yaml_values(),
    }
    steps = draw(
        st.lists(
            st.fixed_dictionaries(
                {"step_id": step_values["step_id"], "processor": step_values["processor"]},
                optional={
                    k: v for k, v in step_values.items() if k not in ("step_id", "processor")
                },
            ),
            max_size=3,
        )
    )
    doc = draw(st.fixed_dictionaries({}, optional=doc_values))
    doc["steps"] = draw(st.one_of(st.just(steps), yaml_values()))
    if draw(st.booleans()):
        doc[draw(st.text(min_size=1, max_size=8))] = draw(yaml_values(4))
    return doc


def dump_yaml(doc: object) -> bytes:
    """Serialise a document the way a user would write it (safe dumper, UTF-8)."""
    return yaml.safe_dump(doc, allow_unicode=True).encode("utf-8", "surrogatepass")


def alias_bomb(levels: int = 9, fan_out: int = 9, key: str = "lol0") -> str:
    """The 'billion laughs' YAML: fan_out ** levels strings from a few hundred bytes."""
    lines = [f'lol0: &lol0 ["{"ha" * 8}"]']
    for i in range(1, levels + 1):
        refs = ", ".join([f"*lol{i - 1}"] * fan_out)
        lines.append(f"lol{i}: &lol{i} [{refs}]")
    text = "\n".join(lines) + "\n"
    return text if key == "lol0" else text.replace("lol", key)


def alias_bomb_in_field() -> str:
    """A billion-laughs document hidden in a valid-looking config's step config."""
    anchors = [f'a0: &a0 ["{"x" * 16}"]']
    for i in range(1, 9):
        anchors.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]")
    body = "\n".join("      " + line for line in anchors)
    return (
        "pipeline_id: bomb\nsteps:\n  - step_id: s1\n    processor: generic.noop\n"
        f"    config:\n{body}\n"
    )


def deep_yaml(depth: int, kind: str = "flow_list") -> str:
    """A document nested `depth` levels (flow lists, flow maps or block maps)."""
    if kind == "flow_list":
        return "pipeline_id: " + "[" * depth + "]" * depth + "\n"
    if kind == "flow_map":
        return "{a: " * depth + "1" + "}" * depth + "\n"
    return "".join("  " * i + f"k{i}:\n" for i in range(depth)) + "  " * depth + "v\n"


# -- identifiers -------------------------------------------------------------------------------

HOSTILE_IDENTIFIERS: tuple[str, ...] = (
    "o'brien",
    'quote"double',
    "semi;colon",
    "x'; DROP TABLE org_meta_state_transitions; --",
    'x"); DELETE FROM org_meta_state_transitions; --',
    "back`tick",
    "`proj`.`ds`.`t`",
    "new\nline",
    "carriage\rreturn",
    "nul\x00byte",
    "../../etc/passwd",
    "..\\..\\windows\\system32",
    "/etc/passwd",
    "%s %d {0} {name}",
    "?:1 @name $1",
    "' OR '1'='1",
    "emoji 🚀 ünïcödé",
    "tab\there",
    " leading and trailing ",
    "a" * 300,
)


def hostile_identifiers() -> st.SearchStrategy[str]:
    """Named hostile identifiers plus random text (never empty: every id field is required)."""
    return st.one_of(
        st.sampled_from(HOSTILE_IDENTIFIERS),
        st.text(
            st.characters(exclude_categories=["Cs"]),  # SQLite stores UTF-8 only
            min_size=1,
            max_size=60,
        ),
    )


# -- the machines ------------------------------------------------------------------------------


def paths_to_states(table: Any) -> dict[str, tuple[str, ...]]:
    """The shortest legal event sequence from the initial state to each state (BFS)."""
    paths: dict[str, tuple[str, ...]] = {table.initial: ()}
    frontier = [table.initial]
    while frontier:
        nxt = []
        for state in frontier:
            for edge in table.edges:
                if edge.source == state and edge.dest not in paths:
                    paths[edge.dest] = (*paths[state], edge.event)
                    nxt.append(edge.dest)
        frontier = nxt
    return paths


def illegal_pairs(table: Any) -> list[tuple[str, str]]:
    """Every (state, event) pair the table does not allow."""
    return [(s, e) for s in table.states for e in table.events if table.dest(s, e) is None]


def fire(entity: Any, event: str, **kwargs: Any) -> Any:
    """Call the entity method that fires `event`."""
    return getattr(entity, event)(**kwargs)


def drive_to(entity: Any, state: str, table: Any) -> None:
    """Fire the shortest legal path that brings a fresh entity to `state`."""
    for event in paths_to_states(table)[state]:
        fire(entity, event)
    assert entity.state == state


def new_pipeline(sink: TransitionSink, name: str = "hostile", org: str = "org") -> PipelineRun:
    """A PENDING pipeline run on `sink`."""
    return PipelineRun.create(name, org_slug=org, sink=sink)


def new_entity(kind: str, sink: TransitionSink) -> PipelineRun | StepRun:
    """A PENDING pipeline (kind "PIPELINE") or step of a fresh RUNNING pipeline (kind "STEP")."""
    if kind == "PIPELINE":
        return new_pipeline(sink)
    return StepRun.create("step", pipeline=running_pipeline("hostile", org_slug="org", sink=sink))


TABLES = {"PIPELINE": PIPELINE, "STEP": STEP}


# -- stores ------------------------------------------------------------------------------------


def fast_settings(**overrides: Any) -> LoggerSettings:
    """Logger settings for tests: small interval, roomy queue, no waiting for room."""
    values: dict[str, Any] = {
        "batch_size": 50,
        "flush_interval_seconds": 0.05,
        "queue_size": 20_000,
        "put_timeout": 0.0,
        "max_flush_retries": 0,
    }
    values.update(overrides)
    return LoggerSettings(**values)


def with_logger(
    db: Path, body: Callable[[MetadataLogger], Awaitable[Any]], **settings: Any
) -> tuple[Any, dict[str, Any]]:
    """Run `body(logger)` on a fresh loop with a started logger on `db`; flush; return
    (body's result, the logger's queue depths after stop)."""

    async def go() -> tuple[Any, dict[str, Any]]:
        store = SQLiteStore(db)
        try:
            async with MetadataLogger(store, fast_settings(**settings)) as logger:
                result = await body(logger)
                await logger.flush(timeout=60)
            return result, logger.get_queue_depths()
        finally:
            store.close()

    return asyncio.run(go())


def user_tables(db: Path) -> list[str]:
    """Every table in the SQLite file, from sqlite_master."""
    with sqlite3.connect(db) as conn:
        return [
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]


def all_cells(db: Path) -> Iterator[tuple[str, str, object]]:
    """(table, column, value) for every cell of every table in the SQLite file."""
    conn = sqlite3.connect(db)
    conn.text_factory = lambda b: b.decode("utf-8", "replace")
    try:
        for table in user_tables(db):
            cursor = conn.execute(f'SELECT * FROM "{table}"')  # names from sqlite_master
            columns = [d[0] for d in cursor.description]
            for row in cursor:
                for column, value in zip(columns, row, strict=True):
                    yield table, column, value
    finally:
        conn.close()


def transition_rows(db: Path) -> list[dict[str, Any]]:
    """Every org_meta_state_transitions row, as dicts, in insertion order."""
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute("SELECT * FROM org_meta_state_transitions ORDER BY rowid").fetchall()
        return [dict(r) for r in rows]
    finally:
        conn.close()
