"""`prewheel build`: lock, fetch, write, verify, chained over every target."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from packaging.utils import canonicalize_name

from prewheel import lock as locking
from prewheel import wheelhouse as wh
from prewheel.build import Builder, BuildFailure, BuildRequest, Provenance, build_wheels
from prewheel.emit.script import write_scripts
from prewheel.errors import MissingWheelError, VerifyError, WheelhouseError
from prewheel.fetch import TIMEOUT, Cache, Fetched, fetch
from prewheel.index import FileRef, IndexOptions
from prewheel.interpreters import find_interpreter
from prewheel.report import reporter
from prewheel.requirements import read_requirements
from prewheel.targets import Target, captured_target, parse_target
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
    timeout: float = TIMEOUT
    upgrade: bool = False
    resolver_engine: str = "uv"  # or "pip-tools", for the running environment only
    locked: bool = False  # the requirements file is an existing, fully pinned lock
    allow_additions: bool = False
    allow_build: bool = True
    build_policy: str = "wheel-first"  # or "newest": build the newest version from its sdist
    keep_build_deps: bool = False

    def resolver(self) -> locking.Resolver:
        return locking.Resolver(
            self.uv,
            self.env,
            self.index,
            engine=self.resolver_engine,
            locked=self.locked,
            allow_additions=self.allow_additions,
        )

    def builder(self) -> Builder:
        return Builder(
            cache=Cache(self.cache_dir),
            env=self.env,
            find_interpreter=lambda version: find_interpreter(version, self.env),
            uv=self.uv,
            index=self.index,
            build_deps=self.output / wh.BUILD_DEPS,
            keep_build_deps=self.keep_build_deps,
        )


@dataclass(frozen=True)
class PlanFile:
    """A pin and the one wheel that serves it: from the index, or built here."""

    name: str
    version: str
    ref: FileRef
    provenance: Provenance | None = None
    fresh: bool = False  # built by this run, not taken from the build cache
    origin: str | None = None  # the index it came from, when already known


@dataclass(frozen=True)
class Plan:
    """One target's pins and the one wheel chosen for each."""

    target: Target
    requirements: tuple[str, ...]
    files: tuple[PlanFile, ...]
    backed_off: tuple[str, ...] = ()
    sdist_only: tuple[locking.Pin, ...] = ()
    annotated: str | None = None  # pip-compile's output, kept beside the locks


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
    built: int = 0  # wheels built by this run, each counted once however many targets use it
    failures: tuple[BuildFailure, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "wheelhouse": str(self.wheelhouse),
            "targets": [t.to_dict() for t in self.targets],
            "total": {
                "pins": sum(t.pins for t in self.targets),
                "downloaded": self.downloaded,
                "downloaded_bytes": self.downloaded_bytes,
                "cached": self.cached,
                "built": self.built,
                "sdist_only": sum(t.sdist_only for t in self.targets),
                "size": sum(t.size for t in self.targets),
            },
            "removed": list(self.removed),
            "failures": [f.to_dict() for f in self.failures],
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


def lock_targets(config: Config, roots: Sequence[str], *, allow_build: bool) -> list[Plan]:
    """Resolve every target; pins with no wheel are left for the build stage or, when
    building is off, stop the run before anything is written."""
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
            wheel_first=config.build_policy != "newest",
        )
        for name in result.backed_off:
            pin = result.pin(name)
            if pin is not None:
                reporter().step(
                    f"{target.name}: {name} {pin.version} (newest with a wheel for this target)"
                )
        for item in result.sdist_only:
            line = f"{item.name} {item.version} for {target.name}: {item.reason}"
            if allow_build:
                reporter().step(f"{line}; it will be built from its sdist")
            else:
                reporter().warn(line)
            missing.append(line)
        files = tuple(
            PlanFile(pin.name, pin.version, ref)
            for pin in result.pins
            if (ref := pin.wheel_for(target)) is not None
        )
        unserved = tuple(p for p in result.pins if p.wheel_for(target) is None)
        plans.append(
            Plan(target, tuple(roots), files, result.backed_off, unserved, result.annotated)
        )
    if missing and not allow_build:
        more = f" (and {len(missing) - 1} more, listed above)" if len(missing) > 1 else ""
        raise MissingWheelError(
            f"no wheel: {missing[0]}{more}; building is off (--no-build or prewheel lock): "
            "run prewheel build to build it; the wheelhouse was left as it was"
        )
    return plans


