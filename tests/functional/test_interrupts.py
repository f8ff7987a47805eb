"""An interrupted run never loses a wheelhouse; two runs at once do not corrupt one
(README, "What prewheel promises", 2 and 3).

`prewheel build` is killed with SIGKILL while it downloads, while it builds, after
delays spread across a whole run, and just before each step that changes the folder;
it is interrupted with Ctrl-C; and it is run twice (and three times) at once on one
folder. Uv's locking takes most of a run and writing the folder a few milliseconds, so
the delays rarely land there: the steps are reached one by one instead, by a wrapper
that counts each rename, unlink and chmod in the folder and signals itself before the
Nth. After each interruption the folder holds one of:

- the previous good wheelhouse (`prewheel verify` passes), or for a folder that had
  none, no manifest at all (verify says only that);
- the new wheelhouse, complete (the new manifest has landed; verify passes);
- a SIGKILL between the first requirements file and the manifest being renamed into
  place: the previous manifest, every file it lists still there and intact, and
  requirements files that name only files that are there and intact (install.sh works);
  verify reports the mismatch. Ctrl-C never leaves this state.

Never a manifest that lists a file that is not there or not intact. The next run,
without faults, completes the wheelhouse and leaves no `.part-*` file behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from prewheel.verify import verify
from tests.faultserver import FaultServer
from tests.functional.helpers import (
    CP311,
    Prewheel,
    parse_requirements_txt,
    sha256_file,
    snapshot,
)
from tests.localindex import make_sdist, make_wheel, write_simple_index

pytestmark = pytest.mark.functional

APP = "itr_app-1.0-py3-none-any.whl"
LIB1 = "itr_lib-1.0-py3-none-any.whl"
LIB2 = "itr_lib-2.0-py3-none-any.whl"
EXTRA = "itr_extra-1.0-py3-none-any.whl"
SRC = "itr_src-1.0-py3-none-any.whl"  # built here from its sdist
# The previous good wheelhouse, and the requirements that a later run changes it to.
OLD = "itr-app\nitr-lib<2\n"
NEW = "itr-app\nitr-lib>=2\nitr-extra\n"
WITH_SRC = "itr-app\nitr-lib<2\nitr-src\n"
BROKEN = "itr-broken\n"  # its build fails
FILES = {OLD: {APP, LIB1}, NEW: {APP, LIB2, EXTRA}, WITH_SRC: {APP, LIB1, SRC}}
MANIFEST = "manifest.json"
REQUIREMENTS = f"requirements.{CP311}.txt"
WAITING = "waiting for another prewheel run on"
BUILD_SLEEP = 120  # the in-tree backend's sleep: far longer than any test waits for it
STALL = 60  # a stall that outlasts the test; the run is interrupted while it hangs
DEADLINE = 60  # seconds a test waits for a run to reach a point or to end


@dataclass
class Interrupts:
    server: FaultServer
    base: Path
    good: Path  # a verified wheelhouse of OLD; copy it, never change it

    def requirements(self, text: str) -> Path:
        name = {OLD: "old.in", NEW: "new.in", WITH_SRC: "with-src.in", BROKEN: "broken.in"}[text]
        path = self.base / name
        if not path.exists():
            path.write_text(text, encoding="utf-8")
        return path


@pytest.fixture(scope="module")
def interrupts(
    tmp_path_factory: pytest.TempPathFactory, tool_cache_home: Path
) -> Iterator[Interrupts]:
    base = tmp_path_factory.mktemp("interrupts")
    dist = base / "dist"
    files = [
        make_wheel(dist, "itr-app", "1.0", requires_dist=["itr-lib"]),
        make_wheel(dist, "itr-lib", "1.0"),
        make_wheel(dist, "itr-lib", "2.0"),
        make_wheel(dist, "itr-extra", "1.0"),
        make_sdist(dist, "itr-src", "1.0", backend="intree", sleep_seconds=BUILD_SLEEP),
        make_sdist(
            dist,
            "itr-broken",
            "1.0",
            backend="intree",
            sleep_seconds=BUILD_SLEEP,
            fail_with="error: this build fails",
        ),
    ]
    write_simple_index(base / "served", files)
    cwd = base / "cwd"
    cwd.mkdir()
    with FaultServer(base / "served") as server:
        state = Interrupts(server, base, base / "good")
        # uv reads each wheel and sdist once for its metadata; with its cache warm, the
        # runs below ask the index only for the files that prewheel fetches.
        warm = Prewheel(cwd, base / "warm-cache", tool_cache_home)
        for text, out in ((OLD, state.good), (NEW, base / "warm-new"), (WITH_SRC, base / "ws")):
            warm.build(state.requirements(text), [CP311], out, server.index_url)
        yield state


@pytest.fixture
def index(interrupts: Interrupts) -> Iterator[Interrupts]:
    interrupts.server.clear()
    yield interrupts
    interrupts.server.clear()


@pytest.fixture
def existing(interrupts: Interrupts, tmp_path: Path) -> Path:
    """A private copy of the good wheelhouse of OLD."""
    dest = tmp_path / "wheelhouse"
    subprocess.run(["cp", "-a", str(interrupts.good), str(dest)], check=True)
    return dest


# Running, interrupting and waiting


@dataclass
class Started:
    """A `prewheel build` running in its own session (as from a terminal), output in files."""

    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path
    started: float
    ended: float | None = None

    def signal(self, signum: int) -> None:
        """Signal the whole process group: prewheel and the tools it started."""
        os.killpg(self.process.pid, signum)

    def poll(self) -> int | None:
        code = self.process.poll()
        if code is not None and self.ended is None:
            self.ended = time.monotonic()
        return code

    def wait(self, timeout: float = DEADLINE) -> int:
        wait_until(lambda: self.poll() is not None, f"the end of {self.args()}", timeout)
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL the run and its children, and reap it."""
        if self.poll() is None:
            self.signal(signal.SIGKILL)
        self.wait()

    def err(self) -> str:
        return self.stderr.read_text(encoding="utf-8", errors="replace")

    def out(self) -> str:
        return self.stdout.read_text(encoding="utf-8", errors="replace")

    def args(self) -> str:
        return " ".join(str(a) for a in self.process.args)  # type: ignore[union-attr]

    def explain(self) -> str:
        return (
            f"$ {self.args()}\nexit {self.process.returncode}\n"
            f"--- stdout\n{self.out()}\n--- stderr\n{self.err()}"
        )


