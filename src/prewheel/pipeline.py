"""`prewheel build`: lock, fetch, write, verify, chained over every target."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from prewheel import lock as locking
from prewheel import wheelhouse as wh
from prewheel.emit.script import SCRIPT, render_install_script
from prewheel.errors import MissingWheelError, VerifyError, WheelhouseError
from prewheel.fetch import Cache, Fetched, fetch
from prewheel.index import FileRef, IndexOptions
from prewheel.report import reporter
from prewheel.requirements import read_requirements
from prewheel.targets import Target, parse_target
from prewheel.verify import VerifyReport, verify


@dataclass(frozen=True)
class Config:
    """Everything a run needs, parsed by the CLI; the core reads nothing else."""

    output: Path
    targets: tuple[Target, ...] = ()
    requirements: Path | None = None
    index: IndexOptions = IndexOptions()
    cache_dir: Path = Path(".prewheel-cache")
    env: Mapping[str, str] = field(default_factory=dict)
    uv: Path = Path("uv")
    jobs: int = 8
    upgrade: bool = False

    def resolver(self) -> locking.Resolver:
        return locking.Resolver(self.uv, self.env, self.index)


@dataclass(frozen=True)
class Plan:
    """One target's pins and the one wheel chosen for each."""

    target: Target
    requirements: tuple[str, ...]
    files: tuple[tuple[str, str, FileRef], ...]  # (name, version, wheel)
    backed_off: tuple[str, ...] = ()


@dataclass(frozen=True)
class TargetSummary:
    target: str
    pins: int
    downloaded: int
    downloaded_bytes: int
    cached: int
    built: int
    sdist_only: int
    size: int
    backed_off: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "pins": self.pins,
            "downloaded": self.downloaded,
            "downloaded_bytes": self.downloaded_bytes,
            "cached": self.cached,
            "built": self.built,
            "sdist_only": self.sdist_only,
            "size": self.size,
            "backed_off": list(self.backed_off),
        }


@dataclass(frozen=True)
class Summary:
    wheelhouse: Path
    targets: tuple[TargetSummary, ...]
    downloaded: int
    downloaded_bytes: int
    cached: int
    removed: tuple[str, ...] = ()
    verify: VerifyReport | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "wheelhouse": str(self.wheelhouse),
            "targets": [t.to_dict() for t in self.targets],
            "total": {
                "pins": sum(t.pins for t in self.targets),
                "downloaded": self.downloaded,
                "downloaded_bytes": self.downloaded_bytes,
                "cached": self.cached,
                "built": sum(t.built for t in self.targets),
                "sdist_only": sum(t.sdist_only for t in self.targets),
                "size": sum(t.size for t in self.targets),
            },
            "removed": list(self.removed),
            "verify": None
            if self.verify is None
            else {
                "ok": self.verify.ok,
                "problems": [p.to_dict() for p in self.verify.problems],
            },
        }


def _check_inputs(config: Config) -> list[str]:
    wh.check_folder(config.output)
    if config.requirements is None:
        raise WheelhouseError("no requirements file given; pass -r requirements.in")
    return [str(line) for line in read_requirements(config.requirements)]


def lock_targets(config: Config, roots: Sequence[str]) -> list[Plan]:
    """Resolve every target, wheel-first; fail before writing if a pin has no wheel."""
    assert config.requirements is not None
    plans: list[Plan] = []
    missing: list[str] = []
    for target in config.targets:
        reporter().step(f"locking {target.name}")
        result = locking.resolve(
            target,
            config.requirements,
            config.resolver(),
            previous=config.output / wh.pylock_name(target),
            upgrade=config.upgrade,
        )
        for name in result.backed_off:
            pin = result.pin(name)
            if pin is not None:
                reporter().step(
                    f"{target.name}: {name} {pin.version} (newest with a wheel for this target)"
                )
        for item in result.sdist_only:
            line = f"{item.name} {item.version} for {target.name}: {item.reason}"
            reporter().warn(line)
            missing.append(line)
        files = tuple(
            (pin.name, pin.version, ref)
            for pin in result.pins
            if (ref := pin.wheel_for(target)) is not None
        )
        plans.append(Plan(target, tuple(roots), files, result.backed_off))
    if missing:
        more = f" (and {len(missing) - 1} more, listed above)" if len(missing) > 1 else ""
        raise MissingWheelError(f"no wheel: {missing[0]}{more}; the wheelhouse was left as it was")
    return plans


def build(config: Config) -> Summary:
    """Lock, fetch, write and verify the wheelhouse for every target of `config`."""
    roots = _check_inputs(config)
    with wh.locked(config.output):
        plans = lock_targets(config, roots)
        summary = materialize(config, plans)
    report = verify(config.output)
    if not report.ok:
        for problem in report.problems:
            reporter().warn(str(problem))
        raise VerifyError(
            f"the new wheelhouse failed verification ({len(report.problems)} problems, "
            f"first: {report.problems[0]}); this is a bug in prewheel, please report it"
        )
    return Summary(
        summary.wheelhouse,
        summary.targets,
        summary.downloaded,
        summary.downloaded_bytes,
        summary.cached,
        summary.removed,
        report,
    )


