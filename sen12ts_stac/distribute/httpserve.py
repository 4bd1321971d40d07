"""A static file server for catalogs: HTTP Range requests (what GDAL's /vsicurl/ and COG readers
need), CORS (what STAC Browser needs), loopback by default. Used by ``sen12ts-stac serve`` and
by the tests.

What it refuses (404 unless said otherwise), because a served folder may hold links and files its
owner never meant to publish (docs/distribute.md, "What serve refuses"):

* anything whose real path (symlinks resolved, the file and every folder above it) lies outside
  the real root: a link to ``/etc/passwd`` or to a folder elsewhere, Range requests included;
* any path with a dot-component, before or after resolving links: run state (``.sen12ts/``, which
  records the arguments of ``create``), temporaries (``.x.tif.abcd1234.tmp``), ``.git``;
* files that are not regular files or folders (a FIFO would hang the thread that opens it);
* directory listings (STAC Browser, GDAL and the loaders never need them; ``list_directories``);
* paths that are no file name at all (a NUL byte, undecodable escapes): 400, never a traceback.

An idle connection is closed after ``timeout`` seconds (``RangeHandler.timeout``, or
``start_server(idle_timeout=...)``), and one that trickles its request head in is closed after
``head_deadline`` seconds: each open connection holds a thread. Past ``max_connections`` open
connections, a new one is answered 503 at once.
"""

from __future__ import annotations

import functools
import http.server
import io
import os
import re
import threading
import time
from pathlib import Path
from typing import ClassVar

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class Guarded(http.server.BaseHTTPRequestHandler):
    """A ``BaseHTTPRequestHandler`` (use it first among the bases) whose silent connection is closed after ``timeout``
    seconds, and one whose request line and headers take longer than ``head_deadline`` (bytes
    trickled in) too. Each open connection holds a thread."""

    timeout: ClassVar[float | None] = 30.0  # seconds a connection may stay silent (socketserver sets it on the socket)
    head_deadline = 60.0  # seconds to send a request line and headers, however slowly

    def setup(self) -> None:
        super().setup()
        self._deadline = float("inf")
        self.rfile = io.BufferedReader(
            _DeadlineReader(self), self.rbufsize if self.rbufsize > 0 else io.DEFAULT_BUFFER_SIZE
        )

    def handle_one_request(self) -> None:
        self._deadline = time.monotonic() + self.head_deadline
        super().handle_one_request()

    def parse_request(self) -> bool:
        ok = super().parse_request()
        self._deadline = float("inf")  # the head is in: the answer gets the plain idle timeout
        self.connection.settimeout(self.timeout)
        return ok


