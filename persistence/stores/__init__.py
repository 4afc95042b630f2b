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

__all__ = [
    "DEFAULT_URL",
    "Bootstrappable",
    "RowError",
    "Store",
    "StoreError",
    "WriteResult",
    "open_store",
]


def open_store(url: str = DEFAULT_URL, **options: Any) -> Store:
    """Open a store from a URL: "sqlite:PATH" or "bigquery:PROJECT[.DATASET]".

    BigQuery options (api_endpoint, location, credentials, ...) come from keyword arguments,
    else from PIPESTATE_BQ_ENDPOINT / PIPESTATE_BQ_LOCATION; google-cloud-bigquery is imported
    only here, only for a bigquery: URL.
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
        store: Store = BigQueryStore(project, dataset or dataset_name(), **options)
        return store
    raise ValueError(
        f"unknown store scheme {scheme!r} in {url!r}; expected 'sqlite' or 'bigquery'."
    )
