"""A regex compiled on first use, so `import classifier` compiles nothing (issue 20)."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator

_LOCK = threading.Lock()


class LazyRegex:
    """re.compile(pattern, flags) deferred until the first search/match/sub/finditer."""

    __slots__ = ("_compiled", "flags", "pattern")

    def __init__(self, pattern: str, flags: int = 0) -> None:
        """Keep the source; compile nothing yet."""
        self.pattern = pattern
        self.flags = flags
        self._compiled: re.Pattern[str] | None = None

    @property
    def compiled(self) -> re.Pattern[str]:
        """The compiled pattern (compiled once, thread-safely)."""
        compiled = self._compiled
        if compiled is None:
            with _LOCK:
                if self._compiled is None:
                    self._compiled = re.compile(self.pattern, self.flags)
                compiled = self._compiled
        return compiled

    def search(self, text: str, pos: int = 0) -> re.Match[str] | None:
        """re.Pattern.search."""
        return self.compiled.search(text, pos)

    def match(self, text: str, pos: int = 0) -> re.Match[str] | None:
        """re.Pattern.match."""
        return self.compiled.match(text, pos)

    def sub(self, repl: str | Callable[[re.Match[str]], str], text: str) -> str:
        """re.Pattern.sub."""
        return self.compiled.sub(repl, text)

    def finditer(self, text: str) -> Iterator[re.Match[str]]:
        """re.Pattern.finditer."""
        return self.compiled.finditer(text)

    def __repr__(self) -> str:
        """Like re.Pattern's repr."""
        return f"LazyRegex({self.pattern!r})"


def lazy(pattern: str, flags: int = 0) -> LazyRegex:
    """A LazyRegex; call sites read like re.compile."""
    return LazyRegex(pattern, flags)