class RangeHandler(Guarded, http.server.SimpleHTTPRequestHandler):
    """SimpleHTTPRequestHandler plus single-range ``Range: bytes=a-b`` support and CORS."""

    quiet = True
    list_directories = False
    _refused: tuple[int, str] | None = None

    def log_message(self, fmt, *args) -> None:
        if not self.quiet:
            super().log_message(fmt, *args)

    def end_headers(self) -> None:
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Allow-Headers", "Range, Content-Type")
        self.send_header("Access-Control-Expose-Headers", "Content-Range, Content-Length, Accept-Ranges")
        self.send_header("Accept-Ranges", "bytes")
        super().end_headers()

    def do_OPTIONS(self) -> None:  # CORS pre-flight
        self.send_response(204)
        self.send_header("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
        self.end_headers()

    def translate_path(self, path: str) -> str:
        """The file's real path, or (with ``_refused`` set) the reason not to serve it."""
        p = super().translate_path(path)
        self._refused = refusal(p, self.directory)
        if self._refused:
            return p
        real = os.path.realpath(p)
        return real + "/" if p.endswith("/") and not real.endswith("/") else real

    def list_directory(self, path):
        if self.list_directories:
            return super().list_directory(path)
        self.send_error(404, "File not found")
        return None

    def send_head(self):
        path = self.translate_path(self.path)
        if self._refused:
            self.send_error(*self._refused)
            return None
        m = _RANGE.match(self.headers.get("Range", "").strip())
        if not m or (not m.group(1) and not m.group(2)):
            return super().send_head()
        if os.path.isdir(path) or not os.path.isfile(path):
            return super().send_head()
        size = os.path.getsize(path)
        if m.group(1):
            start, end = int(m.group(1)), int(m.group(2)) if m.group(2) else size - 1
        else:  # suffix range: the last N bytes
            start, end = max(0, size - int(m.group(2))), size - 1
        end = min(end, size - 1)
        if start > end or start >= size:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        f = open(path, "rb")  # noqa: SIM115 (send_head hands the open file to do_GET, which closes it)
        f.seek(start)
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        self._remaining = end - start + 1
        return f

    def copyfile(self, source, outputfile) -> None:
        """Send the file (or the asked-for range) with ``socket.sendfile``: the kernel copies
        from the page cache to the socket (``os.sendfile``; the standard library falls back to
        ``send`` where it cannot), so Python never touches the bytes of the COGs it serves."""
        remaining = getattr(self, "_remaining", None)
        self._remaining = None
        try:
            self.connection.sendfile(source, source.tell(), remaining)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            # the client hung up mid-answer: normal for range readers (GDAL aborts a GET once it
            # has the bytes it wanted), not a server error worth a traceback
            self.close_connection = True


def _dotted(rel: str) -> bool:
    return any(w.startswith(".") for w in rel.split(os.sep) if w != ".")


def refusal(path: str, directory: str) -> tuple[int, str] | None:
    """Why ``path`` (a translated request path below ``directory``) must not be served: an
    ``(HTTP status, message)``, or None when it may be."""
    try:
        if "\0" in path:
            raise ValueError("NUL byte")
        if _dotted(os.path.relpath(path, directory)):
            return 404, "File not found"
        root, real = os.path.realpath(directory), os.path.realpath(path)
        if real != root and not real.startswith(root.rstrip(os.sep) + os.sep):
            return 404, "File not found"  # a link out of the served folder
        if _dotted(os.path.relpath(real, root)):
            return 404, "File not found"  # a link to run state inside it
        if os.path.isdir(real):
            index = next((i for i in ("index.html", "index.htm") if os.path.isfile(os.path.join(real, i))), None)
            return refusal(os.path.join(path, index), directory) if index else None
        if os.path.exists(real) and not os.path.isfile(real):
            return 404, "File not found"  # FIFO, socket, device
    except ValueError:  # NUL, or an escape that is no file name (os.fsencode cannot encode it)
        return 400, "Bad request path"
    return None


class _DeadlineReader(io.RawIOBase):
    """The connection's bytes, read with the handler's idle timeout but never past its deadline
    (a client sending one byte every few seconds would otherwise hold a thread for hours)."""

    def __init__(self, handler: Guarded):
        self.handler = handler

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        h = self.handler
        left = h._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("request head not received in time")
        wait = min(h.timeout or left, left)
        h.connection.settimeout(None if wait == float("inf") else wait)  # no idle timeout, no deadline: block
        return h.connection.recv_into(b)


class GuardedServer(http.server.ThreadingHTTPServer):
    # The standard library's listen backlog of 5 makes a sixth concurrent client (GDAL, a thread
    # pool walking a catalog) wait a full TCP retransmit (1 s); catalogs are read concurrently.
    request_queue_size = 128
    daemon_threads = True
    max_connections = 512  # one thread each; more are answered 503 at once

    def server_activate(self) -> None:
        super().server_activate()
        self._slots = threading.BoundedSemaphore(self.max_connections)

    def process_request(self, request, client_address) -> None:
        if not self._slots.acquire(blocking=False):
            try:
                request.sendall(b"HTTP/1.0 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n")
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def start_server(
    directory: str | os.PathLike,
    host: str = "127.0.0.1",
    port: int = 0,
    handler: type[RangeHandler] = RangeHandler,
    idle_timeout: float | None = None,
    max_connections: int | None = None,
) -> http.server.ThreadingHTTPServer:
    """Start serving ``directory`` in a daemon thread; ``server.server_address`` has the port.
    ``idle_timeout``: seconds before a silent connection is closed (default ``handler.timeout``);
    ``max_connections``: open connections (threads) at most (default ``GuardedServer.max_connections``)."""
    if idle_timeout is not None:
        handler = type(handler.__name__, (handler,), {"timeout": idle_timeout})
    server = (
        type("Server", (GuardedServer,), {"max_connections": max_connections}) if max_connections else GuardedServer
    )
    httpd = server((host, port), functools.partial(handler, directory=str(Path(directory))))
    threading.Thread(target=httpd.serve_forever, daemon=True, name=f"serve {directory}").start()
    return httpd
