"""Exact targets through the real CLI: Windows and macOS next to Linux, a target captured
from this interpreter, the pip-tools engine, and an existing lock as input (--locked)."""

from __future__ import annotations

import ensurepip
import hashlib
import json
import platform
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import uv
from packaging import tags

from prewheel import capture
from prewheel.targets import parse_target
from tests.functional.helpers import (
    CP39,
    CP311,
    EXT_ABI3,
    PLAT_TAGS,
    LocalIndex,
    Prewheel,
    explain,
    one_error_line,
    parse_requirements_txt,
    read_manifest,
    sha256_file,
)
from tests.localindex import clean_env

pytestmark = pytest.mark.functional

WriteRequirements = Callable[..., Path]
WIN = "cp312-win_amd64"
MAC = "cp312-macosx_11_0_arm64"
LINUX = "cp312-manylinux_2_17_x86_64"
THREE = (WIN, MAC, LINUX)
PLAT_WHEEL = dict(zip(THREE, (f"demo_plat-1.0-{tag}.whl" for tag in PLAT_TAGS), strict=True))

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the host target is Linux only"
)


def _index_hash(local_index: LocalIndex, filename: str) -> str:
    return sha256_file(local_index.root / "files" / filename)


def _pins(wheelhouse: Path, target: str) -> dict[str, str]:
    return {
        name: version
        for name, (version, _) in parse_requirements_txt(
            wheelhouse / f"requirements.{target}.txt"
        ).items()
    }


# --- Windows, macOS and Linux in one wheelhouse -----------------------------------------


@pytest.fixture(scope="module")
def three_platforms(
    tmp_path_factory: pytest.TempPathFactory, local_index: LocalIndex, tool_cache_home: Path
) -> tuple[Path, dict[str, Any]]:
    """One build for Windows, macOS and Linux, made once; copy it before changing it."""
    base = tmp_path_factory.mktemp("three")
    cwd = base / "cwd"
    cwd.mkdir()
    requirements = base / "requirements.in"
    requirements.write_text("demo-colors\ndemo-plat\n", encoding="utf-8")
    out = base / "wheelhouse"
    summary = Prewheel(cwd, base / "cache", tool_cache_home).build(
        requirements, THREE, out, local_index.index_url
    )
    return out, summary


def test_each_platform_is_locked_with_its_own_markers(
    three_platforms: tuple[Path, dict[str, Any]],
) -> None:
    out, summary = three_platforms

    assert [row["target"] for row in summary["targets"]] == list(THREE)
    assert summary["verify"]["ok"] is True
    assert _pins(out, WIN) == {"demo-colors": "1.0", "demo-plat": "1.0", "demo-win-only": "1.0"}
    for target in (MAC, LINUX):
        assert _pins(out, target) == {"demo-colors": "1.0", "demo-plat": "1.0"}, target
    assert sorted(read_manifest(out)["targets"]) == sorted(THREE)


def test_each_platform_gets_its_own_wheel_and_shared_files_come_once(
    three_platforms: tuple[Path, dict[str, Any]],
) -> None:
    out, summary = three_platforms
    manifest = read_manifest(out)

    for target, wheel in PLAT_WHEEL.items():
        pins = {p["name"]: p for p in manifest["targets"][target]["pins"]}
        assert pins["demo-plat"]["file"] == wheel, target
        hashes = parse_requirements_txt(out / f"requirements.{target}.txt")["demo-plat"][1]
        assert hashes == [sha256_file(out / wheel)], target
    assert sorted(p.name for p in out.glob("*.whl")) == sorted(
        [
            "demo_colors-1.0-py3-none-any.whl",
            "demo_win_only-1.0-py3-none-any.whl",
            *PLAT_WHEEL.values(),
        ]
    )
    # demo-colors serves all three targets and was fetched once.
    assert manifest["files"]["demo_colors-1.0-py3-none-any.whl"]["targets"] == sorted(THREE)
    assert summary["total"]["downloaded"] == 5


def test_verify_passes_for_every_platform(
    three_platforms: tuple[Path, dict[str, Any]], prewheel: Prewheel
) -> None:
    out, _ = three_platforms

    assert "verified 3 targets" in prewheel.ok("verify", out).stdout
    assert "verified 1 targets" in prewheel.ok("verify", out, "-t", WIN).stdout


