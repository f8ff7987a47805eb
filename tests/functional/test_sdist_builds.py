"""Pins with no wheel, built from their sdist by `prewheel build`, through the real CLI.

The sdists use an in-tree PEP 517 backend (tests/localindex.py, backend="intree"), so
building needs no setuptools and no network: only the local index on 127.0.0.1 and an
interpreter of the target's Python found on this machine.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from packaging import tags

from tests.functional.helpers import (
    CP39,
    CP311,
    PG_CONFIG_ERROR,
    LocalIndex,
    Prewheel,
    explain,
    one_error_line,
    parse_requirements_txt,
    read_manifest,
    sha256_file,
    snapshot,
)
from tests.localindex import IndexServer, clean_env, write_simple_index

pytestmark = pytest.mark.functional

WriteRequirements = Callable[..., Path]
BUILT = "demo_src-1.0-py3-none-any.whl"
SDIST = "demo_src-1.0.tar.gz"
HOST_PLATFORM = "manylinux_2_17_x86_64"
HOST = f"cp{sys.version_info[0]}{sys.version_info[1]}-{HOST_PLATFORM}"
PG_HINT = "PostgreSQL client headers"


@dataclass(frozen=True)
class Run:
    """A finished `prewheel build --json`: the wheelhouse, its summary, its progress lines."""

    out: Path
    summary: dict[str, Any]
    stderr: str
    cache: Path


def _build_args(
    requirements: Path, targets: list[str], out: Path, index_url: str
) -> list[str | Path]:
    args: list[str | Path] = ["build", "-r", requirements, "-o", out, "--index-url", index_url]
    for target in targets:
        args += ["-t", target]
    return args


def _pin(wheelhouse: Path, target: str, name: str) -> dict[str, Any]:
    pins = read_manifest(wheelhouse)["targets"][target]["pins"]
    found: dict[str, Any] = next(p for p in pins if p["name"] == name)
    return found


def _by_target(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["target"]: row for row in summary["targets"]}


@pytest.fixture(scope="module")
def built_src(
    tmp_path_factory: pytest.TempPathFactory, local_index: LocalIndex, tool_cache_home: Path
) -> Run:
    """`demo-src` (sdist only, depends on demo-lib) built for cp311 and cp39; never change it."""
    base = tmp_path_factory.mktemp("built-src")
    cwd = base / "cwd"
    cwd.mkdir()
    requirements = base / "requirements.in"
    requirements.write_text("demo-src\n", encoding="utf-8")
    out = base / "wheelhouse"
    runner = Prewheel(cwd, base / "cache", tool_cache_home)
    result = runner.ok(
        *_build_args(requirements, [CP311, CP39], out, local_index.index_url), "--json"
    )
    return Run(out, json.loads(result.stdout), result.stderr, runner.cache)


@pytest.fixture
def src_wheelhouse(built_src: Run, tmp_path: Path) -> Path:
    """A private copy of the built demo-src wheelhouse."""
    dest = tmp_path / "wheelhouse"
    shutil.copytree(built_src.out, dest)
    return dest


def test_sdist_only_pin_is_built_once_and_pinned_by_its_own_hash(
    built_src: Run, local_index: LocalIndex, prewheel: Prewheel
) -> None:
    out = built_src.out
    assert built_src.summary["failures"] == []
    assert built_src.summary["verify"]["ok"] is True
    rows = _by_target(built_src.summary)
    assert rows[CP311]["built"] == 1
    assert rows[CP39]["built"] == 1
    assert built_src.summary["total"]["built"] == 1, "one pure wheel serves both targets"
    assert sorted(p.name for p in out.glob("*.whl")) == [
        "demo_lib-1.2-py3-none-any.whl",
        BUILT,
    ]
    # A pure wheel serves every target, so it is built once, with one interpreter.
    assert built_src.stderr.count("building demo-src 1.0 with CPython") == 1, built_src.stderr
    with zipfile.ZipFile(out / BUILT) as wheel:
        metadata = wheel.read("demo_src-1.0.dist-info/METADATA").decode()
        assert wheel.testzip() is None
    assert "Name: demo-src" in metadata and "Requires-Dist: demo-lib>=1" in metadata

    on_disk = sha256_file(out / BUILT)
    sdist_sha = sha256_file(local_index.root / "files" / SDIST)
    assert on_disk != sdist_sha
    for target in (CP311, CP39):
        pins = parse_requirements_txt(out / f"requirements.{target}.txt")
        assert pins["demo-src"] == ("1.0", [on_disk]), target
        lock = tomllib.loads((out / f"pylock.{target}.toml").read_text(encoding="utf-8"))
        (package,) = [p for p in lock["packages"] if p["name"] == "demo-src"]
        assert [w["hashes"]["sha256"] for w in package["wheels"]] == [on_disk]

        pin = _pin(out, target, "demo-src")
        assert (pin["file"], pin["sha256"], pin["source"]) == (BUILT, on_disk, "built")
        record = pin["build"]
        assert record["sdist"] == SDIST
        assert record["sdist_sha256"] == sdist_sha
        assert record["python"].startswith("3.11."), record
        assert record["backend"] == "intree_backend"
        assert record["build_requires"] == []
        assert record["repaired"] is False
        assert _pin(out, target, "demo-lib")["source"] == "index"
    assert read_manifest(out)["files"][BUILT]["targets"] == sorted([CP311, CP39])

    verified = prewheel.ok("verify", out)
    assert "verified 2 targets" in verified.stdout


def test_second_build_builds_nothing_and_downloads_nothing(
    built_src: Run,
    src_wheelhouse: Path,
    prewheel: Prewheel,
    local_index: LocalIndex,
    write_requirements: WriteRequirements,
) -> None:
    before = snapshot(src_wheelhouse)
    mark = len(local_index.server.recorded())

    # The same build cache as the first build: the built wheel is taken from it.
    summary = prewheel.with_cache(built_src.cache).build(
        write_requirements("demo-src\n"), [CP311, CP39], src_wheelhouse, local_index.index_url
    )

    assert summary["failures"] == []
    assert summary["total"]["built"] == 0
    assert [row["built"] for row in summary["targets"]] == [0, 0]
    assert summary["total"]["downloaded"] == 0
    assert local_index.file_requests(mark) == []
    assert snapshot(src_wheelhouse) == before


def _install_sh(wheelhouse: Path, python: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`sh wheelhouse/install.sh` as a deploy step runs it: pip only, no host pip config."""
    return subprocess.run(
        [shutil.which("sh") or "/bin/sh", wheelhouse / "install.sh", "--no-compile"],
        cwd=cwd,
        env=clean_env({"PYTHON": str(python)}),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.mark.skipif(
    not sys.platform.startswith("linux")
    or platform.machine() != "x86_64"
    or HOST_PLATFORM not in {t.platform for t in tags.sys_tags()},
    reason="install.sh is tested on x86_64 Linux with glibc 2.17 or newer",
)
def test_built_wheel_installs_with_require_hashes_and_a_changed_byte_fails(
    built_src: Run,
    prewheel: Prewheel,
    local_index: LocalIndex,
    write_requirements: WriteRequirements,
    tmp_path: Path,
) -> None:
    if HOST in (CP311, CP39):
        out = tmp_path / "wheelhouse"
        shutil.copytree(built_src.out, out)
    else:
        out = tmp_path / "host-wheelhouse"
        prewheel.build(write_requirements("demo-src\n"), [HOST], out, local_index.index_url)
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", venv], check=True, capture_output=True, timeout=120
    )
    python = venv / "bin" / "python"

    # One changed byte: prewheel verify names the file, pip refuses it by its hash.
    wheel = out / BUILT
    good = wheel.read_bytes()
    damaged = bytearray(good)
    damaged[len(damaged) // 2] ^= 0xFF
    wheel.write_bytes(bytes(damaged))

    checked = prewheel("verify", out)
    assert checked.returncode == 5, explain(checked)
    assert "Traceback" not in checked.stderr
    last = checked.stderr.splitlines()[-1]
    assert last.startswith("prewheel: error:") and BUILT in last, explain(checked)
    refused = _install_sh(out, python, cwd=tmp_path)
    assert refused.returncode != 0, explain(refused)
    assert "DO NOT MATCH THE HASHES" in refused.stderr, explain(refused)
    assert "demo-src" in refused.stderr or BUILT in refused.stderr, explain(refused)

    wheel.write_bytes(good)
    prewheel.ok("verify", out)
    installed = _install_sh(out, python, cwd=tmp_path)
    assert installed.returncode == 0, explain(installed)
    assert HOST in installed.stderr
    imported = subprocess.run(
        [
            python,
            "-c",
            "import demo_src, demo_lib; print(demo_src.__version__, demo_lib.__version__)",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert imported.returncode == 0, explain(imported)
    assert imported.stdout.split() == ["1.0", "1.2"]
    pip_check = subprocess.run(
        [python, "-m", "pip", "check"], env=clean_env(), capture_output=True, text=True, check=False
    )
    assert pip_check.returncode == 0, explain(pip_check)


def test_no_build_names_the_pin_and_leaves_the_wheelhouse(
    prewheel: Prewheel,
    local_index: LocalIndex,
    write_requirements: WriteRequirements,
    src_wheelhouse: Path,
) -> None:
    before = snapshot(src_wheelhouse)

    result = prewheel(
        *_build_args(
            write_requirements("demo-src\n"), [CP311], src_wheelhouse, local_index.index_url
        ),
        "--no-build",
    )

    assert result.returncode == 6, explain(result)
    error = one_error_line(result)
    assert "demo-src 1.0" in error and "--no-build" in error and CP311 in error
    assert "building demo-src" not in result.stderr
    assert not (prewheel.cache / "built").exists()
    assert snapshot(src_wheelhouse) == before
    prewheel.ok("verify", src_wheelhouse)


def _assert_pg_failure(stdout: str, target: str) -> None:
    lines = stdout.splitlines()
    failed = [line for line in lines if line.startswith("FAILED ")]
    assert len(failed) == 1, stdout
    assert failed[0].startswith(f"FAILED demo-broken 1.0 for {target}: "), stdout
    assert PG_HINT in failed[0] and "pg_config" in failed[0], stdout
    # The backend's last lines follow the summary line.
    assert f"    | {PG_CONFIG_ERROR}" in lines[lines.index(failed[0]) + 1 :], stdout


def test_failed_build_is_reported_and_keeps_the_previous_wheelhouse(
    prewheel: Prewheel,
    local_index: LocalIndex,
    write_requirements: WriteRequirements,
    existing_wheelhouse: Path,
) -> None:
    before = snapshot(existing_wheelhouse)
    manifest = read_manifest(existing_wheelhouse)
    args = _build_args(
        write_requirements("demo-broken\ndemo-lib\n"),
        [CP311],
        existing_wheelhouse,
        local_index.index_url,
    )

    shown = prewheel(*args)
    assert shown.returncode == 6, explain(shown)
    _assert_pg_failure(shown.stdout, CP311)
    error = one_error_line(shown)
    assert "demo-broken 1.0" in error and CP311 in error
    assert snapshot(existing_wheelhouse) == before

    as_json = prewheel(*args, "--json")
    assert as_json.returncode == 6, explain(as_json)
    summary = json.loads(as_json.stdout)
    (failure,) = summary["failures"]
    assert (failure["name"], failure["version"], failure["target"]) == (
        "demo-broken",
        "1.0",
        CP311,
    )
    assert PG_HINT in failure["reason"]
    assert failure["output"].splitlines()[-1] == PG_CONFIG_ERROR
    assert summary["targets"] == []

    assert snapshot(existing_wheelhouse) == before
    assert read_manifest(existing_wheelhouse) == manifest
    prewheel.ok("verify", existing_wheelhouse)


def test_failed_build_for_one_target_lets_the_other_land(
    prewheel: Prewheel,
    local_index: LocalIndex,
    write_requirements: WriteRequirements,
    tmp_path: Path,
) -> None:
    out = tmp_path / "wheelhouse"
    requirements = write_requirements('demo-broken; python_version < "3.10"\ndemo-lib\n')

    result = prewheel(*_build_args(requirements, [CP39, CP311], out, local_index.index_url))

    assert result.returncode == 6, explain(result)
    _assert_pg_failure(result.stdout, CP39)
    assert f"for {CP311}" not in result.stdout
    manifest = read_manifest(out)
    assert sorted(manifest["targets"]) == [CP311]
    assert [p["name"] for p in manifest["targets"][CP311]["pins"]] == ["demo-lib"]
    assert not (out / f"requirements.{CP39}.txt").exists()
    assert sorted(p.name for p in out.glob("*.whl")) == ["demo_lib-1.2-py3-none-any.whl"]
    prewheel.ok("verify", out, "-t", CP311)
    prewheel.ok("verify", out)


def test_failed_target_keeps_its_built_wheel_while_the_other_target_moves_on(
    prewheel: Prewheel,
    local_index: LocalIndex,
    write_requirements: WriteRequirements,
    src_wheelhouse: Path,
) -> None:
    before = snapshot(src_wheelhouse)
    old_cp39 = read_manifest(src_wheelhouse)["targets"][CP39]
    requirements = write_requirements('demo-broken; python_version < "3.10"\ndemo-lib\n')

    result = prewheel(
        *_build_args(requirements, [CP39, CP311], src_wheelhouse, local_index.index_url)
    )

    assert result.returncode == 6, explain(result)
    _assert_pg_failure(result.stdout, CP39)
    after = snapshot(src_wheelhouse)
    for name in (f"requirements.{CP39}.txt", f"pylock.{CP39}.toml", BUILT):
        assert after[name] == before[name], f"{name} changed for the failed target"
    manifest = read_manifest(src_wheelhouse)
    kept = manifest["targets"][CP39]
    assert kept["pins"] == old_cp39["pins"]  # with its build record
    assert (kept["python"], kept["platform"]) == (old_cp39["python"], old_cp39["platform"])
    # Its requirements are still the ones its pins were resolved from.
    assert kept.get("requirements", manifest["requirements"]) == ["demo-src"]
    assert [p["name"] for p in manifest["targets"][CP311]["pins"]] == ["demo-lib"]
    assert manifest["files"][BUILT]["targets"] == [CP39]
    assert "demo-src" not in parse_requirements_txt(src_wheelhouse / f"requirements.{CP311}.txt")
    prewheel.ok("verify", src_wheelhouse)


def test_build_policy_newest_builds_the_newest_sdist(
    prewheel: Prewheel,
    local_index: LocalIndex,
    write_requirements: WriteRequirements,
    tmp_path: Path,
) -> None:
    requirements = write_requirements("demo-fresh\n")
    first = tmp_path / "wheel-first"
    newest = tmp_path / "newest"

    default = prewheel.build(requirements, [CP311], first, local_index.index_url)
    assert default["total"]["built"] == 0
    assert "demo-fresh" in default["targets"][0]["backed_off"]
    old = _pin(first, CP311, "demo-fresh")
    assert (old["version"], old["file"], old["source"]) == (
        "1.0",
        "demo_fresh-1.0-py3-none-any.whl",
        "index",
    )

    summary = prewheel.build(
        requirements, [CP311], newest, local_index.index_url, "--build-policy", "newest"
    )
    assert summary["total"]["built"] == 1
    new = _pin(newest, CP311, "demo-fresh")
    assert (new["version"], new["file"], new["source"]) == (
        "2.0",
        "demo_fresh-2.0-py3-none-any.whl",
        "built",
    )
    assert new["build"]["sdist"] == "demo_fresh-2.0.tar.gz"
    assert new["sha256"] == sha256_file(newest / new["file"])
    pins = parse_requirements_txt(newest / f"requirements.{CP311}.txt")
    assert pins["demo-fresh"] == ("2.0", [new["sha256"]])
    prewheel.ok("verify", newest)


@pytest.fixture
def own_index(local_index: LocalIndex, tmp_path: Path) -> Iterator[LocalIndex]:
    """An index of demo-src and demo-lib for one test only, so it may lose files."""
    root = tmp_path / "own-index"
    files = local_index.root / "files"
    write_simple_index(root, [files / SDIST, files / "demo_lib-1.2-py3-none-any.whl"])
    with IndexServer(root) as server:
        yield LocalIndex(server, root)


def _keep_from_build_cache(
    prewheel: Prewheel, requirements: Path, index: LocalIndex, tmp_path: Path
) -> Path:
    """Another wheelhouse, whose wheel comes from the build cache: it keeps the sdist too."""
    other = tmp_path / "other-wheelhouse"
    summary = prewheel.build(requirements, [CP311], other, index.index_url, "--keep-build-deps")
    assert summary["total"]["built"] == 0
    return other


def test_keep_build_deps_lets_a_fresh_cache_rebuild_without_the_index_sdist(
    prewheel: Prewheel,
    own_index: LocalIndex,
    write_requirements: WriteRequirements,
    tmp_path: Path,
) -> None:
    out = tmp_path / "wheelhouse"
    requirements = write_requirements("demo-src\n")
    first = prewheel.build(requirements, [CP311], out, own_index.index_url, "--keep-build-deps")
    assert first["total"]["built"] == 1
    # The in-tree backend needs no requirements: only the sdist is kept.
    served = own_index.root / "files" / SDIST
    for built in (out, _keep_from_build_cache(prewheel, requirements, own_index, tmp_path)):
        kept = built / ".build"
        assert sorted(p.name for p in kept.iterdir()) == [SDIST], built
        assert (kept / SDIST).read_bytes() == served.read_bytes()
    assert _pin(out, CP311, "demo-src")["build"]["sdist_sha256"] == sha256_file(served)
    before = snapshot(out)
    wheel_sha = sha256_file(out / BUILT)

    # The index loses the sdist; a fresh build cache has no built wheel and no sdist.
    assert f"/files/{SDIST}" in own_index.file_requests()  # the server records such requests
    served.unlink()
    mark = len(own_index.server.recorded())
    again = prewheel.with_cache(tmp_path / "fresh-cache").build(
        requirements, [CP311], out, own_index.index_url
    )

    assert again["failures"] == []
    assert again["total"]["built"] == 1, "the fresh cache has no built wheel: it must rebuild"
    assert f"/files/{SDIST}" not in own_index.file_requests(mark)
    # SOURCE_DATE_EPOCH comes from the sdist, so the rebuild gives the same bytes.
    assert sha256_file(out / BUILT) == wheel_sha
    assert snapshot(out) == before
    prewheel.ok("verify", out)


def test_a_damaged_kept_sdist_is_passed_over_for_the_index(
    prewheel: Prewheel,
    own_index: LocalIndex,
    write_requirements: WriteRequirements,
    tmp_path: Path,
) -> None:
    out = tmp_path / "wheelhouse"
    requirements = write_requirements("demo-src\n")
    prewheel.build(requirements, [CP311], out, own_index.index_url, "--keep-build-deps")
    wheel_sha = sha256_file(out / BUILT)
    (out / ".build" / SDIST).write_bytes(b"not the sdist")

    rebuilt = prewheel.with_cache(tmp_path / "fresh-cache").ok(
        *_build_args(requirements, [CP311], out, own_index.index_url), "--json"
    )

    summary = json.loads(rebuilt.stdout)
    assert summary["failures"] == []
    assert summary["total"]["built"] == 1
    assert f"the kept {SDIST}" in rebuilt.stderr and "downloading it again" in rebuilt.stderr
    assert sha256_file(out / BUILT) == wheel_sha
    prewheel.ok("verify", out)
