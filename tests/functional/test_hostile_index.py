"""A hostile or broken index, and the host's own configuration (README, "What prewheel
promises", 5, 6 and 7): no file outside the wheelhouse or the cache, no sdist under a
wheel's name, no credential in any output, no host index in any output."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from tests.functional.helpers import (
    CP311,
    LocalIndex,
    Prewheel,
    explain,
    one_error_line,
    parse_requirements_txt,
    read_manifest,
    snapshot,
)
from tests.localindex import IndexServer, make_sdist, make_wheel, write_simple_index

pytestmark = pytest.mark.functional

CP312 = "cp312-manylinux_2_17_x86_64"
LIB = "demo_lib-1.2-py3-none-any.whl"
SNEAKY = "demo_sneaky-1.0-py3-none-any.whl"


def _all_files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


# --- (a) a lock that names a file outside the wheelhouse --------------------------------

# What the lock says for demo-lib's wheel instead of its plain name and path, and the file
# name that prewheel must refuse. {outside} is an absolute path in the test's folder.
ESCAPES = {
    "name-dotdot": ('name = "../evil.whl"', "../evil.whl"),
    "name-absolute": ('name = "{outside}"', "{outside}"),
    "name-subfolder": ('name = "a/evil.whl"', "a/evil.whl"),
    "name-nul": ('name = "evil\\u0000.whl"', "evil\x00.whl"),
    "name-backslash": ('name = "..\\\\evil.whl"', "..\\evil.whl"),
    "path-dotdot": ('name = "demo_lib-1.2-py3-none-any.whl", path = "../evil.whl"', "../evil.whl"),
    "path-absolute": ('path = "{outside}"', "{outside}"),
    "path-subfolder": ('path = "./a/evil.whl"', "a/evil.whl"),
    "url-encoded-nul": ('url = "http://127.0.0.1:9/files/evil%00.whl"', "evil\x00.whl"),
}


@pytest.mark.parametrize("escape", list(ESCAPES))
def test_a_lock_naming_a_file_outside_the_wheelhouse_is_refused(
    escape: str, prewheel: Prewheel, existing_wheelhouse: Path, tmp_path: Path
) -> None:
    outside = str(tmp_path / "abs" / "evil.whl")
    entry, refused = (s.replace("{outside}", outside) for s in ESCAPES[escape])
    lock = existing_wheelhouse / f"pylock.{CP311}.toml"
    plain = f'name = "{LIB}", path = "./{LIB}"'
    text = lock.read_text(encoding="utf-8")
    assert plain in text
    lock.write_text(text.replace(plain, entry), encoding="utf-8")
    # The wheel is gone, so prewheel would have to place it somewhere.
    (existing_wheelhouse / LIB).unlink()
    before, around = snapshot(existing_wheelhouse), _all_files(tmp_path)

    result = prewheel("fetch", "-o", existing_wheelhouse)

    assert result.returncode == 4, explain(result)
    line = one_error_line(result)
    assert repr(refused) in line and lock.name in line and "demo-lib" in line
    assert snapshot(existing_wheelhouse) == before
    assert _all_files(tmp_path) - around == set(), "a file was written outside the wheelhouse"
    assert not [p for p in tmp_path.rglob("*evil*")]
    assert not [p for p in existing_wheelhouse.parent.parent.glob("*evil*")]


# --- (b) an sdist under a wheel's name --------------------------------------------------


@dataclass
class Hostile:
    server: IndexServer
    root: Path
    sneaky: Path  # the file served under a wheel's name: an sdist tarball

    @property
    def sneaky_sha256(self) -> str:
        return hashlib.sha256(self.sneaky.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    """An index whose demo-sneaky 1.0 "wheel" is an sdist tarball; the page's sha256
    fragment is that of the disguised bytes, so every hash check passes."""
    base = tmp_path_factory.mktemp("hostile")
    root = base / "served"
    write_simple_index(root, [make_wheel(base / "dist", "demo-honest", "1.0")])
    sdist = make_sdist(base / "dist", "demo-sneaky", "1.0", backend="intree")
    sneaky = root / "files" / SNEAKY
    sneaky.write_bytes(sdist.read_bytes())
    digest = hashlib.sha256(sneaky.read_bytes()).hexdigest()
    page = root / "simple" / "demo-sneaky"
    page.mkdir()
    (page / "index.html").write_text(
        f'<!DOCTYPE html><html><body><a href="../../files/{SNEAKY}#sha256={digest}">'
        f"{SNEAKY}</a><br></body></html>\n",
        encoding="utf-8",
    )
    with IndexServer(root) as server:
        yield Hostile(server, root, sneaky)


def test_build_refuses_an_sdist_served_as_a_wheel(
    hostile: Hostile,
    prewheel: Prewheel,
    existing_wheelhouse: Path,
    write_requirements: Callable[..., Path],
) -> None:
    before = snapshot(existing_wheelhouse)
    result = prewheel(
        "build",
        "-r",
        write_requirements("demo-honest\ndemo-sneaky\n"),
        "-t",
        CP311,
        "-o",
        existing_wheelhouse,
        "--index-url",
        hostile.server.index_url,
    )
    # uv itself refuses to read it while resolving; prewheel says what it is.
    assert result.returncode == 4, explain(result)
    line = one_error_line(result)
    assert "demo-sneaky" in line and "not a wheel" in line
    assert "cannot reach" not in line, "the index answered: this is not a network failure"
    assert snapshot(existing_wheelhouse) == before


def _sneaky_lock(hostile: Hostile) -> str:
    """A lock, such as uv or a hand might write, naming the disguised file by its URL and
    its true sha256."""
    size = hostile.sneaky.stat().st_size
    return (
        'lock-version = "1.0"\n'
        'created-by = "prewheel"\n\n'
        "[[packages]]\n"
        'name = "demo-sneaky"\n'
        'version = "1.0"\n'
        f'wheels = [{{ name = "{SNEAKY}", url = "{hostile.server.url}/files/{SNEAKY}", '
        f'size = {size}, hashes = {{ sha256 = "{hostile.sneaky_sha256}" }} }}]\n\n'
        "[tool.prewheel]\n"
        f'target = "{CP312}"\n'
        'requirements = ["demo-sneaky"]\n'
    )


@pytest.mark.parametrize("already_there", [False, True], ids=["downloaded", "already-there"])
def test_fetch_refuses_an_sdist_whose_hash_matches_the_lock(
    already_there: bool, hostile: Hostile, prewheel: Prewheel, existing_wheelhouse: Path
) -> None:
    # A second target's lock names the disguised file; the first target's files are fine.
    (existing_wheelhouse / f"pylock.{CP312}.toml").write_text(
        _sneaky_lock(hostile), encoding="utf-8"
    )
    if already_there:
        # Left in the folder (by hand, or by another tool): its hash alone must not pass it.
        (existing_wheelhouse / SNEAKY).write_bytes(hostile.sneaky.read_bytes())
    before = snapshot(existing_wheelhouse)
    requests = len(hostile.server.recorded())

    result = prewheel("fetch", "-o", existing_wheelhouse)

    assert result.returncode == 4, explain(result)
    line = one_error_line(result)
    assert SNEAKY in line and "not a wheel" in line
    assert snapshot(existing_wheelhouse) == before, "nothing lands, the manifest is not rewritten"
    served = [p for p in hostile.server.recorded()[requests:] if p.endswith(SNEAKY)]
    assert served == ([] if already_there else [f"/files/{SNEAKY}"])
    assert CP312 not in read_manifest(existing_wheelhouse)["targets"]


# --- (c) credentials --------------------------------------------------------------------


class _AuthHandler(SimpleHTTPRequestHandler):
    owner: AuthIndexServer

    def __init__(self, *args: Any, owner: AuthIndexServer, **kwargs: Any) -> None:
        self.owner = owner
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:  # noqa: N802
        authorized = self.headers.get("Authorization") == self.owner.expected
        self.owner.record(self.path, self.headers.get("User-Agent", ""), authorized)
        if not authorized:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="private index"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


class AuthIndexServer:
    """Serve `root` on 127.0.0.1, answering 401 to any request without `login:password`
    as HTTP Basic credentials; records (path, user agent, authorized) for each request."""

    def __init__(self, root: Path, login: str, password: str) -> None:
        self.root = root
        self.expected = "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()
        self.requests: list[tuple[str, str, bool]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def record(self, path: str, agent: str, authorized: bool) -> None:
        with self._lock:
            self.requests.append((path, agent, authorized))

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    def __enter__(self) -> AuthIndexServer:
        handler = functools.partial(_AuthHandler, directory=str(self.root), owner=self)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def private_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("private")
    root = base / "served"
    write_simple_index(
        root,
        [
            make_wheel(base / "dist", "private-app", "1.0", requires_dist=["private-lib"]),
            make_wheel(base / "dist", "private-lib", "2.0"),
        ],
    )
    return root


@pytest.mark.parametrize("source", ["index-url", "netrc"])
def test_credentials_are_used_and_never_written_or_shown(
    source: str,
    private_root: Path,
    prewheel: Prewheel,
    write_requirements: Callable[..., Path],
    tmp_path: Path,
) -> None:
    login, password = ("user", "secret") if source == "index-url" else ("bob", "netrcsecret")
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login {login} password {password}\n", encoding="utf-8")
    netrc.chmod(0o600)
    out = tmp_path / "wheelhouse"
    with AuthIndexServer(private_root, login, password) as server:
        index_url = f"http://127.0.0.1:{server.port}/simple"
        if source == "index-url":
            index_url = f"http://{login}:{password}@127.0.0.1:{server.port}/simple"
        host_env = {"NETRC": str(netrc)} if source == "netrc" else {}
        result = prewheel.ok(
            "build",
            "-v",
            "--json",
            "-r",
            write_requirements("private-app\n"),
            "-t",
            CP311,
            "-o",
            out,
            "--index-url",
            index_url,
            host_env=host_env,
        )
        requests = list(server.requests)

    # The credentials were needed, and prewheel's own downloads sent them.
    ours = [(path, ok) for path, agent, ok in requests if agent == "prewheel"]
    assert sorted(ours) == [
        ("/files/private_app-1.0-py3-none-any.whl", True),
        ("/files/private_lib-2.0-py3-none-any.whl", True),
    ]
    assert json.loads(result.stdout)["total"]["downloaded"] == 2
    # ... and went nowhere else: not in the output, not in a file of the wheelhouse,
    # not in the addresses the cache keeps for `prewheel fetch`.
    for stream in (result.stdout, result.stderr):
        assert password not in stream and f"{login}:" not in stream
    assert "$ " in result.stderr, "-v shows the resolver's command"
    for path in [*out.rglob("*"), *prewheel.cache.rglob("*")]:
        if path.is_file():
            data = path.read_bytes()
            assert password.encode() not in data, path
            assert f"{login}:".encode() not in data, path
    assert any(p.is_file() for p in (prewheel.cache / "urls").iterdir())
    assert read_manifest(out)["indexes"]["index_url"] == f"http://127.0.0.1:{server.port}/simple"
    prewheel.ok("verify", out)


# --- (d) the host's own pip and uv configuration ----------------------------------------


@pytest.fixture(scope="module")
def other_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IndexServer]:
    """A second index that a host's configuration points at: it has a newer demo-lib,
    and a demo-app that needs it."""
    base = tmp_path_factory.mktemp("other-index")
    files = [
        make_wheel(base / "dist", "demo-app", "1.0", requires_dist=["demo-lib>=9"]),
        make_wheel(base / "dist", "demo-lib", "9.0"),
    ]
    write_simple_index(base / "served", files)
    with IndexServer(base / "served") as server:
        yield server


def test_host_pip_and_uv_settings_do_not_reach_the_lock(
    prewheel: Prewheel,
    local_index: LocalIndex,
    other_index: IndexServer,
    write_requirements: Callable[..., Path],
    good_wheelhouse: Path,
    tmp_path: Path,
) -> None:
    # A machine whose shell and pip.conf point pip and uv elsewhere (this one sets
    # PIP_FIND_LINKS and has a global pip.conf): the wheelhouse must come out as on any
    # other machine, and name only the index the user gave prewheel.
    elsewhere = other_index.index_url
    pip_conf = tmp_path / "pip.conf"
    pip_conf.write_text(
        f"[global]\nindex-url = {elsewhere}\nextra-index-url = {elsewhere}\n"
        f"find-links = {tmp_path / 'no-such-folder'}\n",
        encoding="utf-8",
    )
    uv_toml = tmp_path / "uv.toml"
    uv_toml.write_text(f'[[index]]\nurl = "{elsewhere}"\ndefault = true\n', encoding="utf-8")
    host_env = {
        "UV_INDEX_URL": elsewhere,
        "UV_EXTRA_INDEX_URL": elsewhere,
        "UV_DEFAULT_INDEX": elsewhere,
        "UV_INDEX": elsewhere,
        "UV_CONFIG_FILE": str(uv_toml),
        "UV_FIND_LINKS": str(tmp_path / "no-such-folder"),
        "UV_CONSTRAINT": str(tmp_path / "no-such-constraints.txt"),
        "PIP_INDEX_URL": elsewhere,
        "PIP_EXTRA_INDEX_URL": elsewhere,
        "PIP_FIND_LINKS": str(tmp_path / "no-such-folder"),
        "PIP_CONFIG_FILE": str(pip_conf),
    }
    out = tmp_path / "wheelhouse"
    result = prewheel.ok(
        "build",
        "-v",
        "--json",
        "-r",
        write_requirements("demo-app\n"),
        "-t",
        CP311,
        "-o",
        out,
        "--index-url",
        local_index.index_url,
        host_env=host_env,
    )

    assert other_index.recorded() == [], "the host's index was asked"
    name = f"requirements.{CP311}.txt"
    assert parse_requirements_txt(out / name)["demo-lib"][0] == "1.2"
    assert (out / name).read_bytes() == (good_wheelhouse / name).read_bytes()
    assert read_manifest(out) == read_manifest(good_wheelhouse)
    port = str(other_index.port)
    for text in (result.stdout, result.stderr):
        assert f":{port}" not in text and "no-such-" not in text and "pip.conf" not in text
    for path in out.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert f":{port}".encode() not in data and b"no-such-" not in data, path
