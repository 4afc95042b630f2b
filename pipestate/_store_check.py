"""Open and check the store before the first step runs, so a bad store stops nothing midway."""

from __future__ import annotations

import os
from typing import Any

import click

EXIT_STORE = 1


class StoreProblem(click.ClickException):
    """The store cannot be opened or written: nothing was run (exit code 1)."""

    exit_code = EXIT_STORE


# Paths stay strings here (os.path): pathlib and what it imports (fnmatch, urllib.parse,
# ipaddress) are otherwise not needed by a `pipestate run`, about 4 ms of its cold start.
def sqlite_path(store: Any) -> str | None:
    """The file of a SQLiteStore on a plain path (None for other stores, URIs, :memory:)."""
    from persistence.stores.sqlite import SQLiteStore

    if not isinstance(store, SQLiteStore):
        return None
    path = os.fspath(store.path)
    if not path or path == ":memory:" or path.startswith("file:"):
        return None
    return path


def require_existing(store: Any, url: str) -> None:
    """Refuse to read a SQLite file that does not exist (reading must not create one)."""
    path = sqlite_path(store)
    if path is not None and not os.path.exists(path):
        raise StoreProblem(
            f"--store {url}: no such file {path!r}; run a pipeline or `pipestate bootstrap` "
            f"first, or point --store at an existing file."
        )


def ensure_parent(store: Any, url: str) -> str | None:
    """Create the directory of a SQLite store's file (StoreProblem if impossible); its path."""
    path = sqlite_path(store)
    if path is None:
        return None
    parent = os.path.dirname(path) or "."
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as exc:
        raise StoreProblem(
            f"--store {url}: cannot create the directory {parent!r} "
            f"({exc.strerror or exc}); nothing was run."
        ) from None
    return path


def prepare_store(store: Any, url: str) -> None:
    """Create a SQLite file's directory and tables now, or raise StoreProblem saying why."""
    from persistence.schema import load_table_specs
    from persistence.stores.base import StoreError

    if ensure_parent(store, url) is None:
        return
    try:
        store.ensure_tables(load_table_specs(), dry_run=False)
    except StoreError as exc:
        raise StoreProblem(
            f"--store {url}: cannot open the store ({exc}); nothing was run."
        ) from None
