from __future__ import annotations

import base64
import csv
import hashlib
import importlib.util
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import pytest

from tests.localindex import (
    IndexServer,
    canonical_name,
    clean_env,
    dist_name,
    expand_tags,
    make_sdist,
    make_wheel,
    read_metadata,
    write_simple_index,
)


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, b""


def wheel_text(wheel: Path, member: str) -> str:
    with zipfile.ZipFile(wheel) as zf:
        return zf.read(member).decode()


def sdist_members(sdist: Path) -> dict[str, str]:
    with tarfile.open(sdist, "r:gz") as tar:
        out = {}
        for info in tar.getmembers():
            extracted = tar.extractfile(info)
            assert extracted is not None
            out[info.name] = extracted.read().decode()
        return out


@pytest.mark.parametrize(
    ("name", "dist", "canonical"),
    [
        ("demo", "demo", "demo"),
        ("My.Cool-Pkg", "my_cool_pkg", "my-cool-pkg"),
        ("a__b--c", "a_b_c", "a-b-c"),
    ],
)
def test_name_escaping(tmp_path: Path, name: str, dist: str, canonical: str) -> None:
    assert dist_name(name) == dist
    assert canonical_name(name) == canonical

    wheel = make_wheel(tmp_path, name, "1.0")
    assert wheel.name == f"{dist}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    assert f"{dist}/__init__.py" in names
    assert f"{dist}-1.0.dist-info/METADATA" in names
    assert make_sdist(tmp_path, name, "1.0").name == f"{dist}-1.0.tar.gz"


def test_record_is_valid(tmp_path: Path) -> None:
    wheel = make_wheel(
        tmp_path, "demo", "2.0", requires_dist=["six>=1"], files={"demo/extra.py": "X = 1\n"}
    )
    record_name = "demo-2.0.dist-info/RECORD"
    with zipfile.ZipFile(wheel) as zf:
        members = zf.namelist()
        rows = list(csv.reader(io.StringIO(zf.read(record_name).decode())))
        listed = {row[0] for row in rows}
        assert listed == set(members)
        assert len(rows) == len(members)
        for path, digest, size in rows:
            if path == record_name:
                assert (digest, size) == ("", "")
                continue
            data = zf.read(path)
            expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            assert digest == "sha256=" + expected.decode()
            assert "=" not in digest.removeprefix("sha256=")
            assert int(size) == len(data)
        for info in zf.infolist():
            assert info.date_time == (1980, 1, 1, 0, 0, 0)


def test_wheel_tags_expand_compressed_set(tmp_path: Path) -> None:
    tag = "cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64"
    wheel = make_wheel(tmp_path, "native", "1.0", tag=tag)
    assert wheel.name == f"native-1.0-{tag}.whl"
    text = wheel_text(wheel, "native-1.0.dist-info/WHEEL")
    assert "Wheel-Version: 1.0\n" in text
    assert "Root-Is-Purelib: false\n" in text
    assert re.findall(r"^Tag: (.*)$", text, re.M) == [
        "cp311-cp311-manylinux_2_17_x86_64",
        "cp311-cp311-manylinux2014_x86_64",
    ]

    pure = make_wheel(tmp_path, "pure", "1.0", tag="py2.py3-none-any")
    text = wheel_text(pure, "pure-1.0.dist-info/WHEEL")
    assert "Root-Is-Purelib: true\n" in text
    assert re.findall(r"^Tag: (.*)$", text, re.M) == ["py2-none-any", "py3-none-any"]


def test_expand_tags_rejects_malformed() -> None:
    with pytest.raises(ValueError):
        expand_tags("py3-none")


def test_wheel_metadata_and_files(tmp_path: Path) -> None:
    wheel = make_wheel(
        tmp_path,
        "demo",
        "1.2.3",
        requires_dist=["attrs>=22", 'tomli; python_version < "3.11"'],
        requires_python=">=3.8",
        files={"demo/__init__.py": "VALUE = 42\n"},
    )
    metadata = read_metadata(wheel)
    assert metadata is not None
    assert metadata["Metadata-Version"] == "2.1"
    assert metadata["Name"] == "demo"
    assert metadata["Version"] == "1.2.3"
    assert metadata["Requires-Python"] == ">=3.8"
    assert metadata["Requires-Dist"] == ["attrs>=22", 'tomli; python_version < "3.11"']
    assert wheel_text(wheel, "demo/__init__.py") == "VALUE = 42\n"


