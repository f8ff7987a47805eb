"""The command line: parse options into a Config, call one core function, render."""

from __future__ import annotations

import json
import os
import sys
import time
import tomllib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from prewheel import __version__, capture, pipeline
from prewheel.emit.script import SCRIPT, write_scripts
from prewheel.errors import (
    InputError,
    InstallCheckError,
    MissingWheelError,
    PrewheelError,
    VerifyError,
)
from prewheel.index import IndexOptions
from prewheel.merge import merge
from prewheel.report import reporting_to
from prewheel.targets import parse_targets
from prewheel.verify import install_checks, verify
from prewheel.wheelhouse import check_folder, read_manifest, write_atomic

F = TypeVar("F", bound=Callable[..., Any])


class StderrReporter:
    """Progress on stderr: plain lines, plus a live download line on a terminal."""

    def __init__(self, verbose: bool, quiet: bool = False) -> None:
        self.verbose = verbose
        self.quiet = quiet
        self.tty = sys.stderr.isatty()
        self._last = 0.0

    def step(self, message: str) -> None:
        if not self.quiet:
            self._line(message)

    def detail(self, message: str) -> None:
        if self.verbose:
            self._line(message)

    def warn(self, message: str) -> None:
        self._line(f"warning: {message}")

    def progress(self, key: str, done: int, total: int | None) -> None:
        if not self.tty or self.quiet:
            return
        now = time.monotonic()
        if now - self._last < 0.1 and done != total:
            return
        self._last = now
        share = f"{done * 100 // total:3d}%" if total else _size(done)
        sys.stderr.write(f"\r\x1b[2K  {share} {key}"[:200])
        sys.stderr.flush()

    def _line(self, message: str) -> None:
        if self.tty:
            sys.stderr.write("\r\x1b[2K")
        sys.stderr.write(f"prewheel: {message}\n")
        sys.stderr.flush()


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"


def _project_defaults() -> dict[str, Any]:
    """`[tool.prewheel]` of ./pyproject.toml, with keys spelled as the options' names."""
    path = Path("pyproject.toml")
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"pyproject.toml: cannot read [tool.prewheel] ({exc})") from exc
    section = data.get("tool", {}).get("prewheel", {})
    return {key.replace("-", "_"): value for key, value in section.items()}


