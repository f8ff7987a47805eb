"""Fixtures for functional tests: one local index for the session, and the real CLI.

Every package the functional tests need is built once, up front, into a PEP 503
index served from 127.0.0.1. Nothing changes the index afterwards, so uv's HTTP
cache (kept in a session folder, away from the host's own) never goes stale.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.functional.helpers import (
    CP311,
    EXT_ABI3,
    EXT_ARM,
    EXT_X86,
    PG_CONFIG_ERROR,
    PLAT_TAGS,
    LocalIndex,
    Prewheel,
)
from tests.localindex import IndexServer, make_sdist, make_wheel, write_simple_index


def _make_packages(dist: Path) -> list[Path]:
    return [
        make_wheel(
            dist,
            "demo-app",
            "1.0",
            requires_dist=["demo-lib>=1", "demo-ext", 'demo-backport; python_version < "3.10"'],
        ),
        make_wheel(dist, "demo-lib", "0.9"),
        make_wheel(dist, "demo-lib", "1.2"),
        make_wheel(dist, "demo-backport", "1.0"),
        make_wheel(dist, "demo-ext", "2.0", tag=EXT_X86),
        make_wheel(dist, "demo-ext", "2.0", tag=EXT_ARM),
        make_wheel(dist, "demo-ext", "2.0", tag=EXT_ABI3),
        # Wheel-first: the newest release is an sdist only, an older one has a wheel.
        make_wheel(dist, "demo-fast", "1.5", tag="py3-none-manylinux_2_17_x86_64"),
        make_sdist(dist, "demo-fast", "1.5"),
        make_sdist(dist, "demo-fast", "2.0"),
        # No wheel at any version.
        make_sdist(dist, "demo-only-src", "1.0"),
        # Built from sdist by prewheel itself: in-tree backends need nothing from an index.
        make_sdist(dist, "demo-src", "1.0", backend="intree", requires_dist=["demo-lib>=1"]),
        make_sdist(dist, "demo-broken", "1.0", backend="intree", fail_with=PG_CONFIG_ERROR),
        # --build-policy newest: 2.0 is an sdist only, 1.0 has a wheel.
        make_wheel(dist, "demo-fresh", "1.0"),
        make_sdist(dist, "demo-fresh", "2.0", backend="intree"),
        # Markers per target: only a Windows target needs demo-win-only.
        make_wheel(
            dist, "demo-colors", "1.0", requires_dist=['demo-win-only; sys_platform == "win32"']
        ),
        make_wheel(dist, "demo-win-only", "1.0"),
        # One wheel per platform: each target takes its own.
        *(make_wheel(dist, "demo-plat", "1.0", tag=tag) for tag in PLAT_TAGS),
    ]


@pytest.fixture(scope="session")
def local_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalIndex]:
    base = tmp_path_factory.mktemp("index")
    root = base / "served"
    write_simple_index(root, _make_packages(base / "dist"))
    with IndexServer(root) as server:
        yield LocalIndex(server, root)


@pytest.fixture(scope="session")
def tool_cache_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """XDG_CACHE_HOME for uv and pip: shared by the session, never the host's own caches."""
    return tmp_path_factory.mktemp("xdg-cache")


@pytest.fixture
def prewheel(tmp_path: Path, tool_cache_home: Path) -> Prewheel:
    """The CLI with a fresh download cache of its own, run from a scratch folder.

    The scratch folder keeps the repository's own pyproject.toml ([tool.prewheel])
    out of the run.
    """
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    return Prewheel(cwd, tmp_path / "prewheel-cache", tool_cache_home)


@pytest.fixture
def write_requirements(tmp_path: Path) -> Callable[..., Path]:
    def write(text: str, name: str = "requirements.in") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="session")
def good_wheelhouse(
    tmp_path_factory: pytest.TempPathFactory, local_index: LocalIndex, tool_cache_home: Path
) -> Path:
    """A verified wheelhouse of `demo-app` for cp311, built once; copy it, never change it."""
    base = tmp_path_factory.mktemp("good")
    cwd = base / "cwd"
    cwd.mkdir()
    requirements = base / "requirements.in"
    requirements.write_text("demo-app\n", encoding="utf-8")
    out = base / "wheelhouse"
    Prewheel(cwd, base / "cache", tool_cache_home).build(
        requirements, [CP311], out, local_index.index_url
    )
    return out


@pytest.fixture
def existing_wheelhouse(good_wheelhouse: Path, tmp_path: Path) -> Path:
    """A private copy of the good wheelhouse, for a test that runs prewheel over it."""
    dest = tmp_path / "wheelhouse"
    shutil.copytree(good_wheelhouse, dest)
    return dest
