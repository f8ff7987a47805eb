"""One error hierarchy; each class carries the exit code that `cli.main()` returns.

The codes are documented in the README ("Exit codes"); keep the two in step.
"""

from __future__ import annotations


class PrewheelError(Exception):
    """An expected failure: one line that names what failed and what to do next."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class InputError(PrewheelError):
    """Bad input from the user: options, files, requirement lines."""

    exit_code = 2


class TargetError(InputError):
    """A target spec that does not parse."""


class RequirementsError(InputError):
    """A requirements file that is missing or has a malformed line."""


class ResolutionError(PrewheelError):
    """The resolver could not produce pins: unknown package, conflicting versions."""

    exit_code = 3


class IndexUnreachableError(PrewheelError):
    """A package index or file could not be reached or served a bad answer."""

    exit_code = 4


class DownloadError(IndexUnreachableError):
    """A file could not be downloaded intact."""


class VerifyError(PrewheelError):
    """A wheelhouse failed verification; the problems are listed before this line."""

    exit_code = 5


class MissingWheelError(PrewheelError):
    """Some pins have no wheel for a target and could not be given one."""

    exit_code = 6


class InstallCheckError(PrewheelError):
    """The offline test install (`verify --install`) failed."""

    exit_code = 7


class WheelhouseError(PrewheelError):
    """The wheelhouse folder cannot be used: not a folder, busy, unreadable."""

    exit_code = 8


class ToolError(PrewheelError):
    """An external tool (uv, pip) failed in a way prewheel did not expect."""

    exit_code = 9
