"""Markers are the target's, not the host's (issue 2, "Done when" 4).

black 24.1.1 needs tomli and typing-extensions only below Python 3.11, so a lock
for cp39 must hold them (whatever Python runs prewheel) and one for cp311 must not;
and the cp39 wheelhouse must install into a real Python 3.9 with the network cut.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from .conftest import PrewheelRunner, VenvFactory, require_runs_here

pytestmark = pytest.mark.integration

OLD = "cp39-manylinux_2_17_x86_64"
NEW = "cp311-manylinux_2_17_x86_64"
BACKPORTS = ("tomli", "typing-extensions")


@dataclass(frozen=True)
class Built:
    folder: Path

    def locked(self, target: str) -> dict[str, str]:
        """name -> version from requirements.<target>.txt, as pip would read it."""
        text = (self.folder / f"requirements.{target}.txt").read_text()
        out: dict[str, str] = {}
        for line in text.replace("\\\n", " ").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                name, _, rest = line.strip().partition("==")
                out[canonicalize_name(name)] = rest.split()[0]
        return out

    def manifest_pins(self, target: str) -> dict[str, str]:
        manifest = json.loads((self.folder / "manifest.json").read_text())
        return {
            canonicalize_name(p["name"]): p["version"] for p in manifest["targets"][target]["pins"]
        }


@pytest.fixture(scope="module")
def built(prewheel: PrewheelRunner, tmp_path_factory: pytest.TempPathFactory) -> Built:
    """One wheelhouse of black==24.1.1 for cp39 and cp311, the way a user asks for two."""
    root = tmp_path_factory.mktemp("black")
    requirements = root / "requirements.in"
    requirements.write_text("black==24.1.1\n")
    folder = root / "wheelhouse"
    summary = prewheel(
        "build", "-r", requirements, "-t", OLD, "-t", NEW, "-o", folder, "--json"
    ).json()
    assert sorted(r["target"] for r in summary["targets"]) == sorted([OLD, NEW])
    assert summary["verify"] == {"ok": True, "problems": []}
    # A wheel that both targets use (pure ones such as pathspec) is fetched once.
    files = json.loads((folder / "manifest.json").read_text())["files"]
    assert any(len(f["targets"]) == 2 for f in files.values()), files
    total = summary["total"]
    assert total["downloaded"] + total["cached"] == len(files) == len(list(folder.glob("*.whl")))
    return Built(folder)


@pytest.mark.parametrize("name", BACKPORTS)
def test_cp39_lock_has_the_backports(built: Built, name: str) -> None:
    assert built.locked(OLD).get("black") == "24.1.1"
    assert name in built.locked(OLD), f"requirements.{OLD}.txt lacks {name}"
    assert name in built.manifest_pins(OLD), f"manifest.json lacks {name} for {OLD}"
    assert built.locked(OLD)[name] == built.manifest_pins(OLD)[name]


def test_cp311_lock_has_no_tomli(built: Built) -> None:
    assert built.locked(NEW).get("black") == "24.1.1"
    assert "tomli" not in built.locked(NEW)
    assert "tomli" not in built.manifest_pins(NEW)


def test_cp39_wheelhouse_installs_offline_into_python39(
    built: Built, fresh_venv: VenvFactory, tmp_path: Path
) -> None:
    require_runs_here(OLD)
    venv = fresh_venv("3.9", tmp_path / "venv")
    install = venv.install(built.folder, "--no-compile", "-q")
    assert f"installing target {OLD}" in install.stderr
    venv.offline("python", "-m", "pip", "check")
    version = venv.offline("black", "--version").stdout
    assert version.startswith("black, 24.1.1"), version
    venv.offline("python", "-c", "import tomli, typing_extensions")
