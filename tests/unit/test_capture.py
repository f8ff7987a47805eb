"""Captured targets: the capture script, its JSON, and the Target made from it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest
from packaging.tags import parse_tag, sys_tags

from prewheel import capture, pipeline
from prewheel.errors import TargetError
from prewheel.targets import MARKER_KEYS, captured_target, parse_target
from prewheel.wheelhouse import Manifest, PinEntry, TargetEntry, write_target
from tests.localindex import clean_env

SCRIPT = Path(capture.__file__)


def _run_script(python: str | Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(python), *(str(a) for a in args)],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _pyenv_roots() -> list[Path]:
    roots: list[Path] = []
    pyenv = shutil.which("pyenv")
    if pyenv:
        found = subprocess.run(
            [pyenv, "root"], capture_output=True, text=True, timeout=30, check=False
        )
        if found.returncode == 0 and found.stdout.strip():
            roots.append(Path(found.stdout.strip()))
    roots.append(Path.home() / ".pyenv")
    return roots


def _other_python() -> tuple[Path, tuple[int, int]]:
    """A pyenv CPython 3 that is not the one running the tests, 3.9 if there is one."""
    here = sys.version_info[:2]
    candidates: list[tuple[Path, tuple[int, int]]] = []
    for root in _pyenv_roots():
        for python in sorted((root / "versions").glob("3.*/bin/python3")):
            match = re.match(r"^3\.(\d+)\.", python.parent.parent.name)
            if match is None or not python.is_file():
                continue
            version = (3, int(match.group(1)))
            if version != here and version >= (3, 6):
                candidates.append((python, version))
    if not candidates:
        pytest.skip("no pyenv CPython other than the running one")
    return min(candidates, key=lambda c: (c[1] != (3, 9), c[1]))


def _valid() -> dict[str, Any]:
    """A well-formed description (of a Windows machine), for the rejection cases."""
    return {
        "prewheel_target": 1,
        "name": "cp312-win_amd64",
        "python": "3.12.4",
        "markers": {
            "implementation_name": "cpython",
            "implementation_version": "3.12.4",
            "os_name": "nt",
            "platform_machine": "AMD64",
            "platform_python_implementation": "CPython",
            "platform_release": "10",
            "platform_system": "Windows",
            "platform_version": "10.0.19045",
            "python_full_version": "3.12.4",
            "python_version": "3.12",
            "sys_platform": "win32",
        },
        "tags": ["cp312-cp312-win_amd64", "cp312-abi3-win_amd64", "py3-none-any"],
        "source": "pip",
    }


def test_capture_of_this_interpreter_is_a_target_with_exactly_its_tags_and_markers() -> None:
    data = capture.capture()
    target = captured_target(data)

    assert [str(t) for t in target.tags()] == data["tags"]
    assert target.markers() == data["markers"]
    platforms = [next(iter(parse_tag(t))).platform for t in data["tags"]]
    portable = [p for p in platforms if not p.startswith("linux_")]
    python = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    assert data["name"] == f"{python}-{(portable or platforms)[0]}"
    assert target.name == data["name"]
    assert target.python == sys.version_info[:2]
    assert target.python_full_version == data["python"]
    assert data["source"] in ("packaging", "pip")
    # It survives a trip through a file, as `-t target.json` reads it.
    assert captured_target(json.loads(json.dumps(data))) == target


def test_standalone_script_run_by_another_interpreter_writes_the_same_keys(
    tmp_path: Path,
) -> None:
    python, version = _other_python()
    out = tmp_path / "target.json"

    result = _run_script(python, SCRIPT, "-o", out)

    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert f"wrote {out}" in result.stderr
    data = json.loads(out.read_text(encoding="utf-8"))
    here = capture.capture()
    assert set(data) == set(here)
    assert set(data["markers"]) == set(here["markers"]) == set(MARKER_KEYS)
    assert data["markers"]["python_version"] == "{}.{}".format(*version)
    target = captured_target(data, str(out))
    assert target.python == version
    assert [str(t) for t in target.tags()] == data["tags"]
    assert target.name.startswith("cp{}{}-".format(*version))


def test_standalone_script_prints_to_stdout_and_refuses_other_arguments() -> None:
    printed = _run_script(sys.executable, SCRIPT)
    assert printed.returncode == 0, printed.stderr
    assert set(json.loads(printed.stdout)) == set(capture.capture())

    wrong = _run_script(sys.executable, SCRIPT, "--frobnicate")
    assert wrong.returncode == 2
    assert wrong.stdout == ""
    assert "usage:" in wrong.stderr


def test_without_packaging_or_pip_the_script_falls_back_to_the_standard_library() -> None:
    # -I -S: no site-packages, so neither packaging nor pip can be imported.
    result = _run_script(sys.executable, "-I", "-S", SCRIPT)

    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["source"].startswith("standard library")
    python = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    assert data["tags"][0].startswith(f"{python}-{python}-")
    assert f"{python}-none-any" in data["tags"] and "py3-none-any" in data["tags"]
    assert set(data["markers"]) == set(MARKER_KEYS)
    # Without pip, the script works out the same tags as packaging does here
    # (on glibc Linux, every manylinux level from the C library's own version).
    assert set(data["tags"]) == {str(t) for t in sys_tags()}
    target = captured_target(data, "target file t.json")
    assert data["name"] == target.name and not target.name.split("-", 1)[1].startswith("linux_")


@pytest.mark.parametrize(
    ("sysconfig_platform", "platform", "system"),
    [
        ("macosx-11.0-arm64", "macosx_11_0_arm64", "macos"),
        ("win-amd64", "win_amd64", "windows"),
    ],
)
def test_fallback_tags_of_macos_and_windows_make_a_usable_target(
    monkeypatch: pytest.MonkeyPatch, sysconfig_platform: str, platform: str, system: str
) -> None:
    monkeypatch.setattr(sysconfig, "get_platform", lambda: sysconfig_platform)
    tags = capture._fallback_tags()
    data = {**capture.capture(), "tags": tags, "source": "standard library only", "name": None}

    target = captured_target(data)

    python = f"cp{sys.version_info[0]}{sys.version_info[1]}"
    assert tags[0] == f"{python}-{python}-{platform}"
    assert target.system == system
    assert target.platform == platform
    assert target.name == f"{python}-{platform}"
    assert [str(t) for t in target.tags()] == tags


def _without(key: str) -> dict[str, Any]:
    data = _valid()
    del data[key]
    return data


def _with(**changes: Any) -> dict[str, Any]:
    return {**_valid(), **changes}


def _with_markers(**changes: Any) -> dict[str, Any]:
    data = _valid()
    data["markers"] = {**data["markers"], **changes}
    return data


def _without_marker(key: str) -> dict[str, Any]:
    data = _valid()
    del data["markers"][key]
    return data


@pytest.mark.parametrize(
    ("data", "must_say"),
    [
        pytest.param(_with(colour="blue", arch="x"), ("arch, colour",), id="unknown-keys"),
        pytest.param(_without("prewheel_target"), ('"prewheel_target": 1',), id="not-a-target"),
        pytest.param(_with(prewheel_target=2), ('"prewheel_target": 1',), id="newer-format"),
        pytest.param(_without_marker("sys_platform"), ("sys_platform",), id="missing-marker"),
        pytest.param(_with_markers(colour="blue"), ("markers",), id="extra-marker"),
        pytest.param(_without("markers"), ("markers",), id="no-markers"),
        pytest.param(_with_markers(implementation_name="pypy"), ("CPython", "pypy"), id="pypy"),
        pytest.param(_with(tags=[]), ("tags",), id="empty-tags"),
        pytest.param(_without("tags"), ("tags",), id="no-tags"),
        pytest.param(_with(tags="cp312-cp312-win_amd64"), ("tags",), id="tags-not-a-list"),
        pytest.param(
            _with(tags=["cp312-cp312-win_amd64.win_arm64"]), ("compressed",), id="compressed-tag"
        ),
        pytest.param(_with(tags=["cp312-cp312"]), ("bad tag",), id="malformed-tag"),
        pytest.param(_with(tags=["cp312-cp312-sunos_5_11"]), ("sunos",), id="unknown-platform"),
        pytest.param(_with_markers(python_version="3"), ("python_version",), id="bad-python"),
        pytest.param(_with(name="my target"), ("my target",), id="space-in-name"),
        pytest.param(_with(name="../escape"), ("../escape",), id="slash-in-name"),
        pytest.param(_with(name="t.json"), ("t.json",), id="dot-in-name"),
    ],
)
def test_captured_target_rejects_a_bad_description_in_one_line(
    data: dict[str, Any], must_say: tuple[str, ...]
) -> None:
    with pytest.raises(TargetError) as info:
        captured_target(data, "target file deploy.json")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("target file deploy.json: ")
    for text in must_say:
        assert text in message


def test_a_valid_description_of_windows_is_a_windows_target() -> None:
    target = captured_target(_valid())
    assert target.system == "windows"
    assert target.name == "cp312-win_amd64"
    assert target.python_full_version == "3.12.4"
    assert target.markers()["platform_version"] == "10.0.19045"
    assert target.uv_platform == "x86_64-pc-windows-msvc"
    # Equal to the named target in everything but the captured description.
    assert target != parse_target("cp312-win_amd64")
    assert target.platform == parse_target("cp312-win_amd64").platform


def test_load_captured_reads_a_file_and_explains_a_missing_or_broken_one(tmp_path: Path) -> None:
    good = tmp_path / "deploy.json"
    good.write_text(json.dumps(_valid()), encoding="utf-8")
    assert parse_target(str(good)) == captured_target(_valid())

    with pytest.raises(TargetError, match="not found; write one with `prewheel target capture`"):
        parse_target(str(tmp_path / "absent.json"))
    broken = tmp_path / "broken.json"
    broken.write_text("{", encoding="utf-8")
    with pytest.raises(TargetError, match="is not JSON"):
        parse_target(str(broken))


def test_a_captured_target_round_trips_through_the_manifest() -> None:
    target = captured_target(capture.capture())
    pin = PinEntry("demo-lib", "1.2", "demo_lib-1.2-py3-none-any.whl", "a" * 64, 10)
    manifest = Manifest(("demo-lib",), (TargetEntry(target, (pin,), ("demo-lib",)),))

    stored = json.loads(json.dumps(manifest.to_dict()))
    body = stored["targets"][target.name]
    assert body["captured"] == target.capture_dict()
    assert body["captured"]["tags"] == [str(t) for t in target.tags()]

    again = Manifest.from_dict(stored)
    [entry] = again.targets
    assert entry.target == target
    assert entry.target.tags() == target.tags()
    assert entry.target.markers() == target.markers()
    assert entry.pins == (pin,)


def test_a_named_target_stores_no_captured_description() -> None:
    target = parse_target("cp312-win_amd64")
    body = TargetEntry(target, ()).to_dict()
    assert "captured" not in body
    assert Manifest.from_dict(Manifest((), (TargetEntry(target, ()),)).to_dict()).targets[
        0
    ].target == (target)


def test_a_captured_targets_lock_keeps_its_description(tmp_path: Path) -> None:
    target = captured_target(_valid() | {"name": "deploy-box"})
    pin = PinEntry("demo-lib", "1.2", "demo_lib-1.2-py3-none-any.whl", "a" * 64, 10)
    write_target(tmp_path, TargetEntry(target, (pin,), ("demo-lib",)))

    assert (tmp_path / "pylock.deploy-box.toml").is_file()
    assert pipeline._locked_targets(tmp_path) == [target]
