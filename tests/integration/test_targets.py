"""Exact targets (issue 4, "Done when" 1-5): many targets in one run, foreign markers,
captured targets, the pip-tools engine and an existing lock as input.

Each wheelhouse is built once per module and shared by the tests that read it; installs
run with the network cut and no compiler on PATH, through the wheelhouse's install.sh,
into fresh venvs of pyenv's interpreters.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from packaging.tags import Tag, parse_tag
from packaging.utils import canonicalize_name, parse_wheel_filename

from prewheel.targets import Target, host_target, parse_target
from tests.localindex import clean_env

from .conftest import (
    PrewheelRunner,
    Run,
    Venv,
    VenvFactory,
    corpus_requirements,
    make_venv,
    require_runs_here,
)

pytestmark = pytest.mark.integration

# 1. prefect-client: three glibc x86_64 Pythons, aarch64 and musl, in one run.
GLIBC = {
    "cp39-manylinux_2_17_x86_64": "3.9",
    "cp311-manylinux_2_17_x86_64": "3.11",
    "cp313-manylinux_2_17_x86_64": "3.13",
}
ARM = "cp312-manylinux_2_28_aarch64"
MUSL = "cp312-musllinux_1_2_x86_64"
PREFECT_TARGETS = (*GLIBC, ARM, MUSL)
# Packages of the client requirements (prefect itself is not in them); python_socks and
# h2 come from extras, ujson/orjson/pydantic_core/pendulum are compiled.
PREFECT_IMPORTS = (
    "import pydantic, pydantic_core, httpx, h2, orjson, pendulum, ujson, websockets, "
    "yaml, python_socks, ruamel.yaml, jsonschema, opentelemetry"
)
# The corpus asks for importlib_metadata only below Python 3.10.
CP39_ONLY = ("importlib-metadata", "zipp")

# 2. Markers of foreign platforms.
WIN312 = "cp312-win_amd64"
LINUX312 = "cp312-manylinux_2_17_x86_64"
ARM312 = "cp312-manylinux_2_28_aarch64"
MAC312 = "cp312-macosx_11_0_arm64"
WIN39 = "cp39-win_amd64"
MAC39 = "cp39-macosx_11_0_arm64"
BACKPORTS = ("tomli", "typing-extensions")

# 4. and 5.
CP39 = "cp39-manylinux_2_17_x86_64"
CP311 = "cp311-manylinux_2_17_x86_64"
FOREIGN_TO_PIP_TOOLS = (CP39, "cp311-win_amd64", "cp311-manylinux_2_17_aarch64")
PIP_TOOLS_REFUSAL = "pip-compile evaluates markers for the machine it runs on"
# black 24.1.1 pinned fully for Python 3.11+, so without its backports for 3.9.
BLACK_WITHOUT_BACKPORTS = {
    "black": "24.1.1",
    "click": "8.1.7",
    "mypy-extensions": "1.0.0",
    "packaging": "24.0",
    "pathspec": "0.12.1",
    "platformdirs": "4.2.0",
}


@dataclass(frozen=True)
class Built:
    """A `prewheel build --json` run and the wheelhouse it left."""

    folder: Path
    run: Run

    @property
    def summary(self) -> dict[str, Any]:
        data: dict[str, Any] = self.run.json()
        return data

    def manifest(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.folder / "manifest.json").read_text())
        return data

    def pins(self, target: str) -> dict[str, dict[str, Any]]:
        """name -> the manifest's pin record for `target`."""
        return {canonicalize_name(p["name"]): p for p in self.manifest()["targets"][target]["pins"]}

    def locked(self, target: str) -> dict[str, tuple[str, frozenset[str]]]:
        return _pinned(self.folder / f"requirements.{target}.txt")


def _build(
    prewheel: PrewheelRunner,
    folder: Path,
    requirements: Path,
    *targets: str,
    extra: tuple[str, ...] = (),
) -> Built:
    args: list[str | Path] = ["build", "-r", requirements, "-o", folder, "--json", *extra]
    for target in targets:
        args += ["-t", target]
    return Built(folder, prewheel(*args))


