"""`prewheel build` end to end against a local index: the wheelhouse a user gets."""

from __future__ import annotations

import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.functional.helpers import (
    CP39,
    CP311,
    EXT_ABI3,
    EXT_X86,
    LocalIndex,
    Prewheel,
    parse_requirements_txt,
    read_manifest,
    sha256_file,
    snapshot,
)
from tests.localindex import make_wheel

pytestmark = pytest.mark.functional

WriteRequirements = Callable[..., Path]
TEXT_FILES = ("manifest.json", "install.sh", "pylock.*.toml", "requirements.*.txt")


def _text_files(wheelhouse: Path) -> list[Path]:
    found = sorted({p for pattern in TEXT_FILES for p in wheelhouse.glob(pattern)})
    assert found, f"no text files in {wheelhouse}"
    return found


def test_build_picks_best_wheel_and_pins_each_with_its_hash(
    prewheel: Prewheel,
    local_index: LocalIndex,
    write_requirements: WriteRequirements,
    tmp_path: Path,
) -> None:
    out = tmp_path / "wheelhouse"
    summary = prewheel.build(write_requirements("demo-app\n"), [CP311], out, local_index.index_url)

    assert summary["verify"]["ok"] is True
    # The x86_64 cp311 wheel outranks the abi3 one; the aarch64 one does not fit at all.
    assert sorted(p.name for p in out.glob("*.whl")) == [
        "demo_app-1.0-py3-none-any.whl",
        f"demo_ext-2.0-{EXT_X86}.whl",
        "demo_lib-1.2-py3-none-any.whl",
    ]
    for name in ("manifest.json", "install.sh", f"pylock.{CP311}.toml"):
        assert (out / name).is_file(), name

    pins = parse_requirements_txt(out / f"requirements.{CP311}.txt")
    assert {name: version for name, (version, _) in pins.items()} == {
        "demo-app": "1.0",
        "demo-ext": "2.0",
        "demo-lib": "1.2",
    }
    manifest_pins = {p["name"]: p for p in read_manifest(out)["targets"][CP311]["pins"]}
    for name, (_, hashes) in pins.items():
        assert len(hashes) == 1, f"{name} has {len(hashes)} hashes"
        on_disk = sha256_file(out / manifest_pins[name]["file"])
        assert hashes == [on_disk], name
    assert {h for _, (_, [h]) in pins.items()} == {sha256_file(p) for p in out.glob("*.whl")}

    verified = prewheel.ok("verify", out)
    assert "complete and intact" in verified.stdout


def test_outputs_carry_no_credentials_and_no_host_paths(
    prewheel: Prewheel,
    local_index: LocalIndex,
    write_requirements: WriteRequirements,
    tmp_path: Path,
) -> None:
    port = local_index.server.port
    index_url = f"http://user:secret@127.0.0.1:{port}/simple"
    out = tmp_path / "wheelhouse"
    requirements = write_requirements("demo-app\n")

    result = prewheel.ok(
        "build", "-v", "-r", requirements, "-t", CP311, "-o", out, "--index-url", index_url
    )

    assert "secret" not in result.stdout
    assert "secret" not in result.stderr
    host_paths = {
        str(tmp_path),
        str(tmp_path.resolve()),
        str(local_index.root),
        str(prewheel.cache),
        str(Path.home()),
        sys.prefix,
        "file://",
    }
    for path in _text_files(out):
        text = path.read_text(encoding="utf-8")
        assert "secret" not in text, path.name
        assert "user@" not in text, path.name
        for host_path in host_paths:
            assert host_path not in text, f"{path.name} names {host_path}"
    # The download addresses kept for `prewheel fetch` are stored without credentials too.
    for path in prewheel.cache.rglob("*"):
        if path.is_file() and "urls" in path.parts:
            assert "secret" not in path.read_text(encoding="utf-8"), path
    assert read_manifest(out)["indexes"]["index_url"] == f"http://127.0.0.1:{port}/simple"
    prewheel.ok("verify", out)


def test_wheel_first_backs_off_to_the_newest_version_with_a_wheel(
    prewheel: Prewheel,
    local_index: LocalIndex,
    write_requirements: WriteRequirements,
    tmp_path: Path,
) -> None:
    out = tmp_path / "wheelhouse"
    summary = prewheel.build(write_requirements("demo-fast\n"), [CP311], out, local_index.index_url)

    assert summary["total"]["sdist_only"] == 0
    assert [t["sdist_only"] for t in summary["targets"]] == [0]
    assert "demo-fast" in summary["targets"][0]["backed_off"]
    lock = tomllib.loads((out / f"pylock.{CP311}.toml").read_text(encoding="utf-8"))
    assert [(p["name"], p["version"]) for p in lock["packages"]] == [("demo-fast", "1.5")]
    pins = parse_requirements_txt(out / f"requirements.{CP311}.txt")
    assert pins["demo-fast"][0] == "1.5"
    assert [p.name for p in out.glob("*.whl")] == [
        "demo_fast-1.5-py3-none-manylinux_2_17_x86_64.whl"
    ]
    prewheel.ok("verify", out)


def test_no_build_with_an_sdist_only_pin_fails_and_leaves_the_wheelhouse(
    prewheel: Prewheel,
    local_index: LocalIndex,
    write_requirements: WriteRequirements,
    existing_wheelhouse: Path,
) -> None:
    before = snapshot(existing_wheelhouse)

    result = prewheel(
        "build",
        "-r",
        write_requirements("demo-only-src==1.0\n"),
        "-t",
        CP311,
        "-o",
        existing_wheelhouse,
        "--index-url",
        local_index.index_url,
        "--no-build",
    )

    assert result.returncode == 6, result.stderr
    error = result.stderr.splitlines()[-1]
    assert error.startswith("prewheel: error:")
    assert "demo-only-src" in error and "--no-build" in error
    assert CP311 in error
    assert "Traceback" not in result.stderr
    assert snapshot(existing_wheelhouse) == before
    prewheel.ok("verify", existing_wheelhouse)


