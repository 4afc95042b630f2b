"""Pre-screen for the pattern scan: literal anchors per rule, found by one trie regex.

Every match of a pattern rule starts with one of a few literal strings (its *anchors*), derived
here from the parsed regex. One scan of the text with a trie of all anchors (factored, so each
position costs a handful of steps) yields the rules that could match and the positions where
they could start; only those rules are tried, in table order, and only at those positions.
A rule whose anchors cannot be derived is always tried with a full search. The result is the
same as searching every rule in order (a property test checks that against the plain scan).
The engine's table also has guards: an alternative that may start at any digit gets a literal
it must contain instead of ten one-character anchors (guarded_anchors).

The scanner is `[^a-z0-9_](?=(anchor trie))` run over the text with one space in front: a
pattern that starts with a character class lets the regex engine skip every word character in
a tight C loop and try a match only after a non-word character, where a word can begin. A
leading `\b` instead makes it try a match at every position, which cost more than half of the
whole classification of a short message.
"""

from __future__ import annotations

import re
import re._parser as sre  # type: ignore[import-not-found]  # stdlib parser; typeshed lacks it
from collections.abc import Iterable, Sequence
from typing import Any

import attrs

from classifier._rulekinds import PatternRule

# Longer anchors filter better ("connection" vs "connecti": 1.8 tried rules per message on the
# corpus instead of 3.2) but multiply the alternatives and slow the build; 16 filters no better.
MAX_ANCHOR_CHARS = 12
MAX_ANCHORS_PER_RULE = 96
MIN_GUARD_CHARS = 4  # a shorter required literal occurs in too many messages to filter
_SMALL_CLASS = 12  # a character class with at most this many members is expanded

Items = list[Any]  # sre's parsed items: (opcode, argument) pairs


def _class_chars(av: Sequence[tuple[Any, Any]]) -> list[str] | None:
    """The members of a small, non-negated character class, or None."""
    chars: list[str] = []
    for op, arg in av:
        if op is sre.LITERAL:
            chars.append(chr(arg))
        elif op is sre.RANGE and arg[1] - arg[0] < _SMALL_CLASS:
            chars.extend(chr(c) for c in range(arg[0], arg[1] + 1))
        elif op is sre.CATEGORY and arg is sre.CATEGORY_DIGIT:
            chars.extend("0123456789")
        else:  # NEGATE, word/space categories, wide ranges: too many to enumerate
            return None
    return chars if len(chars) <= _SMALL_CLASS else None


def _done(acc: str) -> set[str] | None:
    """The anchor collected so far; an empty one constrains nothing."""
    return {acc} if acc else None


def _union(options: Iterable[tuple[Items, str]]) -> set[str] | None:
    """Anchors of several alternatives; None as soon as one is unconstrained."""
    out: set[str] = set()
    for items, acc in options:
        found = _heads(items, acc)
        if found is None:
            return None
        out |= found
    return out


def _heads(items: Items, acc: str) -> set[str] | None:
    """Literal strings, one of which starts every match of items (after the prefix acc)."""
    for i, (op, av) in enumerate(items):
        if len(acc) >= MAX_ANCHOR_CHARS:
            return {acc}
        rest = items[i + 1 :]
        if op is sre.LITERAL:
            acc += chr(av)
        elif op in (sre.AT, sre.ASSERT, sre.ASSERT_NOT):
            continue  # zero width: the anchor is still a prefix of the match
        elif op is sre.SUBPATTERN:
            return _heads(list(av[-1]) + rest, acc)
        elif op is sre.BRANCH:
            return _union((list(branch) + rest, acc) for branch in av[1])
        elif op is sre.IN:
            chars = _class_chars(av)
            if chars is None:
                return _done(acc)
            return _union((rest, acc + c) for c in chars)
        elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
            low, high, sub = av
            if low == 0 and high == 1:  # optional: with it or without it
                return _union(((list(sub) + rest, acc), (rest, acc)))
            if low == 0:
                return _union(((list(sub), acc), (rest, acc)))
            return _heads(list(sub), acc)  # one repetition is certain; more may follow
        else:  # ANY, wide classes, back-references: nothing literal can be promised
            return _done(acc)
    return _done(acc)


