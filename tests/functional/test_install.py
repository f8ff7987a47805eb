"""install.sh on the deploy side: pip alone, from the wheelhouse, into a fresh venv."""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from packaging import tags

from tests.functional.helpers import LocalIndex, Prewheel, explain
from tests.localindex import clean_env

HOST_PLATFORM = "manylinux_2_17_x86_64"
HOST = f"cp{sys.version_info[0]}{sys.version_info[1]}-{HOST_PLATFORM}"
OTHER = (
    "cp39-manylinux_2_17_x86_64"
    if sys.version_info[:2] != (3, 9)
    else "cp310-manylinux_2_17_x86_64"
)

pytestmark = [
    pytest.mark.functional,
    pytest.mark.skipif(
        not sys.platform.startswith("linux")
        or platform.machine() != "x86_64"
        or HOST_PLATFORM not in {t.platform for t in tags.sys_tags()},
        reason="install.sh is tested on x86_64 Linux with glibc 2.17 or newer",
    ),
]


@pytest.fixture(scope="module")
def venv_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv of the interpreter running the tests, with pip and nothing else."""
    venv = tmp_path_factory.mktemp("deploy") / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", venv], check=True, capture_output=True, timeout=120
    )
    return venv / "bin" / "python"


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


def test_install_sh_installs_the_wheelhouse_into_a_fresh_venv(
    prewheel: Prewheel,
    local_index: LocalIndex,
    write_requirements: Callable[..., Path],
    venv_python: Path,
    tmp_path: Path,
) -> None:
    out = tmp_path / "wheelhouse"
    prewheel.build(write_requirements("demo-app\n"), [HOST], out, local_index.index_url)

    result = _install_sh(out, venv_python, cwd=tmp_path)
    assert result.returncode == 0, explain(result)
    assert HOST in result.stderr

    imported = subprocess.run(
        [
            venv_python,
            "-c",
            "import demo_app, demo_ext, demo_lib; "
            "print(demo_app.__version__, demo_ext.__version__, demo_lib.__version__)",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert imported.returncode == 0, explain(imported)
    assert imported.stdout.split() == ["1.0", "2.0", "1.2"]
    check = subprocess.run(
        [venv_python, "-m", "pip", "check"],
        env=clean_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, explain(check)


def test_install_sh_refuses_an_interpreter_no_target_fits(
    prewheel: Prewheel,
    local_index: LocalIndex,
    write_requirements: Callable[..., Path],
    venv_python: Path,
    tmp_path: Path,
) -> None:
    out = tmp_path / "wheelhouse"
    prewheel.build(write_requirements("demo-lib\n"), [OTHER], out, local_index.index_url)

    result = _install_sh(out, venv_python, cwd=tmp_path)

    assert result.returncode == 2, explain(result)
    assert "no target in this wheelhouse fits" in result.stderr
    assert OTHER in result.stderr  # the targets that are available
    assert f"{sys.version_info[0]}.{sys.version_info[1]}" in result.stderr
    assert "installing target" not in result.stderr
