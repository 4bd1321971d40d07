"""The storage layer (sen12ts_stac.storage): capped reads with an overall deadline, href
resolution against the final URL, no local reads from a remote catalog, and plain http hosts
(no Range support, chunked bodies, redirects) that still stream the same batches as disk."""

from __future__ import annotations

import http.server
import os
import threading
import time
from functools import partial

import pytest
import torch
from streamfixtures import private_stream_cache  # noqa: F401 (autouse)

from sen12ts_stac.errors import UserError
from sen12ts_stac.storage import BodyTooLarge, DeadlineExceeded, capped_get, folder_of, inside, origin, resolve
from sen12ts_stac.storage.checksums import hasher_for, multihash_of, sha256_multihash
from sen12ts_stac.stream import load_index, triplet_loader
from sen12ts_stac.stream.record import resolve_href
from sen12ts_stac.validate.locations import read_json


def _serve(handler_cls, directory=None):
    handler = partial(handler_cls, directory=str(directory)) if directory else handler_cls
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


class _Quiet(http.server.SimpleHTTPRequestHandler):
    """Python's own file server: no Range support (answers every range request with 200 + all)."""

    def log_message(self, *a):
        pass


class _Trickle(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        try:
            if self.path == "/slow":
                for _ in range(60):  # one byte every 0.5 s: every read is within any per-read timeout
                    self.wfile.write(b"{")
                    self.wfile.flush()
                    time.sleep(0.5)
            else:  # a body that never ends
                while True:
                    self.wfile.write(b" " * 65536)
        except OSError:
            pass


@pytest.fixture(scope="module")
def trickle():
    httpd, url = _serve(_Trickle)
    yield url
    httpd.shutdown()


def test_a_slow_body_meets_the_overall_deadline(trickle):
    start = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        capped_get(trickle + "/slow", 1 << 20, timeout=10, deadline=1.5)
    assert time.monotonic() - start < 5


def test_an_endless_body_meets_the_cap(trickle):
    with pytest.raises(BodyTooLarge):
        capped_get(trickle + "/endless", 4 << 20, deadline=30)


def test_locations_resolve_and_contain():
    assert resolve("http://h/a/b/catalog.json", "../c/item.json#x") == "http://h/a/c/item.json"
    assert resolve("/data/cat/catalog.json", "./s1/x%20y.json") == "/data/cat/s1/x y.json"
    assert resolve("/data/cat/catalog.json", "s3://bucket/key") == "s3://bucket/key"
    assert resolve("/data/cat/catalog.json", "ftp://host/key") is None
    # object stores: relative links resolve inside the bucket, never above its root
    assert resolve("s3://bkt/pre/fix/catalog.json", "./s1/../s2/item%201.json") == "s3://bkt/pre/fix/s2/item%201.json"
    assert resolve("s3://bkt/catalog.json", "../../x.json") == "s3://bkt/x.json"
    assert resolve("az://ctr/a/catalog.json", "b/c.json") == "az://ctr/a/b/c.json"
    assert folder_of("gs://bkt/a/catalog.json") == "gs://bkt/a/"
    assert inside("s3://bkt/a/", "s3://bkt/a/b.json") and not inside("s3://bkt/a/", "s3://other/a/b.json")
    assert origin("s3://bkt/a/b.json") == "s3://bkt/" and origin("http://h:8/a/b?q") == "http://h:8/"
    assert resolve("/data/cat/catalog.json", 7) is None
    assert folder_of("http://h/a/catalog.json") == "http://h/a/"
    assert inside("/data/cat", "/data/cat/x.json") and not inside("/data/cat", "/data/catalogue/x.json")
    assert not inside("http://h/a/", "/data/x.json")


def test_a_remote_document_may_not_point_at_local_files(tmp_path):
    secret = tmp_path / "secret.tif"
    secret.write_bytes(b"x")
    with pytest.raises(UserError, match="may not point at local files"):
        resolve_href("http://127.0.0.1:1/cat/item.json", f"file://{secret}")
    # an absolute path seen from a URL is a path on that host, not a local file
    assert resolve_href("http://127.0.0.1:1/cat/item.json", str(secret)) == f"http://127.0.0.1:1{secret}"
    assert resolve_href(str(tmp_path / "item.json"), "secret.tif") == str(secret)


@pytest.mark.parametrize("how", ["absolute", "dotdot", "symlink", "child"])
def test_a_local_catalog_may_not_read_outside_its_root(small_catalog, tmp_path, how):
    import json
    import shutil

    root = tmp_path / "cat"
    shutil.copytree(small_catalog, root)
    secret = tmp_path / "secret.tif"
    shutil.copy(next(root.rglob("s2.tif")), secret)  # a readable GeoTIFF that is not the catalog's
    item_path = next(
        p
        for p in sorted((root / "california" / "triplets").rglob("*.json"))
        if json.loads(p.read_text()).get("type") == "Feature"
    )
    item = json.loads(item_path.read_text())
    if how == "absolute":
        item["assets"]["s2"]["href"] = str(secret)
    elif how == "dotdot":
        item["assets"]["s2"]["href"] = os.path.relpath(secret, item_path.parent)
    elif how == "symlink":
        link = item_path.parent / "inside-looking.tif"
        link.symlink_to(secret)
        item["assets"]["s2"]["href"] = "./inside-looking.tif"
    else:  # a child link to a catalog outside the root
        outside = tmp_path / "elsewhere" / "catalog.json"
        outside.parent.mkdir()
        outside.write_text(
            json.dumps({"type": "Catalog", "id": "x", "stac_version": "1.1.0", "description": "d", "links": []})
        )
        top = json.loads((root / "catalog.json").read_text())
        top["links"].append({"rel": "child", "href": "../elsewhere/catalog.json"})
        (root / "catalog.json").write_text(json.dumps(top))
    item_path.write_text(json.dumps(item))
    with pytest.raises(UserError, match="outside the catalog root"):
        load_index(root)
    assert load_index(root, allow_outside_root=True)  # the user may allow it


def test_multihash(tmp_path):
    f = tmp_path / "f.bin"
    f.write_bytes(b"sen12ts")
    cs = sha256_multihash(f)
    assert cs.startswith("1220") and len(cs) == 68
    h = hasher_for(cs)
    h.update(b"sen12ts")
    assert "1220" + h.hexdigest() == cs
    assert multihash_of(f, "1340").startswith("1340") and hasher_for("1220abc") is None and hasher_for(None) is None


def test_a_fifo_is_a_finding_not_a_read(tmp_path):
    fifo = tmp_path / "catalog.json"
    os.mkfifo(fifo)
    obj, problem = read_json(str(fifo))  # would block forever on open()
    assert obj is None and problem is not None and "not a regular file" in problem.message


# ---- plain http hosts --------------------------------------------------------------------------


class _Chunked(_Quiet):
    """Answers every GET with a chunked body and no Content-Length (and ignores Range)."""

    def do_GET(self):
        path = self.translate_path(self.path)
        if not os.path.isfile(path):
            self.send_error(404)
            return
        with open(path, "rb") as f:
            body = f.read()
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for i in range(0, len(body), 65536):
            part = body[i : i + 65536]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
        self.wfile.write(b"0\r\n\r\n")

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()


class _Moved(_Quiet):
    """The entry /old/place/catalog.json answers 301 to /catalog.json (another folder)."""

    def do_GET(self):
        if self.path == "/old/place/catalog.json":
            self.send_response(301)
            self.send_header("Location", "/catalog.json")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_GET()


def _batches(catalog, **kw):
    return list(
        triplet_loader(
            catalog,
            batch_size=4,
            shuffle=False,
            num_workers=2,
            assets={"s1": ["vh_t0", "coh_t0"], "s2": True, "label": True},
            **kw,
        )
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "handler, entry",
    [(_Quiet, "/catalog.json"), (_Chunked, "/catalog.json"), (_Moved, "/old/place/catalog.json")],
    ids=["no-ranges", "chunked", "redirected-entry"],
)
def test_plain_http_hosts_stream_the_local_batches(small_catalog, handler, entry):
    httpd, url = _serve(handler, small_catalog)
    try:
        records = load_index(url + entry)
        local = _batches(small_catalog)
        remote = _batches(records)
        assert len(records) == len(load_index(small_catalog)) and remote
        assert [b["id"] for b in remote] == [b["id"] for b in local]
        for a, b in zip(remote, local):
            for k in ("s1", "s2", "label"):
                assert torch.equal(a[k], b[k]), k
    finally:
        httpd.shutdown()


@pytest.mark.slow
@pytest.mark.parametrize(
    "handler, entry",
    [(_Quiet, "/catalog.json"), (_Chunked, "/catalog.json"), (_Moved, "/old/place/catalog.json")],
    ids=["no-ranges", "chunked", "redirected-entry"],
)
def test_plain_http_hosts_validate_with_no_errors(small_catalog, handler, entry):
    from sen12ts_stac.validate.engine import Options, validate

    httpd, url = _serve(handler, small_catalog)
    try:
        report = validate(url + entry, Options(workers=2))
    finally:
        httpd.shutdown()
    errors = [f.line() for f in report.findings if f.level == "error"]
    assert errors == [] and report.counts["asset files"] > 0 and report.counts["items"] > 0, errors[:5]