def build_missing(config: Config, plans: Sequence[Plan]) -> tuple[list[Plan], list[BuildFailure]]:
    """Build a wheel for every sdist-only pin; the plans gain the built files."""
    wanted: dict[tuple[str, str, str], list[Target]] = {}
    sdists: dict[tuple[str, str, str], FileRef | None] = {}
    for plan in plans:
        for pin in plan.sdist_only:
            key = (pin.name, pin.version, pin.sdist.sha256 if pin.sdist else "")
            wanted.setdefault(key, []).append(plan.target)
            sdists[key] = pin.sdist
    if not wanted:
        return list(plans), []
    requests = [
        BuildRequest(name, version, sdists[(name, version, sha)], tuple(targets))
        for (name, version, sha), targets in sorted(wanted.items())
    ]
    built, failures = build_wheels(requests, config.builder())
    for failure in failures:
        reporter().warn(str(failure))
    by_target: dict[str, list[PlanFile]] = {}
    for item in built:
        by_target.setdefault(item.target.name, []).append(
            PlanFile(item.name, item.version, item.wheel, item.provenance, fresh=not item.reused)
        )
    out = [
        replace(plan, files=plan.files + tuple(by_target.get(plan.target.name, ())))
        for plan in plans
    ]
    return out, failures


def build(config: Config) -> Summary:
    """Lock, build what the index lacks, fetch, write and verify every target of `config`.

    A target whose pins could not all be given a wheel keeps its previous state in the
    wheelhouse (or stays out of it); the summary lists each failure.
    """
    roots = _check_inputs(config)
    with wh.locked(config.output):
        plans = lock_targets(config, roots, allow_build=config.allow_build)
        plans, failures = build_missing(config, plans)
        failed = {f.target.name for f in failures}
        landing = [p for p in plans if p.target.name not in failed]
        # Nothing lands: the wheelhouse stays as it was, and a new one is not made at all.
        summary = (
            materialize(config, landing, keep_previous=failed)
            if landing
            else Summary(config.output, (), 0, 0, 0)
        )
    names = [p.target.name for p in landing]
    report = verify(config.output, names) if names else VerifyReport(())
    if not report.ok:
        for problem in report.problems:
            reporter().warn(str(problem))
        raise VerifyError(
            f"the new wheelhouse failed verification ({len(report.problems)} problems, "
            f"first: {report.problems[0]}); this is a bug in prewheel, please report it"
        )
    return replace(summary, verify=report, failures=tuple(failures))


def lock_only(config: Config) -> list[Plan]:
    """`prewheel lock`: write each target's pylock and requirements file, fetch nothing."""
    roots = _check_inputs(config)
    with wh.locked(config.output):
        plans = lock_targets(config, roots, allow_build=False)
        cache = Cache(config.cache_dir)
        for plan in plans:
            for item in plan.files:
                if item.ref.url:
                    cache.remember_url(item.ref.sha256, item.ref.url)
            wh.write_target(config.output, _entry(plan, {}, config.index))
    return plans


def read_plans(wheelhouse: Path, targets: Sequence[Target], cache: Cache) -> list[Plan]:
    """The plans that the locks in the wheelhouse name, for `targets` (or every lock there).

    The locks name files by path: a file is taken from the wheelhouse if it is there,
    else from the address that `prewheel lock` noted in the cache.
    """
    chosen = list(targets) or _locked_targets(wheelhouse)
    if not chosen:
        raise WheelhouseError(f"{wheelhouse} has no pylock.<target>.toml; run prewheel lock first")
    previous = _previous_manifest(wheelhouse)
    plans: list[Plan] = []
    for target in chosen:
        path = wheelhouse / wh.pylock_name(target)
        if not path.is_file():
            raise WheelhouseError(f"{path} is missing; run prewheel lock -t {target.name} first")
        pins = locking.read_pylock(path, target)
        tool = tomllib.loads(path.read_text(encoding="utf-8")).get("tool", {}).get("prewheel", {})
        unserved = [f"{p.name} {p.version}" for p in pins if p.wheel_for(target) is None]
        if unserved:
            raise MissingWheelError(
                f"{path.name} lists no wheel for {', '.join(unserved)} on {target.name}; "
                "run prewheel lock again"
            )
        built = _built_records(previous, target)
        files = tuple(
            PlanFile(pin.name, pin.version, _located(ref, wheelhouse, cache), built.get(ref.sha256))
            for pin in pins
            if (ref := pin.wheel_for(target)) is not None
        )
        plans.append(Plan(target, tuple(tool.get("requirements", [])), files))
    return plans


def _built_records(manifest: wh.Manifest | None, target: Target) -> dict[str, Provenance]:
    entry = manifest.entry(target.name) if manifest else None
    if entry is None:
        return {}
    return {p.sha256: Provenance.from_dict(p.build) for p in entry.pins if p.build}


