"""Hypothesis strategies and builders for exceptions the classifier must survive."""

from __future__ import annotations

import builtins
import contextlib
import importlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import strategies as st

CORPUS_PATH = Path(__file__).resolve().parent.parent / "data" / "error_corpus.jsonl"


@pytest.fixture(autouse=True)
def fresh_classifier_caches() -> None:
    """Empty the classifier's per-class caches before each test that imports this fixture.

    Stand-in classes are shared between tests; with warm caches a later test never reaches the
    readers an earlier one filled the cache through, nor the pre-screen builder, so mutmut
    (which runs, per mutant, only the tests that reached the mutated function) would test them
    with the wrong tests.
    """
    from classifier import _fallback, _signals, engine

    for table in (engine._TYPE_CACHE, engine._SPECIFIC_CACHE, _signals._ABSENT, _signals._RICH):
        table.clear()
    engine._NAME_CACHE.clear()
    engine._PATTERNS._screen = None  # rebuilt on first use (re's own cache keeps it cheap)
    engine._REFINE_SCREENS.clear()  # the refinements' pre-screens, likewise
    for cached in (_fallback._screen, _fallback._phrases, _fallback._statuses_by_phrase):
        cached.cache_clear()  # level 10's scan, built on first use like the pre-screen


def load_corpus(path: Path = CORPUS_PATH) -> list[dict[str, Any]]:
    """Read the labelled corpus, one JSON object per line."""
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _real_class(qualified: str) -> type[BaseException] | None:
    """The class itself when its module is importable, so the real MRO is used."""
    module_name, _, name = qualified.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except Exception:
        return None
    cls = getattr(module, name, None)
    return cls if isinstance(cls, type) and issubclass(cls, BaseException) else None


def stand_in_class(
    qualified: str, bases: tuple[type[BaseException], ...] = (Exception,)
) -> type[Exception]:
    """A class with exactly that module and qualname, as if the library were installed."""
    module_name, _, name = qualified.rpartition(".")
    return type(name, bases, {"__module__": module_name, "__qualname__": name})  # type: ignore[return-value]


_ROOTS = {"builtins.Exception", "builtins.BaseException", "builtins.object"}


def _builtin(qualified: str) -> type[BaseException] | None:
    """The builtin exception class a qualified name denotes, if any."""
    module_name, _, name = qualified.rpartition(".")
    cls = getattr(builtins, name, None) if module_name == "builtins" else None
    return cls if isinstance(cls, type) and issubclass(cls, BaseException) else None


def stand_in_with_bases(qualified: str, bases: list[str], message: str) -> type[BaseException]:
    """A stand-in whose MRO carries the recorded base classes (library ones as stand-ins too).

    The recorded MRO is rebuilt as a chain of library stand-ins under Exception, with the
    builtin bases (TypeError, OSError, ...) mixed in, so type and name rules see what the real
    class would show. str() returns the recorded message, as the real class printed it.
    """
    parent: type[BaseException] = Exception
    mixins: list[type[BaseException]] = []
    # Classes listed after BaseException are the MRO's non-exception mixins (urllib's HTTPError
    # is also a response object): rebuilt as plain classes, so they stay non-exceptions.
    plain: tuple[type, ...] = ()
    if "builtins.BaseException" in bases:
        cut = bases.index("builtins.BaseException")
        bases, tail = bases[:cut], [b for b in bases[cut + 1 :] if b not in _ROOTS]
        for base in reversed(tail):
            module_name, _, name = base.rpartition(".")
            attrs_ = {"__module__": module_name, "__qualname__": name}
            plain = (type(name, plain or (object,), attrs_),)
    for base in reversed([b for b in bases if b not in _ROOTS]):
        builtin = _builtin(base)
        if builtin is not None:
            mixins.insert(0, builtin)
        else:
            parent = stand_in_class(base, (parent,))
    roots = tuple(m for m in mixins if not issubclass(parent, m))
    module_name, _, name = qualified.rpartition(".")
    namespace = {"__module__": module_name, "__qualname__": name, "__str__": lambda _: message}
    for chain in ((*roots, parent, *plain), (parent, *plain), (parent,)):
        try:
            return type(name, chain, namespace)
        except TypeError:  # incompatible builtin layouts: keep the library chain only
            continue
    return type(name, (parent,), namespace)


class _Response:
    """A response object as HTTP clients attach it (status_code, status, headers)."""

    def __init__(self, fields: dict[str, Any]) -> None:
        """Copy the recorded fields."""
        self.__dict__.update(fields)


