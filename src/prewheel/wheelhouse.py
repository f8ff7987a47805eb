"""The wheelhouse folder: wheels, per-target locks, the manifest, written safely."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import signal
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prewheel import __version__
from prewheel.errors import DownloadError, TargetError, WheelhouseError
from prewheel.fetch import safe_filename
from prewheel.index import FileRef
from prewheel.report import reporter
from prewheel.targets import Target, captured_target, parse_target

MANIFEST = "manifest.json"
BUILD_DEPS = ".build"  # kept build requirements and sdists (--keep-build-deps)
FORMAT = 1
_LOCKFILE = ".prewheel.lock"


def pylock_name(target: Target) -> str:
    return f"pylock.{target.name}.toml"


def requirements_name(target: Target) -> str:
    return f"requirements.{target.name}.txt"


@dataclass(frozen=True)
class PinEntry:
    """A pin of one target and the one file that serves it."""

    name: str
    version: str
    filename: str
    sha256: str
    size: int
    index: str = "default"
    source: str = "index"
    build: Mapping[str, Any] | None = None  # provenance of a wheel built here

    def to_dict(self) -> dict[str, Any]:
        extra = {"build": dict(self.build)} if self.build else {}
        return {
            "name": self.name,
            "version": self.version,
            "file": self.filename,
            "sha256": self.sha256,
            "size": self.size,
            "source": self.source,
            "index": self.index,
            **extra,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PinEntry:
        filename = str(data["file"])
        try:
            safe_filename(filename)
        except DownloadError as exc:
            # verify would otherwise read it, and a failed build carry it on, outside the folder
            raise ValueError(f"file {filename!r} is not a plain file name") from exc
        return cls(
            name=str(data["name"]),
            version=str(data["version"]),
            filename=filename,
            sha256=str(data["sha256"]),
            size=int(data["size"]),
            index=str(data.get("index", "default")),
            source=str(data.get("source", "index")),
            build=data.get("build"),
        )

    @classmethod
    def from_ref(cls, name: str, version: str, ref: FileRef, size: int, index: str) -> PinEntry:
        return cls(name, version, ref.filename, ref.sha256, size, index)


@dataclass(frozen=True)
class TargetEntry:
    target: Target
    pins: tuple[PinEntry, ...]
    requirements: tuple[str, ...] = ()

    def to_dict(self, roots: Sequence[str] = ()) -> dict[str, Any]:
        """The target's record; its requirements only where they differ from `roots`,
        the manifest's (as after merging wheelhouses built from different files)."""
        own: dict[str, Any] = {}
        if tuple(roots) != self.requirements:
            own["requirements"] = list(self.requirements)
        if self.target.captured is not None:
            own["captured"] = self.target.capture_dict()
        return {
            "python": self.target.python_version,
            "platform": self.target.platform,
            **own,
            "pins": [p.to_dict() for p in sorted(self.pins, key=lambda p: p.name)],
        }


@dataclass(frozen=True)
class Manifest:
    """What the wheelhouse holds; written last, so it never names a file that is not there."""

    requirements: tuple[str, ...]
    targets: tuple[TargetEntry, ...]
    indexes: Mapping[str, Any] = field(default_factory=dict)

    def entry(self, name: str) -> TargetEntry | None:
        return next((t for t in self.targets if t.target.name == name), None)

    def files(self) -> dict[str, PinEntry]:
        out: dict[str, PinEntry] = {}
        for entry in self.targets:
            for pin in entry.pins:
                out.setdefault(pin.filename, pin)
        return out

    def to_dict(self) -> dict[str, Any]:
        files: dict[str, dict[str, Any]] = {}
        for entry in sorted(self.targets, key=lambda t: t.target.name):
            for pin in entry.pins:
                record = files.setdefault(
                    pin.filename,
                    {
                        "sha256": pin.sha256,
                        "size": pin.size,
                        "source": pin.source,
                        "index": pin.index,
                        "targets": [],
                    },
                )
                record["targets"].append(entry.target.name)
        return {
            "format": FORMAT,
            "created_by": f"prewheel {__version__}",
            "requirements": list(self.requirements),
            "indexes": dict(self.indexes),
            "targets": {
                t.target.name: t.to_dict(self.requirements)
                for t in sorted(self.targets, key=lambda t: t.target.name)
            },
            "files": dict(sorted(files.items())),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r} is not {FORMAT}")
        roots = tuple(str(r) for r in data.get("requirements", []))
        targets = tuple(
            TargetEntry(
                captured_target(body["captured"], f"manifest target {name}")
                if "captured" in body
                else parse_target(name),
                tuple(PinEntry.from_dict(p) for p in body["pins"]),
                tuple(str(r) for r in body.get("requirements", roots)),
            )
            for name, body in data["targets"].items()
        )
        return cls(
            requirements=roots,
            targets=targets,
            indexes=dict(data.get("indexes") or {}),
        )


