"""Build throwaway wheels, sdists and PEP 503 indexes for tests, and serve them over HTTP.

Everything here runs offline: artifacts are assembled by hand with zipfile/tarfile and
served from 127.0.0.1, so tests can drive real pip/uv against a known package set.
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import html
import io
import itertools
import os
import re
import shutil
import tarfile
import threading
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from email.parser import HeaderParser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = [
    "IndexServer",
    "canonical_name",
    "clean_env",
    "dist_name",
    "expand_tags",
    "make_sdist",
    "make_wheel",
    "read_metadata",
    "write_simple_index",
]

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
GENERATOR = "prewheel-tests-localindex 1.0"

_SDIST_SUFFIX = ".tar.gz"


def canonical_name(name: str) -> str:
    """PEP 503 normalized project name (``Foo.Bar_baz`` -> ``foo-bar-baz``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def dist_name(name: str) -> str:
    """Name as escaped in wheel and sdist filenames (``Foo.Bar-baz`` -> ``foo_bar_baz``)."""
    return re.sub(r"[-_.]+", "_", name).lower()


def _file_version(version: str) -> str:
    return version.replace("-", "_")


def expand_tags(tag: str) -> list[str]:
    """Expand a compressed tag set such as ``py2.py3-none-any`` into individual tags."""
    parts = tag.split("-")
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"not a python-abi-platform tag: {tag!r}")
    interpreters, abis, platforms = (p.split(".") for p in parts)
    return ["-".join(t) for t in itertools.product(interpreters, abis, platforms)]


def _record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _core_metadata(
    name: str,
    version: str,
    requires_dist: Iterable[str],
    requires_python: str | None,
) -> str:
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {name}",
        f"Version: {version}",
        f"Summary: Test package {name}",
    ]
    if requires_python is not None:
        lines.append(f"Requires-Python: {requires_python}")
    lines.extend(f"Requires-Dist: {req}" for req in requires_dist)
    return "\n".join(lines) + "\n"


