"""Errors of the thread dispatcher."""

from __future__ import annotations


class DispatcherShutdownError(RuntimeError):
    """A blocking call reached a dispatcher that is shut down, or was still queued
    when ``shutdown(wait=False)`` dropped it."""
