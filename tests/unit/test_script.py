from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from prewheel.emit.script import render_install_script
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