def test_output_is_deterministic(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for dest in (first, second):
        make_wheel(dest, "demo", "1.0", requires_dist=["six"], tag="py2.py3-none-any")
        make_sdist(dest, "demo", "1.0", requires_dist=["six"], pure=False)
    for filename in ("demo-1.0-py2.py3-none-any.whl", "demo-1.0.tar.gz"):
        assert sha256_of(first / filename) == sha256_of(second / filename)


def test_sdist_layout(tmp_path: Path) -> None:
    sdist = make_sdist(tmp_path, "My.Pkg", "0.3", requires_dist=["six>=1.16"])
    members = sdist_members(sdist)
    top = "my_pkg-0.3"
    assert set(members) == {
        f"{top}/PKG-INFO",
        f"{top}/pyproject.toml",
        f"{top}/src/my_pkg/__init__.py",
    }
    pyproject = tomllib.loads(members[f"{top}/pyproject.toml"])
    assert pyproject["build-system"] == {
        "requires": ["setuptools>=61"],
        "build-backend": "setuptools.build_meta",
    }
    assert pyproject["project"] == {
        "name": "My.Pkg",
        "version": "0.3",
        "dependencies": ["six>=1.16"],
    }
    metadata = read_metadata(sdist)
    assert metadata is not None
    assert (metadata["Name"], metadata["Version"]) == ("My.Pkg", "0.3")
    assert metadata["Requires-Dist"] == ["six>=1.16"]


def test_impure_sdist_has_extension(tmp_path: Path) -> None:
    members = sdist_members(make_sdist(tmp_path, "fast", "1.0", pure=False))
    assert "PyModule_Create" in members["fast-1.0/src/fast/_speedups.c"]
    setup_py = members["fast-1.0/setup.py"]
    assert 'Extension("fast._speedups", ["src/fast/_speedups.c"])' in setup_py


def _can_build_offline() -> bool:
    if importlib.util.find_spec("build") is None:
        return False
    try:
        from importlib.metadata import version

        from packaging.version import Version

        setuptools_version = Version(version("setuptools"))
    except Exception:
        return False
    if setuptools_version < Version("61"):
        return False
    return setuptools_version >= Version("70.1") or importlib.util.find_spec("wheel") is not None


@pytest.mark.skipif(
    not _can_build_offline(), reason="needs build and setuptools>=61 to build offline"
)
@pytest.mark.parametrize("pure", [True, False])
def test_sdist_builds_a_wheel(tmp_path: Path, pure: bool) -> None:
    if not pure and shutil.which("cc") is None:
        pytest.skip("no C compiler")
    sdist = make_sdist(tmp_path, "buildme", "1.0", pure=pure)
    out = tmp_path / "out"
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "-o", str(out), str(sdist)],
        check=True,
        env=clean_env(),
        capture_output=True,
    )
    (wheel,) = out.glob("buildme-1.0-*.whl")
    assert wheel.name.endswith("-py3-none-any.whl") == pure


def _build_wheel(sdist: Path, out: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "-o", str(out), str(sdist)],
        env=clean_env(env),
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.skipif(importlib.util.find_spec("build") is None, reason="needs build")
def test_intree_sdist_builds_a_reproducible_pure_wheel(tmp_path: Path) -> None:
    sdist = make_sdist(tmp_path, "Demo.Src", "1.0", backend="intree", requires_dist=["six"])
    members = sdist_members(sdist)
    pyproject = tomllib.loads(members["demo_src-1.0/pyproject.toml"])
    assert pyproject["build-system"] == {
        "requires": [],
        "build-backend": "intree_backend",
        "backend-path": ["_backend"],
    }
    assert "demo_src-1.0/_backend/intree_backend.py" in members

    wheels = []
    for n, epoch in enumerate(["1700000000", "1700000000", "1600000000"]):
        result = _build_wheel(sdist, tmp_path / f"out{n}", SOURCE_DATE_EPOCH=epoch)
        assert result.returncode == 0, result.stderr
        (wheel,) = (tmp_path / f"out{n}").glob("*.whl")
        wheels.append(wheel)
    assert wheels[0].name == "demo_src-1.0-py3-none-any.whl"
    assert sha256_of(wheels[0]) == sha256_of(wheels[1])
    assert sha256_of(wheels[0]) != sha256_of(wheels[2])  # the times come from the epoch

    with zipfile.ZipFile(wheels[0]) as zf:
        assert zf.getinfo("demo_src/__init__.py").date_time == (2023, 11, 14, 22, 13, 20)
        metadata = zf.read("demo_src-1.0.dist-info/METADATA").decode()
        assert "Name: Demo.Src" in metadata and "Requires-Dist: six" in metadata
        assert "Tag: py3-none-any" in zf.read("demo_src-1.0.dist-info/WHEEL").decode()
        rows = list(csv.reader(io.StringIO(zf.read("demo_src-1.0.dist-info/RECORD").decode())))
        assert sorted(r[0] for r in rows) == sorted(zf.namelist())
        for path, digest, size in rows:
            if path.endswith("/RECORD"):
                continue
            data = zf.read(path)
            raw = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
            assert (digest, size) == (f"sha256={raw.decode()}", str(len(data))), path


@pytest.mark.skipif(importlib.util.find_spec("build") is None, reason="needs build")
def test_intree_sdist_can_fail_with_a_message(tmp_path: Path) -> None:
    message = "Error: pg_config executable not found."
    sdist = make_sdist(tmp_path, "broken", "1.0", backend="intree", fail_with=message)

    result = _build_wheel(sdist, tmp_path / "out")

    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert not list((tmp_path / "out").glob("*.whl"))


