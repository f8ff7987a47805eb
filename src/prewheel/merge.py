"""`prewheel merge`: combine wheelhouses built on different machines into one.

A CI matrix builds one wheelhouse per platform (an aarch64 runner for the aarch64
targets, say); merge takes their targets, pins and files as they are, after
verifying each input, and refuses inputs that disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from prewheel import wheelhouse as wh
from prewheel.build import Provenance
from prewheel.errors import InputError, VerifyError
from prewheel.index import FileRef, IndexOptions
from prewheel.pipeline import Config, Plan, PlanFile, Summary, materialize
from prewheel.report import reporter
from prewheel.verify import verify


class MergeConflictError(InputError):
    """Two inputs disagree on a pin or a file; the message names both sides."""


@dataclass(frozen=True)
class _Seen:
    source: Path
    version: str
    sha256: str


def merge(
    inputs: Sequence[Path], config: Config, *, allow_differing_versions: bool = False
) -> Summary:
    """Verify each input, check they agree, and write the union of their targets to
    `config.output`."""
    if len(inputs) < 2:
        raise InputError("merge needs two or more wheelhouses: prewheel merge A B -o OUT")
    manifests: list[tuple[Path, wh.Manifest]] = []
    for folder in inputs:
        report = verify(folder)
        if not report.ok:
            raise VerifyError(
                f"input {folder} does not verify ({report.problems[0]}); rebuild it before merging"
            )
        manifest = wh.read_manifest(folder)
        assert manifest is not None
        manifests.append((folder, manifest))
    _check(manifests, allow_differing_versions)
    wh.check_folder(config.output)
    plans: dict[str, Plan] = {}
    for folder, manifest in manifests:
        for entry in manifest.targets:
            if entry.target.name in plans:
                continue  # identical by _check
            files = tuple(
                PlanFile(
                    pin.name,
                    pin.version,
                    FileRef(pin.filename, pin.sha256, pin.size, path=str(folder / pin.filename)),
                    Provenance.from_dict(pin.build) if pin.build else None,
                    origin=pin.index,
                )
                for pin in entry.pins
            )
            roots = entry.requirements or manifest.requirements
            plans[entry.target.name] = Plan(entry.target, roots, files)
    merged = _with_recorded_indexes(config, [m for _, m in manifests])
    with wh.locked(config.output):
        summary = materialize(merged, [plans[name] for name in sorted(plans)])
    report = verify(config.output)
    if not report.ok:
        raise VerifyError(
            f"the merged wheelhouse failed verification ({report.problems[0]}); "
            "this is a bug in prewheel, please report it"
        )
    reporter().step(f"merged {len(inputs)} wheelhouses: {', '.join(sorted(plans))}")
    return summary


def _with_recorded_indexes(config: Config, manifests: Sequence[wh.Manifest]) -> Config:
    """`config` recording the union of the inputs' indexes (already without credentials)."""
    index_url = next(
        (m.indexes.get("index_url") for m in manifests if m.indexes.get("index_url")), None
    )
    extras: list[str] = []
    links: list[str] = []
    for manifest in manifests:
        for url in manifest.indexes.get("extra_index_urls", []) or []:
            if url not in extras and url != index_url:
                extras.append(url)
        for location in manifest.indexes.get("find_links", []) or []:
            if location not in links:
                links.append(location)
    index = IndexOptions(index_url, tuple(extras), tuple(links), allow_insecure_http=True)
    return Config(
        output=config.output,
        cache_dir=config.cache_dir,
        env=config.env,
        uv=config.uv,
        jobs=config.jobs,
        index=index,
    )


def _check(manifests: Sequence[tuple[Path, wh.Manifest]], allow_differing_versions: bool) -> None:
    files: dict[str, _Seen] = {}
    targets: dict[str, tuple[Path, dict[str, tuple[str, str]]]] = {}
    versions: dict[str, dict[Path, set[str]]] = {}
    for folder, manifest in manifests:
        for entry in manifest.targets:
            mine = {p.name: (p.version, p.sha256) for p in entry.pins}
            name = entry.target.name
            if name in targets:
                other_folder, other = targets[name]
                for package in sorted(set(mine) | set(other)):
                    a, b = other.get(package), mine.get(package)
                    if a != b:
                        raise MergeConflictError(
                            f"{name}: {other_folder} pins {package} {_show(a)} but {folder} pins "
                            f"{_show(b)}; rebuild both from the same requirements, or leave one out"
                        )
            targets[name] = (folder, mine)
            for pin in entry.pins:
                seen = files.get(pin.filename)
                if seen is not None and seen.sha256 != pin.sha256:
                    raise MergeConflictError(
                        f"{pin.filename}: sha256 {seen.sha256} in {seen.source} but "
                        f"{pin.sha256} in {folder}; the same file name must be the same file"
                    )
                files[pin.filename] = _Seen(folder, pin.version, pin.sha256)
                versions.setdefault(pin.name, {}).setdefault(folder, set()).add(pin.version)
    if allow_differing_versions:
        return
    for package, by_folder in sorted(versions.items()):
        folders = list(by_folder)
        for i, first in enumerate(folders):
            for second in folders[i + 1 :]:
                if not by_folder[first] & by_folder[second]:
                    raise MergeConflictError(
                        f"{package}: {first} pins {min(by_folder[first])} but {second} pins "
                        f"{min(by_folder[second])}; rebuild both from one lock, or pass "
                        "--allow-differing-versions if each is right for its targets"
                    )


def _show(pin: tuple[str, str] | None) -> str:
    return "nothing" if pin is None else f"{pin[0]} (sha256 {pin[1][:12]}…)"
