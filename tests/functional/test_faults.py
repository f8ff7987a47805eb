"""A failing index: retried with backoff a bounded number of times, then reported per
file, never a substituted file (README, "What prewheel promises", 1, 4 and 5)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.faultserver import FaultServer
from tests.functional.helpers import CP311, Prewheel, explain, one_error_line
from tests.localindex import make_wheel, write_simple_index

pytestmark = pytest.mark.functional

LIB = "fault_lib-1.0-py3-none-any.whl"
APP = "fault_app-1.0-py3-none-any.whl"


@dataclass
class Faulty:
    server: FaultServer
    requirements: Path


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Faulty]:
    base = tmp_path_factory.mktemp("faulty")
    dist = base / "dist"
    files = [
        make_wheel(dist, "fault-app", "1.0", requires_dist=["fault-lib"]),
        make_wheel(dist, "fault-lib", "1.0"),
    ]
    write_simple_index(base / "served", files)
    requirements = base / "requirements.in"
    requirements.write_text("fault-app\n", encoding="utf-8")
    with FaultServer(base / "served") as server:
        yield Faulty(server, requirements)


@pytest.fixture
def index(faulty: Faulty, prewheel: Prewheel, tmp_path: Path) -> Iterator[Faulty]:
    """The faulty index with uv's cache warm (uv reads wheels for their metadata), and
    no fault set; each test sets its own and builds with a fresh prewheel cache."""
    faulty.server.clear()
    warm = prewheel.with_cache(tmp_path / "warm-cache")
    warm.build(faulty.requirements, [CP311], tmp_path / "warm", faulty.server.index_url)
    yield faulty
    faulty.server.clear()


def _build(
    prewheel: Prewheel, index: Faulty, out: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    return prewheel(
        "build",
        "-r",
        index.requirements,
        "-t",
        CP311,
        "-o",
        out,
        "--index-url",
        index.server.index_url,
        "--timeout",
        "1",
        *extra,
    )


@pytest.mark.parametrize("kind", ["503", "500", "reset", "truncate", "long-length", "stall"])
def test_a_passing_fault_is_retried_and_the_build_succeeds(
    prewheel: Prewheel, index: Faulty, tmp_path: Path, kind: str
) -> None:
    index.server.fail(LIB, kind, times=1, stall=3)
    before = index.server.count(LIB)
    result = _build(prewheel, index, tmp_path / "wh", "--json")
    assert result.returncode == 0, explain(result)
    assert json.loads(result.stdout)["verify"]["ok"] is True
    assert index.server.count(LIB) - before == 2, "one failed attempt, one retry"
    prewheel.ok("verify", tmp_path / "wh")


@pytest.mark.parametrize("kind", ["503", "reset", "truncate", "stall"])
def test_a_lasting_fault_is_reported_per_file_after_bounded_retries(
    prewheel: Prewheel, index: Faulty, tmp_path: Path, kind: str
) -> None:
    index.server.fail(LIB, kind, stall=3)
    before = index.server.count(LIB)
    result = _build(prewheel, index, tmp_path / "wh")
    assert result.returncode == 4, result
    error = one_error_line(result)
    assert LIB in error and "after 3 attempts" in error
    assert index.server.count(LIB) - before == 3
    assert not (tmp_path / "wh").exists(), "a failed first build leaves nothing behind"
    # The other file went on: it is in the cache, so the next run downloads only the one.
    index.server.clear()
    app_hits = index.server.count(APP)
    again = _build(prewheel, index, tmp_path / "wh", "--json")
    assert again.returncode == 0, explain(again)
    assert json.loads(again.stdout)["total"]["downloaded"] == 1
    assert index.server.count(APP) == app_hits


def test_a_substituted_file_is_an_error_not_a_warning(
    prewheel: Prewheel, index: Faulty, tmp_path: Path
) -> None:
    index.server.fail(LIB, "wrong-body")
    before_hits = index.server.count(LIB)
    out = tmp_path / "wh"
    result = _build(prewheel, index, out)
    assert result.returncode == 4
    error = one_error_line(result)
    assert LIB in error and "does not match" in error
    assert index.server.count(LIB) - before_hits == 1, "a wrong file is not retried"
    assert not out.exists()
    stored = [p for p in (prewheel.cache / "sha256").rglob("*") if p.is_file()]
    assert all(p.name != LIB and not p.name.startswith(".part-") for p in stored)
    assert len(stored) == 1, "only the good file (fault-app) reached the cache"