def _cache_dir() -> Path:
    if os.environ.get("PREWHEEL_CACHE_DIR"):
        return Path(os.environ["PREWHEEL_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "prewheel"


def _uv() -> Path:
    import uv

    return Path(uv.find_uv_bin())


def _list(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(str(v) for v in value)


def _config(
    opts: dict[str, Any], *, need_requirements: bool = True, need_targets: bool = True
) -> pipeline.Config:
    defaults = _project_defaults()

    def pick(key: str, fallback: Any = None) -> Any:
        value = opts.get(key)
        if value in (None, ()):
            value = defaults.get(key, fallback)
        return value

    requirements = pick("requirements")
    if need_requirements and requirements is None:
        raise InputError(
            "no requirements file: pass -r requirements.in (or set requirements in [tool.prewheel])"
        )
    specs = list(_list(pick("targets") or pick("target")))
    targets = parse_targets(specs) if specs or need_targets else []
    index = IndexOptions(
        index_url=pick("index_url"),
        extra_index_urls=_list(pick("extra_index_url")),
        find_links=_list(pick("find_links")),
        allow_insecure_http=bool(pick("allow_insecure_http", False)),
        netrc=Path(os.environ.get("NETRC") or Path.home() / ".netrc"),
    )
    jobs = int(pick("jobs", 8))
    if jobs < 1:
        raise InputError(f"--jobs {jobs}: give 1 or more parallel downloads")
    timeout = float(pick("timeout", 60.0))
    if timeout <= 0:
        raise InputError(f"--timeout {timeout}: give a number of seconds above 0")
    engine = str(pick("resolver", "uv"))
    if engine not in ("uv", "pip-tools"):
        raise InputError(f"resolver {engine!r}: use uv or pip-tools")
    policy = str(pick("build_policy", "wheel-first"))
    if policy not in ("wheel-first", "newest"):
        raise InputError(f"build-policy {policy!r}: use wheel-first or newest")
    return pipeline.Config(
        output=Path(pick("output", "wheelhouse")),
        targets=tuple(targets),
        requirements=Path(requirements) if requirements else None,
        index=index,
        cache_dir=Path(opts.get("cache_dir") or _cache_dir()),
        env=dict(os.environ),
        uv=_uv(),
        jobs=jobs,
        timeout=timeout,
        upgrade=bool(opts.get("upgrade")),
        allow_build=not pick("no_build", False),
        resolver_engine=engine,
        locked=bool(pick("locked", False)),
        allow_additions=bool(pick("allow_additions", False)),
        build_policy=policy,
        keep_build_deps=bool(pick("keep_build_deps", False)),
    )


def _common(func: F) -> F:
    options = [
        click.option("-v", "--verbose", is_flag=True, help="Show each tool command and decision."),
        click.option(
            "--json", "as_json", is_flag=True, help="Print a machine-readable summary on stdout."
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _resolving(func: F) -> F:
    options = [
        click.option(
            "-r",
            "--requirements",
            type=click.Path(dir_okay=False),
            help="Requirements file (requirements.in).",
        ),
        click.option(
            "-t",
            "--target",
            "targets",
            multiple=True,
            metavar="TARGET",
            help="A target such as cp311-manylinux_2_17_x86_64, or host; repeat for more.",
        ),
        click.option(
            "-o", "--output", type=click.Path(), help="The wheelhouse folder [default: wheelhouse]."
        ),
        click.option(
            "-i", "--index-url", help="The package index (PEP 503/691) instead of the default."
        ),
        click.option(
            "--extra-index-url", multiple=True, help="Another index to search; repeatable."
        ),
        click.option(
            "-f",
            "--find-links",
            multiple=True,
            help="A folder or page of files to search; repeatable.",
        ),
        click.option(
            "--allow-insecure-http",
            is_flag=True,
            default=None,
            help="Accept a plain-http index on a host that is not loopback.",
        ),
        click.option("-j", "--jobs", type=int, help="Parallel downloads [default: 8]."),
        click.option(
            "--timeout",
            type=float,
            help="Seconds a download may stall before it is retried [default: 60].",
        ),
        click.option(
            "--upgrade",
            is_flag=True,
            help="Re-resolve to the newest allowed versions instead of keeping pins.",
        ),
        click.option(
            "--resolver",
            type=click.Choice(["uv", "pip-tools"]),
            help="uv [default] resolves for any target; pip-tools (pip-compile) only for the "
            "running interpreter's own platform.",
        ),
        click.option(
            "--locked",
            is_flag=True,
            default=None,
            help="-r is a fully pinned lock (e.g. pip-compile output): keep every pin.",
        ),
        click.option(
            "--allow-additions",
            is_flag=True,
            default=None,
            help="With --locked: add packages a target's markers need that the file lacks.",
        ),
        click.option(
            "--cache-dir",
            type=click.Path(file_okay=False),
            help="Download cache [default: the user cache dir].",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return _common(func)


def _emit(data: dict[str, Any]) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=True))


def _table(summary: pipeline.Summary) -> None:
    header = f"{'target':<34} {'pins':>5} {'downloaded':>10} {'cached':>7} {'built':>6} {'sdist-only':>10} {'size':>10}"
    click.echo(header)
    for row in summary.targets:
        click.echo(
            f"{row.target:<34} {row.pins:>5} {row.downloaded:>10} {row.cached:>7} "
            f"{row.built:>6} {row.sdist_only:>10} {_size(row.size):>10}"
        )
    click.echo(
        f"{summary.downloaded} files downloaded ({_size(summary.downloaded_bytes)}), "
        f"{summary.cached} already at hand; wheelhouse: {summary.wheelhouse}"
    )
    for failure in summary.failures:
        click.echo(f"FAILED {failure}")
        for line in failure.output.splitlines():
            click.echo(f"    | {line}")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="prewheel")
def cli() -> None:
    """Pre-build a hash-pinned wheelhouse per deploy target, installable with pip alone."""


@cli.command()
@_resolving
@click.option(
    "--no-build",
    is_flag=True,
    default=None,
    help="Never build from sdist: a pin with no wheel is an error.",
)
@click.option(
    "--build-policy",
    type=click.Choice(["wheel-first", "newest"]),
    help="wheel-first [default]: back off to a version with a wheel before building; "
    "newest: build the newest allowed version from its sdist.",
)
@click.option(
    "--keep-build-deps",
    is_flag=True,
    default=None,
    help="Keep the build requirements and sdists in WHEELHOUSE/.build for offline rebuilds.",
)
def build(as_json: bool, verbose: bool, **opts: Any) -> None:
    """Lock, build what the index lacks, fetch and verify the wheelhouse; write install.sh."""
    config = _config(opts)
    with reporting_to(StderrReporter(verbose, quiet=False)):
        summary = pipeline.build(config)
    _emit(summary.to_dict()) if as_json else _table(summary)
    if summary.failures:
        first = summary.failures[0]
        more = (
            f" (and {len(summary.failures) - 1} more, listed above)"
            if len(summary.failures) > 1
            else ""
        )
        raise MissingWheelError(
            f"no wheel: {first}{more}; {first.target.name} was not written to "
            f"{summary.wheelhouse} (its earlier state there, if any, is kept)"
        )


@cli.command()
@_resolving
def lock(as_json: bool, verbose: bool, **opts: Any) -> None:
    """Resolve each target into pylock.<target>.toml and requirements.<target>.txt."""
    config = _config(opts)
    with reporting_to(StderrReporter(verbose)):
        plans = pipeline.lock_only(config)
    if as_json:
        _emit(
            {
                "targets": [
                    {
                        "target": p.target.name,
                        "pins": len(p.files),
                        "backed_off": list(p.backed_off),
                    }
                    for p in plans
                ]
            }
        )
    else:
        for plan in plans:
            click.echo(f"{plan.target.name}: {len(plan.files)} pins")


@cli.command()
@_resolving
def fetch(as_json: bool, verbose: bool, **opts: Any) -> None:
    """Download the wheels that the wheelhouse's locks name, and write the manifest."""
    config = _config(opts, need_requirements=False, need_targets=False)
    with reporting_to(StderrReporter(verbose)):
        summary = pipeline.fetch_only(config)
    _emit(summary.to_dict()) if as_json else _table(summary)


@cli.command(name="verify")
@click.argument("wheelhouse", type=click.Path(), default="wheelhouse")
@click.option("-t", "--target", "targets", multiple=True, help="Check only these targets.")
@click.option(
    "--install",
    is_flag=True,
    help="Also install each target a local interpreter can run, offline, with no compiler.",
)
@_common
def verify_cmd(
    wheelhouse: str, targets: Sequence[str], install: bool, as_json: bool, verbose: bool
) -> None:
    """Prove offline that every target's set is complete and intact."""
    folder = Path(wheelhouse)
    names = [t.name for t in parse_targets(list(targets))] if targets else []
    with reporting_to(StderrReporter(verbose)):
        report = verify(folder, names)
        installs = install_checks(folder, names, os.environ) if install and report.ok else []
    data = {
        "wheelhouse": str(folder),
        "ok": report.ok and all(r.ok for r in installs),
        "targets": list(report.targets),
        "problems": [p.to_dict() for p in report.problems],
        "installs": [r.to_dict() for r in installs],
    }
    if as_json:
        _emit(data)
    else:
        for problem in report.problems:
            click.echo(f"problem: {problem}", err=True)
        for result in installs:
            net = (
                ""
                if result.state == "skipped"
                else "; network cut"
                if result.network_cut
                else "; network NOT cut"
            )
            click.echo(f"install {result.target}: {result.state} ({result.detail}{net})")
        if report.ok:
            click.echo(f"verified {len(report.targets)} targets in {folder}: complete and intact")
    if not report.ok:
        raise VerifyError(
            f"{folder}: {len(report.problems)} problems (first: {report.problems[0]}); "
            "run prewheel build to repair it"
        )
    failed = [r for r in installs if not r.ok]
    if failed:
        raise InstallCheckError(
            f"offline install of {failed[0].target} failed: {failed[0].detail}; see the lines above"
        )


@cli.group()
def target() -> None:
    """Describe a deploy machine's interpreter as a target (tags and markers)."""


@target.command(name="capture")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the JSON to FILE.")
def target_capture(output: str | None) -> None:
    """Print this interpreter's marker environment and wheel tags as target JSON.

    Use the file with `prewheel build -t FILE.json`.
    """
    text = json.dumps(capture.capture(), indent=2, sort_keys=True) + "\n"
    if output:
        write_atomic(Path(output), text)
        click.echo(output)
    else:
        click.echo(text, nl=False)


@target.command(name="script")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the script to FILE.")
def target_script(output: str | None) -> None:
    """Print a stand-alone Python script that captures a target where prewheel is not
    installed (it needs only the standard library, and pip if present)."""
    text = Path(capture.__file__).read_text(encoding="utf-8")
    if output:
        write_atomic(Path(output), text)
        click.echo(output)
    else:
        click.echo(text, nl=False)


@cli.command(name="merge")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(), help="The merged wheelhouse.")
@click.option(
    "--allow-differing-versions",
    is_flag=True,
    help="Accept inputs that pin a package at different versions (for different targets).",
)
@click.option("--cache-dir", type=click.Path(file_okay=False), help="Download cache.")
@_common
def merge_cmd(
    inputs: Sequence[str],
    output: str,
    allow_differing_versions: bool,
    cache_dir: str | None,
    as_json: bool,
    verbose: bool,
) -> None:
    """Combine wheelhouses built on different machines (one per platform) into one."""
    config = pipeline.Config(
        output=Path(output),
        cache_dir=Path(cache_dir) if cache_dir else _cache_dir(),
        env=dict(os.environ),
    )
    with reporting_to(StderrReporter(verbose)):
        summary = merge(
            [Path(i) for i in inputs], config, allow_differing_versions=allow_differing_versions
        )
    _emit(summary.to_dict()) if as_json else _table(summary)


@cli.command()
@click.argument("wheelhouse", type=click.Path(), default="wheelhouse")
def script(wheelhouse: str) -> None:
    """Write install.sh for the targets in the wheelhouse's manifest."""
    folder = Path(wheelhouse)
    check_folder(folder)
    try:
        manifest = read_manifest(folder)
    except ValueError as exc:
        raise InputError(f"{exc}; run prewheel build") from exc
    if manifest is None:
        raise InputError(f"{folder} has no manifest.json; run prewheel build first")
    write_scripts(folder, [e.target for e in manifest.targets])
    click.echo(str(folder / SCRIPT))


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: the one place where errors become messages and exit codes."""
    try:
        cli.main(
            args=list(argv) if argv is not None else None,
            prog_name="prewheel",
            standalone_mode=False,
        )
    except PrewheelError as exc:
        click.echo(f"prewheel: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("prewheel: interrupted; the wheelhouse keeps its last good state", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    sys.exit(0)