def wait_until(ready: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


def build_args(index: Interrupts, text: str, out: Path, *extra: str) -> list[str]:
    return [
        "build",
        "-r",
        str(index.requirements(text)),
        "-t",
        CP311,
        "-o",
        str(out),
        "--index-url",
        index.server.index_url,
        *extra,
    ]


def start(prewheel: Prewheel, args: list[str], logs: Path, **env: str) -> Started:
    """Start `python -m prewheel ARGS` as a user would, in a session of its own."""
    logs.mkdir(parents=True, exist_ok=True)
    n = len(list(logs.glob("*.err")))
    stdout, stderr = logs / f"{n}.out", logs / f"{n}.err"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "prewheel", *args],
            cwd=prewheel.cwd,
            env=prewheel.env(**env),
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    return Started(process, stdout, stderr, time.monotonic())


@pytest.fixture
def runs() -> Iterator[list[Started]]:
    """Every run a test starts; none outlives it."""
    started: list[Started] = []
    yield started
    for run in started:
        if run.poll() is None:
            run.kill()


def requested(server: FaultServer, filename: str, before: int) -> Callable[[], bool]:
    return lambda: server.count(filename) > before


# What the folder may hold


def verify_report(prewheel: Prewheel, out: Path, *, cli: bool) -> dict[str, Any]:
    """`prewheel verify --json`'s report, exit code checked against it; or, where a test
    checks a folder many times, the same report from the function that command calls."""
    if not cli:
        found = verify(out)
        return {"ok": found.ok, "problems": [p.to_dict() for p in found.problems]}
    result = prewheel("verify", out, "--json")
    report: dict[str, Any] = json.loads(result.stdout)
    assert result.returncode == (0 if report["ok"] else 5), result
    assert "Traceback" not in result.stderr, result.stderr
    return report


