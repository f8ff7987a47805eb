"""The reporter seam: the core reports progress here and never prints.

Like pypa/build's `_ctx`, the active reporter lives in a ContextVar so that
tests stay silent and the CLI chooses the rendering.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Protocol


class Reporter(Protocol):
    def step(self, message: str) -> None:
        """A stage or an item has started or finished (one line)."""

    def detail(self, message: str) -> None:
        """Extra information shown only with --verbose."""

    def warn(self, message: str) -> None:
        """Something the user should read even when the run succeeds."""

    def progress(self, key: str, done: int, total: int | None) -> None:
        """Bytes or items done for a long task such as one download."""


class SilentReporter:
    def step(self, message: str) -> None:
        pass

    def detail(self, message: str) -> None:
        pass

    def warn(self, message: str) -> None:
        pass

    def progress(self, key: str, done: int, total: int | None) -> None:
        pass


_REPORTER: contextvars.ContextVar[Reporter] = contextvars.ContextVar(
    "prewheel_reporter",
    default=SilentReporter(),  # noqa: B039 - stateless, safe to share
)


def reporter() -> Reporter:
    """The reporter of the current context."""
    return _REPORTER.get()


@contextlib.contextmanager
def reporting_to(target: Reporter) -> Iterator[None]:
    """Route the core's progress to `target` for the duration of the block."""
    token = _REPORTER.set(target)
    try:
        yield
    finally:
        _REPORTER.reset(token)
