"""The requirements file a user brings: checked line by line before any resolver runs."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from prewheel.errors import RequirementsError

_SHAPE = (
    "write it as NAME[EXTRAS] SPECIFIERS [; MARKER], e.g. requests>=2.31; python_version>='3.9'"
)
_INCLUDE = ("-r", "--requirement")
_CONSTRAINT = ("-c", "--constraint")
# Options that uv reads from the file itself and that name no requirement.
_PASSTHROUGH = (
    "-i",
    "--index-url",
    "--extra-index-url",
    "-f",
    "--find-links",
    "--trusted-host",  # pip-compile writes it whenever it was given one
    "--no-index",
    "--only-binary",
    "--no-binary",
    "--pre",
    "--prefer-binary",
)


@dataclass(frozen=True)
class RequirementLine:
    """One top-level requirement and where it was written."""

    requirement: Requirement
    path: Path
    line: int
    hashes: frozenset[str] = frozenset()  # sha256 digests from --hash options

    def __str__(self) -> str:
        return str(self.requirement)


def read_requirements(path: Path) -> list[RequirementLine]:
    """The top-level requirements of `path`, following `-r` includes.

    Every malformed line is an error that names the file and line number.
    """
    return _read(path, seen=set())


def _read(path: Path, seen: set[Path]) -> list[RequirementLine]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise RequirementsError(
            f"requirements file {path} not found; pass an existing file with -r"
        ) from exc
    except (IsADirectoryError, UnicodeDecodeError, PermissionError) as exc:
        raise RequirementsError(f"requirements file {path} cannot be read: {exc}") from exc
    seen.add(path.resolve())
    out: list[RequirementLine] = []
    for number, line in _logical_lines(text):
        if line.startswith("-"):
            out.extend(_option(path, number, line, seen))
            continue
        text, hashes = _split_hashes(path, number, line)
        try:
            req = Requirement(text)
        except InvalidRequirement as exc:
            first = str(exc).splitlines()[0]
            raise RequirementsError(
                f"{path}:{number}: malformed requirement {line!r} ({first}); {_SHAPE}"
            ) from exc
        out.append(RequirementLine(req, path, number, hashes))
    return out


def _split_hashes(path: Path, number: int, line: str) -> tuple[str, frozenset[str]]:
    """A requirement line without its `--hash=sha256:...` options, and those digests."""
    text, *options = re.split(r"\s+--hash[=\s]+", line)
    hashes: set[str] = set()
    for option in options:
        algorithm, _, digest = option.strip().partition(":")
        if algorithm != "sha256" or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise RequirementsError(
                f"{path}:{number}: bad --hash {option.strip()!r}; prewheel takes sha256:<64 hex digits>"
            )
        hashes.add(digest)
    return text.strip(), frozenset(hashes)


def _option(path: Path, number: int, line: str, seen: set[Path]) -> list[RequirementLine]:
    try:
        words = shlex.split(line, comments=False)
    except ValueError as exc:
        raise RequirementsError(f"{path}:{number}: cannot parse option line {line!r}") from exc
    flag, _, inline = words[0].partition("=")
    value = inline or (words[1] if len(words) > 1 else "")
    if flag in _INCLUDE:
        if not value:
            raise RequirementsError(f"{path}:{number}: {flag} needs a file name")
        child = (path.parent / value).resolve()
        return [] if child in seen else _read(child, seen)
    if flag in _CONSTRAINT or flag in _PASSTHROUGH:
        return []
    if flag in ("-e", "--editable"):
        raise RequirementsError(
            f"{path}:{number}: editable requirement {line!r} cannot go in a wheelhouse; "
            "build that project into a wheel and require it by name"
        )
    raise RequirementsError(
        f"{path}:{number}: unknown option {flag!r}; prewheel reads requirement lines and "
        "-r, -c, --index-url, --extra-index-url, --find-links"
    )


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """(line number, text) with comments stripped and backslash continuations joined."""
    out: list[tuple[int, str]] = []
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        if not buffer:
            start = number
        line = raw
        if line.lstrip().startswith("#"):
            line = ""
        elif " #" in line or "\t#" in line:
            line = line[: min(i for i in (line.find(" #"), line.find("\t#")) if i >= 0)]
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        full = (buffer + line).strip()
        buffer = ""
        if full:
            out.append((start, full))
    if buffer.strip():
        out.append((start, buffer.strip()))
    return out