def _located(ref: FileRef, wheelhouse: Path, cache: Cache) -> FileRef:
    # Where `prewheel lock` noted the file, else the lock's own url (a lock written by
    # uv, or by hand), else the wheelhouse itself.
    url = cache.url_for(ref.sha256) or ref.url
    if url:
        return replace(ref, url=url, path=None)
    return replace(ref, url=None, path=str(wheelhouse / ref.filename))


def _locked_targets(wheelhouse: Path) -> list[Target]:
    """The targets whose locks are in the wheelhouse, captured ones with their own tags."""
    out: list[Target] = []
    for path in sorted(wheelhouse.glob("pylock.*.toml")):
        tool = tomllib.loads(path.read_text(encoding="utf-8")).get("tool", {}).get("prewheel", {})
        if "captured" in tool:
            out.append(captured_target(json.loads(tool["captured"]), str(path)))
        else:
            out.append(parse_target(path.name.removeprefix("pylock.").removesuffix(".toml")))
    return out


def fetch_only(config: Config) -> Summary:
    """`prewheel fetch`: download the wheels that the locks in the wheelhouse name."""
    wh.check_folder(config.output)
    with wh.locked(config.output):
        plans = read_plans(config.output, config.targets, Cache(config.cache_dir))
        return materialize(config, plans)


def materialize(
    config: Config, plans: Sequence[Plan], keep_previous: Collection[str] = ()
) -> Summary:
    """Fetch every chosen wheel, then write locks, script and (last) the manifest.

    Targets named in `keep_previous` keep the entry and files they had, if any.
    """
    out = config.output
    out.mkdir(parents=True, exist_ok=True)
    refs = [item.ref for plan in plans for item in plan.files]
    cache = Cache(config.cache_dir)
    for ref in refs:
        if ref.url:
            cache.remember_url(ref.sha256, ref.url)
    reporter().step(f"fetching {len({r.sha256 for r in refs})} files")
    got = fetch(refs, out, cache, index=config.index, jobs=config.jobs, timeout=config.timeout)
    previous = _previous_manifest(out)
    entries = [_entry(plan, got, config.index) for plan in plans]
    kept = [e for e in (previous.targets if previous else ()) if e.target.name in keep_previous]
    every = tuple(entries + kept)
    roots = plans[0].requirements if plans else (previous.requirements if previous else ())
    manifest = wh.Manifest(roots, every, config.index.to_dict())
    with wh.holding_interrupts():
        for entry in entries:
            wh.write_target(out, entry)
        for plan in plans:
            compiled = out / f"pip-compile.{plan.target.name}.txt"
            if plan.annotated is not None:
                wh.write_atomic(compiled, plan.annotated)
            else:
                compiled.unlink(missing_ok=True)
        write_scripts(out, [e.target for e in every])
        wh.write_manifest(out, manifest)
    names = {e.target.name for e in every}
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
    for item in plan.files:
        ref = item.ref
        size = got[ref.sha256].size if ref.sha256 in got else (ref.size or 0)
        name = canonicalize_name(item.name)
        if item.provenance is not None:
            pins.append(
                wh.PinEntry(
                    name,
                    item.version,
                    ref.filename,
                    ref.sha256,
                    size,
                    index="built",
                    source="built",
                    build=item.provenance.to_dict(),
                )
            )
        else:
            origin = item.origin or index.origin_of(ref.url)
            pins.append(wh.PinEntry.from_ref(name, item.version, ref, size, origin))
    return wh.TargetEntry(plan.target, tuple(pins), plan.requirements)


def _summarize(
    out: Path, plans: Sequence[Plan], got: Mapping[str, Fetched], removed: tuple[str, ...]
) -> Summary:
    fresh = {item.ref.sha256 for plan in plans for item in plan.files if item.fresh}
    rows = []
    for plan in plans:
        mine = {i.ref.sha256: got[i.ref.sha256] for i in plan.files if i.ref.sha256 in got}
        fetched = [f for sha, f in mine.items() if sha not in fresh]
        rows.append(
            TargetSummary(
                target=plan.target.name,
                pins=len(plan.files),
                downloaded=sum(1 for f in fetched if f.how == "downloaded"),
                downloaded_bytes=sum(f.size for f in fetched if f.how == "downloaded"),
                cached=sum(1 for f in fetched if f.how != "downloaded"),
                built=sum(1 for i in plan.files if i.fresh),
                sdist_only=len(plan.sdist_only),
                size=sum(f.size for f in mine.values()),
                backed_off=plan.backed_off,
            )
        )
    fetched_all = [f for sha, f in got.items() if sha not in fresh]
    downloaded = [f for f in fetched_all if f.how == "downloaded"]
    return Summary(
        out,
        tuple(rows),
        len(downloaded),
        sum(f.size for f in downloaded),
        len(fetched_all) - len(downloaded),
        removed,
        built=len(fresh),
    )
