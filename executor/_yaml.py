"""Guarded YAML loading at C speed: guards and construction in one pass over libyaml's events.

PyYAML's C loader parses in C but constructs every node in Python through the composer, the
resolver and the constructor; for a 4,000-step file that is most of a second. Here libyaml's event
stream is read once and turned straight into dicts, lists and scalars, with the guards applied on
the way:

- nesting deeper than `max_depth` (checked before anything recursive runs);
- more than `max_events` events (a size bound independent of the file's byte count);
- a key repeated in one mapping (`pipeline_id: x` then `pipeline_id: y`), which YAML forbids and
  PyYAML silently resolves last-one-wins.

Plain scalars are resolved with PyYAML's own resolver and safe constructors (so `yes`, `0x1f`,
`1e3` and timestamps mean what they mean to yaml.safe_load), cached per distinct text. Rare
features (explicit tags, merge keys, complex keys, several documents) fall back to PyYAML's safe
loader after the guards have passed. Aliases share one object, as yaml.safe_load does, so alias
expansion ("billion laughs") stays linear here; the caller bounds the expanded size.
"""

from __future__ import annotations

import re
import sys
from typing import Any

from classifier._lazyre import LazyRegex

# PyYAML's pure-Python reader compiles this class attribute (Reader.NON_PRINTABLE) when yaml is
# imported: ~4.5 ms of CPU, a third of importing yaml and ~3 % of a 1-step `pipestate run`, for
# a regex used only when that reader reads a document (libyaml checks printability itself; here
# only for a document libyaml refused).
_NON_PRINTABLE = "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"


def _import_pyyaml() -> None:
    """Import PyYAML with its reader's NON_PRINTABLE compiled on first use, not now."""
    if "yaml" in sys.modules:
        return
    compile_now = re.compile

    def compile_lazily(pattern: Any, flags: int = 0) -> Any:
        if pattern == _NON_PRINTABLE and not flags:
            return LazyRegex(pattern)  # has the .search the reader calls
        return compile_now(pattern, flags)

    # Only while yaml's modules run (under the import lock); any other pattern compiles as usual.
    re.compile = compile_lazily
    try:
        import yaml  # noqa: F401
    finally:
        re.compile = compile_now


_import_pyyaml()
import yaml  # noqa: E402
from yaml import MarkedYAMLError as MarkedYAMLError  # noqa: E402
from yaml import YAMLError as YAMLError  # noqa: E402

# The C classes exist only when PyYAML was built with libyaml; fall back to pure Python otherwise.
_FastLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE_KEY = "<<"
_RESOLVER = yaml.resolver.Resolver()
_CONSTRUCTOR = yaml.constructor.SafeConstructor()
_STR_TAG = "tag:yaml.org,2002:str"


class YamlGuardError(ValueError):
    """A document that is well-formed YAML but refused by a guard; the message says which."""


class _NeedsFullLoader(Exception):
    """The document uses a feature this fast path leaves to PyYAML's constructor."""


class _Frame:
    """One open collection: a dict with its key/value alternation, or a list."""

    __slots__ = ("container", "key", "mapping")

    def __init__(self, container: Any, *, mapping: bool) -> None:
        self.container = container
        self.mapping = mapping
        self.key: Any = _NO_KEY


_NO_KEY = object()


def _line(event: Any) -> Any:
    return event.start_mark.line + 1 if event.start_mark else "?"


