"""Resolve once per target with uv, wheel-first, into pins with hashes."""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from packaging.pylock import PackageSdist, PackageWheel, Pylock, PylockValidationError
from packaging.tags import platform_tags
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from prewheel import runner
from prewheel.errors import (
    DownloadError,
    IndexUnreachableError,
    InputError,
    RequirementsError,
    ResolutionError,
    ToolError,
)
from prewheel.fetch import safe_filename
from prewheel.index import FileRef, IndexOptions, choose_wheel, redact_text
from prewheel.report import reporter
from prewheel.requirements import read_requirements
from prewheel.targets import Target

_NETWORK_SIGNS = (
    "Failed to fetch",
    "error sending request",
    "Connection refused",
    "dns error",
    "failed to lookup address",
    "operation timed out",
    "Request failed after",
    "Failed to read",
)


@dataclass(frozen=True)
class Pin:
    """One package pinned for one target, with the files the lock lists for it."""

    name: NormalizedName
    version: str
    wheels: tuple[FileRef, ...] = ()
    sdist: FileRef | None = None

    def wheel_for(self, target: Target) -> FileRef | None:
        return choose_wheel(self.wheels, target)


@dataclass(frozen=True)
class SdistOnly:
    """A pin that has no wheel for the target at any version the requirements allow."""

    name: NormalizedName
    version: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version, "reason": self.reason}


@dataclass(frozen=True)
class Lock:
    """The resolution for one target."""

    target: Target
    pins: tuple[Pin, ...]
    sdist_only: tuple[SdistOnly, ...] = ()
    backed_off: tuple[str, ...] = field(default=())
    added: tuple[str, ...] = ()  # --locked --allow-additions: pins the file lacked
    annotated: str | None = None  # pip-compile's own output, with its annotations

    def pin(self, name: str) -> Pin | None:
        wanted = canonicalize_name(name)
        return next((p for p in self.pins if p.name == wanted), None)


@dataclass(frozen=True)
class Resolver:
    """How to resolve: the engine ("uv" or "pip-tools"), uv's binary, the environment
    tools run in, the indexes, and whether the input is an existing lock."""

    uv: Path
    env: Mapping[str, str]
    index: IndexOptions = IndexOptions()
    engine: str = "uv"
    locked: bool = False
    allow_additions: bool = False


def resolve(
    target: Target,
    requirements: Path,
    resolver: Resolver,
    *,
    previous: Path | None = None,
    upgrade: bool = False,
    wheel_first: bool = True,
) -> Lock:
    """Resolve `requirements` for `target`, preferring versions that have a wheel for it.

    `previous` is an earlier `pylock.<target>.toml`; its pins are kept unless
    `upgrade` (or the requirements) rule them out. Without `wheel_first`, the newest
    allowed versions are kept even where only an sdist has them.
    """
    reporter().detail(
        f"{target.name}: uv resolves for --python-platform {target.uv_platform}; "
        f"files are then chosen by the target's own {len(target.tags())} tags"
    )
    if resolver.engine == "pip-tools":
        _check_pip_tools_target(target)
    locked = _read_locked(requirements) if resolver.locked else None
    annotated: list[str] = []

    def compile_(only_binary: set[str]) -> tuple[Pin, ...]:
        if resolver.engine == "pip-tools":
            return _compile_pip_tools(
                target, requirements, resolver, out, only_binary, upgrade, annotated
            )
        return _compile(target, requirements, resolver, out, only_binary, upgrade)

    def attempt(names: set[str]) -> tuple[Pin, ...] | None:
        """The pins with `names` binary-only as well, if that resolves and gives each of
        them a wheel for the target; else None, with the previous lock (uv's preferences)
        put back. uv's platform may be broader than the target's tags (manylinux1,
        musllinux_1_1, captured tags), so a wheel that uv accepts may still not fit."""
        before, compiled = (out.read_bytes() if out.exists() else None), len(annotated)
        try:
            trial = compile_(only_binary | names)
        except ResolutionError:
            trial = None
        if trial is not None and all(
            p.wheel_for(target) is not None for p in trial if p.name in names
        ):
            return trial
        if before is not None:
            out.write_bytes(before)
        del annotated[compiled:]
        return None

    with tempfile.TemporaryDirectory(prefix="prewheel-lock-") as tmp:
        out = Path(tmp) / "pylock.toml"
        if previous is not None and previous.is_file() and not upgrade and locked is None:
            shutil.copyfile(previous, out)
        only_binary: set[str] = set()
        impossible: set[str] = set()
        pins = compile_(only_binary)
        added: tuple[str, ...] = ()
        if locked is not None:
            pins, added = _hold_to_lock(
                target, requirements, pins, locked, resolver.allow_additions
            )
        while wheel_first and locked is None:
            missing: list[str] = [
                p.name
                for p in pins
                if p.wheel_for(target) is None
                and p.name not in only_binary
                and p.name not in impossible
            ]
            if not missing:
                break
            reporter().detail(
                f"{target.name}: no wheel for {', '.join(missing)}; looking for versions that have one"
            )
            trial = attempt(set(missing))
            if trial is not None:
                pins = trial
                only_binary |= set(missing)
                continue
            for name in missing:
                trial = attempt({name})
                if trial is None:
                    impossible.add(name)
                else:
                    pins = trial
                    only_binary.add(name)
        sdist_only = tuple(
            SdistOnly(p.name, p.version, _why_no_wheel(p, target))
            for p in pins
            if p.wheel_for(target) is None
        )
        backed = tuple(sorted(n for n in only_binary if any(p.name == n for p in pins)))
        for name in backed:
            pin = next(p for p in pins if p.name == name)
            reporter().detail(f"{target.name}: {name} {pin.version} chosen for its wheel")
        return Lock(target, pins, sdist_only, backed, added, annotated[-1] if annotated else None)


