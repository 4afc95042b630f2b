"""Stores: the protocol, the embedded SQLite store and open_store(url) to pick one by URL."""

from __future__ import annotations

import os
from typing import Any

from persistence.stores.base import (
    Bootstrappable,
    RowError,
    Store,
    StoreError,
    WriteResult,
)

DEFAULT_URL = "sqlite:pipestate.db"
_OUTBOX_RETRY_TIMEOUT_SECONDS = 10.0

__all__ = [
    "DEFAULT_URL",
    "Bootstrappable",
    "RowError",
    "Store",
    "StoreError",
    "WriteResult",
    "open_store",
]


def open_store(
    url: str = DEFAULT_URL,
    *,
    outbox: bool | str | os.PathLike[str] = True,
    **options: Any,
) -> Store:
    """Open a store from a URL: "sqlite:PATH" or "bigquery:PROJECT[.DATASET]".

    BigQuery options (api_endpoint, location, credentials, ...) come from keyword arguments,
    else from PIPESTATE_BQ_ENDPOINT / PIPESTATE_BQ_LOCATION; google-cloud-bigquery is imported
    only here, only for a bigquery: URL. A BigQuery store sits behind a durable local outbox
    unless outbox=False: True uses $PIPESTATE_OUTBOX or ./pipestate-outbox.db, a path names
    the outbox file. `outbox` is ignored for SQLite, which is durable itself.
    """
    scheme, sep, rest = url.partition(":")
    if not sep:
        raise ValueError(
            f"store URL must look like 'sqlite:PATH' or 'bigquery:PROJECT.DATASET' (got {url!r})."
        )
    if scheme == "sqlite":
        from persistence.stores.sqlite import DEFAULT_PATH, SQLiteStore

        return SQLiteStore(rest or DEFAULT_PATH, **options)
    if scheme == "bigquery":
        project, _, dataset = rest.partition(".")
        if not project:
            raise ValueError(
                f"bigquery store URL needs a project: 'bigquery:PROJECT' (got {url!r})."
            )
        from persistence.schema import dataset_name
        from persistence.stores.bigquery import BigQueryStore  # type: ignore[import-not-found,unused-ignore]

        env = {"api_endpoint": "PIPESTATE_BQ_ENDPOINT", "location": "PIPESTATE_BQ_LOCATION"}
        for option, variable in env.items():
            if option not in options and os.environ.get(variable):
                options[option] = os.environ[variable]
        if outbox:
            # The uploader retries on its own schedule: a short client deadline keeps one
            # failing request from holding the uploader (and stop()) for the default 30 s.
            options.setdefault("retry_timeout_seconds", _OUTBOX_RETRY_TIMEOUT_SECONDS)
        store: Store = BigQueryStore(project, dataset or dataset_name(), **options)
        if not outbox:
            return store
        from persistence.outbox import with_outbox

        return with_outbox(store, None if outbox is True else outbox)
    raise ValueError(
        f"unknown store scheme {scheme!r} in {url!r}; expected 'sqlite' or 'bigquery'."
    )
