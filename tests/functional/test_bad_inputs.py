"""Bad inputs (issue 5's table; README, "What prewheel promises", 8): one line naming
what failed, the documented exit code, and an existing wheelhouse left byte for byte
as it was. A manifest edited into nonsense is the one row that changes disk: verify
says so, and the next build rewrites it."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from prewheel.targets import parse_target
from tests.functional.helpers import (
    CP311,
    RUN_TIMEOUT,
    LocalIndex,
    Prewheel,
    explain,
    one_error_line,
    read_manifest,
    snapshot,
)

pytestmark = pytest.mark.functional

# TEST-NET-1: never contacted, since a plain-http index on a host that is not loopback
# is refused before any network.
REMOTE_HTTP_INDEX = "http://192.0.2.1/simple"
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


@dataclass(frozen=True)
class BadInput:
    """One mistake a user makes, given to `prewheel build` over an existing wheelhouse.

    `must_name` is what the error line must contain, after filling in `{requirements}`,
    `{output}`, `{port}` and `{target_json}`. Unless `reaches_index`, the run must not
    send a single request to the index: the input is refused before any network.
    """

    exit_code: int
    must_name: tuple[str, ...]
    requirements: str | None = "demo-app\n"  # None: the file does not exist
    target: str = CP311
    target_json: dict[str, object] | None = None  # written to target.json and passed as -t
    index_url: str = "http://127.0.0.1:{port}/simple"
    output_is_a_file: bool = False
    read_only: bool = False
    reaches_index: bool = False


def _capture_with_unknown_keys() -> dict[str, object]:
    return {**parse_target(CP311).capture_dict(), "colour": "red", "zeta": 1}


CASES = {
    "missing-requirements-file": BadInput(
        exit_code=2, requirements=None, must_name=("{requirements}", "not found")
    ),
    "malformed-requirement": BadInput(
        exit_code=2,
        requirements="demo-app\ndemo-lib >>= 1\n",
        must_name=("{requirements}:2", "demo-lib >>= 1"),
    ),
    "unknown-package": BadInput(
        exit_code=3,
        requirements="demo-app\ndemo-nonexistent>=1\n",
        must_name=("demo-nonexistent", CP311),
        reaches_index=True,
    ),
    "unsatisfiable-versions": BadInput(
        exit_code=3,
        # demo-app needs demo-lib>=1.
        requirements="demo-app\ndemo-lib<1\n",
        must_name=("demo-lib", CP311, "cannot be satisfied"),
        reaches_index=True,
    ),
    "bad-target-spec": BadInput(
        exit_code=2,
        target="cp311-windows_x86",
        # The spec that failed, and an example of a good one.
        must_name=("cp311-windows_x86", "cp311-manylinux_2_17_x86_64"),
    ),
    "target-json-unknown-keys": BadInput(
        exit_code=2,
        target_json=_capture_with_unknown_keys(),
        must_name=("{target_json}", "unknown keys colour, zeta"),
    ),
    "wheelhouse-is-a-file": BadInput(
        exit_code=8, output_is_a_file=True, must_name=("{output}", "is a file")
    ),
    "read-only-wheelhouse": BadInput(
        exit_code=8, read_only=True, must_name=("{output}", "not writable")
    ),
    "index-url-bad-scheme": BadInput(
        exit_code=2,
        index_url="ftp://127.0.0.1:{port}/simple",
        must_name=("ftp://127.0.0.1:{port}/simple", "'ftp'"),
    ),
    "plain-http-index-not-loopback": BadInput(
        exit_code=2,
        index_url=REMOTE_HTTP_INDEX,
        must_name=(REMOTE_HTTP_INDEX, "--allow-insecure-http"),
    ),
    # Not in issue 5's table, kept from the first version of this table.
    "unreachable-index": BadInput(
        exit_code=4,
        index_url="http://127.0.0.1:{closed}/simple",
        must_name=("127.0.0.1:{closed}", CP311),
        reaches_index=True,
    ),
}


def _closed_port() -> int:
    """A loopback port that nothing listens on (it was free a moment ago)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _writes_denied(folder: Path, prefix: list[str]) -> bool:
    """Whether a process started with `prefix` really cannot create a file in `folder`."""
    probe = (
        "import sys\n"
        "try:\n"
        "    open(sys.argv[1] + '/.write-probe', 'x').close()\n"
        "except PermissionError:\n"
        "    sys.exit(0)\n"
        "sys.exit(1)\n"
    )
    try:
        result = subprocess.run(
            [*prefix, sys.executable, "-c", probe, str(folder)],
            capture_output=True,
            timeout=30,
            check=False,
        )
    except OSError:
        return False
    (folder / ".write-probe").unlink(missing_ok=True)
    return result.returncode == 0


