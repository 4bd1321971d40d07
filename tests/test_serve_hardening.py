"""serve's static server against a hostile folder and hostile clients (issue 11 items 4, 9, 12):
no file outside the real root (symlinks, Range included), no run state or dot-files, no
directory listings, no traceback for a path that is no file name, and idle connections closed."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest
import requests

from sen12ts_stac.cli import main
from sen12ts_stac.distribute.httpserve import RangeHandler, start_server
from sen12ts_stac.distribute.serve import handler_with_mounts


@pytest.fixture
def hostile(tmp_path):
    """A served folder ``root`` beside a ``secret`` folder, with links out of the root and run state in it."""
    root, secret = tmp_path / "root", tmp_path / "secret"
    (root / "a" / ".sen12ts").mkdir(parents=True)
    secret.mkdir()
    (secret / "key.txt").write_text("TOKEN=hunter2")
    (secret / "index.html").write_text("secret index")
    (root / "catalog.json").write_text('{"id": "ok"}')
    (root / "a" / "item.json").write_text('{"id": "item"}')
    (root / "a" / ".sen12ts" / "run.json").write_text('{"source_options": {"token": "hunter2"}}')
    (root / "a" / ".x.tif.abcd1234.tmp").write_text("half written")
    (root / ".hidden.json").write_text("{}")
    os.symlink(secret / "key.txt", root / "a" / "passwd.txt")  # a file link out
    os.symlink(secret, root / "a" / "elsewhere")  # a folder link out
    os.symlink(root / "a" / ".sen12ts" / "run.json", root / "a" / "run.json")  # a link in, to run state
    os.symlink("item.json", root / "a" / "alias.json")  # a link within the root: fine
    (root / "b").mkdir()
    os.symlink(secret / "index.html", root / "b" / "index.html")  # a folder whose index leaves
    os.mkfifo(root / "a" / "fifo.json")
    return root


@pytest.fixture
def served(hostile, request):
    handler = getattr(request, "param", RangeHandler)
    httpd = start_server(hostile, handler=handler)
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


REFUSED = [
    "/a/passwd.txt",
    "/a/elsewhere/key.txt",
    "/a/elsewhere/",
    "/a/elsewhere",
    "/a/.sen12ts/run.json",
    "/a/%2esen12ts/run.json",
    "/a/run.json",
    "/a/.x.tif.abcd1234.tmp",
    "/.hidden.json",
    "/a/.sen12ts/",
    "/b/",
    "/a/fifo.json",
    "/a/",
    "/",
    "/a/elsewhere/../../secret/key.txt",
]


@pytest.mark.parametrize("served", [RangeHandler, handler_with_mounts({"/browser/": "/nonexistent"})], indirect=True)
def test_nothing_outside_the_real_root_no_run_state_no_listings(served):
    assert requests.get(served + "/catalog.json", timeout=5).json() == {"id": "ok"}
    assert requests.get(served + "/a/alias.json", timeout=5).json() == {
        "id": "item"
    }  # links inside the root still work
    for path in REFUSED:
        for headers in ({}, {"Range": "bytes=0-3"}, {"Range": "bytes=-5"}):
            r = requests.get(served + path, headers=headers, timeout=5)
            assert r.status_code == 404, (path, headers, r.status_code)
            assert b"hunter2" not in r.content and b"secret index" not in r.content and b"<li>" not in r.content
        assert requests.head(served + path, timeout=5).status_code == 404, path


def test_a_mount_is_confined_to_its_own_folder(tmp_path, hostile):
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "index.html").write_text("browser")
    os.symlink(hostile / "a" / "passwd.txt", dist / "leak.txt")
    httpd = start_server(hostile, handler=handler_with_mounts({"/browser/": dist}))
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        assert requests.get(base + "/browser/", timeout=5).text == "browser"
        assert requests.get(base + "/browser/leak.txt", timeout=5).status_code == 404
        assert requests.get(base + "/browser/../a/item.json", timeout=5).json() == {"id": "item"}
    finally:
        httpd.shutdown()
        httpd.server_close()


def _raw(addr, request: bytes) -> bytes:
    with socket.create_connection(addr, timeout=5) as c:
        c.sendall(request)
        out = b""
        while chunk := c.recv(65536):
            out += chunk
        return out


@pytest.mark.parametrize("path", [b"/%00", b"/a/%00.json", b"/%ed%a0%80", b"/a/%00/x", b"/%c0%af%00"])
def test_a_path_that_is_no_file_name_is_a_400_without_a_traceback(hostile, path, capfd):
    httpd = start_server(hostile)
    try:
        for method in (b"GET", b"HEAD"):
            head = _raw(httpd.server_address[:2], method + b" " + path + b" HTTP/1.0\r\n\r\n")
            assert head.split(b"\r\n", 1)[0] in (b"HTTP/1.0 400 Bad request path", b"HTTP/1.0 404 File not found"), (
                head[:80]
            )
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert "Traceback" not in capfd.readouterr().err


def test_idle_connections_are_closed_and_their_threads_end(hostile):
    httpd = start_server(hostile, idle_timeout=0.5)
    before = threading.active_count()
    conns = [socket.create_connection(httpd.server_address[:2], timeout=10) for _ in range(20)]
    try:
        deadline = time.monotonic() + 5
        while threading.active_count() < before + 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert threading.active_count() >= before + 20  # one thread per connection while it is open
        t0 = time.monotonic()
        for c in conns:
            assert c.recv(1) == b""  # the server hung up on the silent client
        assert time.monotonic() - t0 < 5
        deadline = time.monotonic() + 5
        while threading.active_count() > before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert threading.active_count() <= before
        # a client that asks something is still answered
        assert requests.get(f"http://127.0.0.1:{httpd.server_address[1]}/catalog.json", timeout=5).ok
    finally:
        for c in conns:
            c.close()
        httpd.shutdown()
        httpd.server_close()


def test_the_default_idle_timeout_is_finite():
    assert 0 < RangeHandler.timeout <= 120


@pytest.mark.parametrize(
    "args", [["--port", "99999"], ["--port", "-1"], ["--api-port", "70000"], ["--idle-timeout", "0"]]
)
def test_out_of_range_ports_are_one_line_errors(tmp_path, capsys, args):
    (tmp_path / "catalog.json").write_text("{}")
    with pytest.raises(SystemExit) as e:
        main(["serve", str(tmp_path), *args])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("sen12ts-stac: error: ") and args[0] in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def _item(id_: str, coll: str) -> dict:
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "id": id_,
        "collection": coll,
        "bbox": [0, 0, 1, 1],
        "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]]]},
        "properties": {"datetime": "2020-01-01T00:00:00Z"},
        "links": [],
        "assets": {},
    }


def test_the_api_publishes_nothing_from_outside_the_served_folder(tmp_path, capsys):
    import json

    from sen12ts_stac.distribute.serve import api_inputs

    root, secret, out = tmp_path / "root", tmp_path / "secret", tmp_path / "out"
    for d in (root / "c" / "in", root / "c" / ".sen12ts", secret / "far", secret / "coll", out):
        d.mkdir(parents=True)
    for path, id_ in (
        (root / "c" / "in" / "in.json", "in"),
        (secret / "far" / "far.json", "far"),
        (secret / "linked.json", "linked"),
        (root / "c" / ".sen12ts" / "state.json", "state"),
    ):
        path.write_text(json.dumps(_item(id_, "c")))
    os.symlink(secret / "linked.json", root / "c" / "in" / "link.json")
    coll = {
        "type": "Collection",
        "stac_version": "1.1.0",
        "id": "c",
        "description": "d",
        "license": "CC0-1.0",
        "extent": {"spatial": {"bbox": [[0, 0, 1, 1]]}, "temporal": {"interval": [[None, None]]}},
        "links": [
            {"rel": "item", "href": h}
            for h in ("./in/in.json", "../../secret/far/far.json", "./in/link.json", "./.sen12ts/state.json")
        ],
    }
    (root / "c" / "collection.json").write_text(json.dumps(coll))
    evil = {**coll, "id": "../../../pwned", "links": [{"rel": "item", "href": "./far/far.json"}]}
    (secret / "coll" / "collection.json").write_text(json.dumps(evil))
    (root / "evil").symlink_to(secret / "coll")
    (root / "odd").mkdir()
    (root / "odd" / "collection.json").write_text(
        json.dumps({**coll, "id": "../pwned", "links": []})
    )  # inside, a hostile id
    (root / "catalog.json").write_text(
        json.dumps(
            {
                "type": "Catalog",
                "stac_version": "1.1.0",
                "id": "r",
                "description": "d",
                "links": [
                    {"rel": "child", "href": "./c/collection.json"},
                    {"rel": "child", "href": "./evil/collection.json"},
                    {"rel": "child", "href": "../secret/coll/collection.json"},
                    {"rel": "child", "href": "./odd/collection.json"},
                ],
            }
        )
    )
    files = api_inputs(root, "http://127.0.0.1:1", out)
    served = [json.loads(line)["id"] for f in files if f.suffix == ".ndjson" for line in f.read_text().splitlines()]
    assert served == ["in"]
    assert [json.loads(f.read_text())["id"] for f in files if f.suffix == ".json"] == ["c", "../pwned"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "root", "secret"]  # nothing written outside out
    assert "not served in the API" in capsys.readouterr().err


def _trickle_is_cut_off(addr) -> bool:
    """Send a request head one byte every 0.3 s (never idle for long); True if the server hangs
    up while the bytes still come, within 6 s."""
    import select

    with socket.create_connection(addr, timeout=10) as c:
        t0 = time.monotonic()
        for b in b"GET /catalog.json HTTP/1.0\r\nX-Slow: " + b"a" * 200:
            try:
                c.sendall(bytes([b]))
                if select.select([c], [], [], 0.3)[0] and c.recv(1) == b"":
                    return True
            except OSError:  # reset by the server
                return True
            if time.monotonic() - t0 > 6:
                return False
        return False


def test_a_trickled_request_head_is_cut_off_and_connections_are_capped(hostile):
    class Strict(RangeHandler):
        timeout, head_deadline = 0.8, 1.5

    httpd = start_server(hostile, handler=Strict, max_connections=3)
    addr = httpd.server_address[:2]
    try:
        assert _trickle_is_cut_off(addr), "the trickling client kept its thread"
        idle = [socket.create_connection(addr, timeout=10) for _ in range(3)]
        try:
            time.sleep(0.2)
            assert _raw(addr, b"GET /catalog.json HTTP/1.0\r\n\r\n").startswith(
                b"HTTP/1.0 503"
            )  # at once, not after a wait
        finally:
            for c in idle:
                c.close()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if _raw(addr, b"GET /catalog.json HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.0 200"):
                break
            time.sleep(0.2)
        else:
            pytest.fail("slots were not given back")
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_the_api_front_cuts_off_trickled_heads_too():
    from sen12ts_stac.distribute.apifront import FrontHandler, bind_front

    httpd = bind_front("127.0.0.1", 0)
    httpd.RequestHandlerClass = type("Strict", (FrontHandler,), {"timeout": 0.8, "head_deadline": 1.5})
    try:
        assert _trickle_is_cut_off(httpd.server_address[:2])
        head = _raw(httpd.server_address[:2], b"GET / HTTP/1.0\r\n\r\n")
        assert head.startswith(b"HTTP/1.0 503") and b"starting" in head  # no rustac behind it yet
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_the_cli_and_the_static_server_need_no_api_extra(tmp_path):
    import subprocess
    import sys

    (tmp_path / "catalog.json").write_text(
        '{"type": "Catalog", "id": "c", "stac_version": "1.1.0", "description": "d", "links": []}'
    )
    code = (
        "import sys; sys.modules['cql2'] = None\n"  # as if the api extra were not installed
        "from sen12ts_stac.cli import main\n"
        "from sen12ts_stac.distribute.serve import start\n"
        f"start({str(tmp_path)!r}, port=0).close()\n"
        f"main(['serve', {str(tmp_path)!r}, '--port', '0', '--api', '--api-port', '0'])\n"
    )
    r = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert (
        r.stderr.strip()
        == "sen12ts-stac: error: serve --api needs the api extra (cql2 is missing): pip install 'sen12ts-stac[api]'"
    )


def test_fuzzed_paths_never_leak_hang_or_raise(hostile, capfd):
    """A seeded loop over request paths built from the pieces a hostile client would try."""
    import random

    pieces = [
        "a",
        "b",
        "..",
        ".",
        "%2e%2e",
        "%2E",
        ".sen12ts",
        "%2esen12ts",
        "run.json",
        "passwd.txt",
        "elsewhere",
        "key.txt",
        "%00",
        "%ff",
        "%ed%a0%80",
        "",
        "%2f",
        "%5c",
        "index.html",
        "alias.json",
        "catalog.json",
        "fifo.json",
        "x?y=1",
        "%25",
        "~",
        "%20",
        ".x.tif.abcd1234.tmp",
        "item.json",
        "secret",
        "%c0%ae%c0%ae",
    ]
    rng = random.Random(11)
    httpd = start_server(hostile, idle_timeout=5)
    addr = httpd.server_address[:2]
    seen = set()
    try:
        for _ in range(400):
            path = "/" + "/".join(rng.choice(pieces) for _ in range(rng.randint(1, 5)))
            method = rng.choice([b"GET", b"HEAD"])
            rng_header = rng.choice([b"", b"Range: bytes=0-3\r\n", b"Range: bytes=-4\r\n", b"Range: bytes=99999-\r\n"])
            out = _raw(addr, method + b" " + path.encode() + b" HTTP/1.0\r\n" + rng_header + b"\r\n")
            assert out.startswith(b"HTTP/1.0 "), (path, "no answer: the handler raised")
            status = out.split(b" ", 2)[1]
            seen.add(status)
            assert status in (b"200", b"206", b"301", b"400", b"404", b"416"), (path, out[:100])
            assert b"hunter2" not in out and b"secret index" not in out and b"half written" not in out, path
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert b"404" in seen and seen & {b"200", b"206"}  # the loop reached both kinds
    assert "Traceback" not in capfd.readouterr().err


def test_a_handler_without_idle_timeout_still_reads_bodies():
    from sen12ts_stac.distribute.apifront import FrontHandler, bind_front

    httpd = bind_front("127.0.0.1", 0)  # a front over no items, with no rustac behind it
    httpd.RequestHandlerClass = type(
        "Patient", (FrontHandler,), {"timeout": None, "upstream": "http://127.0.0.1:1", "items": []}
    )
    try:
        body = b'{"filter": "1 = 1"}'
        with socket.create_connection(httpd.server_address[:2], timeout=10) as c:
            c.sendall(
                b"POST /search HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(body)).encode()
                + b"\r\n\r\n"
            )
            time.sleep(0.3)  # the body comes after the head: read past the head deadline's reach
            c.sendall(body)
            out = b""
            while chunk := c.recv(65536):
                out += chunk
        assert out.startswith(b"HTTP/1.0 200") and b'"numberMatched": 0' in out, out[:300]
    finally:
        httpd.shutdown()
        httpd.server_close()