def test_a_windows_target_gets_install_ps1_beside_install_sh(
    three_platforms: tuple[Path, dict[str, Any]],
) -> None:
    out, _ = three_platforms

    ps1 = (out / "install.ps1").read_text(encoding="utf-8")
    assert f"({WIN!r}, '3.12', 'win_amd64')" in ps1
    assert "-m pip install --no-index --find-links" in ps1
    assert "--only-binary=:all:" in ps1 and "--require-hashes" in ps1
    assert "requirements.$target.txt" in ps1
    assert "/tmp" not in ps1 and str(out) not in ps1
    install_sh = (out / "install.sh").read_text(encoding="utf-8")
    for target in THREE:
        assert repr(target) in install_sh, target


def test_a_later_build_without_the_windows_target_removes_install_ps1(
    three_platforms: tuple[Path, dict[str, Any]],
    prewheel: Prewheel,
    local_index: LocalIndex,
    write_requirements: WriteRequirements,
    tmp_path: Path,
) -> None:
    out = tmp_path / "wheelhouse"
    shutil.copytree(three_platforms[0], out)

    prewheel.build(
        write_requirements("demo-colors\ndemo-plat\n"), [MAC, LINUX], out, local_index.index_url
    )

    assert not (out / "install.ps1").exists()
    assert (out / "install.sh").is_file()
    assert not (out / f"requirements.{WIN}.txt").exists()
    assert not (out / f"pylock.{WIN}.toml").exists()
    assert not (out / PLAT_WHEEL[WIN]).exists()
    assert not (out / "demo_win_only-1.0-py3-none-any.whl").exists()
    assert sorted(read_manifest(out)["targets"]) == sorted([MAC, LINUX])
    assert "verified 2 targets" in prewheel.ok("verify", out).stdout


# --- A target captured from this interpreter -------------------------------------------


def test_target_script_prints_the_standalone_capture_script(
    prewheel: Prewheel, tmp_path: Path
) -> None:
    source = Path(capture.__file__).read_text(encoding="utf-8")
    assert prewheel.ok("target", "script").stdout == source

    written = tmp_path / "capture.py"
    prewheel.ok("target", "script", "-o", written)
    assert written.read_text(encoding="utf-8") == source


def _fresh_venv(venv: Path) -> Path:
    """A venv of this interpreter with pip alone; pip comes from the wheel that CPython
    bundles, installed by uv without compiling it (python -m venv takes 7 s here)."""
    bundled = sorted((Path(ensurepip.__file__).parent / "_bundled").glob("pip-*.whl"))
    if not bundled:
        subprocess.run(
            [sys.executable, "-m", "venv", venv], check=True, capture_output=True, timeout=120
        )
        return venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", venv],
        check=True,
        capture_output=True,
        timeout=60,
    )
    python = venv / "bin" / "python"
    subprocess.run(
        [uv.find_uv_bin(), "pip", "install", "--python", str(python), "--no-cache"]
        + ["--quiet", "--no-index", str(bundled[-1])],
        env=clean_env(),
        check=True,
        capture_output=True,
        timeout=60,
    )
    return python


