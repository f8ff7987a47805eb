from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from prewheel.errors import DownloadError
from prewheel.fetch import Cache, fetch, into_cache, safe_filename
from prewheel.index import FileRef
from tests.localindex import IndexServer, make_wheel


def ref_for(wheel: Path, **overrides: str) -> FileRef:
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    fields = {"filename": wheel.name, "sha256": digest, "path": str(wheel)}
    fields.update(overrides)
    return FileRef(**fields)  # type: ignore[arg-type]


def test_download_then_cache_then_present(tmp_path: Path) -> None:
    source = make_wheel(tmp_path / "src", "demo", "1.0")
    cache = Cache(tmp_path / "cache")
    dest = tmp_path / "wh"
    dest.mkdir()
    ref = ref_for(source)
    assert fetch([ref, ref], dest, cache)[ref.sha256].how == "copied"
    assert fetch([ref], dest, cache)[ref.sha256].how == "present"
    (dest / source.name).unlink()
    assert fetch([ref], dest, cache)[ref.sha256].how == "cached"
    assert (dest / source.name).read_bytes() == source.read_bytes()


def test_damaged_file_in_wheelhouse_is_replaced_from_cache(tmp_path: Path) -> None:
    source = make_wheel(tmp_path / "src", "demo", "1.0")
    cache, dest = Cache(tmp_path / "cache"), tmp_path / "wh"
    dest.mkdir()
    ref = ref_for(source)
    fetch([ref], dest, cache)
    (dest / source.name).write_bytes(b"damaged")
    assert fetch([ref], dest, cache)[ref.sha256].how == "cached"
    assert hashlib.sha256((dest / source.name).read_bytes()).hexdigest() == ref.sha256


def test_hash_mismatch_is_refused_and_nothing_lands(tmp_path: Path) -> None:
    source = make_wheel(tmp_path / "src", "demo", "1.0")
    cache, dest = Cache(tmp_path / "cache"), tmp_path / "wh"
    dest.mkdir()
    wrong = ref_for(source, sha256="0" * 64)
    with pytest.raises(DownloadError) as info:
        fetch([wrong], dest, cache)
    assert source.name in str(info.value) and "does not match" in str(info.value)
    assert list(dest.iterdir()) == []
    assert not any(p.is_file() for p in (tmp_path / "cache").rglob("*"))


def test_http_download_is_verified_and_done_once(tmp_path: Path) -> None:
    root = tmp_path / "root"
    wheel = make_wheel(root / "files", "demo", "1.0")
    cache, dest = Cache(tmp_path / "cache"), tmp_path / "wh"
    dest.mkdir()
    with IndexServer(root) as server:
        url = f"{server.url}/files/{wheel.name}"
        ref = ref_for(wheel, url=url, path="")
        got = fetch([ref], dest, cache, jobs=4)
        assert got[ref.sha256].how == "downloaded"
        (dest / wheel.name).unlink()
        assert fetch([ref], dest, cache)[ref.sha256].how == "cached"
        assert server.recorded().count(f"/files/{wheel.name}") == 1


def test_missing_http_file_is_a_download_error(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    with IndexServer(root) as server:
        ref = FileRef("demo-1.0-py3-none-any.whl", "a" * 64, url=f"{server.url}/files/nope.whl")
        with pytest.raises(DownloadError, match="HTTP 404"):
            fetch([ref], tmp_path, Cache(tmp_path / "cache"))


@pytest.mark.parametrize(
    "name", ["../evil.whl", "/etc/passwd", "a/b.whl", "x\x00.whl", ".hidden.whl", ""]
)
def test_file_names_that_escape_are_refused(name: str) -> None:
    with pytest.raises(DownloadError, match="not a plain file name"):
        safe_filename(name)


def test_into_cache_prefers_a_kept_copy_and_passes_over_a_damaged_one(tmp_path: Path) -> None:
    source = make_wheel(tmp_path / "src", "demo", "1.0")
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / source.name).write_bytes(source.read_bytes())
    ref = ref_for(source)
    # The kept copy serves even when the lock's own address is gone.
    gone = ref_for(source, path=str(tmp_path / "gone" / source.name))
    assert into_cache(gone, Cache(tmp_path / "c1"), extra=kept).read_bytes() == source.read_bytes()

    (kept / source.name).write_bytes(b"damaged")
    got = into_cache(ref, Cache(tmp_path / "c2"), extra=kept)
    assert got.read_bytes() == source.read_bytes()
    with pytest.raises(DownloadError, match="does not match"):
        into_cache(ref_for(source, path=""), Cache(tmp_path / "c3"), extra=kept)


def test_wheels_land_readable_by_everyone(tmp_path: Path) -> None:
    source = make_wheel(tmp_path / "src", "demo", "1.0")
    dest = tmp_path / "wh"
    dest.mkdir()
    fetch([ref_for(source)], dest, Cache(tmp_path / "cache"))
    assert (dest / source.name).stat().st_mode & 0o777 == 0o644


def test_an_sdist_under_a_wheels_name_is_refused(tmp_path: Path) -> None:
    from tests.localindex import make_sdist

    sdist = make_sdist(tmp_path / "src", "demo", "1.0")
    disguised = sdist.with_name("demo-1.0-py3-none-any.whl")
    sdist.rename(disguised)
    dest = tmp_path / "wh"
    dest.mkdir()
    with pytest.raises(DownloadError, match="not a wheel"):
        fetch([ref_for(disguised)], dest, Cache(tmp_path / "cache"))
    assert list(dest.iterdir()) == []


def test_a_wheel_of_another_project_under_this_name_is_refused(tmp_path: Path) -> None:
    other = make_wheel(tmp_path / "src", "other", "2.0")
    renamed = other.with_name("demo-1.0-py3-none-any.whl")
    other.rename(renamed)
    dest = tmp_path / "wh"
    dest.mkdir()
    with pytest.raises(DownloadError, match="not a wheel of demo 1.0"):
        fetch([ref_for(renamed)], dest, Cache(tmp_path / "cache"))
