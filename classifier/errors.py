"""Exceptions pipestate raises itself; the classifier knows how to classify each."""

from __future__ import annotations


class PipestateError(Exception):
    """Base of every error pipestate raises on purpose."""


class ValidationError(PipestateError):
    """Input or configuration is invalid; the message names the file, field and problem."""


class DependencyFailure(PipestateError):
    """A step could not run because an upstream step failed."""