def test_make_sdist_rejects_impossible_backend_options(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        make_sdist(tmp_path, "x", "1.0", backend="flit")
    with pytest.raises(ValueError):
        make_sdist(tmp_path, "x", "1.0", backend="intree", pure=False)
    with pytest.raises(ValueError):
        make_sdist(tmp_path, "x", "1.0", fail_with="boom")


def test_simple_index_layout(tmp_path: Path) -> None:
    built = tmp_path / "built"
    wheel = make_wheel(built, "My.Cool-Pkg", "1.0", requires_python=">=3.8,<4")
    sdist = make_sdist(built, "My.Cool-Pkg", "1.0")
    other = make_wheel(built, "other", "2.0")

    root = tmp_path / "index"
    simple = write_simple_index(root, [wheel, sdist])
    assert simple == root / "simple"
    assert sorted(p.name for p in (root / "files").iterdir()) == sorted([wheel.name, sdist.name])

    page = (simple / "my-cool-pkg" / "index.html").read_text()
    wheel_href = f'href="../../files/{wheel.name}#sha256={sha256_of(wheel)}"'
    sdist_href = f'href="../../files/{sdist.name}#sha256={sha256_of(sdist)}"'
    assert f'<a {wheel_href} data-requires-python="&gt;=3.8,&lt;4">' in page
    assert f"<a {sdist_href}>" in page
    assert 'href="my-cool-pkg/"' in (simple / "index.html").read_text()

    write_simple_index(root, [other])
    root_page = (simple / "index.html").read_text()
    assert 'href="my-cool-pkg/"' in root_page
    assert 'href="other/"' in root_page
    assert other.name in (simple / "other" / "index.html").read_text()


def test_index_server_serves_and_records(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "built", "demo", "1.0")
    root = tmp_path / "index"
    write_simple_index(root, [wheel])

    with IndexServer(root) as server:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", server.url)
        assert server.index_url == server.url + "/simple"

        status, body = fetch(f"{server.url}/simple/demo/")
        assert status == 200
        assert wheel.name in body.decode()

        status, body = fetch(f"{server.url}/files/{wheel.name}")
        assert status == 200
        assert body == wheel.read_bytes()

        status, _ = fetch(f"{server.url}/simple/nope/")
        assert status == 404

        assert server.recorded() == ["/simple/demo/", f"/files/{wheel.name}", "/simple/nope/"]
        url = server.url

    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url + "/simple/", timeout=2)


def test_clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_INDEX_URL", "http://example.invalid/simple")
    monkeypatch.setenv("UV_INDEX_URL", "http://example.invalid/simple")
    monkeypatch.setenv("KEEP_ME", "yes")
    env = clean_env({"EXTRA": "1", "UV_NO_CONFIG": "0"})
    assert "PIP_INDEX_URL" not in env
    assert "UV_INDEX_URL" not in env
    assert env["KEEP_ME"] == "yes"
    assert env["PIP_CONFIG_FILE"] == os.devnull
    assert env["UV_PYTHON_DOWNLOADS"] == "never"
    assert env["UV_NO_CONFIG"] == "0"
    assert env["EXTRA"] == "1"
    assert os.environ["PIP_INDEX_URL"] == "http://example.invalid/simple"


@pytest.fixture(scope="module")
def venv_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=clean_env())
    return venv / "bin" / "python"


def pip_install(python: Path, *args: str) -> None:
    result = subprocess.run(
        [str(python), "-m", "pip", "install", *args],
        env=clean_env(),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def imported_version(python: Path, module: str) -> str:
    return subprocess.run(
        [str(python), "-c", f"import {module}; print({module}.__version__)"],
        check=True,
        capture_output=True,
        text=True,
        env=clean_env(),
    ).stdout.strip()


def test_pip_installs_wheel_from_find_links(tmp_path: Path, venv_python: Path) -> None:
    make_wheel(tmp_path, "Local.Dep", "0.5")
    make_wheel(tmp_path, "local-app", "1.4", requires_dist=["local.dep>=0.5"])
    pip_install(venv_python, "--no-index", "--find-links", str(tmp_path), "local-app")
    assert imported_version(venv_python, "local_app") == "1.4"
    assert imported_version(venv_python, "local_dep") == "0.5"


def test_pip_installs_from_index_server(tmp_path: Path, venv_python: Path) -> None:
    built = tmp_path / "built"
    artifacts = [
        make_wheel(built, "served-dep", "1.0"),
        make_wheel(built, "served-app", "1.0", requires_dist=["served-dep"]),
        make_wheel(built, "served-app", "9.0", requires_python=">=4"),
    ]
    root = tmp_path / "index"
    write_simple_index(root, artifacts)
    with IndexServer(root) as server:
        pip_install(venv_python, "--index-url", server.index_url, "served-app")
        requests = server.recorded()
    assert imported_version(venv_python, "served_app") == "1.0"
    assert imported_version(venv_python, "served_dep") == "1.0"
    assert "/simple/served-app/" in requests
    assert "/files/served_app-1.0-py3-none-any.whl" in requests
    assert "/files/served_app-9.0-py3-none-any.whl" not in requests
