"""Deploy targets: a CPython version on a platform, as a value.

A target knows its wheel tags in pip's priority order and its marker
environment without running on the target machine (see packaging.tags). It is
either named by a spec (`cp311-manylinux_2_17_x86_64`, `cp312-win_amd64`) or
captured on the deploy machine itself (`prewheel target capture`), in which case
its tags and markers are exactly the captured ones.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.tags import (
    Tag,
    compatible_tags,
    cpython_tags,
    mac_platforms,
    parse_tag,
    sys_tags,
)

from prewheel.errors import TargetError

GRAMMAR = (
    "a target is cpXY-PLATFORM with PLATFORM one of manylinux_2_N_ARCH, manylinux2014_ARCH, "
    "manylinux2010_x86_64, manylinux1_x86_64, musllinux_1_N_ARCH (ARCH x86_64 or aarch64), "
    "macosx_M_N_ARCH (ARCH arm64 or x86_64), win_amd64 or win_arm64 "
    "(e.g. cp311-manylinux_2_17_x86_64); a target JSON from `prewheel target capture`; "
    "or 'host' for the running interpreter"
)

ARCHES = ("x86_64", "aarch64")
MAC_ARCHES = ("arm64", "x86_64")
WINDOWS = {"win_amd64": "AMD64", "win_arm64": "ARM64"}
_LEGACY = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}
_LEGACY_BY_VERSION = {v: k for k, v in _LEGACY.items()}
# The oldest glibc that each architecture's manylinux tags go down to (PEP 600).
_GLIBC_FLOOR = {"x86_64": 5, "aarch64": 17}
# The manylinux levels that uv's --python-platform accepts, per architecture.
_UV_GLIBC_LEVELS = (17, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40)
_PYTHONS = (8, 14)  # CPython 3.8 to 3.14
# The largest part of a platform version: more is a typo, and each step down to the floor
# is another platform tag (manylinux_2_100000 would list millions of tags).
_MAX_PART = 99

_SPEC = re.compile(
    r"^cp(?P<major>3)(?P<minor>[1-9]\d?|0)-"
    r"(?P<platform>(?P<legacy>manylinux1|manylinux2010|manylinux2014)_(?P<larch>\w+)"
    r"|manylinux_(?P<gmaj>\d+)_(?P<gmin>\d+)_(?P<garch>\w+)"
    r"|musllinux_(?P<mmaj>\d+)_(?P<mmin>\d+)_(?P<march>\w+)"
    r"|macosx_(?P<osmaj>\d+)_(?P<osmin>\d+)_(?P<osarch>\w+)"
    r"|(?P<win>win_\w+))$"
)
MARKER_KEYS = (
    "implementation_name",
    "implementation_version",
    "os_name",
    "platform_machine",
    "platform_python_implementation",
    "platform_release",
    "platform_system",
    "platform_version",
    "python_full_version",
    "python_version",
    "sys_platform",
)
CAPTURE_KEYS = frozenset({"prewheel_target", "name", "python", "markers", "tags", "source"})


@dataclass(frozen=True, order=True)
class Captured:
    """Tags and markers read off a real interpreter (a pex-style complete platform)."""

    name: str
    tags: tuple[str, ...]
    markers: tuple[tuple[str, str], ...]


@dataclass(frozen=True, order=True)
class Target:
    """One deploy target: CPython `python` on `system` ("linux", "macos", "windows").

    On Linux, `libc` is "glibc" (manylinux) or "musl" (musllinux) and `libc_version`
    its version; on macOS `libc_version` is the oldest macOS release to support.
    """

    python: tuple[int, int]
    libc: str
    libc_version: tuple[int, int]
    arch: str
    system: str = "linux"
    captured: Captured | None = None

    @property
    def name(self) -> str:
        """The canonical spec, e.g. cp311-manylinux_2_17_x86_64; used in file names."""
        if self.captured is not None:
            return self.captured.name
        return f"{self.interpreter}-{self.platform}"

    @property
    def interpreter(self) -> str:
        return f"cp{self.python[0]}{self.python[1]}"

    @property
    def python_version(self) -> str:
        return f"{self.python[0]}.{self.python[1]}"

    @property
    def python_full_version(self) -> str:
        """X.Y.Z: the captured one, else X.Y.0 (as uv assumes for `--python-version X.Y`)."""
        return self.markers()["python_full_version"]

    @property
    def platform(self) -> str:
        """The target's best platform tag."""
        major, minor = self.libc_version
        if self.system == "windows":
            return self.arch
        if self.system == "macos":
            return f"macosx_{major}_{minor}_{self.arch}"
        family = "manylinux" if self.libc == "glibc" else "musllinux"
        return f"{family}_{major}_{minor}_{self.arch}"

    @property
    def description(self) -> str:
        """The platform in words, for messages: "aarch64 Linux (glibc)", "macOS arm64"."""
        if self.system == "windows":
            return f"Windows {WINDOWS[self.arch]}"
        if self.system == "macos":
            return f"macOS {self.arch}"
        return f"{self.arch} Linux ({self.libc})"

    def platforms(self) -> list[str]:
        """Platform tags this target accepts, best first."""
        if self.captured is not None:
            return list(dict.fromkeys(parse_tag_one(t).platform for t in self.captured.tags))
        major, newest = self.libc_version
        if self.system == "windows":
            return [self.arch]
        if self.system == "macos":
            return list(mac_platforms((major, newest), self.arch))
        out: list[str] = []
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
        if self.captured is not None:
            return [parse_tag_one(t) for t in self.captured.tags]
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
        """The PEP 508 marker environment of a CPython of this version on this platform."""
        if self.captured is not None:
            return dict(self.captured.markers)
        full = f"{self.python_version}.0"
        if self.system == "windows":
            system = {"os_name": "nt", "sys_platform": "win32", "platform_system": "Windows"}
            machine = WINDOWS[self.arch]
        elif self.system == "macos":
            system = {"os_name": "posix", "sys_platform": "darwin", "platform_system": "Darwin"}
            machine = self.arch
        else:
            system = {"os_name": "posix", "sys_platform": "linux", "platform_system": "Linux"}
            machine = self.arch
        return {
            "implementation_name": "cpython",
            "implementation_version": full,
            "platform_machine": machine,
            "platform_python_implementation": "CPython",
            "platform_release": "",
            "platform_version": "",
            "python_full_version": full,
            "python_version": self.python_version,
            **system,
        }

    @property
    def uv_platform(self) -> str:
        """The closest `uv --python-platform` value that lists no wheel this target rejects.

        uv knows a fixed list of platforms; files are then chosen by the target's own
        tags, so the mapping only has to avoid hiding wheels the target could use.
        """
        if self.system == "windows":
            return (
                "aarch64-pc-windows-msvc" if self.arch == "win_arm64" else "x86_64-pc-windows-msvc"
            )
        if self.system == "macos":
            return "aarch64-apple-darwin" if self.arch == "arm64" else "x86_64-apple-darwin"
        if self.libc == "musl":
            return f"{self.arch}-unknown-linux-musl"
        usable = [lv for lv in _UV_GLIBC_LEVELS if lv <= self.libc_version[1]]
        if not usable:
            # Older than manylinux2014: uv has no such level; 2_17 lists a superset,
            # and fetch filters by this target's own tags.
            return f"{self.arch}-manylinux_2_17"
        return f"{self.arch}-manylinux_2_{usable[-1]}"

    def uv_environment(self) -> dict[str, str]:
        """Variables that tell uv more about the platform than --python-platform can."""
        if self.system == "macos":
            return {"MACOSX_DEPLOYMENT_TARGET": f"{self.libc_version[0]}.{self.libc_version[1]}"}
        return {}

    def capture_dict(self) -> dict[str, Any]:
        """The target as a capture file describes it: name, markers and tags in order."""
        return {
            "prewheel_target": 1,
            "name": self.name,
            "python": self.python_full_version,
            "markers": self.markers(),
            "tags": [str(t) for t in self.tags()],
        }