def _write_requirements(folder: Path, *lines: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "requirements.in"
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def _pinned(path: Path) -> dict[str, tuple[str, frozenset[str]]]:
    """name -> (version, sha256 hashes) of a `name==version --hash=...` file, as pip reads it."""
    out: dict[str, tuple[str, frozenset[str]]] = {}
    for line in path.read_text().replace("\\\n", " ").splitlines():
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        name, sep, version = words[0].partition("==")
        assert sep, f"{path.name}: {line.strip()!r} is not pinned with =="
        hashes = frozenset(
            w.removeprefix("--hash=sha256:") for w in words[1:] if w.startswith("--hash=sha256:")
        )
        out[canonicalize_name(name.split("[")[0])] = (version, hashes)
    return out


def _versions(pins: dict[str, tuple[str, frozenset[str]]]) -> dict[str, str]:
    return {name: version for name, (version, _) in pins.items()}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _platform_fits(platform: str, target: Target) -> bool:
    """A wheel's platform tag belongs to the target's OS, libc and architecture."""
    if platform == "any":
        return True
    if target.system == "windows":
        return platform == target.arch
    if target.system == "macos":
        return platform.startswith("macosx_") and platform.endswith(
            (f"_{target.arch}", "_universal2")
        )
    family = "manylinux" if target.libc == "glibc" else "musllinux"
    return platform.startswith(family) and platform.endswith(f"_{target.arch}")


def _assert_fits(built: Built, target: Target, tags: set[Tag] | None = None) -> list[str]:
    """Every pin of `target` has its wheel in the folder, the wheel carries a tag the target
    accepts and no platform of another OS, libc or architecture, and its hash is the one
    in the manifest and in requirements.<target>.txt. Returns the binary wheels."""
    accepted = tags if tags is not None else set(target.tags())
    locked = built.locked(target.name)
    pins = built.pins(target.name)
    assert set(pins) == set(locked), f"{target.name}: manifest and lock name different pins"
    binary: list[str] = []
    for name, pin in pins.items():
        wheel = built.folder / pin["file"]
        assert wheel.is_file(), f"{target.name}: {pin['file']} is missing"
        wheel_tags = parse_wheel_filename(wheel.name)[3]
        assert wheel_tags & accepted, f"{wheel.name} does not install on {target.name}"
        platforms = {t.platform for t in wheel_tags}
        wrong = sorted(p for p in platforms if not _platform_fits(p, target))
        assert not wrong, f"{wheel.name} carries {wrong}, foreign to {target.name}"
        digest = _sha256(wheel)
        assert digest == pin["sha256"], f"{wheel.name}: damaged"
        assert locked[name] == (pin["version"], frozenset({digest})), (name, locked[name])
        if platforms != {"any"}:
            binary.append(name)
    return binary


def _error_line(run: Run) -> str:
    """The one `prewheel: error:` line of a failed run (and it is the last line)."""
    lines = run.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("prewheel: error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], run.explain()
    return errors[0]


# 1. prefect-client for five targets, one run, one install.sh for three Pythons.


@pytest.fixture(scope="module")
def prefect(prewheel: PrewheelRunner, tmp_path_factory: pytest.TempPathFactory) -> Built:
    requirements = corpus_requirements("prefect-client")
    folder = tmp_path_factory.mktemp("prefect-client") / "wheelhouse"
    return _build(prewheel, folder, requirements, *PREFECT_TARGETS)


def test_prefect_client_builds_one_wheelhouse_for_five_targets(
    prefect: Built, prewheel: PrewheelRunner
) -> None:
    summary = prefect.summary
    assert [r["target"] for r in summary["targets"]] == list(PREFECT_TARGETS)
    assert summary["failures"] == []
    assert summary["verify"] == {"ok": True, "problems": []}
    # Files shared by targets (the pure ones) are fetched once.
    files = prefect.manifest()["files"]
    assert any(len(f["targets"]) == len(PREFECT_TARGETS) for f in files.values())
    total = summary["total"]
    assert (
        total["downloaded"] + total["cached"]
        == len(files)
        == len(list(prefect.folder.glob("*.whl")))
    )
    assert not (prefect.folder / "install.ps1").exists()

    verified = prewheel("verify", prefect.folder, "--json").json()
    assert verified["ok"] is True, verified
    assert sorted(verified["targets"]) == sorted(PREFECT_TARGETS)


@pytest.mark.parametrize("name", PREFECT_TARGETS)
def test_prefect_client_wheels_fit_each_target(prefect: Built, name: str) -> None:
    target = parse_target(name)
    binary = _assert_fits(prefect, target)
    for package in ("pydantic-core", "orjson", "pendulum", "ujson"):
        assert package in binary, f"{name}: {package} is not a {target.description} wheel"
    pins = prefect.pins(name)
    for package in CP39_ONLY:
        assert (package in pins) == (target.python == (3, 9)), f"{name}: {package}"


@pytest.mark.parametrize("name", GLIBC)
def test_prefect_client_installs_offline_picking_its_own_target(
    prefect: Built, fresh_venv: VenvFactory, tmp_path: Path, name: str
) -> None:
    require_runs_here(name)
    venv = fresh_venv(GLIBC[name], tmp_path / "venv")
    install = venv.install(prefect.folder, "--no-compile", "-q")
    assert f"install.sh: installing target {name} with " in install.stderr, install.explain()
    venv.offline("python", "-m", "pip", "check")
    imports = PREFECT_IMPORTS + (", importlib_metadata" if GLIBC[name] == "3.9" else "")
    venv.offline("python", "-c", imports)
    frozen = venv.offline("python", "-m", "pip", "freeze").stdout
    installed = {
        canonicalize_name(line.split("==")[0]): line.split("==")[1]
        for line in frozen.splitlines()
        if "==" in line
    }
    assert installed == {n: p["version"] for n, p in prefect.pins(name).items()}


# 2. Markers: each target gets the packages its own markers ask for.


@pytest.fixture(scope="module")
def click(prewheel: PrewheelRunner, tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("click")
    requirements = _write_requirements(root, "click==8.1.7")
    return _build(prewheel, root / "wheelhouse", requirements, WIN312, LINUX312)


@pytest.fixture(scope="module")
def uvicorn(prewheel: PrewheelRunner, tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("uvicorn")
    requirements = _write_requirements(root, "uvicorn[standard]==0.30.1")
    return _build(prewheel, root / "wheelhouse", requirements, LINUX312, ARM312, MAC312, WIN312)


@pytest.fixture(scope="module")
def black_elsewhere(prewheel: PrewheelRunner, tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("black")
    requirements = _write_requirements(root, "black==24.1.1")
    return _build(prewheel, root / "wheelhouse", requirements, WIN39, MAC39)


def test_click_gets_colorama_on_windows_only(click: Built) -> None:
    assert click.summary["verify"] == {"ok": True, "problems": []}
    for name in (WIN312, LINUX312):
        assert click.locked(name)["click"][0] == "8.1.7"
        _assert_fits(click, parse_target(name))
    assert "colorama" in click.locked(WIN312)
    assert "colorama" in click.pins(WIN312)
    assert "colorama" not in click.locked(LINUX312)
    assert "colorama" not in click.pins(LINUX312)


def test_windows_wheelhouse_has_install_ps1_and_a_hashed_colorama(click: Built) -> None:
    script = click.folder / "install.ps1"
    assert script.is_file()
    assert WIN312 in script.read_text()
    assert (click.folder / "install.sh").is_file()
    version, hashes = click.locked(WIN312)["colorama"]
    wheel = click.folder / click.pins(WIN312)["colorama"]["file"]
    assert wheel.name.startswith(f"colorama-{version}-")
    assert hashes == {_sha256(wheel)}


@pytest.mark.parametrize("name", [LINUX312, ARM312, MAC312])
def test_uvicorn_standard_gets_uvloop_off_windows(uvicorn: Built, name: str) -> None:
    target = parse_target(name)
    binary = _assert_fits(uvicorn, target)
    assert uvicorn.locked(name)["uvicorn"][0] == "0.30.1"
    assert "uvloop" in binary, f"{name}: no {target.description} wheel of uvloop"
    assert "colorama" not in uvicorn.pins(name)


def test_uvicorn_standard_has_no_uvloop_on_windows(uvicorn: Built) -> None:
    assert uvicorn.summary["verify"] == {"ok": True, "problems": []}
    binary = _assert_fits(uvicorn, parse_target(WIN312))
    pins = uvicorn.pins(WIN312)
    assert pins["uvicorn"]["version"] == "0.30.1"
    assert "uvloop" not in pins
    assert "colorama" in pins
    assert {"httptools", "watchfiles", "websockets"} <= set(binary)
    assert WIN312 in (uvicorn.folder / "install.ps1").read_text()


def test_black_for_cp39_elsewhere_gets_backports_and_platform_markers(
    black_elsewhere: Built,
) -> None:
    """Python-version and OS markers hold together: the backports on both, colorama on
    Windows only, and black's compiled wheel for each platform."""
    assert black_elsewhere.summary["verify"] == {"ok": True, "problems": []}
    for name in (WIN39, MAC39):
        binary = _assert_fits(black_elsewhere, parse_target(name))
        assert "black" in binary, f"{name}: black's wheel is not the compiled one"
        pins = black_elsewhere.pins(name)
        assert pins["black"]["version"] == "24.1.1"
        for backport in BACKPORTS:
            assert backport in pins, f"{name} lacks {backport}"
        assert ("colorama" in pins) == (name == WIN39), name


# 3. A target captured by the stand-alone script on a pyenv Python 3.10.


@dataclass(frozen=True)
class Captured:
    venv: Venv
    path: Path  # target.json
    description: dict[str, Any]
    built: Built


@pytest.fixture(scope="module")
def captured(
    prewheel: PrewheelRunner, network_cut: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Captured:
    root = tmp_path_factory.mktemp("captured")
    venv = make_venv("3.10", root / "venv", network_cut)
    script = root / "capture.py"
    prewheel("target", "script", "-o", script)
    target_json = root / "target.json"
    # The deploy side has only its interpreter (and pip): no prewheel, no network.
    for module in ("prewheel", "packaging"):
        probe = venv.offline("python", "-c", f"import {module}", check=False)
        assert probe.returncode != 0, f"{module} is importable in the capture venv"
    venv.offline("python", script, "-o", target_json)
    description = json.loads(target_json.read_text())
    requirements = _write_requirements(root, "black==24.1.1", "requests")
    built = _build(prewheel, root / "wheelhouse", requirements, str(target_json), extra=("-v",))
    return Captured(venv, target_json, description, built)


def test_capture_script_prints_what_target_capture_prints(
    prewheel: PrewheelRunner, tmp_path: Path
) -> None:
    """Run by the same interpreter, the stand-alone script and the command agree."""
    script = tmp_path / "capture.py"
    prewheel("target", "script", "-o", script)
    by_command = prewheel("target", "capture").json()
    by_script = subprocess.run(
        [sys.executable, str(script)],
        env=clean_env(),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert json.loads(by_script) == by_command


def test_captured_description_is_the_interpreters_own(captured: Captured) -> None:
    data = captured.description
    actual = captured.venv.offline(
        "python", "-c", "import platform; print(platform.python_version())"
    ).stdout.strip()
    assert data["prewheel_target"] == 1
    assert data["markers"]["python_full_version"] == actual
    assert data["markers"]["python_version"] == "3.10"
    assert data["source"] == "pip", "the venv has pip: its tag list is the full one"
    assert data["tags"][0].startswith("cp310-cp310-")
    assert len(data["tags"]) > 100
    assert data["name"].startswith("cp310-")


def test_captured_build_uses_exactly_the_captured_tags_and_markers(
    captured: Captured, prewheel: PrewheelRunner
) -> None:
    data, built = captured.description, captured.built
    name = data["name"]
    assert [r["target"] for r in built.summary["targets"]] == [name]
    assert built.summary["verify"] == {"ok": True, "problems": []}
    entry = built.manifest()["targets"][name]
    assert entry["captured"]["tags"] == data["tags"]
    assert entry["captured"]["markers"] == data["markers"]
    target = parse_target(str(captured.path))
    assert [str(t) for t in target.tags()] == data["tags"]
    accepted = {tag for text in data["tags"] for tag in parse_tag(text)}
    _assert_fits(built, target, accepted)
    pins = built.pins(name)
    assert pins["black"]["version"] == "24.1.1"
    for backport in BACKPORTS:  # Python 3.10's markers, not those of the 3.11 running prewheel
        assert backport in pins, f"{name} lacks {backport}"
    # --verbose says how the target was mapped for uv and that its own tags choose files.
    assert "--python-platform" in built.run.stderr
    assert f"the target's own {len(data['tags'])} tags" in built.run.stderr
    verified = prewheel("verify", built.folder, "--json").json()
    assert verified["ok"] is True and verified["targets"] == [name], verified


def test_captured_wheelhouse_installs_offline_into_its_interpreter(captured: Captured) -> None:
    venv, name = captured.venv, captured.description["name"]
    install = venv.install(captured.built.folder, "--no-compile", "-q")
    assert f"install.sh: installing target {name} with " in install.stderr, install.explain()
    venv.offline("python", "-m", "pip", "check")
    assert venv.offline("black", "--version").stdout.startswith("black, 24.1.1")
    venv.offline("python", "-c", "import requests, tomli, typing_extensions")


# 4. The pip-tools engine: the running interpreter's own target only.


def test_pip_tools_engine_builds_for_the_host(prewheel: PrewheelRunner, tmp_path: Path) -> None:
    host = host_target()  # prewheel runs on this same interpreter
    assert host.python == sys.version_info[:2]
    requirements = _write_requirements(tmp_path, "requests==2.32.3")
    built = _build(
        prewheel, tmp_path / "wheelhouse", requirements, "host", extra=("--resolver", "pip-tools")
    )
    assert [r["target"] for r in built.summary["targets"]] == [host.name]
    assert built.summary["verify"] == {"ok": True, "problems": []}
    compiled = built.folder / f"pip-compile.{host.name}.txt"
    assert compiled.is_file()
    assert "# via requests" in compiled.read_text(), "pip-compile's annotations are kept"
    from_pip_compile = _pinned(compiled)
    assert _versions(from_pip_compile) == _versions(built.locked(host.name))
    assert _versions(from_pip_compile)["requests"] == "2.32.3"
    for name, pin in built.pins(host.name).items():
        assert pin["sha256"] in from_pip_compile[name][1], (
            f"{pin['file']} is not in pip-compile's hashes"
        )
    _assert_fits(built, host)
    verified = prewheel("verify", built.folder, "--json").json()
    assert verified["ok"] is True, verified


@pytest.mark.parametrize("name", FOREIGN_TO_PIP_TOOLS)
def test_pip_tools_engine_refuses_a_foreign_target(
    prewheel: PrewheelRunner, tmp_path: Path, name: str
) -> None:
    requirements = _write_requirements(tmp_path, "requests==2.32.3")
    folder = tmp_path / "wheelhouse"
    run = prewheel(
        "build",
        "-r",
        requirements,
        "-t",
        name,
        "--resolver",
        "pip-tools",
        "-o",
        folder,
        check=False,
    )
    assert run.returncode == 2, run.explain()
    line = _error_line(run)
    assert name in line
    assert PIP_TOOLS_REFUSAL in line
    assert "--resolver uv" in line
    assert not folder.exists()


# 5. An existing lock as input (--locked).


@pytest.fixture(scope="module")
def pip_compiled(prewheel_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real pip-compile output with hashes, made in this (the project's) environment."""
    root = tmp_path_factory.mktemp("pip-compiled")
    _write_requirements(root, "requests==2.32.3")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "piptools",
            "compile",
            "--generate-hashes",
            "--strip-extras",
            "--quiet",
            "--output-file",
            "requirements.txt",
            "requirements.in",
        ],
        env=prewheel_env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return root / "requirements.txt"


def test_locked_takes_pip_compile_output_pin_for_pin(
    pip_compiled: Path, prewheel: PrewheelRunner, tmp_path: Path
) -> None:
    given = _pinned(pip_compiled)
    assert given["requests"][0] == "2.32.3"
    assert all(hashes for _, hashes in given.values()), "pip-compile wrote no hashes"
    built = _build(prewheel, tmp_path / "wheelhouse", pip_compiled, CP311, extra=("--locked",))
    assert built.summary["verify"] == {"ok": True, "problems": []}
    assert _versions(built.locked(CP311)) == _versions(given)
    for name, pin in built.pins(CP311).items():
        assert pin["version"] == given[name][0]
        assert pin["sha256"] in given[name][1], (
            f"{pin['file']} is not among {pip_compiled.name}'s hashes"
        )
    _assert_fits(built, parse_target(CP311))


def _black_lock(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "requirements.txt"
    path.write_text("".join(f"{n}=={v}\n" for n, v in BLACK_WITHOUT_BACKPORTS.items()))
    return path


def test_locked_file_lacking_a_cp39_dependency_fails_and_names_it(
    prewheel: PrewheelRunner, tmp_path: Path
) -> None:
    lock = _black_lock(tmp_path)
    folder = tmp_path / "wheelhouse"
    run = prewheel("build", "-r", lock, "--locked", "-t", CP39, "-o", folder, check=False)
    assert run.returncode == 3, run.explain()
    line = _error_line(run)
    for name in (CP39, *BACKPORTS, "--allow-additions"):
        assert name in line, line
    assert not folder.exists()


def test_locked_with_allow_additions_adds_and_says_so(
    prewheel: PrewheelRunner, tmp_path: Path
) -> None:
    lock = _black_lock(tmp_path)
    built = _build(
        prewheel, tmp_path / "wheelhouse", lock, CP39, extra=("--locked", "--allow-additions")
    )
    assert built.summary["verify"] == {"ok": True, "problems": []}
    got = _versions(built.locked(CP39))
    assert set(got) == set(BLACK_WITHOUT_BACKPORTS) | set(BACKPORTS)
    for name, version in BLACK_WITHOUT_BACKPORTS.items():
        assert got[name] == version, f"the lock's pin of {name} was not kept"
    for name in BACKPORTS:
        assert f"added {name} {got[name]}" in built.run.stderr, built.run.explain()
    _assert_fits(built, parse_target(CP39))


# uv knows no platform as old as manylinux1 or musllinux_1_1: it resolves for a newer one,
# so a wheel it finds with --only-binary may still not fit the target's own tags.


@pytest.mark.parametrize("name", ["cp310-manylinux1_x86_64", "cp312-musllinux_1_1_x86_64"])
def test_a_wheel_only_uv_accepts_is_not_taken_for_a_back_off(
    prewheel: PrewheelRunner, tmp_path: Path, name: str
) -> None:
    """orjson ships manylinux_2_17 and musllinux_1_2 wheels only: the pin keeps its sdist
    (for a build) instead of being reported as backed off to a wheel it does not have."""
    requirements = _write_requirements(tmp_path, "orjson==3.13.0")
    folder = tmp_path / "wheelhouse"
    run = prewheel("lock", "-r", requirements, "-t", name, "-o", folder, "-v", check=False)
    assert run.returncode == 6, run.explain()
    target = parse_target(name).name
    line = _error_line(run)
    assert f"orjson 3.13.0 for {target}" in line and "only an sdist" in line, line
    assert "newest with a wheel" not in run.stderr, run.explain()
    assert "chosen for its wheel" not in run.stderr, run.explain()
    assert not folder.exists()
