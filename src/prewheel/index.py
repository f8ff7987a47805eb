"""Where packages come from: index options, credentials kept out of outputs,
and the choice of the best file of a release for a target."""

from __future__ import annotations

import base64
import netrc
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from prewheel.errors import InputError
from prewheel.targets import Target

_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")


def redact_url(url: str) -> str:
    """`url` without a user name or password."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def redact_text(text: str) -> str:
    """Any `scheme://user:secret@` in free text, with the credentials removed."""
    return _URL_USERINFO.sub(r"\g<scheme>", text)


@dataclass(frozen=True)
class IndexOptions:
    """The indexes and find-links locations that the user gave prewheel."""

    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    allow_insecure_http: bool = field(default=False, compare=False)
    netrc: Path | None = field(default=None, compare=False)  # credentials by host, as uv reads

    def __post_init__(self) -> None:
        for url in (self.index_url, *self.extra_index_urls):
            if url is not None:
                _check_index_url(url, self.allow_insecure_http)
        for location in self.find_links:
            if "://" in location:
                _check_index_url(location, self.allow_insecure_http)

    def tool_args(self) -> list[str]:
        """The same options for uv, pip and pip-compile, which spell them alike
        (credentials included: the tools need them)."""
        args: list[str] = []
        if self.index_url:
            args += ["--index-url", self.index_url]
        for url in self.extra_index_urls:
            args += ["--extra-index-url", url]
        for location in self.find_links:
            # uv runs in a scratch folder: a folder named relative to the user's cwd is made
            # absolute here, and only here, so that no output records the host path.
            if "://" not in location:
                location = os.path.abspath(location)
            args += ["--find-links", location]
        return args

    def to_dict(self) -> dict[str, Any]:
        """For the manifest: the indexes by address, never with credentials."""
        return {
            "index_url": redact_url(self.index_url) if self.index_url else None,
            "extra_index_urls": [redact_url(u) for u in self.extra_index_urls],
            "find_links": [_shown_location(u) for u in self.find_links],
        }

    def origin_of(self, url: str | None) -> str:
        """Which of the user's indexes a file URL belongs to, without credentials.

        Files from the resolver's default index are recorded as "default": outputs
        name only the indexes the user gave prewheel.
        """
        if url:
            host = urlsplit(url).hostname
            for index in (self.index_url, *self.extra_index_urls, *self.find_links):
                if index and "://" in index and urlsplit(index).hostname == host:
                    return redact_url(index)
            if urlsplit(url).scheme in ("", "file"):
                return "find-links"
        elif self.find_links:
            return "find-links"
        return "default"

    def authorization_for(self, url: str) -> str | None:
        """A Basic authorization header value for `url` if an index on its host has credentials."""
        target = urlsplit(url)
        for index in (self.index_url, *self.extra_index_urls, *self.find_links):
            if not index or "://" not in index:
                continue
            parts = urlsplit(index)
            if parts.username is None or parts.hostname != target.hostname:
                continue
            if parts.port != target.port:
                continue
            token = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            return "Basic " + base64.b64encode(token.encode()).decode()
        return self._from_netrc(target.hostname)

    def _from_netrc(self, host: str | None) -> str | None:
        if self.netrc is None or host is None or not self.netrc.is_file():
            return None
        try:
            found = netrc.netrc(str(self.netrc)).authenticators(host)
        except (netrc.NetrcParseError, OSError):
            return None
        if found is None:
            return None
        login, _, password = found
        token = f"{login}:{password or ''}"
        return "Basic " + base64.b64encode(token.encode()).decode()


def _shown_location(location: str) -> str:
    """A find-links location fit for outputs: no credentials, no absolute host path."""
    if "://" in location:
        return redact_url(location)
    return os.path.basename(location.rstrip("/")) if os.path.isabs(location) else location


def _check_index_url(url: str, allow_insecure_http: bool) -> None:
    parts = urlsplit(url)
    shown = redact_url(url)
    if parts.scheme not in ("https", "http", "file"):
        raise InputError(
            f"index {shown!r}: scheme {parts.scheme or '(none)'!r} is not supported; "
            "use an https:// URL, a file:// URL or a folder"
        )
    if parts.scheme == "http" and parts.hostname not in _LOOPBACK and not allow_insecure_http:
        raise InputError(
            f"index {shown!r} is plain http on a non-loopback host: files could be swapped in "
            "transit; use https, or pass --allow-insecure-http if you accept that"
        )


@dataclass(frozen=True)
class FileRef:
    """One distribution file of a pinned release, as the lock lists it."""

    filename: str
    sha256: str
    size: int | None = None
    url: str | None = None
    path: str | None = None

    @property
    def is_wheel(self) -> bool:
        return self.filename.endswith(".whl")


def wheel_rank(filename: str, priority: dict[Any, int]) -> int | None:
    """The best rank among a wheel's tags for a target, or None if none fits."""
    try:
        _, _, _, wheel_tags = parse_wheel_filename(filename)
    except InvalidWheelFilename:
        return None
    ranks = [priority[tag] for tag in wheel_tags if tag in priority]
    return min(ranks) if ranks else None


def choose_wheel(files: Iterable[FileRef], target: Target) -> FileRef | None:
    """The wheel pip would pick on `target` among `files`: the best-ranked tag wins."""
    priority = target.tag_priority()
    best: tuple[int, str, FileRef] | None = None
    for ref in files:
        if not ref.is_wheel:
            continue
        rank = wheel_rank(ref.filename, priority)
        if rank is None:
            continue
        key = (rank, ref.filename, ref)
        if best is None or key[:2] < best[:2]:
            best = key
    return best[2] if best else None