def read_manifest(wheelhouse: Path) -> Manifest | None:
    """The manifest, or None if the folder has none yet; raises ValueError if it is nonsense."""
    path = wheelhouse / MANIFEST
    if not path.is_file():
        return None
    try:
        return Manifest.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError, AttributeError, TargetError) as exc:
        raise ValueError(f"{path} is not a prewheel manifest: {exc}") from exc


def check_folder(wheelhouse: Path) -> None:
    """Refuse a wheelhouse path that cannot be a folder we write, before anything runs."""
    if wheelhouse.exists() and not wheelhouse.is_dir():
        raise WheelhouseError(
            f"wheelhouse {wheelhouse} is a file, not a folder; pass another -o path"
        )
    probe = wheelhouse if wheelhouse.exists() else _existing_parent(wheelhouse)
    if not os.access(probe, os.W_OK | os.X_OK):
        raise WheelhouseError(
            f"wheelhouse {wheelhouse} is not writable; fix its permissions or pass another -o path"
        )


def _existing_parent(path: Path) -> Path:
    for parent in path.absolute().parents:
        if parent.exists():
            return parent
    return Path("/")


@contextlib.contextmanager
def locked(wheelhouse: Path, timeout: float = 600.0) -> Iterator[None]:
    """Hold the wheelhouse's lock; a second run waits for it, then gives up with a message.

    A folder that this call created is removed again if the run leaves nothing in it.
    """
    created = not wheelhouse.exists()
    wheelhouse.mkdir(parents=True, exist_ok=True)
    handle = (wheelhouse / _LOCKFILE).open("a")
    held = False
    try:
        deadline = time.monotonic() + timeout
        told = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                if _is_file_at(handle.fileno(), wheelhouse / _LOCKFILE):
                    held = True
                    break
                # The run we waited for removed the folder it had made, lock file and all:
                # a lock on the removed file would not stop a third run. Lock anew.
                handle.close()
                created = created or not wheelhouse.exists()
                wheelhouse.mkdir(parents=True, exist_ok=True)
                handle = (wheelhouse / _LOCKFILE).open("a")
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() > deadline:
                    raise WheelhouseError(
                        f"wheelhouse {wheelhouse} is in use by another prewheel run; "
                        "wait for it to finish and run again"
                    ) from exc
                if not told:
                    reporter().step(f"waiting for another prewheel run on {wheelhouse}")
                    told = True
                time.sleep(0.2)
        yield
    finally:
        if held and created and [p.name for p in wheelhouse.iterdir()] == [_LOCKFILE]:
            # Removed while still locked, so a run waiting for this lock sees it go.
            (wheelhouse / _LOCKFILE).unlink()
            with contextlib.suppress(OSError):  # a run starting just now made its own
                wheelhouse.rmdir()
        handle.close()


def _is_file_at(fd: int, path: Path) -> bool:
    """Whether the open file `fd` is still the file at `path` (not one removed since)."""
    try:
        return os.path.samestat(os.fstat(fd), os.stat(path))
    except FileNotFoundError:
        return False