def _check_pip_tools_target(target: Target) -> None:
    """pip-compile evaluates markers for the interpreter it runs on: only that one."""
    here = (sys.version_info[0], sys.version_info[1])
    native = target.captured is None and target.system == "linux" and target.python == here
    if native and target.platform in set(platform_tags()):
        return
    raise InputError(
        f"{target.name}: --resolver pip-tools resolves only for this machine's own Python "
        f"(CPython {here[0]}.{here[1]} here), because pip-compile evaluates markers for the "
        "machine it runs on; use the default --resolver uv for other targets"
    )


def _compile_pip_tools(
    target: Target,
    requirements: Path,
    resolver: Resolver,
    out: Path,
    only_binary: set[str],
    upgrade: bool,
    annotated: list[str],
) -> tuple[Pin, ...]:
    """Resolve with pip-compile, then list each pin's files for the target with uv."""
    compiled = out.parent / "requirements.txt"
    cmd: list[str | Path] = [
        sys.executable,
        "-m",
        "piptools",
        "compile",
        requirements.name,
        "--output-file",
        compiled,
        "--generate-hashes",
        "--no-header",
        "--quiet",
        "--annotation-style",
        "line",
        "--strip-extras",
        # The output lands in the wheelhouse: no index URLs (credentials), no host paths.
        "--no-emit-index-url",
        "--no-emit-find-links",
        "--no-emit-trusted-host",
    ]
    cmd += resolver.index.tool_args()
    if only_binary:
        cmd += ["--pip-args", f"--only-binary={','.join(sorted(only_binary))}"]
    if upgrade:
        cmd.append("--upgrade")
    result = runner.run(
        cmd,
        env=resolver.env,
        what=f"pip-compile for {target.name}",
        cwd=requirements.parent,
        check=False,
    )
    if result.returncode != 0:
        raise ResolutionError(
            f"{target.name}: pip-compile could not resolve {requirements}: "
            f"{runner.tail(result, 2)}; fix the requirements or use --resolver uv"
        )
    text = compiled.read_text(encoding="utf-8")
    annotated.append(text)
    pinned = read_requirements(compiled)
    exact = out.parent / "pinned.txt"
    exact.write_text("".join(f"{line.requirement}\n" for line in pinned), encoding="utf-8")
    pins = _compile(target, exact, resolver, out, only_binary, upgrade=False, no_deps=True)
    hashes = {canonicalize_name(line.requirement.name): line.hashes for line in pinned}
    return tuple(_only_hashed(pin, hashes.get(pin.name, frozenset())) for pin in pins)


