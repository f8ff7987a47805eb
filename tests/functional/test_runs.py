"""Runs over time: pins kept until --upgrade, pyproject defaults, what a run leaves behind."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.functional.helpers import CP311, LocalIndex, Prewheel, read_manifest

pytestmark = pytest.mark.functional


def _lib_version(wheelhouse: Path) -> str:
    pins = read_manifest(wheelhouse)["targets"][CP311]["pins"]
    return next(p["version"] for p in pins if p["name"] == "demo-lib")


def test_pins_are_kept_until_upgrade(
    prewheel: Prewheel,
    local_index: LocalIndex,
    write_requirements: Callable[..., Path],
    tmp_path: Path,
) -> None:
    out = tmp_path / "wh"
    prewheel.build(write_requirements("demo-lib==0.9\n"), [CP311], out, local_index.index_url)
    assert _lib_version(out) == "0.9"
    relaxed = write_requirements("demo-lib>=0.9\n")
    prewheel.build(relaxed, [CP311], out, local_index.index_url)
    assert _lib_version(out) == "0.9", "a pin the requirements still allow must be kept"
    summary = prewheel.build(relaxed, [CP311], out, local_index.index_url, "--upgrade")
    assert _lib_version(out) == "1.2"
    assert summary["removed"] == ["demo_lib-0.9-py3-none-any.whl"]
    assert not (out / "demo_lib-0.9-py3-none-any.whl").exists()


def test_tool_prewheel_section_supplies_defaults(
    prewheel: Prewheel, local_index: LocalIndex, tmp_path: Path
) -> None:
    (prewheel.cwd / "requirements.in").write_text("demo-lib\n", encoding="utf-8")
    (prewheel.cwd / "pyproject.toml").write_text(
        "[tool.prewheel]\n"
        'requirements = "requirements.in"\n'
        f'targets = ["{CP311}"]\n'
        'output = "house"\n'
        f'index-url = "{local_index.index_url}"\n',
        encoding="utf-8",
    )
    prewheel.ok("build")
    assert (prewheel.cwd / "house" / f"requirements.{CP311}.txt").is_file()
    assert _lib_version(prewheel.cwd / "house") == "1.2"


def test_verify_install_says_which_targets_it_could_not_install(
    prewheel: Prewheel,
    local_index: LocalIndex,
    write_requirements: Callable[..., Path],
    tmp_path: Path,
) -> None:
    arm = "cp311-manylinux_2_17_aarch64"
    out = tmp_path / "wh"
    prewheel.build(write_requirements("demo-ext\n"), [arm], out, local_index.index_url)
    result = prewheel.ok("verify", out, "--install", "--json")
    data = json.loads(result.stdout)
    assert data["ok"] is True
    assert [(i["target"], i["state"]) for i in data["installs"]] == [(arm, "skipped")]
    assert "cannot run it" in data["installs"][0]["detail"]


def test_failed_first_build_leaves_no_folder_behind(
    prewheel: Prewheel,
    local_index: LocalIndex,
    write_requirements: Callable[..., Path],
    tmp_path: Path,
) -> None:
    out = tmp_path / "new-wheelhouse"
    result = prewheel(
        "build",
        "-r",
        write_requirements("demo-no-such-thing\n"),
        "-t",
        CP311,
        "-o",
        out,
        "--index-url",
        local_index.index_url,
    )
    assert result.returncode == 3
    assert not out.exists()
