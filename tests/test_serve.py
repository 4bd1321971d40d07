"""serve: static server on loopback with Range + CORS, mounts, and a STAC API (rustac serve)
over the catalog that pystac-client can search."""

from __future__ import annotations

import json
import os
import shutil
import socket
import threading

import pytest
import requests

from sen12ts_stac.cli import main
from sen12ts_stac.distribute.export import find_collections, iter_items
from sen12ts_stac.distribute.httpserve import RangeHandler, start_server
from sen12ts_stac.distribute.serve import start


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def catalog(small_catalog, tmp_path_factory):
    root = tmp_path_factory.mktemp("serve") / "cat"
    shutil.copytree(small_catalog, root)
    return root


def test_static_server_loopback_range_cors_and_mount(catalog, tmp_path):
    (tmp_path / "index.html").write_text("browser here")
    with start(catalog, port=0, browser_dist=tmp_path) as s:
        assert s.httpd.server_address[0] == "127.0.0.1"
        r = requests.get(s.url, timeout=5)
        assert r.ok and r.json()["id"] == "sen12ts" and r.headers["Access-Control-Allow-Origin"] == "*"
        cog = next(catalog.glob("california/s1/*/*/s1.tif"))
        href = s.url.rsplit("/", 1)[0] + "/" + cog.relative_to(catalog).as_posix()
        r = requests.get(href, headers={"Range": "bytes=0-3"}, timeout=5)
        assert r.status_code == 206 and r.content == b"II*\x00"
        r = requests.get(s.browser_url + "index.html", timeout=5)
        assert r.text == "browser here"
        assert requests.get(s.browser_url + "../catalog.json", timeout=5).json()["id"] == "sen12ts"


def test_ranges_and_whole_files_are_served_byte_exact(catalog):
    cog = next(catalog.glob("california/s2/*/*/s2.tif"))
    data = cog.read_bytes()
    with start(catalog, port=0) as s:
        href = s.url.rsplit("/", 1)[0] + "/" + cog.relative_to(catalog).as_posix()
        for rng, want in (
            (f"bytes=1000-{len(data) // 2}", data[1000 : len(data) // 2 + 1]),
            ("bytes=-777", data[-777:]),
            (f"bytes={len(data) - 5}-", data[-5:]),
        ):
            r = requests.get(href, headers={"Range": rng}, timeout=5)
            assert r.status_code == 206 and r.content == want, rng
            assert r.headers["Content-Range"].endswith(f"/{len(data)}")
        assert requests.get(href, timeout=5).content == data
        r = requests.get(href, headers={"Range": f"bytes={len(data)}-"}, timeout=5)
        assert r.status_code == 416 and r.headers["Content-Range"] == f"bytes */{len(data)}"
        listing = requests.get(s.url.rsplit("/", 1)[0] + "/california/", timeout=5)
        assert listing.status_code == 404 and "triplets/" not in listing.text  # no directory listings (issue 11.4)
        assert requests.get(s.url.rsplit("/", 1)[0] + "/california/.sen12ts/run.json", timeout=5).status_code == 404


def test_a_client_hanging_up_mid_file_is_not_a_server_error(tmp_path, capsys):
    (tmp_path / "big.bin").write_bytes(os.urandom(1 << 20) * 48)  # more than the socket buffers hold
    done, raised = threading.Event(), []

    class Handler(RangeHandler):
        def handle(self):  # what escapes here is what socketserver prints as a traceback
            try:
                super().handle()
            except Exception as e:
                raised.append(e)
                raise
            finally:
                done.set()

    httpd = start_server(tmp_path, handler=Handler)
    try:
        with socket.create_connection(httpd.server_address[:2]) as c:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            c.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
            assert c.recv(100).startswith(b"HTTP/1.0 200")
        assert done.wait(20)
    finally:
        httpd.shutdown()
    assert raised == []
    assert "Traceback" not in capsys.readouterr().err


def test_stac_api_search_matches_the_catalog(catalog):
    pystac_client = pytest.importorskip("pystac_client")
    triplets = [c for c in find_collections(catalog) if c.parent.name == "triplets"][0]
    items = [item for _, item in iter_items(triplets)]
    summer = sorted(i["id"] for i in items if "2020-06-01" <= i["properties"]["datetime"][:10] <= "2020-08-31")
    with start(catalog, port=0, api=True, api_port=free_port()) as s:
        client = pystac_client.Client.open(s.api_url)
        assert {c.id for c in client.get_collections()} == {
            "sen12ts_california_s1_source",
            "sen12ts_california_s2_source",
            "sen12ts_california_labels",
            "sen12ts_california_triplets",
        }
        found = client.search(collections=["sen12ts_california_triplets"], datetime="2020-06-01/2020-08-31", limit=5)
        got = sorted(i.id for i in found.items())
        assert got == summer and got
        one = items[0]
        hit = list(client.search(collections=["sen12ts_california_triplets"], bbox=one["bbox"], max_items=100).items())
        assert one["id"] in {i.id for i in hit}
        # asset hrefs in the API are absolute URLs on the static server, and they work
        href = hit[0].assets["s1"].href
        assert href.startswith(s.url.rsplit("/", 1)[0] + "/california/s1/")
        assert requests.get(href, headers={"Range": "bytes=0-3"}, timeout=5).content == b"II*\x00"
        assert json.loads(requests.get(s.api_url + "/conformance", timeout=5).text)["conformsTo"]


def test_serve_cli_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["serve", str(tmp_path)])
    assert e.value.code == 2 and "no catalog.json" in capsys.readouterr().err
    (tmp_path / "catalog.json").write_text("{}")
    with pytest.raises(SystemExit) as e:
        main(["serve", str(tmp_path), "--browser", "--port", "0"])
    assert e.value.code == 2 and "--browser needs a fixed --port" in capsys.readouterr().err
