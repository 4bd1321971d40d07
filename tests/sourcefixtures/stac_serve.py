"""Serving a built ``World`` (``stac_world``) on 127.0.0.1: its assets with HTTP Range
(``sen12ts_stac.distribute.httpserve``) and its items, made from the providers' real documents, from
``rustac serve`` behind a proxy that can make every distinct request fail once (503 or 429)."""

from __future__ import annotations

import hashlib
import http.client
import http.server
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from sen12ts_stac.distribute.httpserve import RangeHandler, start_server
from sourcefixtures import real_items as real

if TYPE_CHECKING:
    from sourcefixtures.stac_world import World


@dataclass
class Served:
    """A running copy of the world: the STAC API root and the asset server."""

    world: World
    api: str  # the STAC API root
    assets_url: str
    assets_port: int
    handler: type
    faults: dict = field(default_factory=dict)  # counters of injected failures
    _servers: list = field(default_factory=list)
    _procs: list = field(default_factory=list)

    def start_assets(self) -> None:
        httpd = start_server(self.world.root / "assets", port=self.assets_port, handler=self.handler)
        self._servers.append(httpd)

    def close(self) -> None:
        for p in self._procs:
            p.terminate()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
        for s in self._servers:
            s.shutdown()
            s.server_close()
        self._procs.clear()
        self._servers.clear()


# ------------------------------------------------------------------------------------ serving
class FlakyAssets(RangeHandler):
    """Fails every distinct GET (path + Range) once with 503, then serves it."""

    seen: set = set()
    lock = threading.Lock()
    failures = 0

    def do_GET(self) -> None:  # noqa: N802
        key = (self.path, self.headers.get("Range"))
        with self.lock:
            first = key not in self.seen
            self.seen.add(key)
        if first:
            type(self).failures += 1
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_GET()


def _proxy_handler(upstream: int, faults: bool, counters: dict):
    seen: set = set()
    lock = threading.Lock()

    class Proxy(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def _forward(self, method: str) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) if method == "POST" else None
            key = (method, self.path, hashlib.sha256(body or b"").hexdigest())
            with lock:
                first = faults and key not in seen
                seen.add(key)
            if first:  # alternately a rate limit and a server error, both to be retried
                code = 429 if len(seen) % 2 else 503
                counters[code] = counters.get(code, 0) + 1
                self.send_response(code)
                self.send_header("Retry-After", "0")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            conn = http.client.HTTPConnection("127.0.0.1", upstream, timeout=30)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
            conn.request(method, self.path, body=body, headers=headers)
            r = conn.getresponse()
            data = r.read()
            self.send_response(r.status)
            for k, v in r.getheaders():
                if k.lower() not in ("transfer-encoding", "content-length", "connection"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            conn.close()

        def do_GET(self) -> None:  # noqa: N802
            self._forward("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._forward("POST")

    return Proxy


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rustac() -> str:
    exe = Path(sys.executable).with_name("rustac")
    return str(exe) if exe.exists() else (shutil.which("rustac") or "rustac")


def serve_world(world: World, faults: bool = False, start_assets: bool = True, api: str = "earth-search") -> Served:
    """Serve the assets (HTTP Range) and the items (``rustac serve`` behind a proxy), with absolute
    hrefs. With ``faults`` every distinct request fails once first. With ``start_assets=False``
    the asset port is chosen but nothing listens there until ``served.start_assets()``. ``api``
    says whose Sentinel-2 collections it holds: Earth Search's (``sentinel-2-c1-l2a`` and
    ``sentinel-2-l2a``) or Planetary Computer's (``sentinel-2-l2a``); the other layers are the same."""
    handler = FlakyAssets if faults else RangeHandler
    if faults:
        FlakyAssets.seen = set()
        FlakyAssets.failures = 0
    port = _free_port()
    proxy_port = _free_port()
    served = Served(world, f"http://127.0.0.1:{proxy_port}", f"http://127.0.0.1:{port}", port, handler)
    if start_assets:
        served.start_assets()
    s2 = world.s2_items if api == "earth-search" else world.pc_s2_items
    items = json.loads(json.dumps(s2 + world.s1_items + world.items))
    for item in items:
        for asset in item["assets"].values():
            asset["href"] = f"{served.assets_url}/{asset['href']}"
    folder = world.root / f"api-{proxy_port}"
    folder.mkdir()
    with open(folder / "items.ndjson", "w") as f:
        for item in items:
            f.write(json.dumps(item) + "\n")
    hrefs = []
    for c in real.collections(api):
        (folder / f"{c['id']}.json").write_text(json.dumps(c))
        hrefs.append(str(folder / f"{c['id']}.json"))
    for _attempt in range(3):
        upstream = _free_port()
        proc = subprocess.Popen(
            [
                _rustac(),
                "serve",
                "--addr",
                served.api,
                "--bind",
                f"127.0.0.1:{upstream}",
                *hrefs,
                str(folder / "items.ndjson"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        if _wait(f"http://127.0.0.1:{upstream}/", proc):
            served._procs.append(proc)
            break
        proc.kill()
    else:
        served.close()
        raise RuntimeError(f"rustac serve did not start: {proc.stderr.read().decode(errors='replace')[-500:]}")
    handler_cls = _proxy_handler(upstream, faults, served.faults)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", proxy_port), handler_cls)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True, name="stac api proxy").start()
    served._servers.append(httpd)
    return served


def _wait(url: str, proc: subprocess.Popen, seconds: float = 20.0) -> bool:
    import urllib.request

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return True
        except OSError:
            time.sleep(0.1)
    return False
