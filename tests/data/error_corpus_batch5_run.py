"""Reproduce batch 5 (blind held-out) into its own JSONL file (not run by the test suite).

Usage (PostgreSQL / MariaDB as in error_corpus_servers.py, redis-server on PATH):
`PIPESTATE_CORPUS_PG="127.0.0.1 PORT etl etl etl"
PIPESTATE_CORPUS_MYSQL="127.0.0.1 PORT etl etl etl" PYTHONPATH=tests/data
/tmp/repro/bin/python tests/data/error_corpus_batch5_run.py tests/data/error_corpus_batch5.jsonl
[substring of 'what']`

Entries whose (message, exception class) pair is already in tests/data/error_corpus.jsonl or
earlier in this batch are left out (and named on stderr), so the batch only holds new pairs;
messages are compared with numbers (ports, pids, counts) and /tmp paths masked, so a refused
port that differs only in its number is a duplicate too.
"""

from __future__ import annotations

import json
import pathlib
import re
import sys

import error_corpus_reproduce as reproduce

sys.modules.setdefault("error_corpus_reproduce", reproduce)

CORPUS = pathlib.Path(__file__).with_name("error_corpus.jsonl")


def _key(message: str, cls: str) -> tuple[str, str]:
    """The dedup key: ports, addresses, temp names and other numbers do not make a new entry."""
    message = re.sub(r"/tmp/[\w./-]+", "/tmp/X", message)
    return re.sub(r"0x[0-9a-f]+|\d+", "N", message), cls


def _known() -> set[tuple[str, str]]:
    """Dedup keys of the existing corpus."""
    pairs = set()
    with CORPUS.open(encoding="utf-8") as handle:
        for line in handle:
            entry = json.loads(line)
            pairs.add(_key(entry["message"], entry.get("exception_class", "")))
    return pairs


def main(out: str, only: str | None = None) -> None:
    """Run every batch-5 case and write the new entries (one JSON object per line)."""
    # Earlier batches first: batch 5 borrows their helpers, and their cases must not count.
    import error_corpus_batch3  # noqa: F401
    import error_corpus_batch3b  # noqa: F401
    import error_corpus_batch4  # noqa: F401
    import error_corpus_batch4b  # noqa: F401
    import error_corpus_servers  # noqa: F401

    before = len(reproduce.CASES)
    import error_corpus_batch5  # noqa: F401 - batch 5, named libraries (blind)
    import error_corpus_batch5b  # noqa: F401 - batch 5, libraries no rule names (blind)

    known = _known()
    entries = []
    for meta, func in reproduce.CASES[before:]:
        if only and only not in meta["what"]:
            continue
        meta["batch"] = 5
        try:
            result = func()
        except BaseException as exc:
            entry = reproduce.record(meta, exc)
            pair = _key(entry["message"], entry["exception_class"])
            if pair in known:
                print(f"duplicate: {meta['what']}: {pair}", file=sys.stderr)
                continue
            known.add(pair)
            entries.append(entry)
            continue
        print(f"no exception: {meta['what']} -> {result!r}", file=sys.stderr)
    with open(out, "w", encoding="utf-8") as handle:
        for entry in entries:
            handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
    print(f"{len(entries)} entries", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
