"""Describe this Python interpreter as a prewheel target, as JSON.

Run it on the deploy machine; it needs only the standard library (and pip, if
present, for the full tag list):

    python3 capture.py -o target.json

then, on the machine that builds the wheelhouse:

    prewheel build -r requirements.in -t target.json

The file holds the interpreter's PEP 508 marker environment and its supported
wheel tags in priority order. `prewheel target script` prints this file and
`prewheel target capture` runs it in place. It is written to run on old
interpreters too (Python 3.6 and later), so it avoids newer syntax.
"""

import json
import os
import platform
import sys
import sysconfig
from typing import Any, Dict, List, Set, Tuple  # noqa: F401 - used by the type comments

FORMAT = 1


def _full_version(info):
    # type: (Any) -> str
    version = "{0.major}.{0.minor}.{0.micro}".format(info)
    if info.releaselevel != "final":
        version += info.releaselevel[0] + str(info.serial)
    return version


def markers():
    # type: () -> Dict[str, str]
    """The default marker environment of PEP 508, for this interpreter."""
    return {
        "implementation_name": sys.implementation.name,
        "implementation_version": _full_version(sys.implementation.version),
        "os_name": os.name,
        "platform_machine": platform.machine(),
        "platform_python_implementation": platform.python_implementation(),
        "platform_release": platform.release(),
        "platform_system": platform.system(),
        "platform_version": platform.version(),
        "python_full_version": platform.python_version(),
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "sys_platform": sys.platform,
    }


def supported_tags():
    # type: () -> Tuple[List[str], str]
    """This interpreter's wheel tags, best first, and where the list came from."""
    try:
        from packaging import tags
    except ImportError:
        try:
            from pip._vendor.packaging import tags  # type: ignore[no-redef]
        except ImportError:
            return _fallback_tags(), "standard library only (install pip for the full list)"
        return [str(t) for t in tags.sys_tags()], "pip"
    return [str(t) for t in tags.sys_tags()], "packaging"


def _platforms():
    # type: () -> List[str]
    """Platform tags, best first; on glibc Linux every manylinux level down to the
    oldest, as pip would list them (without pip, from the C library's own version)."""
    plat = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    if not plat.startswith("linux_"):
        return [plat]
    arch = plat[len("linux_") :]
    try:
        libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (AttributeError, ValueError, OSError):
        libc = ""
    parts = libc.split()[-1].split(".") if libc.startswith("glibc") else []
    if len(parts) < 2 or parts[0] != "2":
        return [plat]
    floor = 5 if arch in ("x86_64", "i686") else 17
    legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
    out = []
    for minor in range(int(parts[1]), floor - 1, -1):
        out.append("manylinux_2_{0}_{1}".format(minor, arch))
        alias = legacy.get(minor)
        if alias and (alias == "manylinux2014" or arch in ("x86_64", "i686")):
            out.append("{0}_{1}".format(alias, arch))
    return out + [plat]


def _fallback_tags():
    # type: () -> List[str]
    """The tags packaging.tags would list for this CPython, in its order."""
    major, minor = sys.version_info[:2]
    interpreter = "cp{0}{1}".format(major, minor)
    platforms = _platforms()
    out = ["{0}-{0}-{1}".format(interpreter, p) for p in platforms]
    out += ["{0}-abi3-{1}".format(interpreter, p) for p in platforms]
    out += ["{0}-none-{1}".format(interpreter, p) for p in platforms]
    for older in range(minor - 1, 1, -1):
        out += ["cp{0}{1}-abi3-{2}".format(major, older, p) for p in platforms]
    for version in ["{0}{1}".format(major, minor), str(major)] + [
        "{0}{1}".format(major, m) for m in range(minor - 1, -1, -1)
    ]:
        out += ["py{0}-none-{1}".format(version, p) for p in platforms]
    out.append("{0}-none-any".format(interpreter))
    out.append("py{0}{1}-none-any".format(major, minor))
    out.append("py{0}-none-any".format(major))
    out += ["py{0}{1}-none-any".format(major, m) for m in range(minor - 1, -1, -1)]
    seen = set()  # type: Set[str]
    return [t for t in out if not (t in seen or seen.add(t))]  # type: ignore[func-returns-value]


def capture():
    # type: () -> Dict[str, Any]
    """The target description: markers, tags in order, and a name for file names."""
    tags, source = supported_tags()
    platforms = [t.split("-")[-1] for t in tags]
    # Newer packaging ranks linux_* first; name the target by its portable platform.
    portable = [p for p in platforms if not p.startswith("linux_")]
    platform_tag = (portable or platforms or ["unknown"])[0]
    name = "cp{0}{1}-{2}".format(sys.version_info[0], sys.version_info[1], platform_tag)
    return {
        "prewheel_target": FORMAT,
        "name": name,
        "python": platform.python_version(),
        "markers": markers(),
        "tags": tags,
        "source": source,
    }


def main(argv):
    # type: (List[str]) -> int
    text = json.dumps(capture(), indent=2, sort_keys=True) + "\n"
    if len(argv) == 2 and argv[0] in ("-o", "--output"):
        with open(argv[1], "w") as handle:
            handle.write(text)
        sys.stderr.write("wrote {0}\n".format(argv[1]))
    elif argv:
        sys.stderr.write("usage: python capture.py [-o target.json]\n")
        return 2
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
