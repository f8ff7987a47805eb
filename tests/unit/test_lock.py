from __future__ import annotations

from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from prewheel.errors import IndexUnreachableError, ResolutionError
from prewheel.index import FileRef
from prewheel.lock import Pin, _classify, _hold_to_lock, _LockedPin, read_pylock
from prewheel.targets import parse_target

TARGET = parse_target("cp311-manylinux_2_17_x86_64")
REQ = Path("requirements.in")


def test_unknown_package_is_named() -> None:
    err = _classify(
        TARGET,
        REQ,
        "error: No solution found when resolving dependencies\n"
        "  cause: Because nosuchpkg was not found in the package registry and you require "
        "nosuchpkg, we can conclude that your requirements are unsatisfiable.\n",
    )
    assert isinstance(err, ResolutionError)
    assert "nosuchpkg was not found" in str(err) and TARGET.name in str(err)


def test_unsatisfiable_pins_show_the_cause() -> None:
    err = _classify(
        TARGET,
        REQ,
        "error: No solution found when resolving dependencies\n"
        "  cause: Because there is no version of anyio==99.0 and you require anyio==99.0, "
        "we can conclude that your requirements are unsatisfiable.\n",
    )
    assert isinstance(err, ResolutionError)
    assert "anyio==99.0" in str(err) and "\n" not in str(err)


def test_unreachable_index_hides_credentials() -> None:
    err = _classify(
        TARGET,
        REQ,
        "error: Request failed after 3 retries\n"
        "  cause: Failed to fetch: http://u:secret@127.0.0.1:9/simple/anyio/\n"
        "  cause: Connection refused (os error 111)\n",
    )
    assert isinstance(err, IndexUnreachableError)
    assert "secret" not in str(err) and "127.0.0.1:9" in str(err)


def test_read_pylock_keeps_packages_whose_markers_hold(tmp_path: Path) -> None:
    path = tmp_path / "pylock.toml"
    path.write_text(
        'lock-version = "1.0"\ncreated-by = "uv"\n\n'
        '[[packages]]\nname = "tomli"\nversion = "2.0.1"\nmarker = "python_version < \'3.11\'"\n'
        'wheels = [{ url = "https://files.invalid/tomli-2.0.1-py3-none-any.whl", size = 1, '
        'hashes = { sha256 = "' + "a" * 64 + '" } }]\n\n'
        '[[packages]]\nname = "click"\nversion = "8.1.7"\n'
        'wheels = [{ url = "https://files.invalid/click-8.1.7-py3-none-any.whl", size = 2, '
        'hashes = { sha256 = "' + "b" * 64 + '" } }]\n'
    )
    pins = read_pylock(path, TARGET)
    assert [(p.name, p.version) for p in pins] == [("click", "8.1.7")]
    assert pins[0].wheels[0].filename == "click-8.1.7-py3-none-any.whl"
    assert [p.name for p in read_pylock(path, parse_target("cp39-manylinux_2_17_x86_64"))] == [
        "click",
        "tomli",
    ]


def _pin(name: str, *shas: str) -> Pin:
    wheels = tuple(FileRef(f"{name}-1.0-py3-none-any.whl", sha) for sha in shas)
    return Pin(canonicalize_name(name), "1.0", wheels)


def test_locked_hashes_choose_among_the_files() -> None:
    pins = (_pin("demo", "a" * 64, "b" * 64),)
    locked = {"demo": _LockedPin("1.0", frozenset({"b" * 64}), "requirements.txt:3")}
    kept, added = _hold_to_lock(TARGET, Path("requirements.txt"), pins, locked, False)
    assert [w.sha256 for w in kept[0].wheels] == ["b" * 64]
    assert added == ()


def test_locked_hashes_that_match_no_file_name_the_pin_and_the_line() -> None:
    pins = (_pin("demo", "a" * 64),)
    locked = {"demo": _LockedPin("1.0", frozenset({"c" * 64}), "requirements.txt:3")}
    with pytest.raises(ResolutionError) as info:
        _hold_to_lock(TARGET, Path("requirements.txt"), pins, locked, False)
    message = str(info.value)
    assert TARGET.name in message and "demo 1.0" in message
    assert "requirements.txt:3" in message and "\n" not in message


def test_a_locked_pin_without_hashes_keeps_every_file() -> None:
    pins = (_pin("demo", "a" * 64, "b" * 64),)
    locked = {"demo": _LockedPin("1.0", frozenset(), "requirements.txt:1")}
    kept, _ = _hold_to_lock(TARGET, Path("requirements.txt"), pins, locked, False)
    assert kept == pins