@pytest.fixture
def read_only(existing_wheelhouse: Path) -> Iterator[list[str]]:
    """Make the wheelhouse read-only (0o555); yields the command prefix under which a
    process is really refused writes there.

    root ignores permission bits, so as root prewheel runs in a new user namespace
    (`unshare --user`), where it keeps its own files but is held to the folder's mode.
    """
    os.chmod(existing_wheelhouse, 0o555)
    try:
        prefix: list[str] = []
        if not _writes_denied(existing_wheelhouse, prefix):
            prefix = ["unshare", "--user"]
            if shutil.which("unshare") is None or not _writes_denied(existing_wheelhouse, prefix):
                pytest.skip(
                    "running as root, which ignores a read-only mode, and `unshare --user` "
                    "is not available to drop that: cannot make a read-only wheelhouse here"
                )
        yield prefix
    finally:
        os.chmod(existing_wheelhouse, 0o755)


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_leaves_the_wheelhouse_unchanged(
    case: str,
    request: pytest.FixtureRequest,
    prewheel: Prewheel,
    local_index: LocalIndex,
    existing_wheelhouse: Path,
    write_requirements: Callable[..., Path],
    tmp_path: Path,
) -> None:
    bad = CASES[case]
    if bad.requirements is None:
        requirements = tmp_path / "no-such-requirements.in"
    else:
        requirements = write_requirements(bad.requirements)
    target = bad.target
    target_json = tmp_path / "deploy-target.json"
    if bad.target_json is not None:
        target_json.write_text(json.dumps(bad.target_json), encoding="utf-8")
        target = str(target_json)
    port, closed = local_index.server.port, _closed_port()
    index_url = bad.index_url.format(port=port, closed=closed)
    # A file where the wheelhouse folder should be: its own manifest, say.
    output = existing_wheelhouse / "manifest.json" if bad.output_is_a_file else existing_wheelhouse
    prefix: list[str] = request.getfixturevalue("read_only") if bad.read_only else []
    before = snapshot(existing_wheelhouse)
    requests_before = len(local_index.server.recorded())

    args = ["build", "-r", requirements, "-t", target, "-o", output, "--index-url", index_url]
    started = time.monotonic()
    result = subprocess.run(
        [*prefix, sys.executable, "-m", "prewheel", *(str(a) for a in args)],
        cwd=prewheel.cwd,
        env=prewheel.env(),
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )
    elapsed = time.monotonic() - started

    assert result.returncode == bad.exit_code, explain(result)
    line = one_error_line(result)
    for text in bad.must_name:
        filled = text.format(
            requirements=requirements,
            output=output,
            port=port,
            closed=closed,
            target_json=target_json,
        )
        assert filled in line, f"{filled!r} not in {line!r}"
    assert snapshot(existing_wheelhouse) == before
    if not bad.reaches_index:
        # Refused while reading the input: no request, and no time spent on a network.
        assert local_index.server.recorded()[requests_before:] == []
        assert elapsed < 5, f"took {elapsed:.1f}s to refuse a bad input"