class _Builder:
    """Turns one event stream into Python objects, enforcing the guards."""

    def __init__(self, max_depth: int, max_events: int, *, guard_only: bool = False) -> None:
        # guard_only: check limits and plain duplicate keys, build nothing (PyYAML builds after).
        self.guard_only = guard_only
        self.max_depth = max_depth
        self.max_events = max_events
        self.stack: list[_Frame] = []
        self.anchors: dict[str, Any] = {}
        self.scalars: dict[tuple[str, bool], Any] = {}
        self.root: Any = None
        self.documents = 0

    def add(self, value: Any, event: Any) -> None:
        """Place a finished value in the open collection (or make it the document)."""
        if not self.stack:
            self.root = value
            return
        frame = self.stack[-1]
        if not frame.mapping:
            frame.container.append(value)
        elif frame.key is _NO_KEY:
            if value == _MERGE_KEY and isinstance(event, yaml.ScalarEvent) and event.implicit[0]:
                if not self.guard_only:
                    raise _NeedsFullLoader
                value = object()  # merge keys may repeat
            try:
                duplicate = value in frame.container
            except TypeError:  # an unhashable (complex) key
                if not self.guard_only:
                    raise _NeedsFullLoader from None
                value, duplicate = object(), False
            if duplicate:
                msg = f"duplicate key {value!r} at line {_line(event)} (each key may appear once)"
                raise YamlGuardError(msg)
            frame.key = value
        else:
            frame.container[frame.key] = value
            frame.key = _NO_KEY

    def scalar(self, event: yaml.ScalarEvent) -> Any:
        """Resolve and construct a scalar as yaml.safe_load would."""
        if self.guard_only:
            return event.value if event.implicit[0] or event.implicit[1] else object()
        plain = event.implicit[0]
        if event.tag is not None and not (plain or event.implicit[1]):
            raise _NeedsFullLoader  # an explicit tag such as !!binary or !!python/...
        cache_key = (event.value, plain)
        try:
            return self.scalars[cache_key]
        except KeyError:
            pass
        tag = _STR_TAG
        if plain:
            tag = _RESOLVER.resolve(yaml.ScalarNode, event.value, (True, False))  # type: ignore[no-untyped-call]
        construct = _CONSTRUCTOR.yaml_constructors.get(tag)
        if construct is None:  # e.g. the merge key `<<` or `=`: PyYAML decides what they mean
            raise _NeedsFullLoader
        value = construct(_CONSTRUCTOR, yaml.ScalarNode(tag, event.value))
        self.scalars[cache_key] = value
        return value

    def feed(self, events: Any) -> Any:
        """Consume every event; return the single document's value."""
        for count, event in enumerate(events, start=1):
            if count > self.max_events:
                raise YamlGuardError(f"document has more than {self.max_events} YAML events")
            self._one(event)
        return self.root

    def _one(self, event: Any) -> None:
        if isinstance(event, yaml.ScalarEvent):
            value = self.scalar(event)
            if event.anchor is not None:
                self.anchors[event.anchor] = value
            self.add(value, event)
        elif isinstance(event, yaml.AliasEvent):
            if event.anchor not in self.anchors and not self.guard_only:
                raise _NeedsFullLoader  # PyYAML reports the undefined alias with its position
            self.add(self.anchors.get(event.anchor or "", object()), event)
        elif isinstance(event, yaml.CollectionStartEvent):
            if len(self.stack) >= self.max_depth:
                msg = f"document nested deeper than {self.max_depth} levels (line {_line(event)})"
                raise YamlGuardError(msg)
            if event.tag is not None and not event.implicit and not self.guard_only:
                raise _NeedsFullLoader
            mapping = isinstance(event, yaml.MappingStartEvent)
            container: Any = {} if mapping else []
            if event.anchor is not None:
                self.anchors[event.anchor] = container
            self.add(container, event)
            self.stack.append(_Frame(container, mapping=mapping))
        elif isinstance(event, yaml.CollectionEndEvent):
            self.stack.pop()
        elif isinstance(event, yaml.DocumentStartEvent):
            self.documents += 1
            if self.documents > 1 and not self.guard_only:
                raise _NeedsFullLoader  # let PyYAML say "expected a single document"


def check_events(
    data: bytes, *, max_depth: int, max_events: int, loader: Any = _FastLoader
) -> object:
    """Build `data` from its events with the guards; _NeedsFullLoader for rare features."""
    return _Builder(max_depth, max_events).feed(yaml.parse(data, Loader=loader))


def _full_load(data: bytes, loader: Any, max_depth: int, max_events: int) -> object:
    """Guards only (nothing built by us), then PyYAML's safe loader builds the document."""
    _Builder(max_depth, max_events, guard_only=True).feed(yaml.parse(data, Loader=loader))
    return yaml.load(data, Loader=loader)


def load_guarded(data: bytes, *, max_depth: int, max_events: int) -> object:
    """Load one YAML document safely, fast, with the guards.

    A document libyaml refuses is read again by the pure-Python loader, which is slower but names
    the problem more precisely (and accepts what YAML allows and libyaml does not, such as a lone
    surrogate escape, so that the config validator can refuse it by field name).
    """
    for loader in dict.fromkeys((_FastLoader, yaml.SafeLoader)):
        try:
            try:
                return check_events(data, max_depth=max_depth, max_events=max_events, loader=loader)
            except _NeedsFullLoader:
                return _full_load(data, loader, max_depth, max_events)
        except yaml.YAMLError:
            if loader is yaml.SafeLoader:
                raise
    raise AssertionError("unreachable: the SafeLoader pass returns or raises")  # pragma: no cover
