"""Properties of the target parser and of tag order (issue 5): any spec either parses
into a target whose tags packaging accepts, or raises TargetError with one line."""

from __future__ import annotations

import re
from typing import Any

from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from packaging.tags import Tag, parse_tag

from prewheel.errors import TargetError
from prewheel.targets import Target, parse_target

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Each piece is usually a plausible one and sometimes junk, so that both outcomes come
# up often: numbers may be huge (a typo such as manylinux_2_170, or a runaway 2_100000
# that must give an error rather than a tag list of millions).
NUMBERS = st.one_of(st.integers(0, 45), st.integers(0, 10**6), st.integers(0, 10**40))


def _mostly(good: st.SearchStrategy[Any], junk: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    # one_of would pick each branch about as often; this is four to one.
    return st.integers(0, 4).flatmap(lambda pick: junk if pick == 0 else good)


ARCH = _mostly(
    st.sampled_from(["x86_64", "aarch64", "arm64"]),
    st.one_of(
        st.sampled_from(["i686", "ppc64le", "s390x", "universal2", "amd64", "X86_64", ""]),
        st.from_regex(r"\A[a-z0-9_]{1,8}\Z"),
    ),
)
INTERPRETER = _mostly(
    st.integers(8, 14).map(lambda minor: f"cp3{minor}"),
    st.one_of(
        st.integers(0, 120).map(lambda minor: f"cp3{minor}"),
        st.sampled_from(["cp2", "cp27", "py3", "pp310", "cp3", "CP311", "cp3x", "cp308"]),
        st.text(max_size=6),
    ),
)
PLATFORM = st.one_of(
    st.builds(
        "manylinux_{}_{}_{}".format,
        _mostly(st.just(2), NUMBERS),
        _mostly(st.integers(5, 40), NUMBERS),
        ARCH,
    ),
    st.builds(
        "{}_{}".format, st.sampled_from(["manylinux1", "manylinux2010", "manylinux2014"]), ARCH
    ),
    st.builds(
        "musllinux_{}_{}_{}".format,
        _mostly(st.just(1), NUMBERS),
        _mostly(st.integers(0, 5), NUMBERS),
        ARCH,
    ),
    st.builds(
        "macosx_{}_{}_{}".format,
        _mostly(st.integers(10, 26), NUMBERS),
        _mostly(st.integers(0, 16), NUMBERS),
        ARCH,
    ),
    st.builds(
        "win_{}".format,
        st.one_of(st.sampled_from(["amd64", "arm64", "x86", "ia64", "32"]), st.text(max_size=6)),
    ),
    st.text(max_size=20),
)
PADDING = st.sampled_from(["", " ", "\t", "\n", "-", "_"])
SPEC = st.builds("{}-{}".format, INTERPRETER, PLATFORM)
SPECS = _mostly(
    SPEC, st.one_of(st.builds("{}{}{}".format, PADDING, SPEC, PADDING), st.text(max_size=40))
)


def _check_target(target: Target) -> None:
    tags = target.tags()
    assert tags, target
    for tag in tags:
        parsed = parse_tag(str(tag))
        assert parsed == frozenset({tag}), tag
        assert str(next(iter(parsed))) == str(tag)
    assert len(set(tags)) == len(tags), "a tag is listed twice"
    first = tags[0]
    assert (first.interpreter, first.abi) == (target.interpreter, target.interpreter)
    expected = target.platform
    if target.system == "macos" and target.libc_version[0] >= 11:
        # packaging (and so pip) names macOS 11 and later by major release only.
        expected = f"macosx_{target.libc_version[0]}_0_{target.arch}"
    assert first.platform == expected, (target.name, first)
    # The canonical name is itself a spec for the same target.
    assert parse_target(target.name) == target


@FAST
@given(SPECS)
@example("cp311-manylinux_2_17_x86_64")
@example("cp312-manylinux2014_aarch64")
@example("cp38-manylinux1_x86_64")
@example("cp313-musllinux_1_2_aarch64")
@example("cp312-macosx_11_0_arm64")
@example("cp39-macosx_10_9_x86_64")
@example("cp311-win_amd64")
@example("cp311-windows_x86")
@example("cp311-manylinux_2_100000_x86_64")
@example("cp311-macosx_10_99999999_x86_64")
@example("cp311-manylinux_2_" + "1" * 5000 + "_x86_64")
@example("x\n.json")
@example("x\x00.json")
@example("")
def test_a_spec_parses_into_valid_tags_or_raises_one_line_target_error(spec: str) -> None:
    try:
        target = parse_target(spec)
    except TargetError as exc:
        message = str(exc)
        assert message and "\n" not in message and "\r" not in message, repr(message)
        event("TargetError")
        return
    event(f"parsed: {target.system}")
    _check_target(target)


GLIBC_SPECS = st.builds(
    lambda minor, arch, glibc: f"cp3{minor}-manylinux_2_{glibc}_{arch}",
    st.integers(8, 14),
    st.sampled_from(["x86_64", "aarch64"]),
    st.integers(17, 45),
) | st.builds(
    lambda minor, legacy: f"cp3{minor}-{legacy}_x86_64",
    st.integers(8, 14),
    st.sampled_from(["manylinux1", "manylinux2010", "manylinux2014"]),
)
_MANYLINUX = re.compile(r"^manylinux_2_(\d+)_")
_LEGACY = {"manylinux1": 5, "manylinux2010": 12, "manylinux2014": 17}


def _glibc_of(platform: str) -> int | None:
    match = _MANYLINUX.match(platform)
    if match:
        return int(match.group(1))
    return _LEGACY.get(platform.split("_", 1)[0])


@FAST
@given(GLIBC_SPECS)
def test_newer_glibc_ranks_first_and_abis_come_in_pips_order(spec: str) -> None:
    target = parse_target(spec)
    tags = target.tags()
    # Within one interpreter and ABI, a wheel for a newer glibc beats one for an older
    # glibc; a legacy alias ranks right beside its manylinux_2_N twin.
    groups: dict[tuple[str, str], list[int]] = {}
    for tag in tags:
        glibc = _glibc_of(tag.platform)
        if glibc is not None:
            groups.setdefault((tag.interpreter, tag.abi), []).append(glibc)
    assert groups
    for key, levels in groups.items():
        assert levels == sorted(levels, reverse=True), key
        assert levels[0] == target.libc_version[1], key
    rank = {tag: i for i, tag in enumerate(tags)}
    own = [rank[t] for t in tags if t.interpreter == t.abi == target.interpreter]
    abi3 = [rank[t] for t in tags if t.abi == "abi3"]
    any_platform = [rank[t] for t in tags if t.abi == "none" and t.platform == "any"]
    assert own and abi3 and any_platform
    assert max(own) < min(abi3), "cpXY-cpXY before abi3"
    assert max(abi3) < min(any_platform), "abi3 before none-any"
    assert Tag(target.interpreter, target.interpreter, target.platform) == tags[0]
    assert Tag("py3", "none", "any") in rank