def _non_loopback_address() -> str | None:
    """An IPv4 address of this machine that is not loopback, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        try:
            udp.connect(("192.0.2.1", 9))  # no packet is sent for a UDP connect
        except OSError:
            return None
        address = str(udp.getsockname()[0])
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_plain_http_index_on_another_host_is_refused_before_any_connection(
    prewheel: Prewheel, write_requirements: Callable[..., Path], tmp_path: Path
) -> None:
    """A listener on this machine's own non-loopback address sees no connection at all,
    and the same index passes the check once the user opts in."""
    address = _non_loopback_address()
    if address is None:
        pytest.skip("this machine has no non-loopback IPv4 address to listen on")
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((address, 0))
    listener.listen(16)
    listener.settimeout(0.2)
    port = int(listener.getsockname()[1])
    connections: list[object] = []
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                connection, peer = listener.accept()
            except OSError:
                continue
            connections.append(peer)
            with connection:
                connection.settimeout(2)
                try:
                    connection.recv(65536)
                    connection.sendall(NOT_FOUND)
                except OSError:
                    pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    index_url = f"http://{address}:{port}/simple"
    requirements = write_requirements("demo-app\n")
    out = tmp_path / "wheelhouse"
    no_proxy = {"NO_PROXY": "*", "no_proxy": "*"}  # a connection would come here, not to a proxy
    try:
        # The listener is reachable: a connection attempt would be seen.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with pytest.raises(urllib.error.HTTPError):
            opener.open(index_url, timeout=2)
        deadline = time.monotonic() + 5
        while not connections and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(connections) == 1, "the test's own probe did not reach the listener"

        result = prewheel(
            "build",
            "-r",
            requirements,
            "-t",
            CP311,
            "-o",
            out,
            "--index-url",
            index_url,
            host_env=no_proxy,
        )
        assert result.returncode == 2, explain(result)
        line = one_error_line(result)
        assert index_url in line and "--allow-insecure-http" in line
        assert not out.exists()
        time.sleep(0.3)
        assert len(connections) == 1, "prewheel connected to an index it refused"

        # Opting in passes the check: `lock` then asks the listener, which knows no
        # package, so the run fails later, as for an unknown package.
        opted = prewheel(
            "lock",
            "-r",
            requirements,
            "-t",
            CP311,
            "-o",
            out,
            "--index-url",
            index_url,
            "--allow-insecure-http",
            host_env=no_proxy,
        )
        assert opted.returncode == 3, explain(opted)
        assert len(connections) > 1
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


NONSENSE_MANIFESTS = {
    "not-json": "{ this is not json\n",
    "a-json-list": "[1, 2, 3]\n",
    "wrong-format": json.dumps({"format": 99, "targets": {}}),
    "unknown-target": json.dumps({"format": 1, "targets": {"my-laptop": {"pins": []}}}),
    "pin-outside-the-folder": json.dumps(
        {
            "format": 1,
            "targets": {
                CP311: {
                    "pins": [
                        {
                            "name": "demo-lib",
                            "version": "1.2",
                            "file": "../../etc/passwd",
                            "sha256": "0" * 64,
                            "size": 1,
                        }
                    ]
                }
            },
        }
    ),
}


@pytest.mark.parametrize("nonsense", list(NONSENSE_MANIFESTS))
def test_a_manifest_edited_into_nonsense_fails_verify_and_the_next_build_rewrites_it(
    nonsense: str,
    prewheel: Prewheel,
    local_index: LocalIndex,
    existing_wheelhouse: Path,
    good_wheelhouse: Path,
    write_requirements: Callable[..., Path],
) -> None:
    manifest = existing_wheelhouse / "manifest.json"
    manifest.write_text(NONSENSE_MANIFESTS[nonsense], encoding="utf-8")
    before = snapshot(existing_wheelhouse)

    checked = prewheel("verify", existing_wheelhouse)
    assert checked.returncode == 5, explain(checked)
    assert "Traceback" not in checked.stderr, explain(checked)
    errors = [line for line in checked.stderr.splitlines() if line.startswith("prewheel: error:")]
    assert len(errors) == 1, explain(checked)
    assert "is not a prewheel manifest" in errors[0]
    assert "run prewheel build" in errors[0]
    assert snapshot(existing_wheelhouse) == before, "verify changed the wheelhouse"

    rebuilt = prewheel.ok(
        "build",
        "-r",
        write_requirements("demo-app\n"),
        "-t",
        CP311,
        "-o",
        existing_wheelhouse,
        "--index-url",
        local_index.index_url,
    )
    assert "was not a valid manifest; rewriting it" in rebuilt.stderr
    # The manifest is a good one again, the same as the good wheelhouse's; nothing else
    # had to change.
    assert read_manifest(existing_wheelhouse) == read_manifest(good_wheelhouse)
    after = snapshot(existing_wheelhouse)
    assert {k: v for k, v in after.items() if k != "manifest.json"} == {
        k: v for k, v in before.items() if k != "manifest.json"
    }
    assert "complete and intact" in prewheel.ok("verify", existing_wheelhouse).stdout
