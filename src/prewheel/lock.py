"""Resolve once per target with uv, wheel-first, into pins with hashes."""

from __future__ import annotations

import shutil
import tempfile
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from packaging.pylock import PackageSdist, PackageWheel, Pylock, PylockValidationError
from packaging.utils import NormalizedName, canonicalize_name

from prewheel import runner
from prewheel.errors import IndexUnreachableError, ResolutionError, ToolError
from prewheel.index import FileRef, IndexOptions, choose_wheel, redact_text
from prewheel.report import reporter
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

    def pin(self, name: str) -> Pin | None:
        wanted = canonicalize_name(name)
        return next((p for p in self.pins if p.name == wanted), None)


@dataclass(frozen=True)
class Resolver:
    """How to run uv: the binary, the environment it runs in, the indexes."""

    uv: Path
    env: Mapping[str, str]
    index: IndexOptions = IndexOptions()


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
    with tempfile.TemporaryDirectory(prefix="prewheel-lock-") as tmp:
        out = Path(tmp) / "pylock.toml"
        if previous is not None and previous.is_file() and not upgrade:
            shutil.copyfile(previous, out)
        only_binary: set[str] = set()
        impossible: dict[str, str] = {}
        pins = _compile(target, requirements, resolver, out, only_binary, upgrade)
        while wheel_first:
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
            try:
                pins = _compile(
                    target, requirements, resolver, out, only_binary | set(missing), upgrade
                )
                only_binary |= set(missing)
                continue
            except ResolutionError:
                pass
            for name in missing:
                try:
                    pins = _compile(
                        target, requirements, resolver, out, only_binary | {name}, upgrade
                    )
                    only_binary.add(name)
                except ResolutionError as exc:
                    impossible[name] = str(exc)
        sdist_only = tuple(
            SdistOnly(p.name, p.version, _why_no_wheel(p, target))
            for p in pins
            if p.wheel_for(target) is None
        )
        backed = tuple(sorted(n for n in only_binary if any(p.name == n for p in pins)))
        for name in backed:
            pin = next(p for p in pins if p.name == name)
            reporter().detail(f"{target.name}: {name} {pin.version} chosen for its wheel")
        return Lock(target, pins, sdist_only, backed)


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
        *resolver.index.uv_args(),
    ]
    for name in sorted(only_binary):
        cmd += ["--only-binary", name]
    if upgrade:
        cmd.append("--upgrade")
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
        lock = Pylock.from_dict(tomllib.loads(path.read_text(encoding="utf-8")))
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


def pins_to_dicts(pins: Sequence[Pin]) -> list[dict[str, Any]]:
    return [{"name": p.name, "version": p.version} for p in pins]
