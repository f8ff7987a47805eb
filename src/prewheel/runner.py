"""The one place that starts external tools (uv, pip), with a clean environment."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from prewheel.errors import ToolError
from prewheel.index import redact_text
from prewheel.report import reporter

# Variables that carry the host's own pip/uv configuration. A wheelhouse must not
# depend on the machine it was made on, so none of them reaches a child process.
_CONFIG_PREFIXES = ("PIP_", "UV_")


def clean_env(base: Mapping[str, str], **extra: str) -> dict[str, str]:
    """`base` without the host's pip/uv configuration, plus `extra`."""
    env = {k: v for k, v in base.items() if not k.startswith(_CONFIG_PREFIXES)}
    env.update(
        PIP_CONFIG_FILE="/dev/null",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        UV_NO_CONFIG="1",
        UV_PYTHON_DOWNLOADS="never",
    )
    env.update(extra)
    return env


def run(
    cmd: Sequence[str | Path],
    *,
    env: Mapping[str, str],
    what: str,
    cwd: Path | None = None,
    check: bool = True,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `cmd` with `env` cleaned of the host's pip/uv configuration, log it, and raise
    ToolError with the tail of its output if it fails."""
    args = [str(part) for part in cmd]
    reporter().detail(f"$ {redact_text(shlex.join(args))}")
    try:
        result = subprocess.run(
            args,
            env=clean_env(env),
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError as exc:
        raise ToolError(f"{what}: {args[0]} not found; reinstall prewheel") from exc
    except subprocess.TimeoutExpired as exc:
        raise ToolError(f"{what}: timed out after {timeout:.0f}s") from exc
    if check and result.returncode != 0:
        raise ToolError(f"{what} failed (exit {result.returncode}): {tail(result)}")
    return result


def tail(result: subprocess.CompletedProcess[str], lines: int = 5) -> str:
    """The last lines of a process's output, credentials removed, joined on one line."""
    text = (result.stderr or "") + (result.stdout or "")
    kept = [line.strip() for line in text.strip().splitlines() if line.strip()][-lines:]
    return redact_text(" | ".join(kept)) or "no output"