def check_manifest_files(out: Path) -> dict[str, Any] | None:
    """Every file the manifest lists is there with its sha256 and size; none is a temp."""
    if not (out / MANIFEST).exists():
        return None
    manifest: dict[str, Any] = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
    listed = set(manifest["files"])
    for target in manifest["targets"].values():
        listed |= {pin["file"] for pin in target["pins"]}
    for name in sorted(listed):
        assert not name.startswith(".part-"), f"the manifest lists a temporary file {name}"
        path = out / name
        assert path.is_file(), f"the manifest lists {name}, which is not in {out}"
        record = manifest["files"][name]
        assert sha256_file(path) == record["sha256"], f"{name} is not intact"
        assert path.stat().st_size == record["size"], f"{name} has the wrong size"
    return manifest


def check_requirements_files(out: Path) -> None:
    """install.sh installs requirements.<target>.txt: each pin's file is there, intact."""
    for path in out.glob("requirements.*.txt"):
        wheels = {sha256_file(p): p.name for p in out.glob("*.whl")}
        for name, (_, hashes) in parse_requirements_txt(path).items():
            assert len(hashes) == 1 and hashes[0] in wheels, (
                f"{path.name} pins {name} to a file that is not in {out}"
            )


def state_after_interruption(
    prewheel: Prewheel, out: Path, previous: dict[str, str] | None, *, cli: bool = True
) -> str:
    """Check the promise on `out` after a run over `previous` (a snapshot, or None for a
    folder that had no wheelhouse) was interrupted; name the state it was left in:
    "none", "previous", "new" or "between" (see the module docstring)."""
    manifest = check_manifest_files(out)
    report = verify_report(prewheel, out, cli=cli)
    problems = [(p["file"], p["message"]) for p in report["problems"]]
    if manifest is None:
        assert previous is None, f"the previous manifest is gone: {problems}"
        assert len(problems) == 1 and problems[0][0] == MANIFEST, problems
        assert "missing" in problems[0][1], problems
        return "none"
    script = out / "install.sh"
    assert script.is_file() and os.access(script, os.X_OK), "install.sh is not executable"
    check_requirements_files(out)
    old_manifest = previous is not None and previous[MANIFEST] == sha256_file(out / MANIFEST)
    if report["ok"]:
        return "previous" if old_manifest else "new"
    assert old_manifest, f"a new manifest landed that does not verify: {problems}"
    assert {file for file, _ in problems} == {REQUIREMENTS}, problems
    return "between"