def anchors(pattern: str) -> frozenset[str] | None:
    """Literal prefixes one of which every match of pattern starts with; None if unknown."""
    try:
        found = _heads(list(sre.parse(pattern)), "")
    except Exception:  # an unexpected parse shape: fall back to a full search, never guess
        return None
    return _bounded(found)


def _bounded(found: set[str] | None) -> frozenset[str] | None:
    """The anchors, shortened until few enough (still sound); None when one is empty."""
    if found is None or "" in found:
        return None
    while len(found) > MAX_ANCHORS_PER_RULE:  # shorten until few enough; still sound
        width = max(len(a) for a in found) - 1
        if width <= 0:
            return None
        found = {a[:width] for a in found}
    return frozenset(found)


def guarded_anchors(pattern: str) -> tuple[frozenset[str] | None, frozenset[str]]:
    """(anchors, guards): like anchors(), but a digit-run alternative gets a guard instead.

    A top-level alternative whose only anchors are single characters ("\\d+ validation errors?
    for") made its rule a candidate at every number of every message: 40% of all candidates
    over the corpus, each a failed match. Such an alternative gets a guard instead, a literal
    every match of it contains (" validation error"): when the guard occurs in the text, the
    rule is searched in full. Without such an alternative the result is anchors()'s.
    """
    found: set[str] = set()
    guards: set[str] = set()
    try:
        parsed = sre.parse(pattern)
        if parsed.state.flags & re.IGNORECASE:  # a literal may match other characters (the long s)
            return anchors(pattern), frozenset()
        items = list(parsed)
        if items and items[0][0] is sre.BRANCH:
            alternatives = [[*branch, *items[1:]] for branch in items[0][1][1]]
        else:
            alternatives = [items]
        for alternative in alternatives:
            heads = _heads(alternative, "")
            single = heads is not None and max(map(len, heads)) == 1  # heads is never empty
            guard = _required_literal(alternative) if single else ""
            if len(guard) >= MIN_GUARD_CHARS:
                guards.add(guard)
            elif heads is None:  # this alternative may start anywhere: always searched in full
                return None, frozenset()
            else:
                found |= heads
    except Exception:  # an unexpected parse shape: anchors() says what to do
        guards.clear()
    if not guards:
        return anchors(pattern), frozenset()
    return _bounded(found), frozenset(guards)


def _required_literal(items: Items) -> str:
    """The longest run of literal characters that every match of items contains ('' if none)."""
    best = run = ""
    for op, av in items:
        if op is sre.LITERAL:
            run += chr(av)
            best = run if len(run) > len(best) else best
            continue
        run = ""  # anything else (even zero width, to stay simple) ends the run
        inner = ""
        if op is sre.SUBPATTERN and not av[1] and not av[2]:  # a group without inline flags
            inner = _required_literal(list(av[-1]))
        elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT) and av[0] >= 1:  # at least once
            inner = _required_literal(list(av[2]))
        best = inner if len(inner) > len(best) else best
    return best


def trie_regex(words: Iterable[str]) -> str:
    """A regex matching exactly the given words, factored by common prefixes, longest first."""
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for char in word:
            node = node.setdefault(char, {})
        node[""] = {}
    return _node_regex(trie)


def _node_regex(node: dict[str, Any]) -> str:
    """Regex for one trie node; an optional tail when a word may also end here.

    Words that end after one more character share a character class, and a node with a
    single way on adds no group: fewer opcodes for the regex engine at each word start.
    """
    ends = "" in node
    leaves = [re.escape(c) for c, child in sorted(node.items()) if c and list(child) == [""]]
    parts = [
        re.escape(c) + _node_regex(child)
        for c, child in sorted(node.items())
        if c and list(child) != [""]
    ]
    if len(leaves) > 1:
        parts.append("[" + "".join(leaves) + "]")
    else:
        parts.extend(leaves)
    if not parts:
        return ""
    atom = len(parts) == 1 and (len(parts[0]) == 1 or _ATOM.fullmatch(parts[0]) is not None)
    if not ends:
        return parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"
    return (parts[0] if atom else "(?:" + "|".join(parts) + ")") + "?"


# One escaped character or one character class: a quantifier may follow it without a group.
_ATOM = re.compile(r"\\.|\[[^\]]*\]")


