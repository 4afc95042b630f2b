"""The labelled corpus of real error messages: accuracy floors, splits and never-raise properties.

verified: every entry of tests/data/error_corpus.jsonl was checked against its cited source.
- GitHub issue / pull-request URLs: the message was found in the thread's text with the search
  tool (the ``issues`` corpus), and copied from there; the exception class is only given when
  the thread's traceback names it.
- ``owner/repo: path`` sources: the message template was read in that file with the search
  tool's read_file (botocore exceptions.py and validate.py, redis server.c, postgres.c), or the
  message was reproduced by calling the installed library itself, with the version named.
- ``reproduced: <dist> <version>: <call>`` sources were produced by
  tests/data/error_corpus_reproduce.py: the real library called against 127.0.0.1 (a refused
  port, a scripted HTTP/TCP server, or real PostgreSQL 15, MariaDB 10.11 and Redis 7.0
  servers); the entry keeps the exception's class, MRO (``bases``), ``args`` and the attributes
  the classifier reads, so the test rebuilds what the library raised without importing it.
- Dynamic parts (hosts, ids, column names, timeouts) may be filled in; the source says so.

Splits: entries without ``holdout`` were used while writing the rules ("tune"); ``holdout``
entries were added after the rules were written and are only reported; ``generalisation``
entries (also held out) come from libraries the rule table never names (sqlite3, urllib,
smtplib, ftplib, pymongo, paramiko, duckdb, pandas, dlt, zipfile, csv, ...). The floors below
are asserted on the whole corpus; the held-out figures are printed, with accuracy per family.
The first held-out measurement led to one more rule pass; entries with ``"batch": 2`` were
added after that pass and measured once; a third rule pass (SQLite and SMTP codes, service
codes read as words, ...) followed, so batch 2 is no longer blind either. Entries with
``"batch": 3`` (tests/data/error_corpus_batch3*.py plus issue threads) were labelled by the
labelling rules in docs/classifier.md after the rules were frozen at commit 73bf9a8 and before
the classifier saw them; their figures are printed per split (named / never-named libraries)
with the misses per family. Batch 4 (``"batch": 4``, tests/data/error_corpus_batch4*.py) was
built the same way after the rules were frozen at d724387. Batch 5 (``"batch": 5``,
tests/data/error_corpus_batch5*.py) was built by a separate helper who never saw the rules, and
measured once with the rules frozen at f185dd5; its named / never-named figures and the
accuracy per family are printed.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from classifier import ErrorType, classify_error, is_retryable
from tests.strategies.errors import (
    build_exception,
    exceptions,
    family,
    fresh_classifier_caches,  # noqa: F401 - autouse fixture
    load_corpus,
    messages,
)

LABEL_FLOOR = 0.95
RETRY_FLOOR = 0.99
# Which parts are still blind: printed next to the figures so nobody reads a tuned part as one.
BATCH_3_NOTE = (
    "\nbatch-3: measured blind once with the rules frozen at 73bf9a8 (labels 0.719, retry "
    "0.972; named libraries 0.726 / 0.972, never-named 0.708 / 0.972); the rules were tuned "
    "after that, so the batch-3 figures below are NOT blind. Batches 1-2 are not blind either."
)
BATCH_4_NOTE = (
    "\nbatch-4: built after the rules were frozen at d724387 and committed with its labels "
    "(2a6aff6) before the classifier saw it; measured blind once: labels 0.778, retry 0.971 "
    "(named libraries 0.842 / 0.989, never-named 0.697 / 0.947; main's rules at 5f34582 on the "
    "same batch: 0.772 / 0.971). A rule pass followed (gRPC status names, pg8000's field "
    "dict, MySQL codes, library class names over builtin bases, ...), so the batch-4 figures "
    "below are NOT blind."
)


BATCH_5_NOTE = (
    "\nbatch-5: built by a separate helper without seeing the rules (231 entries, labels "
    "committed at bd0c175), measured once with the rules frozen at f185dd5: labels 0.896, "
    "retry 0.970 (named libraries 0.926 / 0.981, never-named 0.870 / 0.959; main's rules at "
    "27bbbf7 on the same batch: 0.879 / 0.970, never-named 0.846 / 0.959). A rule pass "
    "followed (MySQL 1226/1317, ClickHouse-style concurrency limits, serialiser TypeErrors, "
    "column and shape class names, ...), so the batch-5 figures below are NOT blind."
)


def _verdict(entry: dict[str, Any]) -> ErrorType:
    """The classifier's verdict on one entry (the exception, or the message alone)."""
    exc = build_exception(entry)
    return classify_error(exc, None if exc is not None else entry["message"])


def split(entry: dict[str, Any]) -> str:
    """tune, holdout or generalisation."""
    if entry.get("generalisation"):
        return "generalisation"
    return "holdout" if entry.get("holdout") else "tune"


def _accuracy(entries: list[dict[str, Any]], name: str) -> tuple[float, float]:
    """Label and retry accuracy over entries, printed with the misses."""
    label_hits = retry_hits = 0
    misses: Counter[str] = Counter()
    for entry in entries:
        got = _verdict(entry)
        label_hits += got == entry["label"]
        retry_hits += is_retryable(got) == is_retryable(entry["label"])
        if got != entry["label"]:
            misses[f"{entry['label']} -> {got.value}"] += 1
    label_acc, retry_acc = label_hits / len(entries), retry_hits / len(entries)
    print(
        f"\n{name}={len(entries)} label_accuracy={label_acc:.3f} "
        f"retry_accuracy={retry_acc:.3f} misses={dict(misses)}"
    )
    return label_acc, retry_acc