def build_exception(entry: dict[str, Any]) -> BaseException | None:
    """The exception a corpus entry describes (real class if importable, else a stand-in)."""
    qualified = entry.get("exception_class")
    if not qualified:
        return None
    message = entry["message"]
    exc: BaseException | None = None
    cls = _real_class(qualified) if not entry.get("bases") else None
    if cls is not None:
        try:
            exc = cls(message)
        except Exception:
            exc = None
        if exc is not None and str(exc) != message and qualified != "builtins.KeyError":
            exc = None  # constructor reshaped the message; use a faithful stand-in
    group = _builtin(qualified)
    if exc is None and group is not None and issubclass(group, BaseExceptionGroup):
        # The recorded entry keeps the group's message, not its members: one placeholder
        # member that says nothing (str() is then the recorded "... (1 sub-exception)").
        title = (entry.get("attributes") or {}).get("message") or message
        exc = group(title, [Exception()])
    if exc is None:
        if entry.get("bases"):
            args = entry.get("args") or [message]
            exc = stand_in_with_bases(qualified, entry["bases"], message)(*args)
        else:
            exc = stand_in_class(qualified)(message)
    if entry.get("status") is not None:
        with contextlib.suppress(Exception):
            exc.code = entry["status"]  # type: ignore[attr-defined]
    for name, value in (entry.get("attributes") or {}).items():
        with contextlib.suppress(Exception):
            setattr(exc, name, value)
    if entry.get("response") is not None:
        with contextlib.suppress(Exception):
            exc.response = _Response(entry["response"])  # type: ignore[attr-defined]
    return exc


def family(entry: dict[str, Any]) -> str:
    """The family an entry is reported under: its own, else the top module of its class."""
    if entry.get("family"):
        return str(entry["family"])
    qualified = entry.get("exception_class") or ""
    return qualified.split(".", 1)[0] if qualified else "message-only"


class _RaisingStr(Exception):
    """An exception whose __str__ itself fails."""

    def __str__(self) -> str:
        raise RuntimeError("__str__ exploded")


class _NonStrStr(Exception):
    """An exception whose __str__ returns something that is not a str."""

    def __str__(self) -> str:
        return 42  # type: ignore[return-value]


messages = st.one_of(
    st.none(),
    st.text(max_size=300),
    st.binary(max_size=300),
    st.integers(),
    st.floats(allow_nan=True),
    st.lists(st.text(max_size=20), max_size=5),
)

_exception_types = st.sampled_from(
    [
        Exception,
        ValueError,
        KeyError,
        TimeoutError,
        ConnectionError,
        OSError,
        RuntimeError,
        stand_in_class("google.api_core.exceptions.Forbidden"),
        stand_in_class("botocore.exceptions.ClientError"),
        stand_in_class("psycopg2.errors.SerializationFailure"),
    ]
)


@st.composite
def exceptions(draw: st.DrawFn) -> BaseException:
    """Arbitrary exceptions: odd args, hostile __str__, causes, groups and odd attributes."""
    kind = draw(st.integers(min_value=0, max_value=5))
    if kind == 0:
        return _RaisingStr(draw(st.text(max_size=50)))
    if kind == 1:
        return _NonStrStr()
    if kind == 2:
        inner = draw(st.lists(st.builds(ValueError, st.text(max_size=30)), min_size=1, max_size=3))
        return ExceptionGroup(draw(st.text(max_size=30)), inner)
    cls = draw(_exception_types)
    args = draw(
        st.lists(st.one_of(st.text(max_size=80), st.binary(max_size=40), st.none()), max_size=3)
    )
    exc: BaseException = cls(*args)
    if kind == 4:
        exc.__cause__ = draw(st.builds(ConnectionError, st.text(max_size=30)))
    if kind == 5:
        attrs = draw(
            st.dictionaries(
                st.sampled_from(["code", "status_code", "status", "response", "errors", "pgcode"]),
                st.one_of(
                    st.integers(),
                    st.text(max_size=10),
                    st.none(),
                    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
                ),
                max_size=3,
            )
        )
        for name, value in attrs.items():
            setattr(exc, name, value)
    return exc


def _fragments() -> list[str]:
    """Words and phrases from the rule examples and the corpus, to hit many anchors at once."""
    from classifier.rules import PATTERN_RULES

    phrases = [example for rule in PATTERN_RULES for example in rule.examples]
    phrases += [entry["message"][:120] for entry in load_corpus()]
    words = {word for phrase in phrases for word in phrase.split()}
    return sorted(words) + phrases


_SEPARATORS = st.sampled_from([" ", "", "_", "-", ".", ": ", "\n", "(", "'", "x", "1"])


@st.composite
def rule_texts(draw: st.DrawFn) -> str:
    """Lower-cased text stitched from rule and corpus fragments with odd separators and noise."""
    pieces = draw(st.lists(st.sampled_from(_fragments()), min_size=1, max_size=8))
    out: list[str] = []
    for piece in pieces:
        out.append(draw(_SEPARATORS))
        out.append(piece)
        if draw(st.booleans()):
            out.append(draw(st.text(max_size=6)))
    return "".join(out).lower()
