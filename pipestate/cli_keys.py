"""`pipestate keys create|list|revoke`: org API keys of the HTTP service, on the store itself."""

from __future__ import annotations

import json
import re

import click

from pipestate.cli import EXIT_OK, ConfigError, open_store_or_fail

_SLUG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")
_store = click.option(
    "--store",
    envvar="PIPESTATE_STORE",
    default="sqlite:pipestate.db",
    show_default=True,
    help="sqlite:PATH or bigquery:PROJECT.DATASET.",
)
_as_json = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def _ring(store_url: str):  # type: ignore[no-untyped-def]
    try:
        from pipestate.service.keys import KeyRing
    except ImportError as exc:
        raise ConfigError(
            f"keys need the service extra: pip install 'pipestate[service]' ({exc})"
        ) from None
    return KeyRing(open_store_or_fail(store_url, outbox=False))


def _slug(value: str, what: str) -> str:
    if not _SLUG.match(value):
        raise click.BadParameter(f"{what}: letters, digits, '_', '-', '.' (got {value!r})")
    return value


@click.group("keys")
def keys() -> None:
    """Create, list and revoke org API keys (hashes only are stored)."""


@keys.command("create")
@click.argument("org")
@click.option("--name", default=None, help="A label for the key.")
@_store
@_as_json
def create(org: str, name: str | None, store: str, as_json: bool) -> int:
    """Create a key for ORG and print it (shown this once)."""
    ring = _ring(store)
    try:
        record, token = ring.create(
            _slug(org, "ORG"), name=name and _slug(name, "--name"), actor="cli"
        )
    finally:
        ring.store.close()
    if as_json:
        click.echo(json.dumps({**record.public(), "api_key": token}, indent=2))
    else:
        click.echo(f"key id: {record.key_id} (org {record.org_slug})")
        click.echo(f"api key (shown once, keep it secret): {token}")
    return EXIT_OK


@keys.command("list")
@click.option("--org", default=None, help="Only this org's keys.")
@_store
@_as_json
def list_keys(org: str | None, store: str, as_json: bool) -> int:
    """List keys (never the secret)."""
    ring = _ring(store)
    try:
        found = ring.list(org and _slug(org, "--org"))
    finally:
        ring.store.close()
    rows = [k.public() for k in found]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return EXIT_OK
    from pipestate._cli_output import print_rows

    print_rows(rows, title=f"keys ({len(rows)})")
    return EXIT_OK


@keys.command("revoke")
@click.argument("key_id")
@_store
def revoke(key_id: str, store: str) -> int:
    """Revoke KEY_ID (every server refuses it within its key cache time, <= 5 s)."""
    ring = _ring(store)
    try:
        key = ring.revoke(key_id, actor="cli")
    finally:
        ring.store.close()
    if key is None:
        raise ConfigError(f"no key {key_id!r}")
    click.echo(f"revoked {key.key_prefix} (org {key.org_slug}) at {key.revoked_at}")
    return EXIT_OK
