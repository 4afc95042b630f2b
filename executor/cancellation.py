"""Cancel a running pipeline and say why: the request travels in the task's cancel message.

A cancelled run still ends FAILED (the state set is the seed's), but every row it writes on the
way out carries metadata {"cancelled": true, "cancel_source": ..., "cancelled_by": ...} and a
reason starting with "Cancelled", so failure analyses can leave cancellations out.
`request_cancel` encodes who asked into the message of `task.cancel(msg)`; the executor decodes
it from the CancelledError it receives. A cancel without our message (a bare task.cancel(),
asyncio.run tearing down) is recorded with source "shutdown".
"""

from __future__ import annotations

import asyncio
import json

import attrs

# Who may ask for a cancellation (the cross-issue contract; the service and watchdog use these).
CANCEL_SOURCES = frozenset({"sigint", "sigterm", "api", "shutdown", "recovery", "fail_fast"})
DEFAULT_SOURCE = "shutdown"
_PREFIX = "pipestate-cancel:"


@attrs.frozen
class CancelRequest:
    """Why a run is being cancelled: the source and, for API cancels, the API key id."""

    source: str = attrs.field(validator=attrs.validators.in_(CANCEL_SOURCES))
    by: str | None = None

    def metadata(self) -> dict[str, object]:
        """The metadata every row of the cancelled run carries."""
        meta: dict[str, object] = {"cancelled": True, "cancel_source": self.source}
        if self.by is not None:
            meta["cancelled_by"] = self.by
        return meta

    def encode(self) -> str:
        """The cancel message carrying this request."""
        return _PREFIX + json.dumps({"source": self.source, "by": self.by}, sort_keys=True)


def request_cancel(task: asyncio.Task[object], *, source: str, by: str | None = None) -> bool:
    """Cancel `task` (a run_pipeline task or one awaiting it), recording `source` and `by`.

    Returns task.cancel()'s answer: False when the task is already done. `by` is the id of
    whoever asked (an API key id, never a secret).
    """
    if source not in CANCEL_SOURCES:
        raise ValueError(f"source: expected one of {sorted(CANCEL_SOURCES)} (got {source!r}).")
    if by is not None and not isinstance(by, str):
        raise TypeError(f"by: expected a str or None (got {by!r}).")
    return task.cancel(CancelRequest(source, by).encode())


def decode_cancel(error: BaseException | None) -> CancelRequest:
    """The request carried by a CancelledError (source "shutdown" when it carries none)."""
    message = error.args[0] if error is not None and error.args else None
    if isinstance(message, str) and message.startswith(_PREFIX):
        try:
            data = json.loads(message[len(_PREFIX) :])
            by = data.get("by")
            return CancelRequest(str(data["source"]), by if isinstance(by, str) else None)
        except (ValueError, KeyError, TypeError, AttributeError):
            pass
    return CancelRequest(DEFAULT_SOURCE)
