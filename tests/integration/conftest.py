"""Real parts for the integration tests: the default package index, pyenv interpreters,
fresh virtualenvs, `unshare -n` and a PATH with no compiler on it.

Every fixture that needs something this machine may lack skips with the reason,
so a laptop without pyenv or root gets skips, not failures; CI has them all.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from packaging import tags

from prewheel.targets import parse_target
from tests.localindex import clean_env

REPO_ROOT = Path(__file__).resolve().parents[2]
# CI runs from a fresh clone with `shared/` beside it, as on the development machine.
CORPUS = REPO_ROOT / ".." / "shared" / "corpus"
COMPILERS = ("cargo", "rustc", "gcc", "cc")

# Generous ceilings: a hung resolver or download fails the test instead of the CI job.
BUILD_TIMEOUT = 600
INSTALL_TIMEOUT = 300


@dataclass(frozen=True)
class Run:
    """One finished command, with its output kept for assertion messages."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def explain(self) -> str:
        return (
            f"$ {' '.join(self.args)}\nexit {self.returncode}\n"
            f"--- stdout ---\n{self.stdout[-4000:]}\n--- stderr ---\n{self.stderr[-4000:]}"
        )


def _run(
    args: Sequence[str | Path],
    *,
    env: dict[str, str],
    cwd: Path | None = None,
    timeout: float,
    check: bool = True,
) -> Run:
    argv = [str(a) for a in args]
    done = subprocess.run(
        argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False
    )
    result = Run(argv, done.returncode, done.stdout, done.stderr)
    if check:
        assert result.returncode == 0, result.explain()
    return result


@pytest.fixture(scope="session")
def prewheel_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One download cache for the whole session: builds that share files fetch them once."""
    return tmp_path_factory.mktemp("prewheel-cache")


@pytest.fixture(scope="session")
def prewheel_env(prewheel_cache: Path) -> dict[str, str]:
    """The environment prewheel runs in: no host pip/uv configuration, a private cache."""
    return clean_env({"PREWHEEL_CACHE_DIR": str(prewheel_cache)})


PrewheelRunner = Callable[..., Run]


@pytest.fixture(scope="session")
def prewheel(
    prewheel_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> PrewheelRunner:
    """Run `python -m prewheel ARGS` in a scratch folder (so no pyproject.toml defaults apply)."""
    workdir = tmp_path_factory.mktemp("prewheel-cwd")

    def run(*args: str | Path, check: bool = True, timeout: float = BUILD_TIMEOUT) -> Run:
        return _run(
            [sys.executable, "-m", "prewheel", *args],
            env=prewheel_env,
            cwd=workdir,
            timeout=timeout,
            check=check,
        )

    return run


def corpus_requirements(scenario: str) -> Path:
    """`requirements.in` of a scenario of the shared corpus, or skip."""
    path = (CORPUS / scenario / "requirements.in").resolve()
    if not path.is_file():
        pytest.skip(
            f"corpus scenario {scenario!r} not found at {path}; clone shared/ beside the repo"
        )
    return path


@pytest.fixture(scope="session")
def render_fastapi_requirements() -> Path:
    """The mission scenario: the repo's own copy first, else the shared corpus."""
    own = REPO_ROOT / "examples" / "render-fastapi" / "requirements.in"
    return own if own.is_file() else corpus_requirements("render-fastapi")


def _pyenv_roots() -> list[Path]:
    roots: list[Path] = []
    pyenv = shutil.which("pyenv")
    if pyenv:
        out = subprocess.run(
            [pyenv, "root"], capture_output=True, text=True, check=False, timeout=30
        ).stdout.strip()
        if out:
            roots.append(Path(out))
    if os.environ.get("PYENV_ROOT"):
        roots.append(Path(os.environ["PYENV_ROOT"]))
    roots.append(Path.home() / ".pyenv")
    return list(dict.fromkeys(roots))


