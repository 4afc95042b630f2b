"""Exceptions the executor records as failure causes (their names appear in audit rows)."""

from __future__ import annotations

from classifier.errors import PipestateError


class StepTimeout(TimeoutError):
    """A step's processor ran past the step's timeout_minutes."""


class PipelineTimeout(TimeoutError):
    """The pipeline ran past its timeout_minutes."""


class PipelineCancelled(PipestateError):
    """The run was cancelled from outside (task cancellation, Ctrl-C)."""
