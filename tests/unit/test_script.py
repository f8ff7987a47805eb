from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from prewheel.emit.script import (
    needs_powershell,
    render_install_ps1,
    render_install_script,
    render_selector,
    write_scripts,
)
from prewheel.targets import parse_target
from tests.localindex import clean_env

OTHER = parse_target(
    "cp39-musllinux_1_1_aarch64"
    if sys.version_info[:2] != (3, 9)
    else "cp310-musllinux_1_1_aarch64"
)


def test_script_is_posix_sh() -> None:
    sh = shutil.which("dash") or shutil.which("sh")
    assert sh is not None
    text = render_install_script([parse_target("cp311-manylinux_2_17_x86_64")])
    subprocess.run([sh, "-n", "/dev/stdin"], input=text, text=True, check=True)
    assert "--no-index --find-links" in text
    assert "--only-binary=:all:" in text and "--require-hashes" in text


def test_no_matching_target_exits_2_and_lists_targets(tmp_path: Path) -> None:
    script = tmp_path / "install.sh"
    script.write_text(render_install_script([OTHER]))
    env = clean_env({"PYTHON": sys.executable})
    result = subprocess.run(
        ["sh", str(script)], env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert OTHER.name in result.stderr
    assert "{}.{}".format(*sys.version_info[:2]) in result.stderr
    assert result.stderr.count("\n") == 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="host targets are Linux only")
def test_matching_target_runs_pip_from_any_directory(tmp_path: Path) -> None:
    host = parse_target("host")
    folder = tmp_path / "wh"
    folder.mkdir()
    (folder / "install.sh").write_text(render_install_script([OTHER, host]))
    (folder / f"requirements.{host.name}.txt").write_text("")
    env = clean_env({"PYTHON": sys.executable})
    result = subprocess.run(
        ["sh", os.path.relpath(folder / "install.sh", tmp_path), "--dry-run"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert f"installing target {host.name}" in result.stderr


WINDOWS = parse_target("cp312-win_amd64")
MACOS = parse_target("cp312-macosx_11_0_arm64")
LINUX = parse_target("cp312-manylinux_2_17_x86_64")


def _select(code: str) -> subprocess.CompletedProcess[str]:
    """Run the selector as install.sh does: the deploy interpreter reads it on stdin."""
    return subprocess.run(
        [sys.executable, "-"],
        input=code,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_install_ps1_runs_pip_offline_with_hashes_and_embeds_the_selector() -> None:
    targets = [WINDOWS, MACOS, LINUX]
    text = render_install_ps1(targets)

    assert "-m pip install --no-index --find-links" in text
    assert "--only-binary=:all:" in text and "--require-hashes" in text
    assert '(Join-Path $here "requirements.$target.txt")' in text
    selector = render_selector(targets, "install.ps1")
    # A PowerShell here-string: @' on its own line, the code, '@ at the start of a line.
    assert f"@'\n{selector}'@\n" in text
    assert "'@" not in selector
    assert f"({WINDOWS.name!r}, '3.12', 'win_amd64')" in selector
    assert "install.ps1: no target in this wheelhouse fits" in selector
    assert "install.sh" not in text


def test_install_ps1_is_written_only_with_a_windows_target(tmp_path: Path) -> None:
    assert needs_powershell([LINUX, WINDOWS]) and not needs_powershell([LINUX, MACOS])
    write_scripts(tmp_path, [LINUX, WINDOWS])
    assert (tmp_path / "install.ps1").read_text() == render_install_ps1([LINUX, WINDOWS])
    assert (tmp_path / "install.sh").read_text() == render_install_script([LINUX, WINDOWS])

    write_scripts(tmp_path, [LINUX, MACOS])
    assert not (tmp_path / "install.ps1").exists()
    assert (tmp_path / "install.sh").is_file()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="host targets are Linux only")
def test_selector_picks_the_host_target_by_platform_priority() -> None:
    host = parse_target("host")
    here = "cp{}{}".format(*sys.version_info[:2])
    # Also fits this interpreter, but its platform tag ranks lower than the host's own.
    older = parse_target(f"{here}-manylinux_2_17_{host.arch}")
    assert host.platform != older.platform
    targets = [OTHER, WINDOWS, MACOS, older, host, parse_target(f"{here}-win_amd64")]

    result = _select(render_selector(targets))

    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{host.name}\n"

    alone = _select(render_selector([OTHER, older]))
    assert alone.returncode == 0, alone.stderr
    assert alone.stdout.strip() == older.name


def test_selector_exits_2_and_lists_the_targets_when_none_fits() -> None:
    targets = [OTHER, WINDOWS if sys.platform != "win32" else LINUX, MACOS]

    result = _select(render_selector(targets, "install.ps1"))

    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("install.ps1: no target in this wheelhouse fits")
    assert result.stderr.count("\n") == 1
    for target in targets:
        assert target.name in result.stderr
    assert "{}.{}".format(*sys.version_info[:2]) in result.stderr