def check_installs(prewheel: Prewheel, out: Path, site: Path) -> None:
    """install.sh installs (into `site`, offline) exactly what the requirements file pins."""
    result = subprocess.run(
        ["sh", str(out / "install.sh"), "--target", str(site), "--no-compile", "--quiet"],
        cwd=prewheel.cwd,
        env=prewheel.env(PYTHON=sys.executable),
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    pins = parse_requirements_txt(out / REQUIREMENTS)
    installed = {p.name.split("-")[0].replace("_", "-") for p in site.glob("*.dist-info")}
    assert installed == set(pins), (installed, pins)


def check_completed(prewheel: Prewheel, out: Path, text: str, *, cli: bool = True) -> None:
    """After a clean rerun: verify passes, the folder holds exactly the wheels of `text`,
    and no temporary file is left."""
    report = verify_report(prewheel, out, cli=cli)
    assert report["ok"], report["problems"]
    manifest = check_manifest_files(out)
    assert manifest is not None
    assert set(manifest["files"]) == FILES[text]
    assert {p.name for p in out.glob("*.whl")} == FILES[text]
    leftovers = [p.name for p in out.iterdir() if p.name.startswith(".part-")]
    assert not leftovers, f"temporary files left behind: {leftovers}"


def rerun(prewheel: Prewheel, index: Interrupts, text: str, out: Path, *, cli: bool = True) -> None:
    """Run again without faults: the run completes the wheelhouse."""
    index.server.clear()
    result = prewheel(*build_args(index, text, out))
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    check_completed(prewheel, out, text, cli=cli)


# SIGKILL at chosen points


@pytest.mark.parametrize("folder", ["fresh", "existing"])
def test_sigkill_during_downloads(
    prewheel: Prewheel,
    index: Interrupts,
    existing: Path,
    tmp_path: Path,
    runs: list[Started],
    folder: str,
) -> None:
    out = existing if folder == "existing" else tmp_path / "fresh"
    previous = snapshot(out) if folder == "existing" else None
    index.server.fail(LIB2, "stall", stall=STALL)
    before = index.server.count(LIB2)
    run = start(prewheel, build_args(index, NEW, out, "--timeout", str(STALL)), tmp_path / "logs")
    runs.append(run)
    wait_until(requested(index.server, LIB2, before), f"the request for {LIB2}")
    assert run.poll() is None, run.explain()
    run.kill()
    state = state_after_interruption(prewheel, out, previous)
    assert state == ("previous" if previous else "none")
    if previous is not None:
        assert snapshot(out) == previous, "the wheelhouse changed"
    # The files that did come are verified in the cache; the rerun fetches the rest.
    rerun(prewheel, index, NEW, out)


def test_sigkill_during_a_build(
    prewheel: Prewheel, index: Interrupts, existing: Path, tmp_path: Path, runs: list[Started]
) -> None:
    """Builds come before anything is written: the wheelhouse stays as it was."""
    out = existing
    previous = snapshot(out)
    marker = tmp_path / "build-started"
    run = start(
        prewheel,
        build_args(index, WITH_SRC, out),
        tmp_path / "logs",
        INTREE_BACKEND_STARTED=str(marker),
    )
    runs.append(run)
    wait_until(lambda: marker.exists() or run.poll() is not None, "the build to start")
    assert run.poll() is None, run.explain()
    assert "building itr-src 1.0" in run.err()
    run.kill()
    assert state_after_interruption(prewheel, out, previous) == "previous"
    assert snapshot(out) == previous, "the wheelhouse changed"
    rerun(prewheel, index, WITH_SRC, out)


def test_sigkill_at_delays_across_a_run(
    prewheel: Prewheel,
    interrupts: Interrupts,
    index: Interrupts,
    tmp_path: Path,
    runs: list[Started],
) -> None:
    """Over a good wheelhouse whose requirements changed, so the run replaces a wheel,
    rewrites the locks and the manifest and prunes: kill it after delays spread from 0
    to the length of a whole run."""

    def fresh_copy(name: str) -> tuple[Path, Prewheel]:
        out = tmp_path / name
        subprocess.run(["cp", "-a", str(interrupts.good), str(out)], check=True)
        return out, prewheel.with_cache(tmp_path / f"{name}-cache")

    out, whole = fresh_copy("whole")
    run = start(whole, build_args(index, NEW, out), tmp_path / "logs")
    runs.append(run)
    assert run.wait() == 0, run.explain()
    assert run.ended is not None
    duration = run.ended - run.started
    check_completed(prewheel, out, NEW)

    states: list[str] = []
    for i in range(12):
        out, each = fresh_copy(f"kill-{i}")
        previous = snapshot(out)
        run = start(each, build_args(index, NEW, out), tmp_path / "logs")
        runs.append(run)
        time.sleep(max(0.0, run.started + duration * i / 11 - time.monotonic()))
        run.kill()
        states.append(state_after_interruption(each, out, previous, cli=False))
        if snapshot(out) != previous:  # else the rerun is the whole run above, again
            rerun(each, index, NEW, out, cli=False)
    print(f"killed at {duration / 11:.2f} s steps: {states}")
    assert states[0] == "previous", states


# Runs prewheel's CLI in-process after wrapping os.replace, os.rename, os.unlink,
# os.remove and os.chmod: each call that changes the folder (a temporary file's chmod
# and an unlink of nothing aside) is a step, noted in the tally; just before step
# `stop` the process sends itself the signal.
_STEP_KILLER = """\
import os, signal, sys

folder, stop, signame, tally = sys.argv[1:5]
del sys.argv[1:5]
folder, stop, signum = os.path.realpath(folder), int(stop), getattr(signal, signame)
steps = 0


def counted(real, which):
    def step(*args, **kwargs):
        global steps
        path = os.path.realpath(os.fspath(args[which]))
        name = os.path.basename(path)
        if (
            os.path.dirname(path) == folder
            and os.path.exists(args[0])
            and not (real.__name__ == "chmod" and name.startswith(".part-"))
        ):
            steps += 1
            with open(tally, "a") as handle:
                handle.write("%s %s\\n" % (real.__name__, name))
            if steps == stop:
                os.kill(os.getpid(), signum)
        return real(*args, **kwargs)

    return step


os.replace, os.rename = counted(os.replace, 1), counted(os.rename, 1)
os.unlink, os.remove, os.chmod = counted(os.unlink, 0), counted(os.remove, 0), counted(os.chmod, 0)
from prewheel.cli import main

main(sys.argv[1:])
"""


def step_killer(index: Interrupts, out: Path, stop: int, signame: str, tally: Path) -> list[str]:
    """`prewheel build` of NEW over `out` that sends itself `signame` just before step
    `stop` that changes `out` (0: never), listing the steps it reached in `tally`."""
    return [
        sys.executable,
        "-c",
        _STEP_KILLER,
        str(out),
        str(stop),
        signame,
        str(tally),
        *build_args(index, NEW, out),
    ]


def run(command: list[str], prewheel: Prewheel) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        cwd=prewheel.cwd,
        env=prewheel.env(),
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )


@pytest.fixture
def steps(
    prewheel: Prewheel, interrupts: Interrupts, index: Interrupts, tmp_path: Path
) -> list[str]:
    """The steps that change the folder in a whole run of NEW over a good wheelhouse of OLD."""
    out = tmp_path / "whole"
    subprocess.run(["cp", "-a", str(interrupts.good), str(out)], check=True)
    tally = tmp_path / "steps"
    whole = prewheel.with_cache(tmp_path / "whole-cache")
    result = run(step_killer(index, out, 0, "SIGKILL", tally), whole)
    assert result.returncode == 0, result.stderr
    names = tally.read_text(encoding="utf-8").splitlines()
    # The new wheels, the lock, the requirements file, install.sh, the manifest, the prune.
    assert f"replace {MANIFEST}" in names and f"replace {REQUIREMENTS}" in names, names
    assert names[-1] == f"unlink {LIB1}", names
    return names


def test_sigkill_before_each_step_that_changes_the_folder(
    prewheel: Prewheel, interrupts: Interrupts, index: Interrupts, tmp_path: Path, steps: list[str]
) -> None:
    previous = snapshot(interrupts.good)
    states = []
    for stop, step in enumerate(steps, start=1):
        out = tmp_path / f"kill-{stop}"
        subprocess.run(["cp", "-a", str(interrupts.good), str(out)], check=True)
        each = prewheel.with_cache(tmp_path / f"kill-{stop}-cache")
        killed = run(step_killer(index, out, stop, "SIGKILL", Path(os.devnull)), each)
        assert killed.returncode == -signal.SIGKILL, (step, killed.stderr)
        states.append(state_after_interruption(each, out, previous, cli=False))
        if states[-1] == "between":
            check_installs(each, out, tmp_path / f"site-{stop}")
        rerun(each, index, NEW, out, cli=False)
    print(list(zip(steps, states, strict=True)))
    assert states[-1] == "new", states


def test_ctrl_c_before_each_step_that_changes_the_folder(
    prewheel: Prewheel, interrupts: Interrupts, index: Interrupts, tmp_path: Path, steps: list[str]
) -> None:
    """Ctrl-C at any step leaves the previous wheelhouse or the new one, never a mix, and
    no temporary file."""
    previous = snapshot(interrupts.good)
    for stop, step in enumerate(steps, start=1):
        out = tmp_path / f"int-{stop}"
        subprocess.run(["cp", "-a", str(interrupts.good), str(out)], check=True)
        each = prewheel.with_cache(tmp_path / f"int-{stop}-cache")
        stopped = run(step_killer(index, out, stop, "SIGINT", Path(os.devnull)), each)
        assert stopped.returncode == 130, (step, stopped.stderr)
        check_interrupted_message(stopped.stderr)
        state = state_after_interruption(each, out, previous, cli=False)
        assert state in ("previous", "new"), (step, state)
        leftovers = [p.name for p in out.iterdir() if p.name.startswith(".part-")]
        assert not leftovers, (step, leftovers)


# Ctrl-C


def check_interrupted_message(stderr: str) -> None:
    """One line says the run was interrupted, last; no traceback, no other output."""
    assert "Traceback" not in stderr, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert lines and lines[-1].startswith("prewheel: interrupted"), stderr
    assert sum("interrupted" in line for line in lines) == 1, stderr
    assert all(line.startswith("prewheel: ") for line in lines), stderr


