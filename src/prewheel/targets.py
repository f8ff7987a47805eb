"""Deploy targets: a CPython version on a Linux platform, as a value.

A target knows its wheel tags in pip's priority order and its marker
environment without running on the target machine (see packaging.tags).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Any

from packaging.tags import Tag, compatible_tags, cpython_tags, sys_tags

from prewheel.errors import TargetError

GRAMMAR = (
    "a target is cpXY-PLATFORM with PLATFORM one of manylinux_2_N_ARCH, manylinux2014_ARCH, "
    "manylinux2010_ARCH, manylinux1_ARCH or musllinux_1_N_ARCH and ARCH x86_64 or aarch64 "
    "(e.g. cp311-manylinux_2_17_x86_64), or 'host' for the running interpreter"
)

ARCHES = ("x86_64", "aarch64")
_LEGACY = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
_LEGACY_BY_VERSION = {v: k for k, v in _LEGACY.items()}
# The oldest glibc that each architecture's manylinux tags go down to (PEP 600).
_GLIBC_FLOOR = {"x86_64": 5, "aarch64": 17}
# The manylinux levels that uv's --python-platform accepts, per architecture.
_UV_GLIBC_LEVELS = (17, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40)

_SPEC = re.compile(
    r"^cp(?P<major>3)(?P<minor>\d{1,2})-"
    r"(?P<platform>(?P<legacy>manylinux1|manylinux2010|manylinux2014)_(?P<larch>\w+)"
    r"|manylinux_(?P<gmaj>\d+)_(?P<gmin>\d+)_(?P<garch>\w+)"
    r"|musllinux_(?P<mmaj>\d+)_(?P<mmin>\d+)_(?P<march>\w+))$"
)


@dataclass(frozen=True, order=True)
class Target:
    """One deploy target: CPython `python` on `libc` `libc_version` for `arch`."""

    python: tuple[int, int]
    libc: str  # "glibc" (manylinux) or "musl" (musllinux)
    libc_version: tuple[int, int]
    arch: str

    @property
    def name(self) -> str:
        """The canonical spec, e.g. cp311-manylinux_2_17_x86_64; used in file names."""
        return f"{self.interpreter}-{self.platform}"

    @property
    def interpreter(self) -> str:
        return f"cp{self.python[0]}{self.python[1]}"

    @property
    def python_version(self) -> str:
        return f"{self.python[0]}.{self.python[1]}"

    @property
    def platform(self) -> str:
        family = "manylinux" if self.libc == "glibc" else "musllinux"
        return f"{family}_{self.libc_version[0]}_{self.libc_version[1]}_{self.arch}"

    def platforms(self) -> list[str]:
        """Platform tags this target accepts, best first (newest libc level first)."""
        out: list[str] = []
        major, newest = self.libc_version
        if self.libc == "glibc":
            for minor in range(newest, _GLIBC_FLOOR[self.arch] - 1, -1):
                out.append(f"manylinux_{major}_{minor}_{self.arch}")
                legacy = _LEGACY_BY_VERSION.get((major, minor))
                if legacy is not None and (legacy == "manylinux2014" or self.arch == "x86_64"):
                    out.append(f"{legacy}_{self.arch}")
        else:
            out.extend(f"musllinux_{major}_{m}_{self.arch}" for m in range(newest, -1, -1))
        return out

    def tags(self) -> list[Tag]:
        """Every tag a wheel may carry to install here, in pip's order of preference."""
        platforms = self.platforms()
        found = list(cpython_tags(self.python, abis=[self.interpreter], platforms=platforms))
        found.extend(
            compatible_tags(self.python, interpreter=self.interpreter, platforms=platforms)
        )
        return list(dict.fromkeys(found))

    def tag_priority(self) -> dict[Tag, int]:
        """Tag -> rank (0 is best), for choosing among a release's wheels."""
        return {tag: rank for rank, tag in enumerate(self.tags())}

    def markers(self) -> dict[str, str]:
        """The PEP 508 marker environment of a CPython of this version on this platform.

        `python_full_version` is X.Y.0, as uv assumes for `--python-version X.Y`.
        """
        return {
            "implementation_name": "cpython",
            "implementation_version": f"{self.python_version}.0",
            "os_name": "posix",
            "platform_machine": self.arch,
            "platform_python_implementation": "CPython",
            "platform_release": "",
            "platform_system": "Linux",
            "platform_version": "",
            "python_full_version": f"{self.python_version}.0",
            "python_version": self.python_version,
            "sys_platform": "linux",
        }

    @property
    def uv_platform(self) -> str:
        """The closest `uv --python-platform` value that lists no wheel this target rejects."""
        if self.libc == "musl":
            return f"{self.arch}-unknown-linux-musl"
        usable = [lv for lv in _UV_GLIBC_LEVELS if lv <= self.libc_version[1]]
        if not usable:
            # Older than manylinux2014: uv has no such level; 2_17 lists a superset,
            # and fetch filters by this target's own tags.
            return f"{self.arch}-manylinux_2_17"
        return f"{self.arch}-manylinux_2_{usable[-1]}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "python": self.python_version,
            "platform": self.platform,
            "markers": self.markers(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Target:
        return parse_target(str(data["name"]))


def parse_target(spec: str) -> Target:
    """Parse a target spec such as `cp311-manylinux_2_17_x86_64` or `host`."""
    text = spec.strip()
    if text == "host":
        return host_target()
    match = _SPEC.match(text)
    if match is None:
        raise TargetError(f"bad target {spec!r}: {GRAMMAR}")
    minor = int(match["minor"])
    if not 6 <= minor <= 99:
        raise TargetError(f"bad target {spec!r}: CPython 3.{minor} is not a Python 3 release")
    if match["legacy"]:
        libc, version, arch = "glibc", _LEGACY[match["legacy"]], match["larch"]
    elif match["garch"]:
        libc, version, arch = "glibc", (int(match["gmaj"]), int(match["gmin"])), match["garch"]
    else:
        libc, version, arch = "musl", (int(match["mmaj"]), int(match["mmin"])), match["march"]
    if arch not in ARCHES:
        raise TargetError(f"bad target {spec!r}: architecture {arch!r} is not supported; {GRAMMAR}")
    if libc == "glibc" and (version[0] != 2 or version[1] < _GLIBC_FLOOR[arch]):
        raise TargetError(
            f"bad target {spec!r}: manylinux for {arch} starts at glibc 2.{_GLIBC_FLOOR[arch]}; "
            f"{GRAMMAR}"
        )
    if libc == "glibc" and match["legacy"] == "manylinux1" and arch != "x86_64":
        raise TargetError(f"bad target {spec!r}: manylinux1 exists only for x86_64; {GRAMMAR}")
    if libc == "musl" and version[0] != 1:
        raise TargetError(f"bad target {spec!r}: musllinux versions are 1_N; {GRAMMAR}")
    return Target(python=(3, minor), libc=libc, libc_version=version, arch=arch)


def host_target() -> Target:
    """The running interpreter as a target: its Python version and best Linux platform tag."""
    if sys.implementation.name != "cpython" or not sys.platform.startswith("linux"):
        raise TargetError(
            "target 'host' needs CPython on Linux; name a target instead, "
            "e.g. cp311-manylinux_2_17_x86_64"
        )
    for tag in sys_tags():
        try:
            candidate = parse_target(f"cp{sys.version_info[0]}{sys.version_info[1]}-{tag.platform}")
        except TargetError:
            continue
        return candidate
    raise TargetError("target 'host': this interpreter supports no manylinux or musllinux tag")


def parse_targets(specs: list[str]) -> list[Target]:
    """Parse and de-duplicate target specs, keeping the order given."""
    out: list[Target] = []
    for spec in specs:
        target = parse_target(spec)
        if target not in out:
            out.append(target)
    if not out:
        raise TargetError(
            f"no target given: pass -t, for example -t cp311-manylinux_2_17_x86_64 ({GRAMMAR})"
        )
    return out