def lock_only(config: Config) -> list[Plan]:
    """`prewheel lock`: write each target's pylock and requirements file, fetch nothing."""
    roots = _check_inputs(config)
    with wh.locked(config.output):
        plans = lock_targets(config, roots)
        cache = Cache(config.cache_dir)
        for plan in plans:
            for _, _, ref in plan.files:
                if ref.url:
                    cache.remember_url(ref.sha256, ref.url)
            wh.write_target(config.output, _entry(plan, {}, config.index))
    return plans


def read_plans(wheelhouse: Path, targets: Sequence[Target], cache: Cache) -> list[Plan]:
    """The plans that `prewheel lock` wrote, for `targets` (or every lock in the folder).

    The locks name files by path; their download addresses come from the cache,
    where `prewheel lock` noted them.
    """
    chosen = list(targets) or _locked_targets(wheelhouse)
    if not chosen:
        raise WheelhouseError(f"{wheelhouse} has no pylock.<target>.toml; run prewheel lock first")
    plans: list[Plan] = []
    for target in chosen:
        path = wheelhouse / wh.pylock_name(target)
        if not path.is_file():
            raise WheelhouseError(f"{path} is missing; run prewheel lock -t {target.name} first")
        pins = locking.read_pylock(path, target)
        tool = tomllib.loads(path.read_text(encoding="utf-8")).get("tool", {}).get("prewheel", {})
        files = tuple(
            (pin.name, pin.version, replace(ref, url=cache.url_for(ref.sha256), path=None))
            for pin in pins
            if (ref := pin.wheel_for(target)) is not None
        )
        unserved = [f"{p.name} {p.version}" for p in pins if p.wheel_for(target) is None]
        if unserved:
            raise MissingWheelError(
                f"{path.name} lists no wheel for {', '.join(unserved)} on {target.name}; "
                "run prewheel lock again"
            )
        plans.append(Plan(target, tuple(tool.get("requirements", [])), files))
    return plans


def _locked_targets(wheelhouse: Path) -> list[Target]:
    out: list[Target] = []
    for path in sorted(wheelhouse.glob("pylock.*.toml")):
        out.append(parse_target(path.name.removeprefix("pylock.").removesuffix(".toml")))
    return out


def fetch_only(config: Config) -> Summary:
    """`prewheel fetch`: download the wheels that the locks in the wheelhouse name."""
    wh.check_folder(config.output)
    with wh.locked(config.output):
        plans = read_plans(config.output, config.targets, Cache(config.cache_dir))
        return materialize(config, plans)


def materialize(config: Config, plans: Sequence[Plan]) -> Summary:
    """Fetch every chosen wheel, then write locks, script and (last) the manifest."""
    out = config.output
    out.mkdir(parents=True, exist_ok=True)
    refs = [ref for plan in plans for _, _, ref in plan.files]
    cache = Cache(config.cache_dir)
    for ref in refs:
        if ref.url:
            cache.remember_url(ref.sha256, ref.url)
    reporter().step(f"fetching {len({r.sha256 for r in refs})} files")
    got = fetch(refs, out, cache, index=config.index, jobs=config.jobs)
    previous = _previous_manifest(out)
    entries = [_entry(plan, got, config.index) for plan in plans]
    for entry in entries:
        wh.write_target(out, entry)
    wh.write_atomic(out / SCRIPT, render_install_script([p.target for p in plans]))
    (out / SCRIPT).chmod(0o755)
    roots = plans[0].requirements if plans else ()
    manifest = wh.Manifest(roots, tuple(entries), config.index.to_dict())
    wh.write_manifest(out, manifest)
    names = {p.target.name for p in plans}
    stale = [e.target for e in previous.targets if e.target.name not in names] if previous else []
    removed = wh.prune(out, manifest, stale)
    return _summarize(out, plans, got, tuple(removed))


def _previous_manifest(out: Path) -> wh.Manifest | None:
    try:
        return wh.read_manifest(out)
    except ValueError:
        reporter().warn(f"{out / wh.MANIFEST} was not a valid manifest; rewriting it")
        return None


def _entry(plan: Plan, got: Mapping[str, Fetched], index: IndexOptions) -> wh.TargetEntry:
    pins = []
    for name, version, ref in plan.files:
        size = got[ref.sha256].size if ref.sha256 in got else (ref.size or 0)
        pins.append(
            wh.PinEntry.from_ref(
                canonicalize_name(name), version, ref, size, index.origin_of(ref.url)
            )
        )
    return wh.TargetEntry(plan.target, tuple(pins), plan.requirements)


def _summarize(
    out: Path, plans: Sequence[Plan], got: Mapping[str, Fetched], removed: tuple[str, ...]
) -> Summary:
    rows = []
    for plan in plans:
        shas = {ref.sha256 for _, _, ref in plan.files}
        mine = [got[s] for s in shas if s in got]
        rows.append(
            TargetSummary(
                target=plan.target.name,
                pins=len(plan.files),
                downloaded=sum(1 for f in mine if f.how == "downloaded"),
                downloaded_bytes=sum(f.size for f in mine if f.how == "downloaded"),
                cached=sum(1 for f in mine if f.how != "downloaded"),
                built=0,
                sdist_only=0,
                size=sum(f.size for f in mine),
                backed_off=plan.backed_off,
            )
        )
    downloaded = [f for f in got.values() if f.how == "downloaded"]
    return Summary(
        out,
        tuple(rows),
        len(downloaded),
        sum(f.size for f in downloaded),
        sum(1 for f in got.values() if f.how != "downloaded"),
        removed,
    )