def parse_tag_one(text: str) -> Tag:
    """A single (uncompressed) tag."""
    found = parse_tag(text)
    if len(found) != 1:
        raise TargetError(f"tag {text!r} is a compressed tag set; list each tag on its own")
    return next(iter(found))


def parse_target(spec: str) -> Target:
    """Parse a target spec such as `cp311-manylinux_2_17_x86_64`, a target JSON, or `host`."""
    text = spec.strip()
    if text == "host":
        return host_target()
    if text.endswith(".json"):
        return load_captured(Path(text))
    match = _SPEC.match(text)
    if match is None:
        raise TargetError(f"bad target {spec!r}: {GRAMMAR}")
    minor = int(match["minor"])
    if not _PYTHONS[0] <= minor <= _PYTHONS[1]:
        raise TargetError(
            f"bad target {spec!r}: CPython 3.{minor} is not supported; use 3.{_PYTHONS[0]} "
            f"to 3.{_PYTHONS[1]}, e.g. cp311-manylinux_2_17_x86_64"
        )
    python = (3, minor)
    parts = ("gmaj", "gmin", "mmaj", "mmin", "osmaj", "osmin")
    if any(match[p] and (len(match[p]) > 4 or int(match[p]) > _MAX_PART) for p in parts):
        raise TargetError(
            f"bad target {spec!r}: platform version numbers go up to {_MAX_PART}; {GRAMMAR}"
        )
    if match["win"]:
        if match["win"] not in WINDOWS:
            raise TargetError(
                f"bad target {spec!r}: Windows targets are win_amd64 or win_arm64; {GRAMMAR}"
            )
        return Target(python, "", (0, 0), match["win"], system="windows")
    if match["osarch"]:
        arch = match["osarch"]
        if arch not in MAC_ARCHES:
            raise TargetError(f"bad target {spec!r}: macOS targets are arm64 or x86_64; {GRAMMAR}")
        version = (int(match["osmaj"]), int(match["osmin"]))
        if version < (10, 9) or (arch == "arm64" and version < (11, 0)):
            raise TargetError(
                f"bad target {spec!r}: macOS {version[0]}.{version[1]} is too old for {arch} "
                f"(arm64 starts at macosx_11_0); {GRAMMAR}"
            )
        return Target(python, "", version, arch, system="macos")
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
    if libc == "glibc" and match["legacy"] in ("manylinux1", "manylinux2010") and arch != "x86_64":
        raise TargetError(
            f"bad target {spec!r}: {match['legacy']} exists only for x86_64; {GRAMMAR}"
        )
    if libc == "musl" and version[0] != 1:
        raise TargetError(f"bad target {spec!r}: musllinux versions are 1_N; {GRAMMAR}")
    return Target(python=python, libc=libc, libc_version=version, arch=arch)