def _batch_report(entries: list[dict[str, Any]], name: str) -> None:
    """A held-out batch: named vs never-named libraries, then the misses per family."""
    _accuracy(entries, name)
    _accuracy([e for e in entries if split(e) == "holdout"], f"{name}-named-libraries")
    _accuracy([e for e in entries if split(e) == "generalisation"], f"{name}-never-named")
    misses: dict[str, Counter[str]] = defaultdict(Counter)
    for entry in entries:
        got = _verdict(entry)
        if got != entry["label"]:
            misses[family(entry)][f"{entry['label']} -> {got.value}"] += 1
    for name_, counter in sorted(misses.items()):
        print(f"  {name} misses {name_}: {dict(counter)}")
    for family_name, (n, labels, retries) in sorted(_per_family(entries).items()):
        print(
            f"  {name} family {family_name}: {n} entries, labels {labels}/{n}, retry {retries}/{n}"
        )


def _per_family(entries: list[dict[str, Any]]) -> dict[str, tuple[int, int, int]]:
    """family -> (entries, label hits, retry hits)."""
    table: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for entry in entries:
        got = _verdict(entry)
        row = table[family(entry)]
        row[0] += 1
        row[1] += got == entry["label"]
        row[2] += is_retryable(got) == is_retryable(entry["label"])
    return {name: (n, labels, retries) for name, (n, labels, retries) in table.items()}


class TestCorpus:
    """Real messages from library sources, reproductions and bug reports, labelled by hand."""

    def test_corpus_is_large_and_cited(self) -> None:
        """At least 400 entries, each with a known label and a source."""
        corpus = load_corpus()
        assert len(corpus) >= 400
        for entry in corpus:
            assert entry["label"] in ErrorType.__members__
            assert entry["source"].strip()
            assert isinstance(entry["message"], str)
            source = entry["source"]
            assert source.startswith(("https://github.com/", "reproduced: ")) or ": " in source

    def test_accuracy(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Labels >= 0.95 and retry decisions >= 0.99 over the whole corpus; splits reported."""
        corpus = load_corpus()
        with capsys.disabled():  # the figures belong in the test output, not only on failure
            label_acc, retry_acc = _accuracy(corpus, "corpus")
            for name in ("tune", "holdout", "generalisation"):
                _accuracy([e for e in corpus if split(e) == name], name)
            _accuracy([e for e in corpus if split(e) != "tune"], "all-held-out")
            _accuracy([e for e in corpus if e.get("batch") == 2], "held-out-batch-2")
            print(BATCH_3_NOTE)
            _batch_report([e for e in corpus if e.get("batch") == 3], "batch-3")
            print(BATCH_4_NOTE)
            _batch_report([e for e in corpus if e.get("batch") == 4], "batch-4")
            print(BATCH_5_NOTE)
            _batch_report([e for e in corpus if e.get("batch") == 5], "batch-5")
        assert label_acc >= LABEL_FLOOR
        assert retry_acc >= RETRY_FLOOR

    def test_per_family_report(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Every family is reported with its accuracy; the table covers every entry."""
        corpus = load_corpus()
        table = _per_family(corpus)
        rows = [f"{'family':<20} {'entries':>8} {'labels':>7} {'retry':>6}"]
        rows += [
            f"{name:<20} {n:>8} {labels / n:>7.2f} {retries / n:>6.2f}"
            for name, (n, labels, retries) in sorted(table.items())
        ]
        with capsys.disabled():
            print("\n" + "\n".join(rows))
        assert sum(n for n, _, _ in table.values()) == len(corpus)
        assert {"postgres", "mysql", "redis", "kafka", "bigquery", "snowflake"} <= set(table)

    def test_held_out_parts_are_real_shares(self) -> None:
        """Enough entries are held out, and enough come from libraries no rule names."""
        corpus = load_corpus()
        assert sum(split(e) != "tune" for e in corpus) >= 100
        assert sum(split(e) == "generalisation" for e in corpus) >= 40

    def test_message_only_still_decides_retry(self) -> None:
        """Even with the exception type stripped, the retry decision stays mostly right."""
        corpus = load_corpus()
        hits = sum(
            is_retryable(classify_error(None, e["message"])) == is_retryable(e["label"])
            for e in corpus
        )
        assert hits / len(corpus) >= 0.80


class TestNeverRaises:
    """classify_error accepts anything."""

    @settings(deadline=None, suppress_health_check=[HealthCheck.differing_executors])
    @given(exceptions(), messages)
    def test_arbitrary_exceptions_and_messages(self, exc: BaseException, message: object) -> None:
        """Invariant: any exception with any message object yields an ErrorType, never raises."""
        assert isinstance(classify_error(exc, message), ErrorType)

    @settings(deadline=None, suppress_health_check=[HealthCheck.differing_executors])
    @given(st.binary(max_size=2000))
    def test_binary_messages(self, data: bytes) -> None:
        """Invariant: undecodable bytes are classified, not rejected."""
        assert isinstance(classify_error(None, data), ErrorType)

    @settings(deadline=None, suppress_health_check=[HealthCheck.differing_executors])
    @given(st.text(max_size=2000))
    def test_text_messages(self, text: str) -> None:
        """Invariant: any text is classified."""
        assert isinstance(classify_error(None, text), ErrorType)
