from __future__ import annotations

import pytest
from packaging.tags import Tag, parse_tag

from prewheel.errors import TargetError
from prewheel.targets import parse_target, parse_targets


def test_canonical_spec_round_trips() -> None:
    target = parse_target("cp311-manylinux_2_17_x86_64")
    assert target.name == "cp311-manylinux_2_17_x86_64"
    assert target.python_version == "3.11"
    assert target.uv_platform == "x86_64-manylinux_2_17"


@pytest.mark.parametrize(
    ("legacy", "canonical"),
    [
        ("cp311-manylinux2014_x86_64", "cp311-manylinux_2_17_x86_64"),
        ("cp39-manylinux2010_x86_64", "cp39-manylinux_2_12_x86_64"),
        ("cp38-manylinux1_x86_64", "cp38-manylinux_2_5_x86_64"),
        ("cp312-manylinux2014_aarch64", "cp312-manylinux_2_17_aarch64"),
    ],
)
def test_legacy_aliases_map_to_their_glibc(legacy: str, canonical: str) -> None:
    assert parse_target(legacy).name == canonical


def test_tags_come_in_pips_order() -> None:
    tags = parse_target("cp311-manylinux_2_17_x86_64").tags()
    names = [str(t) for t in tags]
    assert names[0] == "cp311-cp311-manylinux_2_17_x86_64"
    assert names[1] == "cp311-cp311-manylinux2014_x86_64"
    assert names.index("cp311-cp311-manylinux_2_5_x86_64") < names.index(
        "cp311-abi3-manylinux_2_17_x86_64"
    )
    assert "cp32-abi3-manylinux1_x86_64" in names
    assert "cp311-none-any" in names and names[-1].endswith("none-any")
    assert names.index("py3-none-any") > names.index("cp32-abi3-manylinux1_x86_64")
    assert not any(t.platform == "linux_x86_64" for t in tags)
    assert not any("aarch64" in n or "musllinux" in n or "2_18" in n for n in names)


def test_aarch64_stops_at_manylinux2014() -> None:
    platforms = parse_target("cp312-manylinux_2_28_aarch64").platforms()
    assert platforms[0] == "manylinux_2_28_aarch64"
    assert platforms[-2:] == ["manylinux_2_17_aarch64", "manylinux2014_aarch64"]
    assert parse_target("cp312-manylinux_2_28_aarch64").uv_platform == "aarch64-manylinux_2_28"


def test_musllinux_levels_go_down_to_1_0() -> None:
    target = parse_target("cp312-musllinux_1_2_x86_64")
    assert target.platforms() == [
        "musllinux_1_2_x86_64",
        "musllinux_1_1_x86_64",
        "musllinux_1_0_x86_64",
    ]
    assert target.uv_platform == "x86_64-unknown-linux-musl"
    assert target.markers()["sys_platform"] == "linux"


def test_uv_platform_never_lists_wheels_the_target_rejects() -> None:
    # glibc 2.27 is between uv's levels: take the lower one, never 2_28.
    assert parse_target("cp311-manylinux_2_27_x86_64").uv_platform == "x86_64-manylinux_2_17"
    assert parse_target("cp311-manylinux_2_12_x86_64").uv_platform == "x86_64-manylinux_2_17"


def test_markers_are_the_targets_not_the_hosts() -> None:
    markers = parse_target("cp39-manylinux_2_28_aarch64").markers()
    assert markers["python_version"] == "3.9"
    assert markers["python_full_version"] == "3.9.0"
    assert markers["platform_machine"] == "aarch64"
    assert markers["platform_system"] == "Linux"
    assert markers["implementation_name"] == "cpython"


@pytest.mark.parametrize(
    "spec",
    [
        "cp311",
        "cp311-win32",
        "cp311-macosx_10_9_arm64",
        "cp311-macosx_11_0_ppc",
        "py311-manylinux_2_17_x86_64",
        "cp311-manylinux_2_17_riscv64",
        "cp311-manylinux_2_4_x86_64",
        "cp311-manylinux_2_12_aarch64",
        "cp311-manylinux1_aarch64",
        "cp311-musllinux_2_1_x86_64",
        "cp27-manylinux_2_17_x86_64",
        "cp308-manylinux_2_17_x86_64",
        "",
    ],
)
def test_bad_specs_explain_the_grammar(spec: str) -> None:
    with pytest.raises(TargetError) as info:
        parse_target(spec)
    message = str(info.value)
    assert "\n" not in message
    assert "cp311-manylinux_2_17_x86_64" in message


def test_parse_targets_deduplicates_and_needs_one() -> None:
    targets = parse_targets(["cp311-manylinux2014_x86_64", "cp311-manylinux_2_17_x86_64"])
    assert [t.name for t in targets] == ["cp311-manylinux_2_17_x86_64"]
    with pytest.raises(TargetError):
        parse_targets([])


def test_host_is_the_running_interpreter() -> None:
    import sys

    if not sys.platform.startswith("linux"):
        pytest.skip("host targets are Linux only")
    target = parse_target("host")
    assert target.python == sys.version_info[:2]
    tags = target.tags()
    assert all(isinstance(t, Tag) for t in tags)
    assert all(parse_tag(str(t)) == {t} for t in tags[:50])


def test_windows_targets_have_windows_markers() -> None:
    target = parse_target("cp312-win_amd64")
    assert target.name == "cp312-win_amd64"
    markers = target.markers()
    assert markers["sys_platform"] == "win32"
    assert markers["os_name"] == "nt"
    assert markers["platform_machine"] == "AMD64"
    assert target.uv_platform == "x86_64-pc-windows-msvc"
    names = [str(t) for t in target.tags()]
    assert names[0] == "cp312-cp312-win_amd64" and "py3-none-any" in names
    assert not any("linux" in n for n in names)


def test_macos_targets_accept_older_and_universal_wheels() -> None:
    target = parse_target("cp312-macosx_11_0_arm64")
    assert target.markers()["sys_platform"] == "darwin"
    assert target.uv_platform == "aarch64-apple-darwin"
    assert target.uv_environment() == {"MACOSX_DEPLOYMENT_TARGET": "11.0"}
    platforms = target.platforms()
    assert platforms[0] == "macosx_11_0_arm64"
    assert "macosx_10_9_universal2" in platforms
    assert "macosx_12_0_arm64" not in platforms


@pytest.mark.parametrize("minor", range(8, 15))
def test_every_supported_python_parses(minor: int) -> None:
    target = parse_target(f"cp3{minor}-manylinux_2_28_aarch64")
    assert str(target.tags()[0]) == f"cp3{minor}-cp3{minor}-manylinux_2_28_aarch64"
