"""Checks a user would make on a wheelhouse and on a failed run."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.localindex import IndexServer, clean_env

CP311 = "cp311-manylinux_2_17_x86_64"
CP39 = "cp39-manylinux_2_17_x86_64"
EXT_X86 = "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64"
EXT_ARM = "cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64"
EXT_ABI3 = "cp39-abi3-manylinux_2_17_x86_64"
# demo-plat 1.0 has one wheel for each of these, and no sdist.
PLAT_TAGS = (
    "cp312-cp312-win_amd64",
    "cp312-cp312-macosx_11_0_arm64",
    "cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64",
)
RUN_TIMEOUT = 180
# What psycopg2's build prints on a machine without the PostgreSQL client headers.
PG_CONFIG_ERROR = "Error: pg_config executable not found."


@dataclass(frozen=True)
class LocalIndex:
    server: IndexServer
    root: Path

    @property
    def index_url(self) -> str:
        return self.server.index_url

    def file_requests(self, since: int = 0) -> list[str]:
        """Requests for distribution files (not index pages) from request number `since` on."""
        return [p for p in self.server.recorded()[since:] if p.startswith("/files/")]


def explain(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


@dataclass
class Prewheel:
    """Runs `python -m prewheel` as a user would, from a scratch folder, with a clean env."""

    cwd: Path
    cache: Path
    tool_cache_home: Path

    def env(self, **extra: str) -> dict[str, str]:
        return clean_env(
            {
                "PREWHEEL_CACHE_DIR": str(self.cache),
                "XDG_CACHE_HOME": str(self.tool_cache_home),
                **extra,
            }
        )

    def __call__(
        self, *args: str | Path, host_env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the CLI; `host_env` adds variables after cleaning, as a user's shell might."""
        return subprocess.run(
            [sys.executable, "-m", "prewheel", *(str(a) for a in args)],
            cwd=self.cwd,
            env={**self.env(), **(host_env or {})},
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )

    def ok(
        self, *args: str | Path, host_env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = self(*args, host_env=host_env)
        assert result.returncode == 0, explain(result)
        return result

    def build(
        self,
        requirements: Path,
        targets: Sequence[str],
        out: Path,
        index_url: str,
        *extra: str,
        host_env: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """`prewheel build --json`; the parsed summary. Fails the test if the build fails."""
        args: list[str | Path] = ["build", "-r", requirements, "-o", out, "--index-url", index_url]
        for target in targets:
            args += ["-t", target]
        result = self.ok(*args, *extra, "--json", host_env=host_env)
        summary: dict[str, Any] = json.loads(result.stdout)
        return summary

    def with_cache(self, cache: Path) -> Prewheel:
        return Prewheel(self.cwd, cache, self.tool_cache_home)


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` (relative name -> sha256): a byte-for-byte fingerprint."""
    return {
        str(p.relative_to(folder)): sha256_file(p) for p in sorted(folder.rglob("*")) if p.is_file()
    }


def read_manifest(wheelhouse: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((wheelhouse / "manifest.json").read_text(encoding="utf-8"))
    return data


def parse_requirements_txt(path: Path) -> dict[str, tuple[str, list[str]]]:
    """A requirements.<target>.txt as pip reads it: name -> (version, [sha256, ...])."""
    text = path.read_text(encoding="utf-8").replace("\\\n", " ")
    pins: dict[str, tuple[str, list[str]]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        spec, *options = line.split()
        name, sep, version = spec.partition("==")
        assert sep, f"not an == pin: {line!r}"
        assert name not in pins, f"{name} pinned twice in {path.name}"
        hashes = []
        for option in options:
            assert option.startswith("--hash=sha256:"), f"unexpected option {option!r}"
            hashes.append(option.removeprefix("--hash=sha256:"))
        pins[name] = (version, hashes)
    return pins


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single `prewheel: error:` line of a failed run, checked to be the only error output."""
    assert "Traceback" not in result.stderr, explain(result)
    lines = result.stderr.splitlines()
    errors = [line for line in lines if line.startswith("prewheel: error:")]
    assert len(errors) == 1, explain(result)
    assert lines[-1] == errors[0], explain(result)
    # Progress lines may come first, but no raw tool output leaks through.
    assert all(line.startswith("prewheel: ") for line in lines), explain(result)
    return errors[0]
