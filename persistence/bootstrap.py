"""Create the dataset and every table from the schema files, on any Bootstrappable store."""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from persistence.schema import TableSpec, load_table_specs
from persistence.stores.base import Bootstrappable, Store


@attrs.frozen
class BootstrapReport:
    """What bootstrap did (or, in a dry run, would do): tables created, tables already there."""

    created: tuple[str, ...]
    existing: tuple[str, ...]
    dry_run: bool
    actions: tuple[str, ...]

    @property
    def changed(self) -> bool:
        """True when anything was (or would be) created or altered."""
        return bool(self.actions)

    def render(self) -> str:
        """Readable lines for the CLI: one per action, or a single 'nothing to do' line."""
        if not self.actions:
            return f"Nothing to do: all {len(self.existing)} tables already exist."
        verb = "Would run" if self.dry_run else "Ran"
        lines = [f"{verb} {len(self.actions)} action(s):"]
        lines.extend(f"  - {action}" for action in self.actions)
        if self.existing:
            lines.append(f"Already present: {', '.join(self.existing)}")
        return "\n".join(lines)


def _creates(action: str, table: str) -> bool:
    """True when the action line creates the named table (protocol: 'create table ...T...')."""
    if not action.startswith("create table "):
        return False
    words = action[len("create table ") :].split()
    return bool(words) and words[0].strip("`").rsplit(".", 1)[-1] == table


def bootstrap(
    store: Store,
    *,
    dry_run: bool = False,
    partition_expiration_days: int | None = None,
    specs: Sequence[TableSpec] | None = None,
) -> BootstrapReport:
    """Create every missing table (idempotent); a dry run only reports what it would create."""
    if not isinstance(store, Bootstrappable):
        raise TypeError(
            f"bootstrap needs a store with ensure_tables(specs, *, dry_run) "
            f"(got {type(store).__name__})."
        )
    table_specs = tuple(specs) if specs is not None else load_table_specs(partition_expiration_days)
    actions = tuple(store.ensure_tables(table_specs, dry_run=dry_run))
    created = tuple(s.name for s in table_specs if any(_creates(a, s.name) for a in actions))
    existing = tuple(s.name for s in table_specs if s.name not in created)
    return BootstrapReport(created=created, existing=existing, dry_run=dry_run, actions=actions)
