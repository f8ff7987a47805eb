"""The same service on an ARM host (issue 2, "Done when" 3): every wheel is aarch64 or pure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from packaging.utils import parse_wheel_filename

from prewheel.targets import parse_target

from .conftest import PrewheelRunner

pytestmark = pytest.mark.integration

TARGET = "cp312-manylinux_2_28_aarch64"


def test_build_and_verify_for_aarch64(
    prewheel: PrewheelRunner, render_fastapi_requirements: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "wheelhouse"
    summary = prewheel(
        "build", "-r", render_fastapi_requirements, "-t", TARGET, "-o", folder, "--json"
    ).json()
    (row,) = summary["targets"]
    assert row["target"] == TARGET
    assert row["sdist_only"] == 0
    assert summary["verify"] == {"ok": True, "problems": []}

    verified = prewheel("verify", folder, "--json").json()
    assert verified["ok"] is True, verified
    assert verified["targets"] == [TARGET]

    manifest = json.loads((folder / "manifest.json").read_text())
    pinned = {p["file"] for p in manifest["targets"][TARGET]["pins"]}
    wheels = sorted(folder.glob("*.whl"))
    assert {w.name for w in wheels} == pinned
    assert len(wheels) == row["pins"] > 0

    accepted = set(parse_target(TARGET).tags())
    binary = []
    for wheel in wheels:
        _, _, _, wheel_tags = parse_wheel_filename(wheel.name)
        platforms = {t.platform for t in wheel_tags}
        assert all(p == "any" or p.endswith("_aarch64") for p in platforms), (
            f"{wheel.name} is neither aarch64 nor pure"
        )
        assert wheel_tags & accepted, f"{wheel.name} does not install on {TARGET}"
        if platforms != {"any"}:
            binary.append(wheel.name)
    # The scenario's whole point: the C and Rust packages arrive as aarch64 wheels.
    for name in ("cryptography", "bcrypt", "argon2_cffi_bindings", "pydantic_core"):
        assert any(w.startswith(f"{name}-") for w in binary), f"no aarch64 wheel of {name}"