def _only_hashed(pin: Pin, hashes: frozenset[str]) -> Pin:
    """The pin with only the files whose sha256 the other tool's lock lists."""
    if not hashes:
        return pin
    wheels = tuple(w for w in pin.wheels if w.sha256 in hashes)
    sdist = pin.sdist if pin.sdist is not None and pin.sdist.sha256 in hashes else None
    return replace(pin, wheels=wheels, sdist=sdist)


@dataclass(frozen=True)
class _LockedPin:
    version: str
    hashes: frozenset[str]
    where: str


def _read_locked(requirements: Path) -> dict[str, _LockedPin]:
    """The pins of a fully pinned file (--locked): every line `name==version`."""
    out: dict[str, _LockedPin] = {}
    for line in read_requirements(requirements):
        specs = list(line.requirement.specifier)
        if len(specs) != 1 or specs[0].operator not in ("==", "===") or "*" in specs[0].version:
            raise RequirementsError(
                f"{line.path}:{line.line}: {line.requirement} is not pinned with ==; --locked "
                "takes a fully pinned file such as pip-compile output"
            )
        out[canonicalize_name(line.requirement.name)] = _LockedPin(
            specs[0].version, line.hashes, f"{line.path.name}:{line.line}"
        )
    return out


def _hold_to_lock(
    target: Target,
    requirements: Path,
    pins: tuple[Pin, ...],
    locked: Mapping[str, _LockedPin],
    allow_additions: bool,
) -> tuple[tuple[Pin, ...], tuple[str, ...]]:
    """Check the resolution against the locked file: same pins, files among its hashes,
    and nothing new unless `allow_additions`."""
    kept: list[Pin] = []
    added: list[str] = []
    for pin in pins:
        entry = locked.get(pin.name)
        if entry is None:
            added.append(f"{pin.name} {pin.version}")
            kept.append(pin)
            continue
        if Version(pin.version) != Version(entry.version):
            raise ResolutionError(
                f"{target.name}: {pin.name} resolved to {pin.version} but {entry.where} pins "
                f"{entry.version}; the locked file is not consistent, regenerate it"
            )
        held = _only_hashed(pin, entry.hashes)
        if (pin.wheels or pin.sdist) and not (held.wheels or held.sdist):
            raise ResolutionError(
                f"{target.name}: none of the hashes that {entry.where} lists for {pin.name} "
                f"{pin.version} matches a file that the index offers for this target; regenerate "
                "the locked file with hashes for this platform, or check --index-url"
            )
        kept.append(held)
    if added and not allow_additions:
        raise ResolutionError(
            f"{target.name}: {requirements.name} lacks {', '.join(added)}, which this target's "
            "markers require; add them to the file, or pass --allow-additions"
        )
    for item in added:
        reporter().warn(f"{target.name}: added {item}, which {requirements.name} lacks")
    return tuple(kept), tuple(added)


def _why_no_wheel(pin: Pin, target: Target) -> str:
    if not pin.wheels and pin.sdist is None:
        return "the lock lists no file for it"
    return f"no version that the requirements allow has a wheel for {target.name}, only an sdist"


def _compile(
    target: Target,
    requirements: Path,
    resolver: Resolver,
    out: Path,
    only_binary: set[str],
    upgrade: bool,
    no_deps: bool = False,
) -> tuple[Pin, ...]:
    cmd: list[str | Path] = [
        resolver.uv,
        "pip",
        "compile",
        requirements.resolve(),
        "--python-version",
        target.python_full_version if target.captured else target.python_version,
        "--python-platform",
        target.uv_platform,
        "--format",
        "pylock.toml",
        "--generate-hashes",
        "--no-header",
        "--no-python-downloads",
        "--quiet",
        "--output-file",
        out,
        *resolver.index.tool_args(),
    ]
    for name in sorted(only_binary):
        cmd += ["--only-binary", name]
    if upgrade:
        cmd.append("--upgrade")
    if no_deps:
        cmd.append("--no-deps")
    result = runner.run(
        cmd,
        env={**resolver.env, **target.uv_environment()},
        what=f"uv pip compile for {target.name}",
        cwd=out.parent,
        check=False,
    )
    if result.returncode != 0:
        raise _classify(target, requirements, result.stderr)
    return read_pylock(out, target)


