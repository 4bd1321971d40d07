"""download: filters, checksums, resume after an interruption, and a hostile catalog whose every
trick is refused with a clear finding while nothing is written outside DEST."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from sen12ts_stac.cli import main
from sen12ts_stac.distribute.download import download, file_matches
from sen12ts_stac.distribute.export import iter_items
from sen12ts_stac.distribute.httpserve import RangeHandler
from sen12ts_stac.distribute.inspect import summarise


@pytest.fixture(scope="module")
def source(small_catalog, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dlsrc") / "cat"
    shutil.copytree(small_catalog, root)
    return root


def _items(root: Path, kind: str) -> list[dict]:
    return [item for _, item in iter_items(root / "california" / kind / "collection.json")]


def test_split_and_assets_over_http(source, serve_dir, tmp_path):
    url = serve_dir(source) + "/catalog.json"
    train = sorted(i["id"] for i in _items(source, "triplets") if i["properties"]["ml-aoi:split"] == "train")
    r = download(url, tmp_path / "d", split="train", assets="s1,labels", progress=False, workers=4)
    assert not r.findings and r.items == len(train) and r.downloaded == r.files > 0
    got = sorted(i["id"] for i in _items(tmp_path / "d", "triplets"))
    assert got == train
    for item in _items(tmp_path / "d", "triplets"):  # relative hrefs work in DEST, files verified
        base = next((tmp_path / "d").glob(f"california/triplets/*/{item['id']}"))
        s1 = item["assets"]["s1"]
        assert file_matches((base / s1["href"]).resolve(), s1["file:size"], s1["file:checksum"])
        assert not (base / item["assets"]["s2"]["href"]).exists()  # not asked for
    out = "\n".join(summarise(tmp_path / "d"))  # DEST is a catalog of its own
    assert f"triplets: {len(train)}" in out and "train" in out and "validate" not in out


def test_bbox_datetime_collection_filters(source, tmp_path):
    trip = _items(source, "triplets")
    one = trip[0]
    want = sorted(
        i["id"]
        for i in trip
        if i["bbox"] == one["bbox"] and "2020-06-01" <= i["properties"]["datetime"][:10] <= "2020-08-31"
    )
    bbox = ",".join(str(v) for v in one["bbox"])
    r = download(
        source,
        tmp_path / "d",
        collections="sen12ts_california_triplets",
        bbox=bbox,
        datetime="2020-06-01/2020-08-31",
        dry_run=True,
        progress=False,
    )
    assert r.items == len(want) and not (tmp_path / "d" / "california").exists()
    r = download(source, tmp_path / "d", aoi="iowa", progress=False, dry_run=True)
    assert r.items == 0


def test_resume_after_interruption(source, serve_dir, tmp_path):
    url = serve_dir(source)
    dest = tmp_path / "d"
    done = []

    def stop_after_three(task, status):
        done.append(task.rel)
        if len(done) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        download(
            url, dest, collections="sen12ts_california_s2_source", workers=2, progress=False, on_file=stop_after_three
        )
    complete = [p for p in dest.rglob("*") if p.is_file() and p.suffix in (".tif", ".png")]
    assert len(complete) >= 3 and not list(dest.rglob("*.part"))
    (dest / "california" / "s2" / "x.part").write_bytes(b"junk")  # a stale leftover does not matter
    r = download(url, dest, collections="sen12ts_california_s2_source", workers=2, progress=False)
    assert not r.findings and r.present >= len(complete) and r.present + r.downloaded == r.files
    assert r.downloaded == r.files - r.present > 0
    r2 = download(url, dest, collections="sen12ts_california_s2_source", progress=False)
    assert r2.downloaded == 0 and r2.present == r.files


def _sha(data: bytes) -> str:
    return "1220" + hashlib.sha256(data).hexdigest()


def _item(iid: str, assets: dict, links: list | None = None) -> dict:
    return {
        "type": "Feature",
        "stac_version": "1.1.0",
        "id": iid,
        "collection": "evil",
        "geometry": {"type": "Point", "coordinates": [0, 0]},
        "bbox": [0, 0, 0, 0],
        "properties": {"datetime": "2020-06-01T00:00:00Z"},
        "links": links or [],
        "assets": assets,
    }


@pytest.fixture
def hostile(tmp_path) -> Path:
    """top/cat/ is the catalog; top/outside.txt and top/secret/ are outside it."""
    top = tmp_path / "top"
    cat = top / "cat"
    (top / "secret").mkdir(parents=True)
    (top / "outside.txt").write_text("outside")
    (top / "secret" / "key").write_text("secret")
    good = b"good data\n"
    items = {
        "good": _item("good", {"data": {"href": "./good.bin", "file:size": len(good), "file:checksum": _sha(good)}}),
        "dotdot": _item("dotdot", {"data": {"href": "../../../outside.txt"}}),
        "absolute": _item("absolute", {"data": {"href": str(top / "outside.txt")}}),
        "huge": _item("huge", {"data": {"href": "./huge.bin", "file:size": 10**15}}),
        "badsum": _item("badsum", {"data": {"href": "./bad.bin", "file:size": 4, "file:checksum": _sha(b"nope")}}),
        "longer": _item("longer", {"data": {"href": "./long.bin", "file:size": 10, "file:checksum": _sha(b"x" * 10)}}),
        "symlink": _item("symlink", {"data": {"href": "./link.bin"}}),
    }
    files = {
        "good": ("good.bin", good),
        "badsum": ("bad.bin", b"data"),
        "longer": ("long.bin", b"x" * 5000),
        "huge": ("huge.bin", b"h"),
    }
    links = []
    for name, item in items.items():
        d = cat / "evil" / name
        d.mkdir(parents=True)
        item["links"] = [{"rel": "collection", "href": "../collection.json"}]
        (d / f"{name}.json").write_text(json.dumps(item))
        if name in files:
            (d / files[name][0]).write_bytes(files[name][1])
        links.append({"rel": "item", "href": f"./{name}/{name}.json"})
    os.symlink(top / "secret" / "key", cat / "evil" / "symlink" / "link.bin")
    bad_id = _item("../../../pwned", {"data": {"href": "./good.bin"}})
    (cat / "evil" / "badid.json").write_text(json.dumps(bad_id))
    links += [{"rel": "item", "href": "./badid.json"}, {"rel": "item", "href": "../../outside.json"}]
    (top / "outside.json").write_text(json.dumps(_item("outside", {})))
    (cat / "evil" / "collection.json").write_text(
        json.dumps(
            {
                "type": "Collection",
                "stac_version": "1.1.0",
                "id": "evil",
                "description": "d",
                "license": "CC0-1.0",
                "extent": {"spatial": {"bbox": [[0, 0, 0, 0]]}, "temporal": {"interval": [[None, None]]}},
                "links": links,
            }
        )
    )
    (cat / "catalog.json").write_text(
        json.dumps(
            {
                "type": "Catalog",
                "stac_version": "1.1.0",
                "id": "root",
                "description": "d",
                "links": [{"rel": "child", "href": "./evil/collection.json"}],
            }
        )
    )
    return top


class NoLengthHandler(RangeHandler):
    """Sends long.bin without Content-Length (body until close), so only counting can catch it."""

    def send_header(self, keyword, value):
        if keyword.lower() == "content-length" and self.path.endswith("long.bin"):
            return
        super().send_header(keyword, value)


def _snapshot(folder: Path) -> set[str]:
    return {str(p) for p in folder.rglob("*")}


@pytest.mark.parametrize("over_http", [False, True])
def test_hostile_catalog_is_refused(hostile, serve_dir, tmp_path, over_http):
    dest = tmp_path / "dest"
    dest.mkdir()
    os.symlink(tmp_path / "elsewhere", dest / "trap")  # a symlink already in DEST is never written through
    (tmp_path / "elsewhere").mkdir()
    before = _snapshot(tmp_path) - _snapshot(dest)
    src = serve_dir(hostile, handler=NoLengthHandler) + "/cat/catalog.json" if over_http else str(hostile / "cat")
    r = download(src, dest, progress=False, max_size=1_000_000)
    text = "\n".join(r.findings)
    assert (dest / "evil" / "good" / "good.bin").read_bytes() == b"good data\n"
    assert "item dotdot asset data" in text and (
        "leaves the catalog root" in text or "outside the catalog root" in text
    )
    assert "item absolute asset data: absolute path" in text
    assert "item huge asset data: file:size 1,000,000,000,000,000 bytes is over the limit" in text
    assert "item badsum asset data" in text and "checksum mismatch" in text
    assert "item longer asset data" in text and "than the declared file:size 10" in text
    assert "'../../../pwned'" in text and "not a plain name" in text
    assert "../../outside.json" in text
    if over_http:
        assert "body longer than the declared file:size 10" in text
    else:  # over HTTP the server itself follows the symlink; locally we see it
        assert "item symlink asset data" in text and "outside the catalog root" in text
    for name in ("bad.bin", "long.bin", "huge.bin"):
        assert not list(dest.rglob(name)) and not list(dest.rglob(f".{name}.part"))
    assert not list(dest.rglob("outside*")) and not list(dest.rglob("pwned*"))
    assert _snapshot(tmp_path) - _snapshot(dest) == before, "something was written outside DEST"
    assert not list((tmp_path / "elsewhere").iterdir())


def test_cli_exit_codes(hostile, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["download", str(hostile / "cat"), str(tmp_path / "d"), "--quiet"])
    assert e.value.code == 1
    out = capsys.readouterr().out
    assert "refused: 8" in out and "item good" not in out
    with pytest.raises(SystemExit) as e:
        main(["download", str(tmp_path / "missing"), str(tmp_path / "d")])
    assert e.value.code == 2 and "no catalog.json" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["download", str(hostile / "cat"), str(tmp_path / "d"), "--datetime", "June"])
    assert e.value.code == 2 and "bad datetime 'June'" in capsys.readouterr().err


def _tree_state(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.json"))}


@pytest.mark.parametrize("where", ["same", "inside", "around"])
def test_dest_overlapping_src_is_refused_before_any_write(source, tmp_path, capsys, where):
    # issue 11.1: `download SRC SRC --split train` rewrote SRC's own tree (11 items -> 3)
    src = tmp_path / "outer" / "cat"
    shutil.copytree(source, src)
    dest = {"same": src, "inside": src / "subset", "around": tmp_path / "outer"}[where]
    before = _tree_state(tmp_path / "outer")
    with pytest.raises(SystemExit) as e:
        main(["download", str(src), str(dest), "--split", "test", "--quiet"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "source catalog folder" in err and len(err.strip().splitlines()) == 1
    assert _tree_state(tmp_path / "outer") == before
    assert not (src / "subset").exists()


def test_bad_max_size_is_refused_before_any_write(source, tmp_path, capsys):
    # issue 11.16: --max-size -1 wrote the catalog JSON, then refused every file
    with pytest.raises(SystemExit) as e:
        main(["download", str(source), str(tmp_path / "d"), "--max-size", "-1", "--quiet"])
    assert e.value.code == 2 and "--max-size" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


# -- hostile servers: redirects to another origin, and bodies that trickle ----------------------


def _one_item_catalog(root: Path, href: str, size: int | None = None) -> None:
    """A root catalog with one item whose one asset is ``href``."""
    asset = {"href": href, "type": "image/tiff", **({"file:size": size} if size is not None else {})}
    item = {
        "type": "Feature",
        "stac_version": "1.1.0",
        "id": "it",
        "geometry": None,
        "properties": {"datetime": None},
        "links": [],
        "assets": {"data": asset},
    }
    (root / "it").mkdir(parents=True)
    (root / "it" / "it.json").write_text(json.dumps(item))
    (root / "catalog.json").write_text(
        json.dumps(
            {
                "type": "Catalog",
                "stac_version": "1.1.0",
                "id": "c",
                "description": "d",
                "links": [{"rel": "item", "href": "./it/it.json"}],
            }
        )
    )


def _start(handler) -> tuple:
    import http.server
    import threading

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, f"http://127.0.0.1:{httpd.server_address[1]}"


def test_an_asset_redirected_to_another_host_is_refused(tmp_path, serve_dir):
    import http.server

    class Other(http.server.BaseHTTPRequestHandler):  # the other host: its body must not land in DEST
        def log_message(self, *a):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "11")
            self.end_headers()
            self.wfile.write(b"other bytes")

    other, other_url = _start(Other)
    src = tmp_path / "src"
    _one_item_catalog(src, "./data.tif")

    class Redirecting(RangeHandler):
        def do_GET(self):
            if self.path.endswith("/data.tif"):
                self.send_response(302)
                self.send_header("Location", other_url + "/data.tif")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            super().do_GET()

    base = serve_dir(src, handler=Redirecting)
    try:
        report = download(base + "/catalog.json", tmp_path / "dest", progress=False)
    finally:
        other.shutdown()
    assert any("redirects to another origin" in f for f in report.findings), report.findings
    assert not (tmp_path / "dest" / "it" / "data.tif").exists()
    assert not any(p.read_bytes() == b"other bytes" for p in (tmp_path / "dest").rglob("*") if p.is_file())


@pytest.mark.parametrize("what", ["asset", "json"])
def test_a_trickling_server_meets_the_overall_deadline(tmp_path, what, monkeypatch):
    import http.server
    import time

    import sen12ts_stac.distribute.download as dl

    src = tmp_path / "src"
    _one_item_catalog(src, "./data.tif", size=100)

    class Trickle(http.server.SimpleHTTPRequestHandler):  # one byte every 0.3 s: no per-read timeout fires
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(src), **kw)

        def log_message(self, *a):
            pass

        def do_GET(self):
            slow = self.path.endswith("data.tif") if what == "asset" else self.path.endswith("it.json")
            if not slow:
                return super().do_GET()
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            try:
                for _ in range(100):
                    self.wfile.write(b"x")
                    self.wfile.flush()
                    time.sleep(0.3)
            except OSError:
                pass

    httpd, url = _start(Trickle)
    original = dl.Location.__init__
    monkeypatch.setattr(
        dl.Location,
        "__init__",
        lambda self, src, timeout=60.0, deadline=120.0: original(self, src, timeout=5.0, deadline=2.0),
    )
    monkeypatch.setattr(dl, "MIN_RATE", 1 << 30)  # the size allowance: no more than the base deadline here
    t0 = time.monotonic()
    try:
        report = download(url + "/catalog.json", tmp_path / "dest", progress=False)
    finally:
        httpd.shutdown()
    assert time.monotonic() - t0 < 15
    assert report.findings and any("within" in f for f in report.findings), report.findings
    assert not (tmp_path / "dest" / "it" / "data.tif").exists()