@pytest.mark.skipif(
    not sys.platform.startswith("linux")
    or platform.machine() != "x86_64"
    or "manylinux_2_17_x86_64" not in {t.platform for t in tags.sys_tags()},
    reason="installing the captured target is tested on x86_64 Linux with glibc 2.17 or newer",
)
def test_a_captured_host_target_builds_and_its_install_sh_installs_into_a_venv(
    prewheel: Prewheel,
    local_index: LocalIndex,
    write_requirements: WriteRequirements,
    tmp_path: Path,
) -> None:
    target_json = tmp_path / "t.json"
    prewheel.ok("target", "capture", "-o", target_json)
    described = json.loads(target_json.read_text(encoding="utf-8"))
    name = described["name"]
    out = tmp_path / "wheelhouse"

    summary = prewheel.build(
        write_requirements("demo-app\n"), [str(target_json)], out, local_index.index_url
    )

    assert [row["target"] for row in summary["targets"]] == [name]
    assert summary["verify"]["ok"] is True
    stored = read_manifest(out)["targets"][name]["captured"]
    assert stored["tags"] == described["tags"]
    assert stored["markers"] == described["markers"]
    assert _pins(out, name) == {"demo-app": "1.0", "demo-ext": "2.0", "demo-lib": "1.2"}

    python = _fresh_venv(tmp_path / "venv")
    installed = subprocess.run(
        [shutil.which("sh") or "/bin/sh", out / "install.sh", "--no-compile"],
        cwd=tmp_path,
        env=clean_env({"PYTHON": str(python)}),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert installed.returncode == 0, explain(installed)
    assert f"installing target {name} with {python}" in installed.stderr
    check = subprocess.run(
        [python, "-c", "import demo_app, demo_ext, demo_lib; print(demo_lib.__version__)"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert check.stdout.strip() == "1.2", explain(check)


# --- The pip-tools engine ---------------------------------------------------------------


@linux_only
def test_pip_tools_engine_locks_the_host_and_keeps_its_annotated_output(
    prewheel: Prewheel,
    local_index: LocalIndex,
    write_requirements: WriteRequirements,
    tmp_path: Path,
) -> None:
    host = parse_target("host").name
    port = local_index.server.port
    index_url = f"http://user:secret@127.0.0.1:{port}/simple"
    out = tmp_path / "wheelhouse"
    requirements = write_requirements("demo-app\n")

    prewheel.ok(
        "build",
        *("-r", requirements, "-t", "host", "-o", out, "--index-url", index_url),
        *("--find-links", local_index.root / "files"),
        *("--resolver", "pip-tools"),
    )

    compiled = (out / f"pip-compile.{host}.txt").read_text(encoding="utf-8")
    assert "demo-app==1.0" in compiled and "demo-lib==1.2" in compiled
    assert "# via -r requirements.in" in compiled
    assert "# via demo-app" in compiled
    # It lands in the wheelhouse: no host path, no index address, no credentials.
    assert not [word for word in compiled.split() if word.startswith(("/", "file:"))], compiled
    for text in ("secret", "127.0.0.1", str(tmp_path), str(local_index.root)):
        assert text not in compiled, text
    assert _pins(out, host) == {"demo-app": "1.0", "demo-ext": "2.0", "demo-lib": "1.2"}
    prewheel.ok("verify", out)


def test_pip_tools_engine_refuses_a_foreign_target(
    prewheel: Prewheel,
    local_index: LocalIndex,
    write_requirements: WriteRequirements,
    tmp_path: Path,
) -> None:
    out = tmp_path / "wheelhouse"
    result = prewheel(
        "build",
        *("-r", write_requirements("demo-app\n"), "-t", WIN, "-o", out),
        *("--index-url", local_index.index_url, "--resolver", "pip-tools"),
    )

    assert result.returncode == 2, explain(result)
    error = one_error_line(result)
    assert WIN in error
    assert "--resolver pip-tools resolves only for this machine's own Python" in error
    assert "pip-compile evaluates markers for the machine it runs on" in error
    assert "use the default --resolver uv" in error
    assert not out.exists()


# --- An existing lock as input (--locked) ----------------------------------------------


def _locked_file(local_index: LocalIndex, tmp_path: Path, lib_hash: str | None = None) -> Path:
    """pip-compile style output: every pin ==, with the hashes of the files it allows."""

    def hashes(*files: str) -> str:
        return "".join(f" \\\n    --hash=sha256:{_index_hash(local_index, f)}" for f in files)

    lib = (
        f" \\\n    --hash=sha256:{lib_hash}"
        if lib_hash
        else hashes("demo_lib-0.9-py3-none-any.whl")
    )
    path = tmp_path / "requirements.txt"
    path.write_text(
        "#\n# This file is autogenerated by pip-compile with Python 3.11\n"
        "#    pip-compile --generate-hashes requirements.in\n#\n"
        f"--index-url {local_index.index_url}\n"
        "--trusted-host 127.0.0.1\n\n"
        f"demo-ext==2.0{hashes(f'demo_ext-2.0-{EXT_ABI3}.whl')}\n"
        "    # via -r requirements.in\n"
        "demo-fast==1.5"
        f"{hashes('demo_fast-1.5-py3-none-manylinux_2_17_x86_64.whl', 'demo_fast-1.5.tar.gz')}\n"
        "    # via -r requirements.in\n"
        f"demo-lib==0.9{lib}\n"
        "    # via -r requirements.in\n",
        encoding="utf-8",
    )
    return path


def test_locked_file_with_hashes_is_taken_pin_for_pin(
    prewheel: Prewheel, local_index: LocalIndex, tmp_path: Path
) -> None:
    locked = _locked_file(local_index, tmp_path)
    out = tmp_path / "wheelhouse"

    summary = prewheel.build(locked, [CP311], out, local_index.index_url, "--locked")

    assert summary["verify"]["ok"] is True
    # demo-lib 1.2 is newer, and the cp311 demo-ext wheel ranks above abi3: the file wins.
    pins = parse_requirements_txt(out / f"requirements.{CP311}.txt")
    assert {name: version for name, (version, _) in pins.items()} == {
        "demo-ext": "2.0",
        "demo-fast": "1.5",
        "demo-lib": "0.9",
    }
    assert pins["demo-ext"][1] == [_index_hash(local_index, f"demo_ext-2.0-{EXT_ABI3}.whl")]
    allowed = set(locked.read_text(encoding="utf-8").replace("--hash=sha256:", " ").split())
    assert all(h in allowed for _, (_, hs) in pins.items() for h in hs)
    prewheel.ok("verify", out)


def test_locked_file_whose_hash_matches_no_file_names_the_package(
    prewheel: Prewheel, local_index: LocalIndex, tmp_path: Path
) -> None:
    wrong = hashlib.sha256(b"a file that is not on the index").hexdigest()
    locked = _locked_file(local_index, tmp_path, lib_hash=wrong)
    out = tmp_path / "wheelhouse"

    result = prewheel(
        "build",
        *("-r", locked, "-t", CP311, "-o", out, "--index-url", local_index.index_url),
        "--locked",
    )

    assert result.returncode == 3, explain(result)
    error = one_error_line(result)
    assert "demo-lib 0.9" in error
    assert CP311 in error
    lines = locked.read_text(encoding="utf-8").splitlines()
    lib_line = next(n for n, text in enumerate(lines, start=1) if text.startswith("demo-lib=="))
    assert f"requirements.txt:{lib_line}" in error
    assert "matches a file" in error and "hashes" in error
    assert not out.exists()


def test_locked_file_with_an_unpinned_line_is_refused_naming_the_line(
    prewheel: Prewheel,
    local_index: LocalIndex,
    write_requirements: WriteRequirements,
    tmp_path: Path,
) -> None:
    locked = write_requirements("demo-app==1.0\ndemo-lib>=1\n", "requirements.txt")
    out = tmp_path / "wheelhouse"

    result = prewheel(
        "build",
        *("-r", locked, "-t", CP311, "-o", out, "--index-url", local_index.index_url),
        "--locked",
    )

    assert result.returncode == 2, explain(result)
    error = one_error_line(result)
    assert f"{locked}:2" in error
    assert "demo-lib>=1" in error and "--locked" in error
    assert not out.exists()


def test_locked_file_that_lacks_a_pin_the_target_needs_fails_or_adds_it(
    prewheel: Prewheel,
    local_index: LocalIndex,
    write_requirements: WriteRequirements,
    tmp_path: Path,
) -> None:
    # Complete for cp311; on cp39 demo-app also needs demo-backport.
    locked = write_requirements("demo-app==1.0\ndemo-ext==2.0\ndemo-lib==1.2\n", "requirements.txt")
    out = tmp_path / "wheelhouse"
    args = ("-r", locked, "-t", CP311, "-t", CP39, "-o", out, "--index-url", local_index.index_url)

    refused = prewheel("build", *args, "--locked")

    assert refused.returncode == 3, explain(refused)
    error = one_error_line(refused)
    assert "demo-backport 1.0" in error and CP39 in error
    assert "requirements.txt lacks" in error and "--allow-additions" in error
    assert not out.exists()

    added = prewheel.ok("build", *args, "--locked", "--allow-additions", "--json")

    warnings = [line for line in added.stderr.splitlines() if "warning:" in line]
    assert warnings == [
        f"prewheel: warning: {CP39}: added demo-backport 1.0, which requirements.txt lacks"
    ]
    assert _pins(out, CP39) == {
        "demo-app": "1.0",
        "demo-backport": "1.0",
        "demo-ext": "2.0",
        "demo-lib": "1.2",
    }
    assert _pins(out, CP311) == {"demo-app": "1.0", "demo-ext": "2.0", "demo-lib": "1.2"}
    assert json.loads(added.stdout)["verify"]["ok"] is True