@attrs.frozen
class _Screen:
    """The built pre-screen: which rules each anchor may start, and the one trie scanner."""

    rules_at: dict[str, tuple[int, ...]]
    always: tuple[int, ...]
    scanner: re.Pattern[str] | None
    padded: bool  # the scanner reads " " + text (every anchor starts with a word character)
    guarded: tuple[tuple[str, int], ...] = ()  # (guard, rule index): searched in full if found


def build_screen(rules: Sequence[PatternRule], guards: bool = False) -> _Screen:
    """Derive every rule's anchors (and guards, if asked) and compile the single trie scanner."""
    by_anchor: dict[str, set[int]] = {}
    always: list[int] = []
    guarded: list[tuple[str, int]] = []
    for index, rule in enumerate(rules):
        found, literals = guarded_anchors(rule.bounded) if guards else (anchors(rule.bounded), ())
        if found is None:
            always.append(index)
            continue
        guarded.extend((literal, index) for literal in sorted(literals))
        for anchor in found:
            by_anchor.setdefault(anchor, set()).add(index)
    # The trie reports the longest anchor at a position; shorter ones there are its prefixes.
    # Its prefixes are looked up one by one (not every anchor compared with every other).
    rules_at = {
        word: tuple(sorted({i for n in range(len(word)) for i in by_anchor.get(word[: n + 1], ())}))
        for word in by_anchor
    }
    if not by_anchor:
        return _Screen(rules_at, tuple(always), None, False, tuple(guarded))
    # Rule regexes begin with \b, so an anchor can only start where \b holds. Before a word
    # character that is just after a non-word character (or at the start, hence the padding
    # space); the match then starts one character before the anchor, at the anchor's own
    # index in the unpadded text.
    trie = trie_regex(by_anchor)
    if all(re.match(r"\w", anchor) for anchor in by_anchor):
        # [^a-z0-9_] rather than \W: a bitmap test instead of a Unicode category lookup per
        # character. It also admits positions after non-ASCII letters, where \b fails; the
        # rule's own regex (which starts with \b) then rejects them, so nothing is lost.
        scanner = re.compile(r"[^a-z0-9_](?=(" + trie + "))")
        return _Screen(rules_at, tuple(always), scanner, True, tuple(guarded))
    scanner = re.compile(r"\b(?=(" + trie + "))")
    return _Screen(rules_at, tuple(always), scanner, False, tuple(guarded))


class PreScreen:
    """The pattern rules, screened by their anchors; first(lowered) equals a plain ordered scan.

    The screen is built on the first call, not at import (issue 20); building it costs a few
    milliseconds once, and only in a process that classifies a message at all.
    """

    def __init__(self, rules: Sequence[PatternRule]) -> None:
        """Keep the rules; the screen is built on first use."""
        self.rules = tuple(rules)
        self._screen: _Screen | None = None

    @property
    def screen(self) -> _Screen:
        """The built screen (a race builds it twice, harmlessly: both results are equal)."""
        screen = self._screen
        if screen is None:
            screen = self._screen = build_screen(self.rules, guards=True)
        return screen

    def first(self, lowered: str) -> PatternRule | None:
        """The earliest rule (in table order) that matches already lower-cased text, or None."""
        screen = self._screen or self.screen  # the attribute first: a property call costs
        # (rule index, position) pairs; -1: no anchors known, search the whole text.
        hits: list[tuple[int, int]] = []
        for index in screen.always:
            hits.append((index, -1))
        for literal, index in screen.guarded:  # one substring test each: cheaper than a scan
            if literal in lowered:
                hits.append((index, -1))
        scanner = screen.scanner
        if scanner is not None:
            rules_at = screen.rules_at
            for match in scanner.finditer(" " + lowered if screen.padded else lowered):
                position = match.start()
                for index in rules_at[match.group(1)]:
                    hits.append((index, position))
        if not hits:
            return None
        if len(hits) > 1:
            hits.sort()  # table order first, then text order: the first success is the answer
        rules = self.rules
        for index, position in hits:
            regex = rules[index].regex
            found = regex.search(lowered) if position < 0 else regex.match(lowered, position)
            if found is not None:
                return rules[index]
        return None
