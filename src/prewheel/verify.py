"""Prove offline that a wheelhouse is complete and intact for each of its targets."""

from __future__ import annotations

import email.parser
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import (
    InvalidWheelFilename,
    NormalizedName,
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import Version

from prewheel import runner
from prewheel.emit.script import SCRIPT
from prewheel.fetch import sha256_of
from prewheel.index import wheel_rank
from prewheel.interpreters import find_interpreter, runs_here
from prewheel.report import reporter
from prewheel.targets import Target
from prewheel.wheelhouse import (
    MANIFEST,
    Manifest,
    PinEntry,
    TargetEntry,
    read_manifest,
    requirements_name,
)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a wheelhouse, with the target and file it concerns."""

    target: str
    file: str
    message: str

    def __str__(self) -> str:
        where = f"{self.target}: " if self.target else ""
        return f"{where}{self.file}: {self.message}"

    def to_dict(self) -> dict[str, str]:
        return {"target": self.target, "file": self.file, "message": self.message}


@dataclass(frozen=True)
class VerifyReport:
    targets: tuple[str, ...]
    problems: tuple[Problem, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(wheelhouse: Path, only: Sequence[str] = ()) -> VerifyReport:
    """Check every target (or those in `only`); collect every problem, never stop at the first."""
    try:
        manifest = read_manifest(wheelhouse)
    except ValueError as exc:
        return VerifyReport(
            (), (Problem("", MANIFEST, f"{exc}; run prewheel build to rewrite it"),)
        )
    if manifest is None:
        return VerifyReport(
            (), (Problem("", MANIFEST, f"missing in {wheelhouse}; run prewheel build first"),)
        )
    entries = [e for e in manifest.targets if not only or e.target.name in only]
    problems: list[Problem] = []
    for name in only:
        if manifest.entry(name) is None:
            problems.append(Problem(name, MANIFEST, "this wheelhouse has no such target"))
    hashes: dict[str, str] = {}
    for entry in entries:
        problems.extend(_verify_target(wheelhouse, manifest, entry, hashes))
    if not (wheelhouse / SCRIPT).is_file():
        problems.append(Problem("", SCRIPT, "missing; run prewheel script"))
    return VerifyReport(tuple(e.target.name for e in entries), tuple(problems))


def _verify_target(
    wheelhouse: Path, manifest: Manifest, entry: TargetEntry, hashes: dict[str, str]
) -> list[Problem]:
    target = entry.target
    problems: list[Problem] = []

    def problem(file: str, message: str) -> None:
        problems.append(Problem(target.name, file, message))

    priority = target.tag_priority()
    pins: dict[NormalizedName, PinEntry] = {}
    metadata: dict[NormalizedName, email.message.Message] = {}
    for pin in entry.pins:
        name = canonicalize_name(pin.name)
        if name in pins:
            problem(pin.filename, f"{name} is pinned twice")
        pins[name] = pin
        path = wheelhouse / pin.filename
        if not path.is_file():
            problem(
                pin.filename, f"missing: the wheel for {name} {pin.version}; run prewheel build"
            )
            continue
        if pin.filename not in hashes:
            hashes[pin.filename] = sha256_of(path)
        if hashes[pin.filename] != pin.sha256:
            problem(
                pin.filename,
                f"sha256 {hashes[pin.filename]} does not match the lock's {pin.sha256}: "
                "the file is damaged or was replaced; run prewheel build to restore it",
            )
            continue
        try:
            wname, wversion, _, _ = parse_wheel_filename(pin.filename)
        except InvalidWheelFilename:
            problem(pin.filename, "not a wheel file name")
            continue
        if wname != name or wversion != Version(pin.version):
            problem(pin.filename, f"is not {name} {pin.version}")
        if wheel_rank(pin.filename, priority) is None:
            problem(pin.filename, f"its tags do not fit {target.name}")
        try:
            meta = _metadata(path)
        except (zipfile.BadZipFile, KeyError, OSError) as exc:
            problem(pin.filename, f"cannot read its METADATA ({exc})")
            continue
        metadata[name] = meta
        requires_python = meta.get("Requires-Python")
        if requires_python:
            try:
                ok = SpecifierSet(requires_python).contains(
                    f"{target.python_version}.0", prereleases=True
                )
            except InvalidSpecifier:
                ok = True
            if not ok:
                problem(
                    pin.filename,
                    f"Requires-Python {requires_python} excludes {target.python_version}",
                )
    problems.extend(
        Problem(target.name, requirements_name(target), message)
        for message in _check_requirements_file(wheelhouse / requirements_name(target), pins)
    )
    problems.extend(
        Problem(target.name, file, message)
        for file, message in _check_closure(
            entry.requirements or manifest.requirements, target, pins, metadata
        )
    )
    return problems


def _metadata(path: Path) -> email.message.Message:
    with zipfile.ZipFile(path) as archive:
        names = [
            n for n in archive.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")
        ]
        if len(names) != 1:
            raise KeyError("no single .dist-info/METADATA")
        return email.parser.BytesParser().parsebytes(archive.read(names[0]))


def _check_requirements_file(path: Path, pins: Mapping[NormalizedName, PinEntry]) -> list[str]:
    if not path.is_file():
        return ["missing; run prewheel build"]
    found: dict[NormalizedName, tuple[str, set[str]]] = {}
    text = path.read_text(encoding="utf-8").replace("\\\n", " ")
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip() if line.lstrip().startswith("#") else line.strip()
        if not line:
            continue
        spec, *options = line.split(" --hash=")
        name, _, version = spec.strip().partition("==")
        found[canonicalize_name(name)] = (
            version.strip(),
            {o.strip().removeprefix("sha256:") for o in options},
        )
    messages: list[str] = []
    for name, pin in sorted(pins.items()):
        if name not in found:
            messages.append(f"does not pin {name}")
            continue
        version, digests = found[name]
        if version != pin.version or digests != {pin.sha256}:
            messages.append(
                f"{name}: pins {version} with {sorted(digests)}, the manifest says {pin.version} {pin.sha256}"
            )
    for name in sorted(set(found) - set(pins)):
        messages.append(f"pins {name}, which the manifest does not have")
    return messages


def _check_closure(
    roots: Sequence[str],
    target: Target,
    pins: Mapping[NormalizedName, PinEntry],
    metadata: Mapping[NormalizedName, email.message.Message],
) -> list[tuple[str, str]]:
    """Walk the requirements through each wheel's Requires-Dist under the target's markers."""
    env = target.markers()
    problems: list[tuple[str, str]] = []
    queue: list[tuple[Requirement, str]] = []
    for text in roots:
        queue.append((Requirement(text), "the requirements"))
    seen: set[tuple[NormalizedName, frozenset[str]]] = set()
    while queue:
        req, wanted_by = queue.pop()
        if req.marker is not None and not _holds(req.marker, env, ""):
            continue
        name = canonicalize_name(req.name)
        pin = pins.get(name)
        if pin is None:
            problems.append((MANIFEST, f"{name} is required by {wanted_by} but not pinned"))
            continue
        if req.specifier and not req.specifier.contains(pin.version, prereleases=True):
            problems.append(
                (pin.filename, f"{name} {pin.version} does not satisfy {req} from {wanted_by}")
            )
        extras = frozenset(canonicalize_name(e) for e in req.extras)
        key = (name, extras)
        if key in seen or name not in metadata:
            continue
        seen.add(key)
        for line in metadata[name].get_all("Requires-Dist") or []:
            try:
                child = Requirement(line)
            except InvalidRequirement:
                problems.append((pin.filename, f"unreadable Requires-Dist {line!r}"))
                continue
            if child.marker is None or any(_holds(child.marker, env, e) for e in ("", *extras)):
                queue.append((_without_marker(child), f"{name} {pin.version}"))
    return problems


def _holds(marker: Marker, env: Mapping[str, str], extra: str) -> bool:
    return marker.evaluate({**env, "extra": extra})


def _without_marker(req: Requirement) -> Requirement:
    clone = Requirement(str(req))
    clone.marker = None
    return clone


@dataclass(frozen=True)
class InstallResult:
    """The offline test install of one target: "ok", "failed" or "skipped" (and why)."""

    target: str
    state: str
    detail: str
    network_cut: bool

    @property
    def ok(self) -> bool:
        return self.state != "failed"

    def to_dict(self) -> dict[str, object]:
        return {
            "target": self.target,
            "state": self.state,
            "ok": self.ok,
            "detail": self.detail,
            "network_cut": self.network_cut,
        }


def install_checks(
    wheelhouse: Path, names: Sequence[str], env: Mapping[str, str]
) -> list[InstallResult]:
    """Install each target (or those in `names`) that a local interpreter can run."""
    manifest = read_manifest(wheelhouse)
    if manifest is None:
        return []
    cut = network_can_be_cut(env)
    if not cut:
        reporter().warn(
            "cannot cut the network here (unshare -n needs root); installing with --no-index only"
        )
    results: list[InstallResult] = []
    for entry in manifest.targets:
        if names and entry.target.name not in names:
            continue
        python = find_interpreter(entry.target.python_version, env)
        if python is None or not runs_here(entry.target):
            why = (
                f"no local CPython {entry.target.python_version} (pyenv or PATH)"
                if python is None
                else "this machine's platform cannot run it"
            )
            reporter().warn(f"{entry.target.name}: install check skipped: {why}")
            results.append(InstallResult(entry.target.name, "skipped", why, False))
            continue
        reporter().step(f"installing {entry.target.name} offline with {python}")
        results.append(install_check(wheelhouse, entry, python, env, cut_network=cut))
    return results


def install_check(
    wheelhouse: Path,
    entry: TargetEntry,
    interpreter: Path,
    env: Mapping[str, str],
    *,
    cut_network: bool,
) -> InstallResult:
    """Install `entry`'s target into a fresh venv of `interpreter`, offline, with no compiler
    on PATH, through install.sh; then run `pip check`."""
    name = entry.target.name
    with tempfile.TemporaryDirectory(prefix="prewheel-verify-") as tmp:
        venv = Path(tmp) / "venv"
        runner.run([interpreter, "-m", "venv", venv], env=env, what=f"creating a {name} venv")
        python = venv / "bin" / "python"
        child_env = runner.clean_env(env, PATH=str(venv / "bin"), PYTHON=str(python))
        prefix: list[str | Path] = []
        if cut_network:
            prefix = [shutil.which("unshare") or "unshare", "-n", "--"]
        sh = shutil.which("sh") or "/bin/sh"
        install = runner.run(
            [*prefix, sh, wheelhouse.resolve() / SCRIPT, "--no-compile", "--quiet"],
            env=child_env,
            what=f"install of {name}",
            check=False,
        )
        if install.returncode != 0:
            return InstallResult(name, "failed", runner.tail(install), cut_network)
        check = runner.run(
            [python, "-m", "pip", "check"], env=child_env, what="pip check", check=False
        )
        if check.returncode != 0:
            return InstallResult(name, "failed", f"pip check: {runner.tail(check)}", cut_network)
        return InstallResult(name, "ok", f"installed {len(entry.pins)} pins", cut_network)


def network_can_be_cut(env: Mapping[str, str]) -> bool:
    """Whether `unshare -n` works here (it needs root or user namespaces)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    try:
        return (
            subprocess.run(
                [unshare, "-n", "true"], env=dict(env), capture_output=True, check=False
            ).returncode
            == 0
        )
    except OSError:
        return False
