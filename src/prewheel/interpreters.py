"""Local interpreters that can run a target, for `verify --install` (and builds)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path

from packaging import tags

from prewheel.targets import Target


def runs_here(target: Target) -> bool:
    """Whether this machine's platform accepts wheels of the target's platform."""
    return target.platform in set(tags.platform_tags())


def find_interpreter(version: str, env: Mapping[str, str]) -> Path | None:
    """A CPython `version` (e.g. "3.11") on this machine: pyenv's versions first, then PATH."""
    for root in _pyenv_roots(env):
        versions = root / "versions"
        if not versions.is_dir():
            continue
        found = sorted(
            (p for p in versions.glob(f"{version}.*") if _is_release(p.name, version)),
            key=lambda p: tuple(int(x) for x in p.name.split(".")),
            reverse=True,
        )
        for folder in found:
            candidate = folder / "bin" / f"python{version}"
            if candidate.is_file():
                return candidate
    on_path = shutil.which(f"python{version}", path=env.get("PATH"))
    if on_path and _reports(Path(on_path), version, env):
        return Path(on_path)
    return None


def _is_release(name: str, version: str) -> bool:
    rest = name.removeprefix(version + ".")
    return rest.isdigit()


def _pyenv_roots(env: Mapping[str, str]) -> list[Path]:
    roots: list[Path] = []
    if env.get("PYENV_ROOT"):
        roots.append(Path(env["PYENV_ROOT"]))
    pyenv = shutil.which("pyenv", path=env.get("PATH"))
    if pyenv:
        try:
            out = subprocess.run(
                [pyenv, "root"], capture_output=True, text=True, check=False, env=dict(env)
            ).stdout.strip()
        except OSError:
            out = ""
        if out:
            roots.append(Path(out))
    if env.get("HOME"):
        roots.append(Path(env["HOME"]) / ".pyenv")
    return list(dict.fromkeys(roots))


def _reports(python: Path, version: str, env: Mapping[str, str]) -> bool:
    try:
        out = subprocess.run(
            [str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
            env=dict(env),
        ).stdout.strip()
    except OSError:
        return False
    return out == version
