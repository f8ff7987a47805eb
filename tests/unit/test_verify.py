from __future__ import annotations

import hashlib
from pathlib import Path

from prewheel.emit.script import SCRIPT, render_install_script
from prewheel.targets import Target, parse_target
from prewheel.verify import verify
from prewheel.wheelhouse import Manifest, PinEntry, TargetEntry, write_manifest, write_target
from tests.localindex import make_wheel

CP311 = parse_target("cp311-manylinux_2_17_x86_64")
CP39 = parse_target("cp39-manylinux_2_17_x86_64")


def pin_for(path: Path, name: str, version: str) -> PinEntry:
    data = path.read_bytes()
    return PinEntry(name, version, path.name, hashlib.sha256(data).hexdigest(), len(data))


def house(
    folder: Path,
    wheels: dict[str, tuple[str, dict[str, object]]],
    roots: tuple[str, ...],
    targets: tuple[Target, ...] = (CP311,),
) -> None:
    """A wheelhouse of synthetic wheels: {name: (version, make_wheel kwargs)}."""
    pins = []
    for name, (version, kwargs) in wheels.items():
        path = make_wheel(folder, name, version, **kwargs)  # type: ignore[arg-type]
        pins.append(pin_for(path, name, version))
    entries = tuple(TargetEntry(t, tuple(pins), roots) for t in targets)
    for e in entries:
        write_target(folder, e)
    (folder / SCRIPT).write_text(render_install_script(targets))
    write_manifest(folder, Manifest(roots, entries))


def test_complete_wheelhouse_verifies(tmp_path: Path) -> None:
    house(
        tmp_path,
        {
            "app": ("1.0", {"requires_dist": ["lib>=1", "extra-dep; extra == 'fast'"]}),
            "lib": ("1.2", {}),
            "extra-dep": ("0.1", {}),
        },
        ("app[fast]",),
    )
    report = verify(tmp_path)
    assert report.ok, report.problems
    assert report.targets == (CP311.name,)


def test_damaged_wheel_is_named(tmp_path: Path) -> None:
    house(tmp_path, {"app": ("1.0", {})}, ("app",))
    wheel = next(tmp_path.glob("app-*.whl"))
    data = bytearray(wheel.read_bytes())
    data[len(data) // 2] ^= 0xFF
    wheel.write_bytes(bytes(data))
    report = verify(tmp_path)
    assert not report.ok
    assert any(p.file == wheel.name and "sha256" in p.message for p in report.problems)


def test_missing_wheel_and_missing_dependency_are_both_reported(tmp_path: Path) -> None:
    house(tmp_path, {"app": ("1.0", {"requires_dist": ["lib>=2"]}), "lib": ("1.0", {})}, ("app",))
    next(tmp_path.glob("app-*.whl")).rename(tmp_path / "elsewhere.zip")
    report = verify(tmp_path)
    messages = [str(p) for p in report.problems]
    assert any("missing" in m and "app" in m for m in messages), messages


def test_unsatisfied_requirement_names_the_dependency(tmp_path: Path) -> None:
    house(tmp_path, {"app": ("1.0", {"requires_dist": ["lib>=2"]}), "lib": ("1.0", {})}, ("app",))
    messages = [str(p) for p in verify(tmp_path).problems]
    assert any("lib 1.0 does not satisfy lib>=2" in m for m in messages), messages


def test_closure_uses_the_targets_markers(tmp_path: Path) -> None:
    kwargs = {"requires_dist": ["backport; python_version < '3.10'"]}
    house(tmp_path, {"app": ("1.0", kwargs)}, ("app",), targets=(CP311,))
    assert verify(tmp_path).ok
    house(tmp_path, {"app": ("1.0", kwargs)}, ("app",), targets=(CP39,))
    messages = [str(p) for p in verify(tmp_path).problems]
    assert any("backport is required by app 1.0 but not pinned" in m for m in messages)


def test_requires_python_excluding_the_target_is_a_problem(tmp_path: Path) -> None:
    house(tmp_path, {"app": ("1.0", {"requires_python": ">=3.12"})}, ("app",))
    messages = [str(p) for p in verify(tmp_path).problems]
    assert any("Requires-Python >=3.12 excludes 3.11" in m for m in messages)


def test_wheel_for_another_platform_is_a_problem(tmp_path: Path) -> None:
    house(tmp_path, {"ext": ("1.0", {"tag": "cp311-cp311-manylinux_2_17_aarch64"})}, ("ext",))
    messages = [str(p) for p in verify(tmp_path).problems]
    assert any("do not fit" in m for m in messages)


def test_requirements_file_must_match_the_manifest(tmp_path: Path) -> None:
    house(tmp_path, {"app": ("1.0", {})}, ("app",))
    req = tmp_path / f"requirements.{CP311.name}.txt"
    req.write_text(req.read_text().replace("app==1.0", "app==1.1"))
    messages = [str(p) for p in verify(tmp_path).problems]
    assert any("pins 1.1" in m for m in messages)


def test_nonsense_or_missing_manifest_is_reported(tmp_path: Path) -> None:
    report = verify(tmp_path)
    assert not report.ok and "missing" in report.problems[0].message
    (tmp_path / "manifest.json").write_text("{nonsense")
    report = verify(tmp_path)
    assert not report.ok and "not a prewheel manifest" in report.problems[0].message
