"""``serve``: a catalog folder over HTTP for STAC Browser, GDAL and the loaders, and optionally a
STAC API over the same items so that pystac-client can search them.

* The static server is :mod:`sen12ts_stac.distribute.httpserve` (HTTP Range + CORS), bound to 127.0.0.1
  unless another host is asked for.
* ``api=True`` starts ``rustac serve`` (memory backend) as a subprocess on a loopback port behind
  the filter front (:mod:`sen12ts_stac.distribute.apifront`) on ``api_port``, which answers CQL2 ``filter``,
  ``query`` and ``/queryables`` that the memory backend ignores. rustac is
  fed one collection JSON (its tree links removed) and one ndjson file of items per collection,
  made from the ``export`` ndjson when present, else from the JSON tree. Relative hrefs are made
  absolute URLs on the static server: an API item lives at ``/collections/x/items/y``, where a
  relative href would point nowhere, and rustac resolves relative hrefs against its working
  directory (see docs/distribute.md). DuckDB is switched off: it needs its `spatial` extension
  from the web, and would serve one parquet file (one collection) only.
* ``browser_dist`` mounts a built STAC Browser (``scripts/stac-browser.sh``) under ``/browser/``.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import requests

from sen12ts_stac.distribute.export import NDJSON_NAME, find_collections, rebase_item
from sen12ts_stac.distribute.httpserve import RangeHandler, refusal, start_server
from sen12ts_stac.errors import UserError
from sen12ts_stac.fsio import read_json, walk_local

BROWSER_PREFIX = "/browser/"
SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "stac-browser.sh"


class MountHandler(RangeHandler):
    """RangeHandler that serves other folders under URL prefixes (``mounts``: prefix -> folder)."""

    mounts: dict[str, str] = {}

    def translate_path(self, path: str) -> str:
        for prefix, folder in self.mounts.items():
            if path.startswith(prefix) or path == prefix.rstrip("/"):
                root, self.directory = self.directory, folder
                try:
                    return super().translate_path("/" + path[len(prefix) :])
                finally:
                    self.directory = root
        return super().translate_path(path)


def handler_with_mounts(mounts: Mapping[str, str | os.PathLike]) -> type[RangeHandler]:
    return type("Mounted", (MountHandler,), {"mounts": {p: str(Path(f).resolve()) for p, f in mounts.items()}})


@dataclass
class Served:
    """Running servers; ``close()`` stops them."""

    url: str  # the root catalog.json
    httpd: socketserver.BaseServer
    api_url: str | None = None
    browser_url: str | None = None
    api_proc: subprocess.Popen | None = None
    api_front: socketserver.BaseServer | None = None
    _tmp: tempfile.TemporaryDirectory | None = field(default=None, repr=False)

    def close(self) -> None:
        if self.api_proc is not None and self.api_proc.poll() is None:
            self.api_proc.terminate()
            try:
                self.api_proc.wait(10)
            except subprocess.TimeoutExpired:
                self.api_proc.kill()
        if self.api_front is not None:
            self.api_front.shutdown()
            self.api_front.server_close()
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> Served:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _root_catalog(root: Path) -> Path:
    if not (root / "catalog.json").is_file():
        raise UserError(f"{root}: no catalog.json here; give the folder that holds the root catalog")
    return root


def _absolute(href: str, base_url: str, coll_rel: str) -> str:
    """A href relative to the collection folder as an absolute URL on the static server."""
    if not href or "://" in href or href.startswith("/"):
        return href
    p = posixpath.normpath(posixpath.join(coll_rel, href))
    return href if p.startswith("..") else f"{base_url}/{p}"


def _inside(path: str | Path, root: Path) -> bool:
    """``path`` lies in ``root`` and the static server would serve it (real path inside the real
    root, no dot-component): what the API publishes is what the folder publishes."""
    return refusal(os.path.abspath(path), os.path.abspath(root)) is None


def _local_items(cpath: Path, root: Path, skipped: list[str]):
    """``iter_items`` that leaves out (and lists in ``skipped``) items reached through links or
    symlinks out of ``root``."""
    base = posixpath.dirname(os.path.abspath(cpath))
    for p, obj in walk_local(cpath, ("child", "item")):
        if obj.get("type") == "Feature":
            if _inside(p, root):
                yield posixpath.relpath(posixpath.dirname(p), base), obj
            else:
                skipped.append(p)


def api_inputs(root: Path, base_url: str, out: Path) -> list[Path]:
    """Write ``rustac serve`` inputs for every collection below ``root`` into ``out``: per
    collection ``<n>.json`` (no tree links) and ``<n>.ndjson`` (absolute hrefs). Collections and
    items outside the served folder (links or symlinks out of it) are left out with a warning."""
    files, skipped = [], []
    for k, cpath in enumerate(find_collections(root)):
        if not _inside(cpath, root):
            skipped.append(str(cpath))
            continue
        coll = read_json(cpath)
        rel = posixpath.relpath(os.path.realpath(cpath.parent), os.path.realpath(root))
        rel = "" if rel == "." else rel
        coll["links"] = [
            lk for lk in coll.get("links", []) if lk.get("rel") not in ("child", "item", "root", "parent", "self")
        ]
        coll["assets"] = {
            k: {**a, "href": _absolute(a.get("href", ""), base_url, rel)} for k, a in (coll.get("assets") or {}).items()
        }
        if not coll["assets"]:
            del coll["assets"]
        exported = cpath.parent / NDJSON_NAME
        if exported.is_file() and _inside(exported, root):
            items = (orjson.loads(line) for line in exported.open("rb") if line.strip())
        else:
            items = (rebase_item(item, d) for d, item in _local_items(cpath, root, skipped))
        # numbered, not named by id: an id is the catalog's text ("../../x" must not write outside out)
        cfile, ifile = out / f"{k:05d}.json", out / f"{k:05d}.ndjson"
        n = 0
        with open(ifile, "wb") as f:
            for item in items:
                item["links"] = [
                    {**lk, "href": _absolute(lk.get("href", ""), base_url, rel)}
                    for lk in item.get("links", [])
                    if lk.get("rel") not in ("root", "parent", "collection", "self")
                ]
                item["assets"] = {
                    k: {**a, "href": _absolute(a.get("href", ""), base_url, rel)}
                    for k, a in item.get("assets", {}).items()
                }
                f.write(orjson.dumps(item) + b"\n")
                n += 1
        cfile.write_bytes(orjson.dumps(coll))
        files.append(cfile)
        if n:
            files.append(ifile)
    if skipped:
        print(
            f"warning: {len(skipped)} collection/item file(s) outside {root} not served in the API, e.g. {skipped[0]}",
            file=sys.stderr,
        )
    return files


def rustac_binary() -> str:
    exe = shutil.which("rustac") or str(Path(sys.executable).parent / "rustac")
    if not Path(exe).exists():
        raise UserError("rustac not found: `pip install rustac` (the api extra) to serve a STAC API")
    return exe


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_api(
    inputs: list[Path], host: str, port: int, timeout: float = 60.0, public: str | None = None
) -> tuple[subprocess.Popen, str]:
    """Start ``rustac serve`` on ``host:port`` and wait until its landing page answers; ``public``:
    the URL its links name, when clients reach it through a front."""
    url = f"http://{host}:{port}"
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        [
            rustac_binary(),
            "serve",
            "--addr",
            public or f"{host}:{port}",
            "--bind",
            f"{host}:{port}",
            "--use-duckdb",
            "false",
            *map(str, inputs),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=inputs[0].parent if inputs else None,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            tail = log.read().decode(errors="replace").strip().splitlines()[-3:]
            raise UserError(f"rustac serve on {host}:{port} stopped (exit {proc.returncode}): {' | '.join(tail)}")
        try:
            if requests.get(url, timeout=2).ok:
                return proc, url
        except requests.RequestException:
            pass
        time.sleep(0.2)
    proc.kill()
    raise UserError(f"rustac serve did not answer on {url} within {timeout:.0f} s")


def build_browser(catalog_url: str, prefix: str = BROWSER_PREFIX) -> Path:
    """Build (or reuse the cached build of) STAC Browser for ``catalog_url``; the dist folder."""
    if not SCRIPT.exists():
        raise UserError(f"{SCRIPT}: STAC Browser build script not found (it ships with the source checkout)")
    # its own process group: on Ctrl-C or SIGTERM the whole build (bash, npm, node) stops, not bash alone
    proc = subprocess.Popen(
        ["bash", str(SCRIPT), "build", catalog_url, "", prefix],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate()
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    if proc.returncode != 0:
        raise UserError(f"STAC Browser build failed: {(err.strip().splitlines() or ['?'])[-1]}")
    return Path(out.strip().splitlines()[-1])


def start(
    root: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    api: bool = False,
    api_port: int = 7822,
    browser_dist: str | Path | None = None,
    idle_timeout: float | None = None,
) -> Served:
    """Serve ``root`` (and the API / STAC Browser if asked); returns the running servers.
    ``idle_timeout``: seconds before the static server closes a silent connection."""
    root = _root_catalog(Path(root))
    mounts = {BROWSER_PREFIX: browser_dist} if browser_dist else {}
    try:
        httpd = start_server(root, host=host, port=port, handler=handler_with_mounts(mounts), idle_timeout=idle_timeout)
    except OSError as e:
        raise UserError(f"cannot serve on {host}:{port} ({e.strerror or e})") from None
    base = f"http://{host}:{httpd.server_address[1]}"
    served = Served(
        url=f"{base}/catalog.json", httpd=httpd, browser_url=f"{base}{BROWSER_PREFIX}" if browser_dist else None
    )
    if api:
        try:
            try:  # the api extra (cql2): imported here so that the static server needs none of it
                from sen12ts_stac.distribute.apifront import bind_front, load_items, start_front
            except ImportError as e:
                raise UserError(
                    f"serve --api needs the api extra ({e.name} is missing): pip install 'sen12ts-stac[api]'"
                ) from None
            try:  # the front first: a port in use is said at once
                served.api_front = front = bind_front(host, api_port)
            except OSError as e:
                raise UserError(f"cannot serve the STAC API on {host}:{api_port} ({e.strerror or e})") from None
            served.api_url = f"http://{host}:{front.server_address[1]}"
            served._tmp = tempfile.TemporaryDirectory(prefix="sen12ts-api-")
            inputs = api_inputs(root, base, Path(served._tmp.name))
            served.api_proc, upstream = start_api(inputs, "127.0.0.1", _free_port(), public=served.api_url)
            start_front(front, upstream, load_items([p for p in inputs if p.suffix == ".ndjson"]))
        except BaseException:
            served.close()
            raise
    return served


class _Stop(Exception):
    """SIGTERM or SIGHUP: stop the way Ctrl-C does (systemd, Docker and CI send SIGTERM)."""


def _on_signal(signum, frame):
    raise _Stop(signal.Signals(signum).name)


def run(
    root: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    api: bool = False,
    api_port: int = 7822,
    browser: bool = False,
    idle_timeout: float = 30.0,
    say: Callable[[str], object] = print,
    warn: Callable[[str], object] = lambda m: print(m, file=sys.stderr),
) -> None:
    """Serve ``root`` until Ctrl-C, SIGTERM or SIGHUP (or until the STAC API child stops): the
    static server, and with ``api`` the filtering STAC API front over ``rustac serve``, with
    ``browser`` a STAC Browser build; everything started is stopped and cleaned up on the way out.
    ``say``/``warn`` print progress lines and warnings."""
    if browser and port == 0:
        raise UserError("--browser needs a fixed --port: STAC Browser is built for one catalog URL")
    _root_catalog(root)
    stops = (signal.SIGTERM, signal.SIGHUP)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, _on_signal) for s in stops} if main_thread else {}
    served = None
    try:
        dist = None
        if browser:
            target = f"http://{host}:{api_port}" if api else f"http://{host}:{port}/catalog.json"
            say(f"building STAC Browser for {target} (cached after the first time) ...")
            dist = build_browser(target)
        served = start(
            root, host=host, port=port, api=api, api_port=api_port, browser_dist=dist, idle_timeout=idle_timeout
        )
        if host not in ("127.0.0.1", "localhost", "::1"):
            warn(f"warning: listening on {host}, reachable from other machines")
        say(f"catalog:      {served.url}")
        if served.api_url:
            say(f"STAC API:     {served.api_url}")
        if served.browser_url:
            say(f"STAC Browser: {served.browser_url}")
        say("Ctrl-C to stop")
        while served.api_proc is None or served.api_proc.poll() is None:
            time.sleep(0.5)
        raise UserError(f"rustac serve stopped (exit {served.api_proc.returncode})")
    except (KeyboardInterrupt, _Stop) as e:
        say(f"stopped ({e})" if isinstance(e, _Stop) else "stopped")
    finally:
        if main_thread:  # a second signal must not cut the clean-up short
            for s in (*stops, signal.SIGINT):
                previous.setdefault(s, signal.getsignal(s))
                signal.signal(s, signal.SIG_IGN)
        try:
            if served is not None:
                served.close()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