def test_markers_are_evaluated_for_each_target(
    prewheel: Prewheel,
    local_index: LocalIndex,
    write_requirements: WriteRequirements,
    tmp_path: Path,
) -> None:
    out = tmp_path / "wheelhouse"
    prewheel.build(write_requirements("demo-app\n"), [CP39, CP311], out, local_index.index_url)

    old = parse_requirements_txt(out / f"requirements.{CP39}.txt")
    new = parse_requirements_txt(out / f"requirements.{CP311}.txt")
    assert "demo-backport" in old  # python_version < "3.10" holds on 3.9
    assert "demo-backport" not in new
    # Each target gets the best demo-ext wheel that it can install.
    assert old["demo-ext"][1] == [sha256_file(out / f"demo_ext-2.0-{EXT_ABI3}.whl")]
    assert new["demo-ext"][1] == [sha256_file(out / f"demo_ext-2.0-{EXT_X86}.whl")]

    manifest = read_manifest(out)
    assert sorted(manifest["targets"]) == sorted([CP39, CP311])
    assert manifest["files"]["demo_backport-1.0-py3-none-any.whl"]["targets"] == [CP39]
    for target in (CP39, CP311):
        assert (out / f"pylock.{target}.toml").is_file()
        prewheel.ok("verify", out, "-t", target)
    prewheel.ok("verify", out)


def test_rebuild_downloads_nothing_and_repairs_a_damaged_wheel(
    prewheel: Prewheel,
    local_index: LocalIndex,
    write_requirements: WriteRequirements,
    tmp_path: Path,
) -> None:
    out = tmp_path / "wheelhouse"
    requirements = write_requirements("demo-app\n")
    first = prewheel.build(requirements, [CP311], out, local_index.index_url)
    assert first["total"]["downloaded"] == 3
    built = snapshot(out)

    mark = len(local_index.server.recorded())
    second = prewheel.build(requirements, [CP311], out, local_index.index_url)
    assert second["total"]["downloaded"] == 0
    assert second["total"]["downloaded_bytes"] == 0
    assert local_index.file_requests(mark) == []
    assert snapshot(out) == built

    wheel = out / "demo_lib-1.2-py3-none-any.whl"
    good = wheel.read_bytes()
    damaged = bytearray(good)
    damaged[len(damaged) // 2] ^= 0xFF
    wheel.write_bytes(bytes(damaged))

    result = prewheel("verify", out)
    assert result.returncode == 5, result.stderr
    assert wheel.name in result.stderr.splitlines()[-1]
    assert "Traceback" not in result.stderr

    mark = len(local_index.server.recorded())
    repaired = prewheel.build(requirements, [CP311], out, local_index.index_url)
    assert repaired["total"]["downloaded"] == 0
    assert repaired["total"]["downloaded_bytes"] == 0
    assert local_index.file_requests(mark) == []
    assert wheel.read_bytes() == good
    prewheel.ok("verify", out)


def test_lock_then_fetch_gives_the_same_wheelhouse_as_build(
    prewheel: Prewheel,
    local_index: LocalIndex,
    write_requirements: WriteRequirements,
    tmp_path: Path,
) -> None:
    requirements = write_requirements("demo-app\n")
    targets = [CP311, CP39]
    staged = tmp_path / "staged"
    built = tmp_path / "built"

    target_args = [arg for target in targets for arg in ("-t", target)]
    prewheel.ok(
        "lock", "-r", requirements, *target_args, "-o", staged, "--index-url", local_index.index_url
    )
    assert not list(staged.glob("*.whl"))
    prewheel.ok("fetch", "-o", staged, "--index-url", local_index.index_url)
    prewheel.with_cache(tmp_path / "other-cache").build(
        requirements, targets, built, local_index.index_url
    )

    for target in targets:
        name = f"requirements.{target}.txt"
        assert (staged / name).read_text(encoding="utf-8") == (built / name).read_text(
            encoding="utf-8"
        )
    assert read_manifest(staged) == read_manifest(built)
    assert sorted(p.name for p in staged.glob("*.whl")) == sorted(
        p.name for p in built.glob("*.whl")
    )
    prewheel.ok("verify", staged)


def test_find_links_folder_relative_to_the_working_directory(
    prewheel: Prewheel,
    local_index: LocalIndex,
    write_requirements: WriteRequirements,
    tmp_path: Path,
) -> None:
    # A wheel that only the local folder has, given as `--find-links wheels` from the cwd.
    local = make_wheel(prewheel.cwd / "wheels", "demo-local", "3.0")
    out = tmp_path / "wheelhouse"
    prewheel.build(
        write_requirements("demo-local\ndemo-lib\n"),
        [CP311],
        out,
        local_index.index_url,
        "--find-links",
        "wheels",
    )

    pins = parse_requirements_txt(out / f"requirements.{CP311}.txt")
    assert pins["demo-local"] == ("3.0", [sha256_file(local)])
    assert (out / local.name).read_bytes() == local.read_bytes()
    manifest = read_manifest(out)
    assert manifest["files"][local.name]["index"] == "find-links"
    assert manifest["indexes"]["find_links"] == ["wheels"]
    prewheel.ok("verify", out)
