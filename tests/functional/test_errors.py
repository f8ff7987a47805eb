"""Bad inputs: one line naming what failed, the documented exit code, and an existing
wheelhouse left byte-for-byte as it was."""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.functional.helpers import CP311, LocalIndex, Prewheel, one_error_line, snapshot

pytestmark = pytest.mark.functional


@dataclass(frozen=True)
class BadInput:
    """One mistake a user makes. `{requirements}`, `{port}` and `{output}` are filled in."""

    exit_code: int
    must_name: tuple[str, ...]
    requirements: str = "demo-app\n"
    target: str = CP311
    index_unreachable: bool = False
    output_is_a_file: bool = False


CASES = {
    "unknown-package": BadInput(
        exit_code=3,
        requirements="demo-app\ndemo-nonexistent>=1\n",
        must_name=("demo-nonexistent", CP311),
    ),
    "malformed-line": BadInput(
        exit_code=2,
        requirements="demo-app\ndemo-lib >>= 1\n",
        must_name=("{requirements}:2", "demo-lib >>= 1"),
    ),
    "bad-target": BadInput(
        exit_code=2,
        target="cp311-windows_x86",
        # The spec that failed, and an example of a good one.
        must_name=("cp311-windows_x86", "cp311-manylinux_2_17_x86_64"),
    ),
    "unreachable-index": BadInput(
        exit_code=4,
        index_unreachable=True,
        must_name=("127.0.0.1:{port}", CP311),
    ),
    "wheelhouse-is-a-file": BadInput(
        exit_code=8,
        output_is_a_file=True,
        must_name=("{output}",),
    ),
}


def _closed_port() -> int:
    """A loopback port that nothing listens on (it was free a moment ago)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_leaves_the_wheelhouse_unchanged(
    case: str,
    prewheel: Prewheel,
    local_index: LocalIndex,
    existing_wheelhouse: Path,
    write_requirements: Callable[..., Path],
) -> None:
    bad = CASES[case]
    requirements = write_requirements(bad.requirements)
    port = _closed_port() if bad.index_unreachable else local_index.server.port
    index_url = f"http://127.0.0.1:{port}/simple"
    # A file where the wheelhouse folder should be: its own manifest, say.
    output = existing_wheelhouse / "manifest.json" if bad.output_is_a_file else existing_wheelhouse
    before = snapshot(existing_wheelhouse)

    result = prewheel(
        "build", "-r", requirements, "-t", bad.target, "-o", output, "--index-url", index_url
    )

    assert result.returncode == bad.exit_code, result.stderr
    line = one_error_line(result)
    for text in bad.must_name:
        assert text.format(requirements=requirements, port=port, output=output) in line
    assert snapshot(existing_wheelhouse) == before
