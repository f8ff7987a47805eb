from __future__ import annotations

from pathlib import Path

import pytest

from prewheel.errors import RequirementsError
from prewheel.requirements import read_requirements


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_reads_pins_extras_markers_and_comments(tmp_path: Path) -> None:
    req = write(
        tmp_path / "requirements.in",
        "# a comment\n"
        "fastapi==0.115.6  # inline comment\n"
        "\n"
        "uvicorn[standard]==0.32.1\n"
        "iso-639>=0.4.5,<0.5.0;python_version<'3.12'\n"
        "anyio >= 4.4.0, \\\n    < 5.0.0\n"
        "--index-url https://example.invalid/simple\n",
    )
    lines = read_requirements(req)
    assert [str(line) for line in lines] == [
        "fastapi==0.115.6",
        "uvicorn[standard]==0.32.1",
        'iso-639<0.5.0,>=0.4.5; python_version < "3.12"',
        "anyio<5.0.0,>=4.4.0",
    ]
    assert [line.line for line in lines] == [2, 4, 5, 6]


def test_follows_includes_once(tmp_path: Path) -> None:
    write(tmp_path / "base.in", "click\n-r main.in\n")
    main = write(tmp_path / "main.in", "-r base.in\nrequests\n-c constraints.txt\n")
    assert [str(line) for line in read_requirements(main)] == ["click", "requests"]


def test_malformed_line_names_file_and_line(tmp_path: Path) -> None:
    req = write(tmp_path / "requirements.in", "click\nflask ==>= 2\n")
    with pytest.raises(RequirementsError) as info:
        read_requirements(req)
    message = str(info.value)
    assert f"{req}:2" in message and "flask ==>= 2" in message
    assert "\n" not in message


def test_missing_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(RequirementsError, match="not found"):
        read_requirements(tmp_path / "nope.in")


def test_editable_lines_are_refused(tmp_path: Path) -> None:
    req = write(tmp_path / "requirements.in", "-e ./myproject\n")
    with pytest.raises(RequirementsError, match="editable"):
        read_requirements(req)


def test_unknown_option_is_refused(tmp_path: Path) -> None:
    req = write(tmp_path / "requirements.in", "--frobnicate\n")
    with pytest.raises(RequirementsError, match="unknown option"):
        read_requirements(req)