def _zip_entry(path: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(path, date_time=ZIP_EPOCH)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = (0o100644 & 0xFFFF) << 16
    info.create_system = 3
    return info


def make_wheel(
    dest_dir: Path,
    name: str,
    version: str,
    *,
    tag: str = "py3-none-any",
    requires_dist: Sequence[str] = (),
    requires_python: str | None = None,
    files: Mapping[str, str] | None = None,
) -> Path:
    """Write ``{dist}-{version}-{tag}.whl`` into ``dest_dir`` and return its path.

    The wheel holds ``<dist>/__init__.py`` defining ``__version__`` plus any ``files``
    (archive path -> text; these may replace the default module). Output is byte-for-byte
    reproducible for identical arguments.
    """
    dist = dist_name(name)
    fversion = _file_version(version)
    tags = expand_tags(tag)
    dist_info = f"{dist}-{fversion}.dist-info"

    contents: dict[str, bytes] = {f"{dist}/__init__.py": f'__version__ = "{version}"\n'.encode()}
    for path, text in (files or {}).items():
        contents[path] = text.encode()

    purelib = tag.endswith("-none-any")
    wheel_lines = [
        "Wheel-Version: 1.0",
        f"Generator: {GENERATOR}",
        f"Root-Is-Purelib: {'true' if purelib else 'false'}",
        *(f"Tag: {t}" for t in tags),
    ]
    payload = sorted(contents.items())
    payload.append(
        (
            f"{dist_info}/METADATA",
            _core_metadata(name, version, requires_dist, requires_python).encode(),
        )
    )
    payload.append((f"{dist_info}/WHEEL", ("\n".join(wheel_lines) + "\n").encode()))

    record_path = f"{dist_info}/RECORD"
    record = "".join(f"{path},{_record_hash(data)},{len(data)}\n" for path, data in payload)
    record += f"{record_path},,\n"
    payload.append((record_path, record.encode()))

    dest_dir.mkdir(parents=True, exist_ok=True)
    wheel_path = dest_dir / f"{dist}-{fversion}-{tag}.whl"
    with zipfile.ZipFile(wheel_path, "w") as zf:
        for path, data in payload:
            zf.writestr(_zip_entry(path), data)
    return wheel_path


_SPEEDUPS_C = """\
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT, "_speedups", NULL, -1, NULL
};

PyMODINIT_FUNC PyInit__speedups(void) {
    return PyModule_Create(&speedups_module);
}
"""


INTREE_BACKEND = "intree_backend"

# A PEP 517 backend shipped inside the sdist (backend-path), stdlib only and runnable on
# Python 3.9, so building needs no setuptools from an index. It packs PKG-INFO and the
# tree under src/ into a pure py3-none-any wheel with a RECORD; zip times come from
# SOURCE_DATE_EPOCH (clamped to 1980), so a rebuild of the same sdist gives the same bytes.
_INTREE_BACKEND_PY = """\
import base64
import hashlib
import os
import re
import sys
import tarfile
import time
import zipfile

FAIL_WITH = @FAIL_WITH@
SLEEP_SECONDS = @SLEEP_SECONDS@


def _pkg_info():
    with open("PKG-INFO", encoding="utf-8") as handle:
        return handle.read()


def _dist_and_version(text):
    name = re.search(r"^Name: *(.+)$", text, re.M).group(1).strip()
    version = re.search(r"^Version: *(.+)$", text, re.M).group(1).strip()
    return re.sub(r"[-_.]+", "_", name).lower(), version.replace("-", "_")


def _epoch():
    return max(int(os.environ.get("SOURCE_DATE_EPOCH") or 0), 315532800)


def _digest(data):
    raw = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _fail():
    if FAIL_WITH is not None:
        print("running build_ext")
        sys.stderr.write(FAIL_WITH + "\\n")
        sys.stderr.flush()
        raise SystemExit(1)


def _slow():
    # A test that interrupts or holds a build names a file in INTREE_BACKEND_STARTED: the
    # build creates it, then waits SLEEP_SECONDS or until the file that
    # INTREE_BACKEND_RELEASE names exists. Without it (uv reading the metadata, say) the
    # build runs at once.
    started = os.environ.get("INTREE_BACKEND_STARTED")
    if SLEEP_SECONDS and started:
        with open(started, "a", encoding="utf-8") as handle:
            handle.write("%d\\n" % os.getpid())
        release = os.environ.get("INTREE_BACKEND_RELEASE")
        deadline = time.time() + SLEEP_SECONDS
        while time.time() < deadline and not (release and os.path.exists(release)):
            time.sleep(0.05)


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    _slow()
    _fail()
    metadata = _pkg_info()
    dist, version = _dist_and_version(metadata)
    info = "%s-%s.dist-info" % (dist, version)
    payload = []
    for root, dirs, files in os.walk("src"):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            path = os.path.join(root, name)
            with open(path, "rb") as handle:
                payload.append((os.path.relpath(path, "src").replace(os.sep, "/"), handle.read()))
    payload.sort()
    wheel = "Wheel-Version: 1.0\\nGenerator: intree_backend\\nRoot-Is-Purelib: true\\n"
    wheel += "Tag: py3-none-any\\n"
    payload.append((info + "/METADATA", metadata.encode("utf-8")))
    payload.append((info + "/WHEEL", wheel.encode("utf-8")))
    record = "".join("%s,%s,%d\\n" % (p, _digest(d), len(d)) for p, d in payload)
    payload.append((info + "/RECORD", (record + info + "/RECORD,,\\n").encode("utf-8")))
    filename = "%s-%s-py3-none-any.whl" % (dist, version)
    stamp = time.gmtime(_epoch())[:6]
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w") as archive:
        for path, data in payload:
            entry = zipfile.ZipInfo(path, date_time=stamp)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            entry.create_system = 3
            archive.writestr(entry, data)
    return filename


def build_sdist(sdist_directory, config_settings=None):
    dist, version = _dist_and_version(_pkg_info())
    top = "%s-%s" % (dist, version)
    filename = top + ".tar.gz"
    paths = []
    for root, dirs, files in os.walk("."):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        paths += [os.path.normpath(os.path.join(root, name)) for name in files]

    def reset(entry):
        entry.mtime = _epoch()
        entry.uid = entry.gid = 0
        entry.uname = entry.gname = ""
        return entry

    with tarfile.open(os.path.join(sdist_directory, filename), "w:gz") as archive:
        for path in sorted(paths):
            archive.add(path, arcname=top + "/" + path.replace(os.sep, "/"), filter=reset)
    return filename
"""


def _toml_str(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _pyproject(
    name: str,
    version: str,
    requires_dist: Sequence[str],
    requires_python: str | None,
    backend: str = "setuptools",
) -> str:
    deps = "".join(f"    {_toml_str(req)},\n" for req in requires_dist)
    if backend == "intree":
        build_system = [
            "[build-system]",
            "requires = []",
            f"build-backend = {_toml_str(INTREE_BACKEND)}",
            'backend-path = ["_backend"]',
        ]
    else:
        build_system = [
            "[build-system]",
            'requires = ["setuptools>=61"]',
            'build-backend = "setuptools.build_meta"',
        ]
    lines = [
        *build_system,
        "",
        "[project]",
        f"name = {_toml_str(name)}",
        f"version = {_toml_str(version)}",
        f"dependencies = [\n{deps}]",
    ]
    if requires_python is not None:
        lines.append(f"requires-python = {_toml_str(requires_python)}")
    if backend != "intree":
        lines += ["", "[tool.setuptools.packages.find]", 'where = ["src"]']
    return "\n".join(lines) + "\n"


def _tar_entry(path: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(path)
    info.size = size
    info.mode = 0o644
    info.mtime = 0
    info.uname = info.gname = ""
    return info


def make_sdist(
    dest_dir: Path,
    name: str,
    version: str,
    *,
    requires_dist: Sequence[str] = (),
    pure: bool = True,
    requires_python: str | None = None,
    backend: str = "setuptools",
    fail_with: str | None = None,
    sleep_seconds: float = 0,
) -> Path:
    """Write ``{dist}-{version}.tar.gz`` into ``dest_dir``; setuptools-backed by default.

    The package lives at ``src/<dist>/``. With ``pure=False`` a ``setup.py`` adds the C
    extension ``<dist>._speedups``, so building it needs a compiler and Python headers.

    With ``backend="intree"`` the sdist builds with no requirements at all: its
    pyproject names the stdlib-only backend ``intree_backend`` shipped in ``_backend/``
    (``backend-path``), which writes a pure ``py3-none-any`` wheel. ``fail_with`` makes
    that backend's ``build_wheel`` print the message on stderr and exit 1, as a build
    that misses a system library does. ``sleep_seconds`` makes it wait that long first,
    but only when the environment variable ``INTREE_BACKEND_STARTED`` names a file, which
    it creates before waiting: a test waits for that file to know the build is under way.
    The wait ends early once the file named in ``INTREE_BACKEND_RELEASE`` exists.

    Output is byte-for-byte reproducible for identical arguments.
    """
    if backend not in ("setuptools", "intree"):
        raise ValueError(f"backend {backend!r}: use 'setuptools' or 'intree'")
    if backend == "intree" and not pure:
        raise ValueError("the in-tree backend builds pure wheels only")
    if (fail_with is not None or sleep_seconds) and backend != "intree":
        raise ValueError("fail_with and sleep_seconds need backend='intree'")
    dist = dist_name(name)
    fversion = _file_version(version)
    top = f"{dist}-{fversion}"

    members: dict[str, str] = {
        "PKG-INFO": _core_metadata(name, version, requires_dist, requires_python),
        "pyproject.toml": _pyproject(name, version, requires_dist, requires_python, backend),
        f"src/{dist}/__init__.py": f'__version__ = "{version}"\n',
    }
    if backend == "intree":
        members[f"_backend/{INTREE_BACKEND}.py"] = _INTREE_BACKEND_PY.replace(
            "@FAIL_WITH@", repr(fail_with)
        ).replace("@SLEEP_SECONDS@", repr(sleep_seconds))
    if not pure:
        members[f"src/{dist}/_speedups.c"] = _SPEEDUPS_C
        members["setup.py"] = (
            "from setuptools import Extension, setup\n\n"
            f'setup(ext_modules=[Extension("{dist}._speedups", ["src/{dist}/_speedups.c"])])\n'
        )

    dest_dir.mkdir(parents=True, exist_ok=True)
    sdist_path = dest_dir / f"{top}{_SDIST_SUFFIX}"
    with (
        open(sdist_path, "wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for path, text in sorted(members.items()):
            data = text.encode()
            tar.addfile(_tar_entry(f"{top}/{path}", len(data)), io.BytesIO(data))
    return sdist_path


def read_metadata(path: Path) -> dict[str, Any] | None:
    """Core metadata headers of a wheel (METADATA) or sdist (PKG-INFO), or None if absent.

    Returns a mapping of header name to value; ``Requires-Dist`` is a list.
    """
    text: str | None = None
    if path.name.endswith(".whl"):
        with zipfile.ZipFile(path) as zf:
            for member in zf.namelist():
                if member.count("/") == 1 and member.endswith(".dist-info/METADATA"):
                    text = zf.read(member).decode()
                    break
    elif path.name.endswith(_SDIST_SUFFIX):
        with tarfile.open(path, "r:gz") as tar:
            for info in tar.getmembers():
                if info.name.count("/") == 1 and info.name.endswith("/PKG-INFO"):
                    extracted = tar.extractfile(info)
                    if extracted is not None:
                        text = extracted.read().decode()
                    break
    if text is None:
        return None
    message = HeaderParser().parsestr(text)
    result: dict[str, Any] = dict(message.items())
    result["Requires-Dist"] = message.get_all("Requires-Dist") or []
    return result


def _project_of(filename: str) -> str:
    if filename.endswith(".whl"):
        return canonical_name(filename.split("-", 1)[0])
    if filename.endswith(_SDIST_SUFFIX):
        return canonical_name(filename[: -len(_SDIST_SUFFIX)].rsplit("-", 1)[0])
    raise ValueError(f"not a wheel or .tar.gz sdist: {filename}")


def _sha256_file(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


_PAGE = """\
<!DOCTYPE html>
<html>
  <head>
    <meta name="pypi:repository-version" content="1.0">
    <title>{title}</title>
  </head>
  <body>
{anchors}
  </body>
</html>
"""


def _anchor(href: str, text: str, attrs: str = "") -> str:
    return f'    <a href="{html.escape(href)}"{attrs}>{html.escape(text)}</a><br>'


def write_simple_index(root: Path, files: Sequence[Path]) -> Path:
    """Copy ``files`` into ``root/files/`` and (re)write a PEP 503 index at ``root/simple``.

    The index covers every artifact in ``root/files/``, so repeated calls accumulate.
    Returns the ``root/simple`` directory.
    """
    files_dir = root / "files"
    simple = root / "simple"
    files_dir.mkdir(parents=True, exist_ok=True)
    for src in files:
        if not src.name.endswith((".whl", _SDIST_SUFFIX)):
            raise ValueError(f"not a wheel or .tar.gz sdist: {src}")
        target = files_dir / src.name
        if src.resolve() != target.resolve():
            shutil.copyfile(src, target)

    projects: dict[str, list[Path]] = {}
    for artifact in sorted(files_dir.iterdir()):
        if artifact.name.endswith((".whl", _SDIST_SUFFIX)):
            projects.setdefault(_project_of(artifact.name), []).append(artifact)

    if simple.exists():
        shutil.rmtree(simple)
    simple.mkdir(parents=True)
    for project, artifacts in projects.items():
        anchors = []
        for artifact in artifacts:
            href = f"../../files/{artifact.name}#sha256={_sha256_file(artifact)}"
            metadata = read_metadata(artifact) or {}
            requires_python = metadata.get("Requires-Python")
            attrs = (
                f' data-requires-python="{html.escape(requires_python)}"' if requires_python else ""
            )
            anchors.append(_anchor(href, artifact.name, attrs))
        page_dir = simple / project
        page_dir.mkdir()
        (page_dir / "index.html").write_text(
            _PAGE.format(title=f"Links for {project}", anchors="\n".join(anchors))
        )
    root_anchors = "\n".join(_anchor(f"{project}/", project) for project in projects)
    (simple / "index.html").write_text(_PAGE.format(title="Simple index", anchors=root_anchors))
    return simple


class _RecordingHandler(SimpleHTTPRequestHandler):
    server_ref: IndexServer

    def __init__(self, *args: Any, server_ref: IndexServer, **kwargs: Any) -> None:
        self.server_ref = server_ref
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:
        self.server_ref._record(self.path)
        super().do_GET()

    def do_HEAD(self) -> None:
        self.server_ref._record(self.path)
        super().do_HEAD()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class IndexServer:
    """Serve ``directory`` on 127.0.0.1 at a free port, recording each request path.

    Missing paths, including unknown ``/simple/<project>/`` pages, answer 404.
    Use as a context manager, or call ``start()`` and ``stop()``.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.requests: list[str] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def _record(self, path: str) -> None:
        with self._lock:
            self.requests.append(path)

    def recorded(self) -> list[str]:
        """Snapshot of the request paths so far."""
        with self._lock:
            return list(self.requests)

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("IndexServer is not running")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def index_url(self) -> str:
        """The ``/simple`` URL to hand to ``--index-url``."""
        return f"{self.url}/simple"

    def start(self) -> IndexServer:
        if self._httpd is not None:
            return self
        handler = functools.partial(
            _RecordingHandler, directory=str(self.directory), server_ref=self
        )
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        httpd.daemon_threads = True
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, name="IndexServer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, thread = self._httpd, self._thread
        self._httpd = self._thread = None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> IndexServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """``os.environ`` without ``PIP_*``/``UV_*`` settings, isolated from user config files.

    Loopback is added to ``NO_PROXY`` so a local ``IndexServer`` is never reached via a proxy.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "UV_"))}
    env.update(
        {
            "PIP_CONFIG_FILE": os.devnull,
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            "UV_PYTHON_DOWNLOADS": "never",
            "UV_NO_CONFIG": "1",
        }
    )
    no_proxy = ",".join(
        filter(None, [env.get("NO_PROXY") or env.get("no_proxy"), "127.0.0.1", "localhost"])
    )
    env["NO_PROXY"] = env["no_proxy"] = no_proxy
    env.update(extra or {})
    return env
