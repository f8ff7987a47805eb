from __future__ import annotations

import base64
from pathlib import Path

import pytest

from prewheel.errors import InputError
from prewheel.index import FileRef, IndexOptions, choose_wheel, redact_text, redact_url
from prewheel.targets import parse_target

CP311 = parse_target("cp311-manylinux_2_17_x86_64")


def ref(filename: str) -> FileRef:
    return FileRef(filename=filename, sha256=filename[:8].ljust(64, "0"))


def test_choose_wheel_prefers_the_targets_best_tag() -> None:
    files = [
        ref("demo-1.0-py3-none-any.whl"),
        ref("demo-1.0-cp39-abi3-manylinux_2_17_x86_64.whl"),
        ref("demo-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"),
        ref("demo-1.0-cp311-cp311-manylinux_2_17_aarch64.whl"),
        ref("demo-1.0.tar.gz"),
    ]
    chosen = choose_wheel(files, CP311)
    assert chosen is not None
    assert chosen.filename == "demo-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"


def test_choose_wheel_rejects_newer_glibc_and_other_arches() -> None:
    files = [
        ref("demo-1.0-cp311-cp311-manylinux_2_28_x86_64.whl"),
        ref("demo-1.0-cp311-cp311-musllinux_1_2_x86_64.whl"),
        ref("demo-1.0-cp311-cp311-manylinux_2_17_aarch64.whl"),
        ref("demo-1.0-cp311-cp311-linux_x86_64.whl"),
        ref("demo-1.0.tar.gz"),
    ]
    assert choose_wheel(files, CP311) is None


def test_multi_tagged_wheel_fits_through_its_oldest_tag() -> None:
    name = (
        "websockets-1-cp311-cp311-manylinux1_x86_64.manylinux_2_28_x86_64.manylinux_2_5_x86_64.whl"
    )
    assert choose_wheel([ref(name)], CP311) is not None


def test_redaction_removes_credentials_everywhere() -> None:
    assert (
        redact_url("https://user:s3cret@example.invalid/simple") == "https://example.invalid/simple"
    )
    assert redact_url("https://token@example.invalid:8443/x") == "https://example.invalid:8443/x"
    assert redact_url("https://example.invalid/simple") == "https://example.invalid/simple"
    text = "error: fetching https://u:p4ss@example.invalid/simple/x/ failed"
    assert "p4ss" not in redact_text(text)


def test_index_options_record_no_credentials_but_authorize_downloads() -> None:
    options = IndexOptions(index_url="https://bob:hunter2@example.invalid/simple")
    assert "hunter2" not in repr(options.to_dict())
    header = options.authorization_for("https://example.invalid/files/demo-1.0-py3-none-any.whl")
    assert header == "Basic " + base64.b64encode(b"bob:hunter2").decode()
    assert options.authorization_for("https://other.invalid/files/x.whl") is None
    assert (
        options.origin_of("https://example.invalid/files/x.whl") == "https://example.invalid/simple"
    )
    assert options.origin_of("https://elsewhere.invalid/x.whl") == "default"
    assert "--index-url" in options.tool_args()


@pytest.mark.parametrize(
    "url",
    ["ftp://example.invalid/simple", "example.invalid/simple", "http://example.invalid/simple"],
)
def test_bad_index_urls_are_refused(url: str) -> None:
    with pytest.raises(InputError) as info:
        IndexOptions(index_url=url)
    assert "\n" not in str(info.value)


def test_plain_http_is_fine_on_loopback_or_when_allowed() -> None:
    IndexOptions(index_url="http://127.0.0.1:8080/simple")
    IndexOptions(index_url="http://example.invalid/simple", allow_insecure_http=True)


def test_download_credentials_come_from_netrc_and_stay_out_of_records(tmp_path: Path) -> None:
    rc = tmp_path / "netrc"
    rc.write_text("machine idx.invalid login alice password s3cr3t\n")
    rc.chmod(0o600)
    options = IndexOptions(index_url="https://idx.invalid/simple", netrc=rc)
    header = options.authorization_for("https://idx.invalid/files/demo-1.0-py3-none-any.whl")
    assert header == "Basic " + base64.b64encode(b"alice:s3cr3t").decode()
    assert options.authorization_for("https://elsewhere.invalid/x.whl") is None
    assert "s3cr3t" not in repr(options.to_dict()) and "s3cr3t" not in repr(options)
