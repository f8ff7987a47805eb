"""An HTTP server on 127.0.0.1 that serves a folder and misbehaves on request.

Each fault is keyed by a path suffix (usually a file name) and says what the
server does for the next requests of that path: answer 500 or 503, stall past
the client's timeout, reset the connection, truncate the body, announce a wrong
Content-Length, or send other bytes under the right name. Faults can be limited
to the first N requests, so a retry can succeed.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

KINDS = ("500", "503", "stall", "reset", "truncate", "long-length", "wrong-body")


@dataclass
class Fault:
    kind: str
    times: int | None = None  # None: every request; N: the first N requests only
    stall_seconds: float = 5.0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault {self.kind!r}; one of {KINDS}")


class FaultServer:
    """Serve `root` on 127.0.0.1; `faults` maps a path suffix to a Fault."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.faults: dict[str, Fault] = {}
        self.hits: dict[str, int] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start the server first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def index_url(self) -> str:
        return f"{self.url}/simple"

    def fail(self, suffix: str, kind: str, times: int | None = None, stall: float = 5.0) -> None:
        with self._lock:
            self.faults[suffix] = Fault(kind, times, stall)

    def clear(self) -> None:
        with self._lock:
            self.faults.clear()

    def count(self, suffix: str) -> int:
        with self._lock:
            return sum(n for path, n in self.hits.items() if path.endswith(suffix))

    def _fault_for(self, path: str) -> Fault | None:
        with self._lock:
            self.hits[path] = self.hits.get(path, 0) + 1
            for suffix, fault in self.faults.items():
                if path.endswith(suffix):
                    if fault.times is not None:
                        if fault.times <= 0:
                            return None
                        fault.times -= 1
                    return fault
        return None

    def start(self) -> FaultServer:
        owner = self

        class Handler(SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=str(owner.root), **kwargs)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_GET(self) -> None:  # noqa: N802
                fault = owner._fault_for(self.path.split("?", 1)[0])
                if fault is None:
                    super().do_GET()
                    return
                _misbehave(self, fault, owner.root)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _misbehave(handler: SimpleHTTPRequestHandler, fault: Fault, root: Path) -> None:
    local = root / handler.path.lstrip("/").split("?", 1)[0]
    body = local.read_bytes() if local.is_file() else b"not here"
    if fault.kind in ("500", "503"):
        handler.send_error(int(fault.kind), "injected fault")
    elif fault.kind == "stall":
        time.sleep(fault.stall_seconds)
        handler.close_connection = True
    elif fault.kind == "reset":
        # SO_LINGER with a zero timeout makes close() send a TCP reset.
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        handler.close_connection = True
    elif fault.kind in ("truncate", "long-length"):
        handler.send_response(200)
        handler.send_header("Content-Type", "application/octet-stream")
        extra = 1000 if fault.kind == "long-length" else 0
        handler.send_header("Content-Length", str(len(body) + extra))
        handler.end_headers()
        handler.wfile.write(body[: len(body) // 2] if fault.kind == "truncate" else body)
        handler.close_connection = True
    elif fault.kind == "wrong-body":
        other = bytes(reversed(body))
        handler.send_response(200)
        handler.send_header("Content-Type", "application/octet-stream")
        handler.send_header("Content-Length", str(len(other)))
        handler.end_headers()
        handler.wfile.write(other)
