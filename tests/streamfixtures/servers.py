"""Loopback servers for the streaming tests: an error-injecting RangeHandler and ``rustac serve``."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from sen12ts_stac.distribute.httpserve import RangeHandler


def flaky_handler(
    fail_first: int = 0,
    codes=(503, 429),
    delay: float = 0.0,
    slow_every: int = 0,
    always_fail: tuple[str, ...] = (),
    suffixes: tuple[str, ...] = (".tif",),
    stall_first: float = 0.0,
) -> type[RangeHandler]:
    """A RangeHandler subclass that, per path ending in one of ``suffixes``, answers the first
    ``fail_first`` requests with ``codes`` (in turn, with ``Retry-After: 0``), sleeps ``delay``
    seconds before every ``slow_every``-th answer, stalls ``stall_first`` seconds before the
    first answer per path (a client timeout), and always answers 503 to paths containing
    one of ``always_fail``. ``.log`` lists (method, path, status, range); ``.max_inflight`` is
    the most requests ever inside their ``delay`` at the same time. (Counted around the sleep
    only: a request counted until its handler returns would still be "in flight" for a moment
    after the client got its answer and sent the next one, so a strictly sequential client
    could read as 2.)"""

    class Flaky(RangeHandler):
        counts: collections.Counter = collections.Counter()
        log: list = []
        lock = threading.Lock()
        served_bytes = collections.Counter()
        inflight = 0
        max_inflight = 0

        @classmethod
        def _enter(cls, delta: int) -> None:
            with cls.lock:
                cls.inflight += delta
                cls.max_inflight = max(cls.max_inflight, cls.inflight)

        def _maybe_fail(self, method: str) -> bool:
            path = self.path.split("?", 1)[0]
            with self.lock:
                self.counts[path] += 1
                n = self.counts[path]
                total = sum(self.counts.values())
            if slow_every and total % slow_every == 0:
                self._enter(1)
                try:
                    time.sleep(delay)
                finally:
                    self._enter(-1)
            if stall_first and n == 1 and path.endswith(suffixes):
                time.sleep(stall_first)
            status = None
            if any(s in path for s in always_fail):
                status = 503
            elif path.endswith(suffixes) and n <= fail_first:
                status = codes[(n - 1) % len(codes)]
            with self.lock:
                self.log.append((method, path, status or 200, self.headers.get("Range")))
            if status is None:
                return False
            self.send_response(status)
            self.send_header("Retry-After", "0")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return True

        def _handle(self, method: str, serve) -> None:
            if not self._maybe_fail(method):
                serve()

        def do_GET(self):
            self._handle("GET", super().do_GET)

        def do_HEAD(self):
            self._handle("HEAD", super().do_HEAD)

        def send_header(self, keyword, value):
            if keyword == "Content-Length" and self.command == "GET":
                with self.lock:
                    self.served_bytes[self.path] += int(value)
            super().send_header(keyword, value)

    return Flaky


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def export_catalog(root: Path, asset_base: str | None = None) -> tuple[dict[str, dict], list[dict]]:
    """The collections (links removed, as ``rustac serve`` needs) and the triplet items of an
    AOI folder, with asset hrefs made absolute (URLs under ``asset_base``, else local paths)."""
    collections_, items = {}, []
    for coll_path in sorted(root.glob("*/collection.json")):
        c = json.loads(coll_path.read_text())
        c["links"] = []
        collections_[c["id"]] = c
    for p in sorted((root / "triplets").glob("*/*/*.json")):
        item = json.loads(p.read_text())
        for a in item["assets"].values():
            target = os.path.normpath(os.path.join(p.parent, a["href"]))
            a["href"] = f"{asset_base}/{os.path.relpath(target, root)}" if asset_base else target
        item["links"] = []
        items.append(item)
    return collections_, items


@contextlib.contextmanager
def rustac_api(workdir: Path, aoi_root: Path, asset_base: str):
    """``rustac serve`` on a free loopback port with the AOI's four collections and its
    triplet items (hrefs under ``asset_base``); yields the API root URL."""
    exe = str(Path(sys.executable).parent / "rustac")
    if not Path(exe).exists():
        exe = shutil.which("rustac") or "rustac"
    collections_, items = export_catalog(aoi_root, asset_base)
    workdir.mkdir(parents=True, exist_ok=True)
    files = []
    for cid, c in collections_.items():
        f = workdir / f"{cid}.json"
        f.write_text(json.dumps(c))
        files.append(str(f))
    nd = workdir / "items.ndjson"
    nd.write_text("".join(json.dumps(i) + "\n" for i in items))
    files.append(str(nd))
    port = free_port()
    log = open(workdir / "rustac.log", "w")
    proc = subprocess.Popen([exe, "serve", "--addr", f"127.0.0.1:{port}", *files], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 30
        while True:
            try:
                with urllib.request.urlopen(url + "/collections", timeout=2) as r:
                    if len(json.load(r)["collections"]) == len(collections_):
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"rustac serve did not start: {(workdir / 'rustac.log').read_text()[-2000:]}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
