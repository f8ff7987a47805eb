"""Wheels that the index does not have, built on this machine (issue 3, "Done when" 1-4).

Real scenarios from the shared corpus (pure sdist-only pins such as iso-639 and
oncalendar, and pycurl, whose wheels start at manylinux_2_28) and a C extension made
on the fly and served from a --find-links folder. Each wheelhouse is built once per
module and installed with the network cut, with no compiler on PATH, into fresh venvs.
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from packaging.utils import canonicalize_name, parse_wheel_filename

from prewheel.targets import parse_target
from tests.localindex import make_sdist

from .conftest import (
    PrewheelRunner,
    Run,
    VenvFactory,
    corpus_requirements,
    pyenv_python,
    require_runs_here,
)

pytestmark = pytest.mark.integration

CP311_2_17 = "cp311-manylinux_2_17_x86_64"
CP312_2_17 = "cp312-manylinux_2_17_x86_64"
CP311_2_28 = "cp311-manylinux_2_28_x86_64"
CP312_2_28 = "cp312-manylinux_2_28_x86_64"
CP311_ARM = "cp311-manylinux_2_17_aarch64"
PYTHONS = {CP311_2_17: "3.11", CP312_2_17: "3.12", CP311_2_28: "3.11", CP312_2_28: "3.12"}

# The sdist-only pins of calibre-web per target (iso-639 only below Python 3.12).
CALIBRE_BUILT = {
    CP311_2_17: {"iso-639", "flask-principal", "flask-themes2"},
    CP312_2_17: {"flask-principal", "flask-themes2"},
}
CALIBRE_IMPORTS = "import flask, flask_principal, flask_themes2, flask_babel, lxml, sqlalchemy"
HEALTHCHECKS_IMPORTS = "import oncalendar, django, pycurl"
BUILD_RECORD = {"sdist", "sdist_sha256", "python", "backend", "build_requires", "repaired"}

CEXT = "cext-demo"
# pycurl's fix suggestions: its wheel needs a newer glibc than the target's, or (on a
# machine without the libcurl headers) the headers are what is missing.
PYCURL_REASONS = (
    re.compile(
        r"the wheel needs glibc \d+\.\d+ .*build on an older system.*prewheel merge"
        r".*target manylinux_\d+_\d+"
    ),
    re.compile(r"curl-config not found: the libcurl headers are missing"),
)


@dataclass(frozen=True)
class Built:
    """A `prewheel build --json` run and the wheelhouse it left."""

    folder: Path
    run: Run
    args: tuple[str, ...]

    @property
    def summary(self) -> dict[str, Any]:
        data: dict[str, Any] = self.run.json()
        return data

    def row(self, target: str) -> dict[str, Any]:
        rows = [r for r in self.summary["targets"] if r["target"] == target]
        assert len(rows) == 1, self.summary
        row: dict[str, Any] = rows[0]
        return row

    def manifest(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.folder / "manifest.json").read_text())
        return data

    def pins(self, target: str) -> dict[str, dict[str, Any]]:
        pins = self.manifest()["targets"][target]["pins"]
        return {canonicalize_name(p["name"]): p for p in pins}

    def built_pins(self, target: str) -> dict[str, dict[str, Any]]:
        return {n: p for n, p in self.pins(target).items() if p.get("source") == "built"}


def _build(prewheel: PrewheelRunner, folder: Path, *args: str | Path, check: bool = True) -> Built:
    argv = tuple(str(a) for a in ("build", *args, "-o", folder, "--json"))
    return Built(folder, prewheel(*argv, check=check), argv)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _python_version(python: Path) -> str:
    return subprocess.run(
        [str(python), "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.strip()


def _assert_sound(built: Built, target: str) -> None:
    """Every pin has one wheel that fits the target, its hash in the lock, and a built pin
    carries a build record naming the sdist it came from."""
    accepted = set(parse_target(target).tags())
    lock = (built.folder / f"requirements.{target}.txt").read_text()
    for name, pin in built.pins(target).items():
        wheel = built.folder / pin["file"]
        assert wheel.is_file(), f"{target}: {pin['file']} is missing"
        assert parse_wheel_filename(wheel.name)[3] & accepted, f"{wheel.name} misfits {target}"
        digest = _sha256(wheel)
        assert digest == pin["sha256"], f"{pin['file']}: damaged"
        assert f"{name}=={pin['version']} \\\n    --hash=sha256:{digest}" in lock, name
    for name, pin in built.built_pins(target).items():
        record = pin.get("build")
        assert isinstance(record, dict), f"{target}: built pin {name} has no build record"
        assert set(record) >= BUILD_RECORD, f"{name}: build record {record}"
        assert record["sdist"].endswith((".tar.gz", ".zip")), record
        assert re.fullmatch(r"[0-9a-f]{64}", record["sdist_sha256"]), record
        assert re.fullmatch(r"3\.\d+\.\d+", record["python"]), record
        assert any(r.startswith("setuptools==") for r in record["build_requires"]), record


def _install_and_check(
    built: Built, target: str, fresh_venv: VenvFactory, path: Path, imports: str
) -> None:
    """install.sh with the network cut and no compiler; pip check; the pins as locked."""
    require_runs_here(target)
    venv = fresh_venv(PYTHONS[target], path)
    install = venv.install(built.folder, "--no-compile", "-q")
    assert f"installing target {target}" in install.stderr, install.explain()
    venv.offline("python", "-m", "pip", "check")
    venv.offline("python", "-c", imports)
    frozen = venv.offline("python", "-m", "pip", "freeze", "--all").stdout
    installed: dict[str, str] = {
        canonicalize_name(line.split("==")[0]): line.split("==")[1]
        for line in frozen.splitlines()
        if "==" in line
    }
    for name, pin in built.pins(target).items():
        assert installed.get(name) == pin["version"], f"{name}: {installed.get(name)}"


# 1. calibre-web: pure sdist-only pins, two Pythons, one build.


@pytest.fixture(scope="module")
def calibre_web(prewheel: PrewheelRunner, tmp_path_factory: pytest.TempPathFactory) -> Built:
    requirements = corpus_requirements("calibre-web")
    folder = tmp_path_factory.mktemp("calibre-web") / "wheelhouse"
    return _build(prewheel, folder, "-r", requirements, "-t", CP311_2_17, "-t", CP312_2_17)


def test_calibre_web_builds_its_sdist_only_pins(calibre_web: Built) -> None:
    summary = calibre_web.summary
    assert summary["failures"] == []
    assert summary["total"]["built"] > 0
    assert summary["verify"] == {"ok": True, "problems": []}
    for target, names in CALIBRE_BUILT.items():
        built = calibre_web.built_pins(target)
        assert names <= set(built), f"{target}: built {sorted(built)}"
        assert calibre_web.row(target)["built"] == len(built), calibre_web.row(target)
        for pin in built.values():
            _, _, _, wheel_tags = parse_wheel_filename(pin["file"])
            assert {t.platform for t in wheel_tags} == {"any"}, pin["file"]
            assert pin["build"]["repaired"] is False, pin
        _assert_sound(calibre_web, target)
    assert "iso-639" not in calibre_web.pins(CP312_2_17)
    # A pure wheel is built once and serves both targets.
    for name in CALIBRE_BUILT[CP312_2_17]:
        assert (
            calibre_web.pins(CP311_2_17)[name]["sha256"]
            == calibre_web.pins(CP312_2_17)[name]["sha256"]
        )


def test_calibre_web_verifies(calibre_web: Built, prewheel: PrewheelRunner) -> None:
    data = prewheel("verify", calibre_web.folder, "--json").json()
    assert data["ok"] is True, data
    assert sorted(data["targets"]) == sorted([CP311_2_17, CP312_2_17])


@pytest.mark.parametrize("target", [CP311_2_17, CP312_2_17])
def test_calibre_web_installs_offline(
    calibre_web: Built, fresh_venv: VenvFactory, tmp_path: Path, target: str
) -> None:
    imports = CALIBRE_IMPORTS + (", iso639" if target == CP311_2_17 else "")
    _install_and_check(calibre_web, target, fresh_venv, tmp_path / "venv", imports)


# 2. healthchecks on manylinux_2_28: pycurl has wheels there, only oncalendar is built.


@pytest.fixture(scope="module")
def healthchecks(prewheel: PrewheelRunner, tmp_path_factory: pytest.TempPathFactory) -> Built:
    requirements = corpus_requirements("healthchecks")
    folder = tmp_path_factory.mktemp("healthchecks") / "wheelhouse"
    return _build(prewheel, folder, "-r", requirements, "-t", CP311_2_28, "-t", CP312_2_28)


def test_healthchecks_builds_oncalendar_and_takes_pycurl_from_the_index(
    healthchecks: Built, prewheel: PrewheelRunner
) -> None:
    assert healthchecks.summary["failures"] == []
    assert healthchecks.summary["verify"] == {"ok": True, "problems": []}
    for target in (CP311_2_28, CP312_2_28):
        assert set(healthchecks.built_pins(target)) == {"oncalendar"}
        assert healthchecks.row(target)["built"] == 1
        assert healthchecks.pins(target)["pycurl"]["source"] == "index"
        _assert_sound(healthchecks, target)
    data = prewheel("verify", healthchecks.folder, "--json").json()
    assert data["ok"] is True, data
    assert sorted(data["targets"]) == sorted([CP311_2_28, CP312_2_28])


@pytest.mark.parametrize("target", [CP311_2_28, CP312_2_28])
def test_healthchecks_installs_offline(
    healthchecks: Built, fresh_venv: VenvFactory, tmp_path: Path, target: str
) -> None:
    _install_and_check(healthchecks, target, fresh_venv, tmp_path / "venv", HEALTHCHECKS_IMPORTS)


# 3. healthchecks on manylinux_2_17: pycurl cannot be given a wheel; nothing half-written.


def test_pycurl_for_manylinux_2_17_fails_with_a_fix_and_leaves_nothing(
    prewheel: PrewheelRunner, tmp_path: Path
) -> None:
    requirements = corpus_requirements("healthchecks")
    pyenv_python("3.11")  # the build needs a CPython 3.11 to get as far as the failure
    glibc = platform.libc_ver()[1]
    if glibc and tuple(int(x) for x in glibc.split(".")[:2]) <= (2, 17):
        pytest.skip(f"glibc {glibc} here: pycurl would build for manylinux_2_17")
    folder = tmp_path / "wheelhouse"
    run = prewheel("build", "-r", requirements, "-t", CP311_2_17, "-o", folder, check=False)
    assert run.returncode == 6, run.explain()
    assert "Traceback" not in run.stderr, run.explain()
    failed = [line for line in run.stdout.splitlines() if line.startswith("FAILED ")]
    assert len(failed) == 1, run.explain()
    prefix = f"FAILED pycurl 7.45.7 for {CP311_2_17}: "
    assert failed[0].startswith(prefix), run.explain()
    assert any(r.search(failed[0]) for r in PYCURL_REASONS), failed[0]
    error = run.stderr.strip().splitlines()[-1]
    assert error.startswith("prewheel: error:") and "pycurl" in error and CP311_2_17 in error
    # A new wheelhouse whose only target failed is not made at all.
    assert not folder.exists(), sorted(p.name for p in folder.iterdir())


# 4-6. A C extension from a --find-links folder, for x86_64 and aarch64.


@dataclass(frozen=True)
class CExt:
    built: Built
    sdist: Path
    python: Path

    @property
    def wheel(self) -> Path:
        return self.built.folder / str(self.built.pins(CP311_2_17)[CEXT]["file"])


@pytest.fixture(scope="module")
def cext(prewheel: PrewheelRunner, tmp_path_factory: pytest.TempPathFactory) -> CExt:
    if not (shutil.which("gcc") or shutil.which("cc")):
        pytest.skip("no C compiler (gcc or cc) on PATH to build the C extension with")
    python = pyenv_python("3.11")
    root = tmp_path_factory.mktemp("cext")
    sdist = make_sdist(root / "links", CEXT, "1.0", pure=False)
    requirements = root / "requirements.in"
    requirements.write_text(f"{CEXT}==1.0\nsix\n")
    built = _build(
        prewheel,
        root / "wheelhouse",
        "-r",
        requirements,
        "-f",
        root / "links",
        "-t",
        CP311_2_17,
        "-t",
        CP311_ARM,
        check=False,
    )
    return CExt(built, sdist, python)


def test_c_extension_is_built_by_python_3_11_and_repaired_to_manylinux(cext: CExt) -> None:
    run = cext.built.run
    assert run.returncode == 6, run.explain()
    assert cext.built.row(CP311_2_17)["built"] == 1
    assert cext.built.summary["verify"] == {"ok": True, "problems": []}

    wheel = cext.wheel
    assert wheel.is_file()
    name, version, _, wheel_tags = parse_wheel_filename(wheel.name)
    assert (name, str(version)) == (CEXT, "1.0")
    assert {t.interpreter for t in wheel_tags} == {"cp311"}
    platforms = {t.platform for t in wheel_tags}
    assert all(re.fullmatch(r"manylinux\w*_x86_64", p) for p in platforms), wheel.name
    assert wheel_tags & set(parse_target(CP311_2_17).tags()), wheel.name

    pin = cext.built.pins(CP311_2_17)[CEXT]
    assert pin["source"] == "built"
    record = pin["build"]
    assert record["repaired"] is True, record
    assert re.fullmatch(r"manylinux_2_\d+_x86_64", record["policy"]), record
    assert record["policy"] in platforms, (record["policy"], wheel.name)
    assert record["python"] == _python_version(cext.python), record
    assert record["sdist"] == cext.sdist.name
    assert record["sdist_sha256"] == _sha256(cext.sdist)
    assert record["backend"] == "setuptools.build_meta"
    assert cext.built.pins(CP311_2_17)["six"]["source"] == "index"
    _assert_sound(cext.built, CP311_2_17)


def test_aarch64_target_fails_for_the_c_extension_and_x86_64_still_lands(
    cext: CExt, prewheel: PrewheelRunner
) -> None:
    run = cext.built.run
    failures = cext.built.summary["failures"]
    assert [(f["name"], f["target"]) for f in failures] == [(CEXT, CP311_ARM)], failures
    reason = failures[0]["reason"]
    assert "aarch64" in reason and "prewheel merge" in reason, reason
    error = run.stderr.strip().splitlines()[-1]
    assert error.startswith("prewheel: error:") and CEXT in error and CP311_ARM in error, error

    assert [r["target"] for r in cext.built.summary["targets"]] == [CP311_2_17]
    assert list(cext.built.manifest()["targets"]) == [CP311_2_17]
    folder = cext.built.folder
    assert not (folder / f"requirements.{CP311_ARM}.txt").exists()
    assert not (folder / f"pylock.{CP311_ARM}.toml").exists()
    assert not [w.name for w in folder.glob("*.whl") if "aarch64" in w.name]
    data = prewheel("verify", folder, "--json").json()
    assert data["ok"] is True and data["targets"] == [CP311_2_17], data


def test_built_c_wheel_installs_offline_with_require_hashes(
    cext: CExt, fresh_venv: VenvFactory, tmp_path: Path
) -> None:
    require_runs_here(CP311_2_17)
    folder = cext.built.folder
    assert "--require-hashes" in (folder / "install.sh").read_text()
    lock = (folder / f"requirements.{CP311_2_17}.txt").read_text()
    assert f"--hash=sha256:{_sha256(cext.wheel)}" in lock
    venv = fresh_venv("3.11", tmp_path / "venv")
    venv.install(folder, "--no-compile", "-q")
    venv.offline("python", "-m", "pip", "check")
    venv.offline("python", "-c", "import cext_demo._speedups, six")


def test_one_flipped_byte_in_the_built_wheel_fails_verify_and_install(
    cext: CExt, prewheel: PrewheelRunner, fresh_venv: VenvFactory, tmp_path: Path
) -> None:
    folder = tmp_path / "wheelhouse"
    shutil.copytree(cext.built.folder, folder)
    damaged = folder / cext.wheel.name
    data = bytearray(damaged.read_bytes())
    data[len(data) // 2] ^= 0x01
    damaged.write_bytes(bytes(data))

    verified = prewheel("verify", folder, check=False)
    assert verified.returncode == 5, verified.explain()
    assert damaged.name in verified.stdout + verified.stderr, verified.explain()

    require_runs_here(CP311_2_17)
    venv = fresh_venv("3.11", tmp_path / "venv")
    refused = venv.install(folder, "--no-compile", "-q", check=False)
    assert refused.returncode != 0, refused.explain()
    assert "hash" in refused.stderr.lower(), refused.explain()
    frozen = venv.offline("python", "-m", "pip", "freeze").stdout
    assert "cext" not in frozen.lower(), frozen


def test_second_build_with_nothing_changed_builds_nothing(
    cext: CExt, prewheel: PrewheelRunner
) -> None:
    before = {p.name: _sha256(p) for p in cext.built.folder.glob("*.whl")}
    again = prewheel(*cext.built.args, check=False)
    assert again.returncode == 6, again.explain()
    summary = again.json()
    assert summary["total"]["built"] == 0, summary
    assert [r["built"] for r in summary["targets"]] == [0]
    assert [(f["name"], f["target"]) for f in summary["failures"]] == [(CEXT, CP311_ARM)]
    # Not compiled again, not even to find out that aarch64 cannot be served.
    assert f"building {CEXT}" not in again.stderr, again.explain()
    after = {p.name: _sha256(p) for p in cext.built.folder.glob("*.whl")}
    assert after == before