@contextlib.contextmanager
def holding_interrupts() -> Iterator[None]:
    """Hold Ctrl-C (SIGINT) until the block ends, then act on it.

    The locks, scripts and manifest of a run are renamed into place one by one, the
    manifest last; stopped among them, the folder would pair new requirements files with
    the previous manifest. Ctrl-C waits the few milliseconds for the manifest instead.
    """
    if threading.current_thread() is not threading.main_thread() or (
        signal.getsignal(signal.SIGINT) is None  # a handler set outside Python: leave it
    ):
        yield
        return
    pressed: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: pressed.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if pressed and callable(previous):
            previous(signal.SIGINT, None)


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Write `text` to a temporary name beside `path`, flush it to disk, give it `mode`,
    rename it into place: it lands whole and with its final mode, or not at all."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_manifest(wheelhouse: Path, manifest: Manifest) -> None:
    write_atomic(wheelhouse / MANIFEST, json.dumps(manifest.to_dict(), indent=2) + "\n")


def render_requirements(entry: TargetEntry) -> str:
    """pip's format, one pin a line, carrying exactly the hash of the file in the folder."""
    lines = [
        f"# prewheel: the pins of target {entry.target.name}, one file each in this folder.",
        "# Install with install.sh, or: pip install --no-index --find-links <this folder> "
        "--only-binary=:all: --require-hashes -r <this file>",
    ]
    for pin in sorted(entry.pins, key=lambda p: p.name):
        lines.append(f"{pin.name}=={pin.version} \\\n    --hash=sha256:{pin.sha256}")
    return "\n".join(lines) + "\n"


def render_pylock(entry: TargetEntry) -> str:
    """A PEP 751 lock of the target: one wheel per package, the one in this folder.

    Wheels are named by `path` relative to the lock, so the lock describes the folder
    and names no host; the address each file was fetched from stays in the cache.
    """
    target = entry.target
    environment = (
        f"python_version == '{target.python_version}' and sys_platform == 'linux' "
        f"and platform_machine == '{target.arch}'"
    )
    out = [
        'lock-version = "1.0"',
        f"environments = [{_toml_str(environment)}]",
        f"requires-python = {_toml_str('==' + target.python_version + '.*')}",
        'created-by = "prewheel"',
    ]
    for pin in sorted(entry.pins, key=lambda p: p.name):
        wheel = [
            f"name = {_toml_str(pin.filename)}",
            f"path = {_toml_str('./' + pin.filename)}",
            f"size = {pin.size}",
        ]
        wheel.append(f"hashes = {{ sha256 = {_toml_str(pin.sha256)} }}")
        out += [
            "",
            "[[packages]]",
            f"name = {_toml_str(pin.name)}",
            f"version = {_toml_str(pin.version)}",
            f"wheels = [{{ {', '.join(wheel)} }}]",
        ]
    out += [
        "",
        "[tool.prewheel]",
        f"target = {_toml_str(target.name)}",
        f"requirements = [{', '.join(_toml_str(r) for r in entry.requirements)}]",
    ]
    if target.captured is not None:
        # A captured target cannot be rebuilt from its name: keep its description.
        out.append(f"captured = {_toml_str(json.dumps(target.capture_dict(), sort_keys=True))}")
    return "\n".join(out) + "\n"


def _toml_str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def write_target(wheelhouse: Path, entry: TargetEntry) -> None:
    write_atomic(wheelhouse / pylock_name(entry.target), render_pylock(entry))
    write_atomic(wheelhouse / requirements_name(entry.target), render_requirements(entry))


def prune(wheelhouse: Path, manifest: Manifest, stale_targets: Sequence[Target] = ()) -> list[str]:
    """Remove wheels and target files that the manifest no longer names, and leftovers."""
    keep = set(manifest.files())
    removed: list[str] = []
    for path in sorted(wheelhouse.iterdir()):
        if (path.suffix == ".whl" and path.name not in keep) or path.name.startswith(".part-"):
            path.unlink(missing_ok=True)
            removed.append(path.name)
    for target in stale_targets:
        for name in (
            pylock_name(target),
            requirements_name(target),
            f"pip-compile.{target.name}.txt",
        ):
            if (wheelhouse / name).exists():
                (wheelhouse / name).unlink()
                removed.append(name)
    return removed
