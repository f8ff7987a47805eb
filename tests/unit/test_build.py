from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from prewheel.build import (
    _POLICY,
    Provenance,
    _backend,
    _diagnose,
    _Failed,
    _is_pure,
    _source_date_epoch,
    _unpack,
)


def test_provenance_round_trips() -> None:
    record = Provenance(
        "x-1.0.tar.gz",
        "a" * 64,
        "3.11.7",
        "setuptools.build_meta",
        ("setuptools==80.0",),
        True,
        "manylinux_2_17_x86_64",
    )
    assert Provenance.from_dict(record.to_dict()) == record


@pytest.mark.parametrize(
    ("output", "hint"),
    [
        ("Error: pg_config executable not found.", "PostgreSQL client headers"),
        ("Could not run curl-config: [Errno 2]", "libcurl headers"),
        ("fatal error: Python.h: No such file or directory", "Python development headers"),
        ("error: can't find Rust compiler\nfailed to run cargo", "Rust toolchain"),
        ("error: failed to get `pyo3` as a dependency of package `x`", "cargo registry"),
        ("warning: `cargo metadata` exited with an error", "the backend's last lines"),
        ("something else entirely", "the backend's last lines"),
    ],
)
def test_failures_name_the_missing_piece(output: str, hint: str) -> None:
    message = _diagnose(output)
    assert hint in message and "\n" not in message


def test_auditwheel_policies_are_read_from_both_phrasings() -> None:
    text = (
        'x.whl is consistent with the following platform tag: "manylinux_2_5_x86_64". '
        'This constrains the platform tag to "manylinux_2_34_x86_64".'
    )
    assert max((int(a), int(b)) for a, b in _POLICY.findall(text)) == (2, 34)


def test_pure_wheels_are_those_without_a_platform() -> None:
    assert _is_pure(Path("a-1.0-py3-none-any.whl"))
    assert _is_pure(Path("a-1.0-py2.py3-none-any.whl"))
    assert not _is_pure(Path("a-1.0-cp311-cp311-linux_x86_64.whl"))


def _tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_700_000_000
            tf.addfile(info, io.BytesIO(data))
    return path


def test_unpack_gives_the_top_folder_and_refuses_escapes(tmp_path: Path) -> None:
    good = _tar(tmp_path / "a-1.0.tar.gz", {"a-1.0/pyproject.toml": b"[build-system]\n"})
    top = _unpack(good, good.name, tmp_path / "out")
    assert top.name == "a-1.0" and (top / "pyproject.toml").is_file()
    assert _source_date_epoch(top) == 1_700_000_000
    evil = _tar(tmp_path / "b-1.0.tar.gz", {"../evil.txt": b"x"})
    with pytest.raises(_Failed):
        _unpack(evil, evil.name, tmp_path / "out2")
    assert not (tmp_path / "evil.txt").exists()
    zipped = tmp_path / "c-1.0.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr("../evil.txt", "x")
    with pytest.raises(_Failed, match="unsafe path"):
        _unpack(zipped, zipped.name, tmp_path / "out3")


def test_backend_defaults_to_setuptools_legacy(tmp_path: Path) -> None:
    assert _backend(tmp_path) == "setuptools.build_meta:__legacy__"
    (tmp_path / "pyproject.toml").write_text('[build-system]\nbuild-backend = "hatchling.build"\n')
    assert _backend(tmp_path) == "hatchling.build"
