"""`prewheel merge`: wheelhouses built separately (a CI matrix) combined into one."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.functional.helpers import CP39, CP311, LocalIndex, Prewheel, one_error_line, snapshot

pytestmark = pytest.mark.functional


def test_merge_of_two_single_target_wheelhouses_verifies_for_both(
    prewheel: Prewheel,
    local_index: LocalIndex,
    write_requirements: Callable[..., Path],
    good_wheelhouse: Path,
    tmp_path: Path,
) -> None:
    other = tmp_path / "cp39"
    prewheel.build(write_requirements("demo-app\n"), [CP39], other, local_index.index_url)
    out = tmp_path / "merged"
    result = prewheel.ok("merge", good_wheelhouse, other, "-o", out, "--json")
    summary = json.loads(result.stdout)
    assert sorted(t["target"] for t in summary["targets"]) == sorted([CP39, CP311])
    verified = json.loads(prewheel.ok("verify", out, "--json").stdout)
    assert verified["ok"] is True
    assert sorted(verified["targets"]) == sorted([CP39, CP311])
    manifest = json.loads((out / "manifest.json").read_text())
    assert set(manifest["targets"]) == {CP39, CP311}
    for name in (CP39, CP311):
        assert (out / f"requirements.{name}.txt").is_file()
    script = (out / "install.sh").read_text()
    assert CP39 in script and CP311 in script


def test_merge_refuses_inputs_that_disagree_and_names_both_versions(
    prewheel: Prewheel,
    local_index: LocalIndex,
    write_requirements: Callable[..., Path],
    tmp_path: Path,
) -> None:
    older, newer = tmp_path / "older", tmp_path / "newer"
    prewheel.build(write_requirements("demo-lib==0.9\n"), [CP311], older, local_index.index_url)
    prewheel.build(write_requirements("demo-lib\n"), [CP311], newer, local_index.index_url)
    out = tmp_path / "merged"
    result = prewheel("merge", newer, older, "-o", out)
    assert result.returncode == 2
    error = one_error_line(result)
    assert "demo-lib" in error and "1.2" in error and "0.9" in error
    assert not out.exists()


def test_merge_refuses_an_input_that_does_not_verify(
    prewheel: Prewheel, existing_wheelhouse: Path, good_wheelhouse: Path, tmp_path: Path
) -> None:
    wheel = next(existing_wheelhouse.glob("demo_lib-*.whl"))
    data = bytearray(wheel.read_bytes())
    data[len(data) // 2] ^= 0xFF
    wheel.write_bytes(bytes(data))
    before = snapshot(existing_wheelhouse)
    result = prewheel("merge", good_wheelhouse, existing_wheelhouse, "-o", tmp_path / "merged")
    assert result.returncode == 5
    assert "does not verify" in one_error_line(result)
    assert snapshot(existing_wheelhouse) == before


def test_differing_versions_across_targets_need_an_explicit_flag(
    prewheel: Prewheel,
    local_index: LocalIndex,
    write_requirements: Callable[..., Path],
    tmp_path: Path,
) -> None:
    old39, new311 = tmp_path / "cp39", tmp_path / "cp311"
    prewheel.build(write_requirements("demo-lib==0.9\n"), [CP39], old39, local_index.index_url)
    prewheel.build(write_requirements("demo-lib\n"), [CP311], new311, local_index.index_url)
    out = tmp_path / "merged"
    refused = prewheel("merge", old39, new311, "-o", out)
    assert refused.returncode == 2
    assert "--allow-differing-versions" in one_error_line(refused)
    prewheel.ok("merge", old39, new311, "-o", out, "--allow-differing-versions")
    verified = json.loads(prewheel.ok("verify", out, "--json").stdout)
    assert verified["ok"] is True and sorted(verified["targets"]) == sorted([CP39, CP311])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["targets"][CP39]["requirements"] == ["demo-lib==0.9"]
    assert "requirements" not in manifest["targets"][CP311]