def _classify(target: Target, requirements: Path, stderr: str) -> Exception:
    text = redact_text(stderr)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    causes = [line.removeprefix("cause:").strip() for line in lines if line.startswith("cause:")]
    errors = [line.removeprefix("error:").strip() for line in lines if line.startswith("error:")]
    invalid = re.search(r"The structure of `([^`]+)` \(v([^)]+)\) was invalid", text)
    if invalid is not None:
        # uv could not read a file the index serves (its hint says "Failed to read from
        # zip file", which is not a network failure): an sdist under a wheel's name, say.
        name, version = invalid.groups()
        return IndexUnreachableError(
            f"{target.name}: the index serves a file for {name} {version} that is not a wheel "
            "(nor an sdist) that uv can read; the index is broken or hostile: use another, "
            "or pin another version"
        )
    if any(sign in text for sign in _NETWORK_SIGNS):
        where = next((c for c in causes if "http" in c or "file" in c), causes[0] if causes else "")
        return IndexUnreachableError(
            f"{target.name}: cannot reach the package index ({where or (errors[0] if errors else 'no answer')}); "
            "check --index-url/--find-links and the network, then run again"
        )
    if "No solution found" in text or causes:
        cause = causes[-1] if causes else (errors[0] if errors else "no solution")
        if "was not found in the package registry" in cause or "not found in the provided" in cause:
            return ResolutionError(
                f"{target.name}: {cause.removeprefix('Because ').split(' and you require')[0]}; "
                f"check the spelling in {requirements} or add the index that has it"
            )
        return ResolutionError(
            f"{target.name}: requirements in {requirements} cannot be satisfied: {cause}; "
            "relax the conflicting pins or choose another target"
        )
    tail = " | ".join(lines[-4:]) or "no output"
    return ToolError(f"uv pip compile for {target.name} failed: {tail}")


def read_pylock(path: Path, target: Target) -> tuple[Pin, ...]:
    """The pins of a PEP 751 lock, keeping only packages whose markers hold on `target`."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        _check_file_names(data, path)
        lock = Pylock.from_dict(data)
    except (tomllib.TOMLDecodeError, PylockValidationError) as exc:
        raise ToolError(f"{path.name} for {target.name} is not a valid pylock: {exc}") from exc
    env = target.markers()
    pins: list[Pin] = []
    for package in lock.packages:
        if package.marker is not None and not package.marker.evaluate(dict(env)):
            continue
        version = str(package.version) if package.version is not None else ""
        pins.append(
            Pin(
                name=canonicalize_name(package.name),
                version=version,
                wheels=tuple(_ref(w) for w in package.wheels or ()),
                sdist=_ref(package.sdist) if package.sdist is not None else None,
            )
        )
    return tuple(sorted(pins, key=lambda p: p.name))


def _check_file_names(data: Mapping[str, Any], path: Path) -> None:
    """Refuse a lock (from a hostile index, or edited by hand) that names a file by a
    path rather than a plain name: prewheel writes each file under its name, and a
    wheelhouse keeps its files beside their lock."""
    packages = data.get("packages")
    for package in packages if isinstance(packages, list) else ():
        if not isinstance(package, Mapping):
            continue
        wheels = package.get("wheels")
        entries = [*(wheels if isinstance(wheels, list) else ()), package.get("sdist")]
        for entry in entries:
            if not isinstance(entry, Mapping):
                continue
            location = entry.get("url") or entry.get("path")
            names = [entry.get("name")]
            if names[0] is None and isinstance(location, str):
                # The name the file is written under (as _ref takes it).
                names[0] = unquote(urlsplit(location).path).rsplit("/", 1)[-1]
            if isinstance(entry.get("path"), str):
                names.append(entry["path"].removeprefix("./"))
            for name in names:
                if isinstance(name, str):
                    try:
                        safe_filename(name)
                    except DownloadError as exc:
                        raise DownloadError(
                            f"{path.name}: {package.get('name')} names the file {name!r}, "
                            "which is not a plain file name; refusing it (the index is hostile "
                            "or the lock was edited): run prewheel lock again"
                        ) from exc


def _ref(entry: PackageWheel | PackageSdist) -> FileRef:
    location = entry.url or entry.path or ""
    filename = entry.name or unquote(urlsplit(location).path.rsplit("/", 1)[-1])
    return FileRef(
        filename=filename,
        sha256=entry.hashes.get("sha256", ""),
        size=entry.size,
        url=entry.url,
        path=entry.path,
    )
