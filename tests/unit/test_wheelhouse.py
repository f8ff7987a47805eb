from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from packaging.pylock import Pylock

from prewheel.errors import WheelhouseError
from prewheel.targets import parse_target
from prewheel.wheelhouse import (
    Manifest,
    PinEntry,
    TargetEntry,
    check_folder,
    prune,
    read_manifest,
    render_pylock,
    render_requirements,
    write_atomic,
    write_manifest,
)

TARGET = parse_target("cp311-manylinux_2_17_x86_64")


def entry() -> TargetEntry:
    pins = (
        PinEntry("zeta", "1.0", "zeta-1.0-py3-none-any.whl", "a" * 64, 10),
        PinEntry(
            "alpha-pkg",
            "2.0",
            "alpha_pkg-2.0-py3-none-any.whl",
            "b" * 64,
            20,
            "https://idx.invalid/simple",
        ),
    )
    return TargetEntry(TARGET, pins, ("zeta", "alpha-pkg>=2"))


def test_pylock_is_valid_pep751_and_names_the_folders_files() -> None:
    text = render_pylock(entry())
    lock = Pylock.from_dict(tomllib.loads(text))
    assert [p.name for p in lock.packages] == ["alpha-pkg", "zeta"]
    wheel = lock.packages[0].wheels[0]  # type: ignore[index]
    assert wheel.path == "./alpha_pkg-2.0-py3-none-any.whl"
    assert wheel.hashes == {"sha256": "b" * 64}
    assert "://" not in text


def test_requirements_carry_one_hash_per_pin_sorted() -> None:
    text = render_requirements(entry())
    body = [line for line in text.splitlines() if not line.startswith("#")]
    assert body == [
        "alpha-pkg==2.0 \\",
        f"    --hash=sha256:{'b' * 64}",
        "zeta==1.0 \\",
        f"    --hash=sha256:{'a' * 64}",
    ]


def test_manifest_round_trips_and_is_deterministic(tmp_path: Path) -> None:
    manifest = Manifest(("zeta",), (entry(),), {"index_url": None})
    write_manifest(tmp_path, manifest)
    first = (tmp_path / "manifest.json").read_bytes()
    again = read_manifest(tmp_path)
    assert again is not None
    write_manifest(tmp_path, again)
    assert (tmp_path / "manifest.json").read_bytes() == first
    data = json.loads(first)
    assert data["files"]["zeta-1.0-py3-none-any.whl"]["targets"] == [TARGET.name]
    assert "time" not in first.decode()


def test_nonsense_manifest_is_a_value_error(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text('{"format": 1, "targets": 3}')
    with pytest.raises(ValueError, match="not a prewheel manifest"):
        read_manifest(tmp_path)


def test_write_atomic_leaves_no_partial_file(tmp_path: Path) -> None:
    write_atomic(tmp_path / "x.txt", "hello\n")
    assert (tmp_path / "x.txt").read_text() == "hello\n"
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]


def test_wheelhouse_that_is_a_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "wheelhouse"
    path.write_text("not a folder")
    with pytest.raises(WheelhouseError, match="is a file"):
        check_folder(path)


def test_prune_removes_only_unlisted_wheels_and_leftovers(tmp_path: Path) -> None:
    for name in ("zeta-1.0-py3-none-any.whl", "old-0.1-py3-none-any.whl", ".part-abc", "notes.txt"):
        (tmp_path / name).write_text("x")
    manifest = Manifest((), (entry(),))
    removed = prune(tmp_path, manifest)
    assert removed == [".part-abc", "old-0.1-py3-none-any.whl"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "zeta-1.0-py3-none-any.whl"]


def test_targets_keep_their_own_requirements_only_where_they_differ(tmp_path: Path) -> None:
    own = TargetEntry(parse_target("cp39-manylinux_2_17_x86_64"), entry().pins, ("zeta<2",))
    manifest = Manifest(("zeta", "alpha-pkg>=2"), (entry(), own))
    data = manifest.to_dict()
    assert "requirements" not in data["targets"][TARGET.name]
    assert data["targets"]["cp39-manylinux_2_17_x86_64"]["requirements"] == ["zeta<2"]
    write_manifest(tmp_path, manifest)
    again = read_manifest(tmp_path)
    assert again is not None
    assert again.entry("cp39-manylinux_2_17_x86_64").requirements == ("zeta<2",)  # type: ignore[union-attr]
    assert again.entry(TARGET.name).requirements == ("zeta", "alpha-pkg>=2")  # type: ignore[union-attr]
