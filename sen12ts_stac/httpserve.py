"""A static file server for catalogs: HTTP Range requests (what GDAL's /vsicurl/ and COG readers
need), CORS (what STAC Browser needs), loopback by default. Used by ``sen12ts-stac serve`` and
by the tests."""

from __future__ import annotations

import functools
import http.server
import os
import re
import threading
from pathlib import Path

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """SimpleHTTPRequestHandler plus single-range ``Range: bytes=a-b`` support and CORS."""

    quiet = True

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

    def send_head(self):
        m = _RANGE.match(self.headers.get("Range", "").strip())
        if not m or (not m.group(1) and not m.group(2)):
            return super().send_head()
        path = self.translate_path(self.path)
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
        f = open(path, "rb")
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
        except (BrokenPipeError, ConnectionResetError):
            # the client hung up mid-answer: normal for range readers (GDAL aborts a GET once it
            # has the bytes it wanted), not a server error worth a traceback
            self.close_connection = True


class _Server(http.server.ThreadingHTTPServer):
    # The standard library's listen backlog of 5 makes a sixth concurrent client (GDAL, a thread
    # pool walking a catalog) wait a full TCP retransmit (1 s); catalogs are read concurrently.
    request_queue_size = 128
    daemon_threads = True


def start_server(directory: str | os.PathLike, host: str = "127.0.0.1", port: int = 0,
                 handler: type[RangeHandler] = RangeHandler) -> http.server.ThreadingHTTPServer:
    """Start serving ``directory`` in a daemon thread; ``server.server_address`` has the port."""
    httpd = _Server((host, port), functools.partial(handler, directory=str(Path(directory))))
    threading.Thread(target=httpd.serve_forever, daemon=True, name=f"serve {directory}").start()
    return httpd