def pyenv_python(version: str) -> Path:
    """The newest pyenv CPython `version` (e.g. "3.11") on this machine, or skip."""
    pattern = re.compile(rf"^{re.escape(version)}\.(\d+)$")
    roots = _pyenv_roots()
    for root in roots:
        found = sorted(
            (
                (int(m.group(1)), p)
                for p in (root / "versions").glob(f"{version}.*")
                if (m := pattern.match(p.name))
            ),
            reverse=True,
        )
        for _, folder in found:
            python = folder / "bin" / f"python{version}"
            if python.is_file():
                return python
    searched = ", ".join(str(r / "versions") for r in roots)
    pytest.skip(f"no pyenv CPython {version} (searched {searched}); run: pyenv install {version}")


def require_runs_here(target_name: str) -> None:
    """Skip unless this machine can run wheels of `target_name` (its platform tag fits)."""
    target = parse_target(target_name)
    if target.platform not in set(tags.platform_tags()):
        pytest.skip(f"this machine cannot run {target.name} wheels (platform {target.platform})")


@pytest.fixture(scope="session")
def network_cut() -> list[str]:
    """The prefix that runs a command with no network: `unshare -n --`, or skip.

    Checks inside the new namespace that only the loopback interface is left.
    """
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("unshare (util-linux) is not installed; cannot cut the network")
    probe = subprocess.run(
        [unshare, "-n", "true"], capture_output=True, text=True, check=False, timeout=30
    )
    if probe.returncode != 0:
        pytest.skip(f"`unshare -n true` failed (needs root): {probe.stderr.strip()}")
    prefix = [unshare, "-n", "--"]
    interfaces = subprocess.run(
        [
            *prefix,
            sys.executable,
            "-c",
            "import socket; print(*sorted(n for _, n in socket.if_nameindex()))",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout.split()
    assert interfaces == ["lo"], f"unshare -n left interfaces {interfaces}"
    return prefix


@dataclass(frozen=True)
class Venv:
    """A fresh virtualenv and an environment whose PATH is its bin folder only."""

    root: Path
    cut: list[str]

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    @property
    def python(self) -> Path:
        return self.bin / "python"

    @property
    def env(self) -> dict[str, str]:
        env = clean_env({"PATH": str(self.bin), "PYTHON": str(self.python)})
        env.pop("VIRTUAL_ENV", None)
        return env

    def install(self, wheelhouse: Path, *pip_args: str, check: bool = True) -> Run:
        """`sh <wheelhouse>/install.sh PIP_ARGS` with the network cut.

        `sh` itself is named by its absolute path: the venv's bin is all of PATH.
        """
        sh = shutil.which("sh") or "/bin/sh"
        return self.offline(sh, wheelhouse / "install.sh", *pip_args, check=check)

    def offline(
        self, *args: str | Path, check: bool = True, timeout: float = INSTALL_TIMEOUT
    ) -> Run:
        """Run `args` with the network cut and only the venv's bin on PATH."""
        return _run([*self.cut, *args], env=self.env, timeout=timeout, check=check)


VenvFactory = Callable[[str, Path], Venv]


def make_venv(version: str, path: Path, cut: list[str]) -> Venv:
    """A fresh venv of pyenv's CPython `version` at `path` (skips if there is none); for
    fixtures wider than one test, which cannot use `fresh_venv`."""
    python = pyenv_python(version)
    _run([python, "-m", "venv", path], env=clean_env(), timeout=INSTALL_TIMEOUT)
    venv = Venv(path, cut)
    reported = venv.offline(
        "python", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"
    ).stdout.strip()
    assert reported == version, f"{python} made a venv of Python {reported}"
    on_path = {tool: shutil.which(tool, path=venv.env["PATH"]) for tool in COMPILERS}
    assert not any(on_path.values()), f"a compiler is on the install PATH: {on_path}"
    return venv


@pytest.fixture
def fresh_venv(network_cut: list[str]) -> VenvFactory:
    """Make a fresh venv of pyenv's CPython `version` at `path` (skips if there is none)."""

    def make(version: str, path: Path) -> Venv:
        return make_venv(version, path, network_cut)

    return make