def host_target() -> Target:
    """The running interpreter as a target: its Python version and best platform tag."""
    if sys.implementation.name != "cpython":
        raise TargetError(
            "target 'host' needs CPython; name a target, e.g. cp311-manylinux_2_17_x86_64"
        )
    for tag in sys_tags():
        try:
            return parse_target(f"cp{sys.version_info[0]}{sys.version_info[1]}-{tag.platform}")
        except TargetError:
            continue
    raise TargetError("target 'host': this interpreter has no platform tag prewheel knows")


def load_captured(path: Path) -> Target:
    """A target from the JSON that `prewheel target capture` (or its script) printed."""
    shown = str(path) if str(path).isprintable() else repr(str(path))  # one line, always
    where = f"target file {shown}"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise TargetError(f"{where} not found; write one with `prewheel target capture`") from exc
    except (OSError, ValueError) as exc:  # ValueError: bad JSON, bad UTF-8, NUL in the path
        raise TargetError(
            f"{where} is not JSON ({exc}); write one with `prewheel target capture`"
        ) from exc
    return captured_target(data, where)


def captured_target(data: Any, where: str = "captured target") -> Target:
    """Validate a captured description and turn it into a Target."""
    if not isinstance(data, Mapping) or data.get("prewheel_target") != 1:
        raise TargetError(f'{where}: not a prewheel target description (no "prewheel_target": 1)')
    unknown = sorted(set(data) - CAPTURE_KEYS)
    if unknown:
        raise TargetError(
            f"{where}: unknown keys {', '.join(unknown)}; known: {', '.join(sorted(CAPTURE_KEYS))}"
        )
    markers = data.get("markers")
    if not isinstance(markers, Mapping) or sorted(markers) != sorted(MARKER_KEYS):
        raise TargetError(f'{where}: "markers" must have exactly the keys {", ".join(MARKER_KEYS)}')
    if markers["implementation_name"] != "cpython":
        raise TargetError(
            f"{where}: only CPython targets are supported, not {markers['implementation_name']}"
        )
    raw_tags = data.get("tags")
    if (
        not isinstance(raw_tags, list)
        or not raw_tags
        or not all(isinstance(t, str) for t in raw_tags)
    ):
        raise TargetError(f'{where}: "tags" must be a non-empty list of tag strings')
    try:
        tags = [parse_tag_one(t) for t in raw_tags]
    except ValueError as exc:  # packaging >= 26.4 raises InvalidTag, a ValueError
        raise TargetError(f"{where}: bad tag ({exc})") from exc
    except TargetError as exc:
        raise TargetError(f"{where}: {exc}") from exc
    python_match = re.match(r"^3\.(\d+)$", str(markers["python_version"]))
    if python_match is None:
        raise TargetError(f"{where}: python_version {markers['python_version']!r} is not 3.X")
    python = (3, int(python_match.group(1)))
    base = _closest_named(python, [t.platform for t in tags])
    if base is None:
        hint = ""
        if str(data.get("source", "")).startswith("standard library"):
            # Without packaging or pip the script cannot list manylinux/musllinux levels.
            hint = "; it was captured without pip: install pip there and capture again"
        raise TargetError(
            f"{where}: none of its tags names a platform prewheel knows ({tags[0]}){hint}"
        )
    name = str(data.get("name") or base.name)
    if not re.match(r"^[A-Za-z0-9_-]+$", name):
        raise TargetError(f"{where}: name {name!r} must be letters, digits, _ and - only")
    captured = Captured(
        name=name,
        tags=tuple(str(t) for t in tags),
        markers=tuple(sorted((str(k), str(v)) for k, v in markers.items())),
    )
    return Target(python, base.libc, base.libc_version, base.arch, base.system, captured)


def _closest_named(python: tuple[int, int], platforms: list[str]) -> Target | None:
    """The named target for the first platform tag that prewheel knows."""
    for platform in dict.fromkeys(platforms):
        try:
            return parse_target(f"cp{python[0]}{python[1]}-{platform}")
        except TargetError:
            continue
    return None


def parse_targets(specs: list[str]) -> list[Target]:
    """Parse and de-duplicate target specs, keeping the order given."""
    out: list[Target] = []
    for spec in specs:
        target = parse_target(spec)
        if any(t.name == target.name for t in out):
            if target not in out:
                raise TargetError(f"two different targets are both named {target.name}; rename one")
            continue
        out.append(target)
    if not out:
        raise TargetError(
            f"no target given: pass -t, e.g. -t cp311-manylinux_2_17_x86_64 ({GRAMMAR})"
        )
    return out