def test_ctrl_c_during_downloads(
    prewheel: Prewheel, index: Interrupts, existing: Path, tmp_path: Path, runs: list[Started]
) -> None:
    previous = snapshot(existing)
    index.server.fail(LIB2, "stall", stall=STALL)
    before = index.server.count(LIB2)
    run = start(
        prewheel, build_args(index, NEW, existing, "--timeout", str(STALL)), tmp_path / "logs"
    )
    runs.append(run)
    wait_until(requested(index.server, LIB2, before), f"the request for {LIB2}")
    assert run.poll() is None, run.explain()
    pressed = time.monotonic()
    run.signal(signal.SIGINT)
    assert run.wait() == 130, run.explain()
    assert run.ended is not None and run.ended - pressed < 5, "Ctrl-C took effect late"
    check_interrupted_message(run.err())
    assert snapshot(existing) == previous, "the wheelhouse changed"
    assert state_after_interruption(prewheel, existing, previous) == "previous"
    rerun(prewheel, index, NEW, existing, cli=False)


# Two runs at once


def wait_all(*started: Started) -> None:
    wait_until(lambda: all(r.poll() is not None for r in started), "the runs to end")


def held_build(
    prewheel: Prewheel, index: Interrupts, text: str, out: Path, logs: Path, name: str
) -> tuple[Started, Path, Path]:
    """Start a run whose sdist build, once started (a marker file appears), waits inside
    the wheelhouse's lock until the test creates the release file."""
    marker, release = logs / f"{name}.started", logs / f"{name}.release"
    run = start(
        prewheel.with_cache(logs / f"{name}-cache"),
        build_args(index, text, out),
        logs,
        INTREE_BACKEND_STARTED=str(marker),
        INTREE_BACKEND_RELEASE=str(release),
    )
    return run, marker, release


def started_building(run: Started, marker: Path) -> None:
    wait_until(lambda: marker.exists() or run.poll() is not None, f"{marker.name}")
    assert run.poll() is None, run.explain()


def waiting(run: Started) -> None:
    wait_until(lambda: WAITING in run.err() or run.poll() is not None, "a run to wait")
    assert run.poll() is None, run.explain()


def test_a_second_run_waits_for_the_first(
    prewheel: Prewheel, index: Interrupts, tmp_path: Path, runs: list[Started]
) -> None:
    out, logs = tmp_path / "wheelhouse", tmp_path / "logs"
    a, built, release = held_build(prewheel, index, WITH_SRC, out, logs, "a")
    runs.append(a)
    started_building(a, built)
    b = start(prewheel.with_cache(tmp_path / "b-cache"), build_args(index, OLD, out), logs)
    runs.append(b)
    waiting(b)
    assert a.poll() is None, a.explain()
    release.touch()
    wait_all(a, b)
    assert a.process.returncode == 0, a.explain()
    assert b.process.returncode == 0, b.explain()
    assert WAITING not in a.err()
    assert a.ended is not None and b.ended is not None and a.ended < b.ended
    lines = b.err().splitlines()
    assert WAITING in lines[0] and any("locking" in line for line in lines[1:]), b.err()
    check_completed(prewheel, out, OLD)  # B's wheelhouse, whole, and nothing of A's left


def test_a_third_run_waits_when_the_first_removed_the_folder_it_made(
    prewheel: Prewheel, index: Interrupts, tmp_path: Path, runs: list[Started]
) -> None:
    """A makes the folder, then fails and removes it, lock file and all, while B waits
    for its lock; B goes on; C, started then, must still wait for B."""
    out, logs = tmp_path / "wheelhouse", tmp_path / "logs"
    a, a_built, a_release = held_build(prewheel, index, BROKEN, out, logs, "a")
    runs.append(a)
    started_building(a, a_built)
    b, b_built, b_release = held_build(prewheel, index, WITH_SRC, out, logs, "b")
    runs.append(b)
    waiting(b)
    a_release.touch()
    assert a.wait() == 6, a.explain()  # its build failed: nothing landed
    started_building(b, b_built)
    c = start(prewheel.with_cache(tmp_path / "c-cache"), build_args(index, OLD, out), logs)
    runs.append(c)
    wait_until(lambda: WAITING in c.err() or c.poll() is not None, "C to wait")
    assert c.poll() is None, f"C did not wait for B\n{c.explain()}"
    b_release.touch()
    wait_all(b, c)
    assert b.process.returncode == 0, b.explain()
    assert c.process.returncode == 0, c.explain()
    assert b.ended is not None and c.ended is not None and b.ended < c.ended
    check_completed(prewheel, out, OLD)
