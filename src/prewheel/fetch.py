"""Parallel, hash-verified, atomic downloads through a content-addressed cache."""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from prewheel.errors import DownloadError
from prewheel.index import FileRef, IndexOptions, redact_url
from prewheel.report import Reporter, reporter

_CHUNK = 1 << 16
ATTEMPTS = 3  # tries per file: a failing index is retried with backoff, then reported
TIMEOUT = 60.0  # seconds without progress before a download attempt is abandoned
_USER_AGENT = "prewheel"


@dataclass(frozen=True)
class Fetched:
    """What fetching one file took: `downloaded`, `cached` (copied from the cache) or `present`."""

    ref: FileRef
    how: str
    size: int


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def safe_filename(name: str) -> str:
    """`name` if it is a plain file name; an index cannot make prewheel write elsewhere."""
    if (
        not name
        or name in (".", "..")
        or "/" in name
        or "\\" in name
        or "\x00" in name
        or name.startswith(".")
    ):
        raise DownloadError(
            f"refusing file name {name!r} from the index: it is not a plain file name; "
            "the index is broken or hostile, use another"
        )
    return name


class Cache:
    """Files by sha256 under `root/sha256/ab/<hex>`; only verified files are ever stored."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        return self.root / "sha256" / sha256[:2] / sha256

    def get(self, sha256: str) -> Path | None:
        path = self.path(sha256)
        if path.is_file():
            if sha256_of(path) == sha256:
                return path
            path.unlink(missing_ok=True)
        return None

    def remember_url(self, sha256: str, url: str) -> None:
        """Note where a locked file can be downloaded, for a later `prewheel fetch`."""
        path = self.root / "urls" / sha256
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(redact_url(url), encoding="utf-8")

    def url_for(self, sha256: str) -> str | None:
        path = self.root / "urls" / sha256
        return path.read_text(encoding="utf-8").strip() if path.is_file() else None

    def put(self, sha256: str, fill: Callable[[BinaryIO], str]) -> Path:
        """Write through `fill` to a temporary file, check the digest it returns, then store."""
        final = self.path(sha256)
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as handle:
                got = fill(handle)
            if got != sha256:
                raise _HashMismatch(got)
            os.replace(tmp, final)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return final


class _HashMismatch(Exception):
    def __init__(self, got: str) -> None:
        super().__init__(got)
        self.got = got


class _Retryable(Exception):
    pass


def fetch(
    refs: Iterable[FileRef],
    dest: Path,
    cache: Cache,
    *,
    index: IndexOptions = IndexOptions(),
    jobs: int = 8,
    base: Path | None = None,
    timeout: float = TIMEOUT,
) -> dict[str, Fetched]:
    """Place every file of `refs` in `dest`, verified; returns how each was got, by sha256.

    A file already in `dest` with the right hash is left alone; one in the cache is
    copied; the rest are downloaded once each, whatever number of targets need them.
    `base` is the folder that relative `path` entries of the lock are relative to.
    """
    unique: dict[str, FileRef] = {}
    for ref in refs:
        unique.setdefault(ref.sha256, ref)
    for ref in unique.values():
        safe_filename(ref.filename)
    report = reporter()
    failures: list[str] = []
    staged: dict[str, tuple[Path | None, str]] = {}

    def one(ref: FileRef) -> None:
        try:
            staged[ref.sha256] = _stage(ref, dest, cache, index, base, report, timeout)
        except DownloadError as exc:
            failures.append(str(exc))

    todo = sorted(unique.values(), key=lambda r: r.filename, reverse=True)
    errors: list[BaseException] = []

    def work() -> None:
        while todo:
            try:
                ref = todo.pop()
            except IndexError:  # another worker took the last one
                return
            try:
                one(ref)
            except BaseException as exc:  # a bug, a full disk: raised in the run's thread
                errors.append(exc)

    # Daemon threads: Ctrl-C ends the run now, not when a stalled download times out (a
    # worker stopped midway leaves only a temporary file in the cache, never used).
    workers = [
        threading.Thread(target=work, daemon=True) for _ in range(min(max(1, jobs), len(todo)))
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        raise errors[0]
    if failures:
        # Nothing is placed unless everything is at hand: the other files wait in the cache.
        failures.sort()
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        for line in failures:
            report.warn(line)
        raise DownloadError(f"{failures[0]}{more}")
    results: dict[str, Fetched] = {}
    for sha, (cached, how) in staged.items():
        ref = unique[sha]
        final = dest / ref.filename
        if cached is not None:
            _copy_atomic(cached, final)
        results[sha] = Fetched(ref, how, final.stat().st_size)
    return results


def _stage(
    ref: FileRef,
    dest: Path,
    cache: Cache,
    index: IndexOptions,
    base: Path | None,
    report: Reporter,
    timeout: float = TIMEOUT,
) -> tuple[Path | None, str]:
    """The verified cache file to copy into `dest` (None: it is there already) and how
    it was got: "present", "cached", "copied" (a local path) or "downloaded"."""
    final = dest / safe_filename(ref.filename)
    if final.is_file() and sha256_of(final) == ref.sha256:
        if ref.is_wheel:
            check_wheel(final, ref.filename)  # the lock's hash alone does not make it a wheel
        return None, "present"
    how = "cached"
    cached = cache.get(ref.sha256)
    if cached is None:
        cached = _download(ref, cache, index, base, report, timeout)
        how = "downloaded" if urlsplit(ref.url or "").scheme in ("http", "https") else "copied"
    if ref.is_wheel:
        check_wheel(cached, ref.filename)
    (report.step if how == "downloaded" else report.detail)(f"{how} {ref.filename}")
    return cached, how


def check_wheel(path: Path, filename: str) -> None:
    """Refuse a file named like a wheel that is not one (an sdist under a wheel's name,
    say): a zip with exactly one top-level .dist-info holding METADATA and WHEEL, named
    for the project and version in the file name."""
    try:
        name, version, _, _ = parse_wheel_filename(filename)
        with zipfile.ZipFile(path) as archive:
            members = set(archive.namelist())
    except (InvalidWheelFilename, InvalidVersion, zipfile.BadZipFile, OSError) as exc:
        raise DownloadError(
            f"{filename}: not a wheel ({exc}); the index served something else, refusing it"
        ) from exc
    infos = {m.split("/", 1)[0] for m in members if m.count("/") == 1 and ".dist-info/" in m}
    ok = len(infos) == 1 and all(
        f"{next(iter(infos))}/{f}" in members for f in ("METADATA", "WHEEL")
    )
    if ok:
        dist, _, rest = next(iter(infos)).removesuffix(".dist-info").partition("-")
        try:
            ok = canonicalize_name(dist) == name and Version(rest) == version
        except InvalidVersion:
            ok = False
    if not ok:
        raise DownloadError(
            f"{filename}: not a wheel of {name} {version} (no matching .dist-info with METADATA "
            "and WHEEL); the index served something else, refusing it"
        )


def into_cache(
    ref: FileRef,
    cache: Cache,
    *,
    index: IndexOptions = IndexOptions(),
    extra: Path | None = None,
) -> Path:
    """The verified file of `ref` in the cache, downloaded if need be.

    `extra` is a folder (such as a wheelhouse's kept build requirements) searched by
    file name before the network; its file must still match the lock's hash, and one
    that does not is passed over for the lock's own address.
    """
    cached = cache.get(ref.sha256)
    if cached is not None:
        return cached
    if extra is not None and (extra / safe_filename(ref.filename)).is_file():
        kept = replace(ref, url=None, path=str(extra / ref.filename))
        try:
            return _download(kept, cache, index, None, reporter())
        except DownloadError:
            if not (ref.url or ref.path):
                raise
            reporter().warn(
                f"the kept {ref.filename} in {extra} does not match the lock's sha256 "
                "(damaged or replaced); downloading it again"
            )
    return _download(ref, cache, index, None, reporter())


def _copy_atomic(source: Path, final: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=final.parent, prefix=".part-")
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a wheelhouse is read by other users
        os.replace(tmp, final)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _download(
    ref: FileRef,
    cache: Cache,
    index: IndexOptions,
    base: Path | None,
    report: Reporter,
    timeout: float = TIMEOUT,
) -> Path:
    source = ref.url or ref.path
    if not source:
        raise DownloadError(
            f"{ref.filename}: the lock gives no URL or path; run prewheel lock again"
        )
    shown = redact_url(source)
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return cache.put(
                ref.sha256, lambda out: _stream(ref, source, out, index, base, report, timeout)
            )
        except _HashMismatch as exc:
            raise DownloadError(
                f"{ref.filename}: sha256 {exc.got} from {shown} does not match the lock's "
                f"{ref.sha256}; the index served a different file, refusing it"
            ) from exc
        except _Retryable as exc:
            if attempt == ATTEMPTS:
                raise DownloadError(
                    f"{ref.filename}: download from {shown} failed after {attempt} attempts "
                    f"({exc}); check the network or the index and run again"
                ) from exc
            time.sleep(0.5 * 2 ** (attempt - 1))
    raise AssertionError("unreachable")


def _stream(
    ref: FileRef,
    source: str,
    out: BinaryIO,
    index: IndexOptions,
    base: Path | None,
    report: Reporter,
    timeout: float = TIMEOUT,
) -> str:
    digest = hashlib.sha256()
    done = 0
    try:
        with _Source(source, index, base, timeout) as (handle, total):
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
                out.write(chunk)
                done += len(chunk)
                report.progress(ref.filename, done, total or ref.size)
            if total is not None and done != total:
                raise _Retryable(f"got {done} of {total} bytes")
    except urllib.error.HTTPError as exc:
        if exc.code >= 500 or exc.code == 429:
            raise _Retryable(f"HTTP {exc.code}") from exc
        raise DownloadError(
            f"{ref.filename}: {redact_url(source)} answered HTTP {exc.code}; "
            "the index no longer has this file, run prewheel lock --upgrade"
        ) from exc
    except (urllib.error.URLError, OSError, TimeoutError, http.client.HTTPException) as exc:
        raise _Retryable(str(getattr(exc, "reason", exc)) or type(exc).__name__) from exc
    return digest.hexdigest()


class _Source:
    """A readable stream and its announced length, for http(s), file:// and plain paths."""

    def __init__(self, source: str, index: IndexOptions, base: Path | None, timeout: float) -> None:
        self.source, self.index, self.base, self.timeout = source, index, base, timeout
        self._handle: BinaryIO | None = None

    def __enter__(self) -> tuple[BinaryIO, int | None]:
        scheme = urlsplit(self.source).scheme
        if scheme in ("http", "https"):
            request = urllib.request.Request(
                redact_url(self.source), headers={"User-Agent": _USER_AGENT}
            )
            auth = self.index.authorization_for(self.source)
            if auth:
                request.add_header("Authorization", auth)
            response = urllib.request.urlopen(request, timeout=self.timeout)  # noqa: S310
            self._handle = response
            length = response.headers.get("Content-Length")
            return response, int(length) if length and length.isdigit() else None
        if scheme == "file":
            path = Path(unquote(urlsplit(self.source).path))
        else:
            path = Path(self.source)
            if not path.is_absolute() and self.base is not None:
                path = self.base / path
        handle = path.open("rb")
        self._handle = handle
        return handle, path.stat().st_size

    def __exit__(self, *exc: object) -> None:
        if self._handle is not None:
            self._handle.close()
