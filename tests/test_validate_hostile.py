"""``validate`` on hostile and malformed catalogs (issue 11, items 6, 7, 10, 11, 12): FIFOs and
devices are findings, never reads; malformed links, assets and properties are errors, never a
PASS and never a traceback; and every value the STAC states that the file states too (scale,
offset, nodata, unit, data type, band names, resolution, CRS, grid, size, checksum, image format)
must agree with the file.

Each test copies the committed sample catalog (``catalogs/``, 8 items) and breaks one thing."""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import SCHEMAS

from sen12ts_stac.cli import cli

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "catalogs"
CLI = Path(sys.executable).with_name("sen12ts-stac")
pytestmark = pytest.mark.skipif(not SAMPLE.is_dir(), reason="no sample catalog in the repository")


@pytest.fixture
def root(tmp_path) -> Path:
    return Path(shutil.copytree(SAMPLE, tmp_path / "c"))


def first(root: Path, pattern: str) -> Path:
    return sorted(root.rglob(pattern))[0]


def edit(path: Path, fn) -> None:
    d = json.loads(path.read_text())
    fn(d)
    path.write_text(json.dumps(d))


def cli_run(target, *args, timeout: float = 60) -> tuple[int, dict, str]:
    """The real CLI in a child process: (exit code, JSON report, stderr). A hang fails the test."""
    p = subprocess.run(
        [str(CLI), "validate", str(target), "--offline", "--schemas", str(SCHEMAS), "--format", "json", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert "Traceback" not in p.stderr, p.stderr
    assert p.returncode in (0, 1), (p.returncode, p.stdout[-2000:], p.stderr[-2000:])
    return p.returncode, json.loads(p.stdout), p.stderr


def runner(target, *args) -> tuple[int, dict]:
    """The CLI in this process (faster): exit code and the JSON report."""
    r = CliRunner().invoke(
        cli, ["validate", str(target), "--offline", "--schemas", str(SCHEMAS), "--format", "json", *args]
    )
    assert r.exception is None or isinstance(r.exception, SystemExit), r.output
    return r.exit_code, json.loads(r.stdout)


def errors(rep: dict, check: str | None = None) -> list[str]:
    return [
        f"{f['where']}: {f['message']}"
        for f in rep["findings"]
        if f["level"] == "error" and check in (None, f["check"])
    ]


def has(rep: dict, check: str, *words: str, where: Path | None = None) -> bool:
    return any(
        f["level"] == "error"
        and f["check"] == check
        and all(w in f["message"] for w in words)
        and (where is None or f["where"] == str(where))
        for f in rep["findings"]
    )


def test_the_sample_catalog_passes(root):
    code, rep = runner(root, "--strict")
    assert code == 0 and rep["findings"] == [], errors(rep)


# -- items 6 and 7: FIFOs, devices and symlinks to them are findings, never reads ------------------
@pytest.mark.slow
@pytest.mark.timeout(120)  # a hang fails here, not after the suite's 600 s
def test_a_fifo_as_the_target_is_a_finding_not_a_hang(tmp_path):
    fifo = tmp_path / "catalog.json"
    os.mkfifo(fifo)
    code, rep, _ = cli_run(fifo, timeout=30)
    assert code == 1 and has(rep, "read", "not a regular file", where=fifo), rep


@pytest.mark.slow
@pytest.mark.timeout(120)  # a hang fails here, not after the suite's 600 s
def test_fifo_child_item_and_assets_are_findings_not_hangs(root):
    child = first(root, "s1/block_10_6_210/catalog.json")
    item = first(root, "s2_*.json")
    tif = first(root, "labels.tif")
    thumb = first(root, "s1_*.json").parent / "thumbnail.png"
    for p in (child, item, tif, thumb):
        p.unlink()
        os.mkfifo(p)
    code, rep, _ = cli_run(root, timeout=60)
    assert code == 1
    assert has(rep, "read", "not a regular file", where=child) and has(rep, "read", "not a regular file", where=item), (
        errors(rep)
    )
    assert has(rep, "assets", "labels.tif", "not a regular file") and has(
        rep, "assets", "thumbnail.png", "not a regular file"
    ), errors(rep)


@pytest.mark.slow
@pytest.mark.timeout(120)  # a hang fails here, not after the suite's 600 s
def test_dev_zero_as_root_link_child_and_asset_is_never_read(root):
    item = first(root, "s2_*.json")
    edit(item, lambda d: next(link for link in d["links"] if link["rel"] == "root").update(href="/dev/zero"))
    child = first(root, "labels/block_10_6_210/catalog.json")
    child.unlink()
    child.symlink_to("/dev/zero")
    tif = first(root, "s1.tif")
    tif.unlink()
    tif.symlink_to("/dev/zero")  # its file:checksum is hashed only if it is a regular file
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    for target, args in (
        (item, ()),
        (root, ()),
        (root, ("--follow-symlinks",)),
    ):  # the item alone: its root link is followed
        code, rep, _ = cli_run(target, *args, timeout=60)
        assert code == 1, rep
        if target == root and not args:  # the symlinks lead out of the root: not read at all
            assert has(rep, "links", "is a symlink to /dev/zero", "not read"), errors(rep)
            assert has(rep, "assets", "s1.tif", "is a symlink to /dev/zero"), errors(rep)
    peak_mb = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    assert peak_mb < 1500, f"peak RSS {peak_mb:.0f} MB: something read /dev/zero"
    # followed: the child is refused by the read, the asset (with a file:checksum) by probe_asset
    assert has(rep, "read", "not a regular file", where=child), errors(rep)
    assert has(rep, "assets", "s1.tif", "not a regular file"), errors(rep)
    assert has(rep, "links", "/dev/zero", where=item), errors(rep)


# -- items 11 and 12: malformed structure is an error, never a PASS or a traceback ----------------
@pytest.mark.slow
@pytest.mark.parametrize("links", ["-1", "[" * 1000 + "]" * 1000, '[1, "a", null]', '{"rel": "child"}'])
def test_malformed_links_are_errors_from_the_real_cli(tmp_path, links):
    x = tmp_path / "x.json"
    x.write_text('{"type":"Catalog","id":"x","stac_version":"1.1.0","description":"d","links":' + links + "}")
    for args in ((), ("--no-schemas",)):
        code, rep, _ = cli_run(x, *args)
        assert code == 1 and rep["ok"] is False, (args, rep)
        assert errors(rep, "links"), (args, rep)
        assert not [f for f in rep["findings"] if "recursion" in f["message"]], rep


def test_deeply_nested_fields_are_an_error_not_not_checked(tmp_path):
    x = tmp_path / "x.json"
    x.write_text(
        '{"type":"Catalog","id":"x","stac_version":"1.1.0","description":"d","links":[],"x":'
        + "[" * 500
        + "]" * 500
        + "}"
    )
    code, rep = runner(x)
    assert code == 1 and has(rep, "schema", "nested more than"), rep


@pytest.mark.parametrize(
    "field, value, check",
    [
        ("links", -1, "links"),
        ("links", [[]], "links"),
        ("links", [{"rel": 5, "href": "x"}], "links"),
        ("links", [{"rel": "child", "href": 5}], "links"),
        ("assets", [], "assets"),
        ("assets", {"a": 1}, "assets"),
        ("assets", {"a": {"href": None}}, "assets"),
        ("properties", [], "rules"),
        ("type", ["Feature"], "rules"),
    ],
)
def test_malformed_items_are_errors_with_the_schemas_off(root, field, value, check):
    item = first(root, "s1_*.json")
    edit(item, lambda d: d.update({field: value}))
    code, rep = runner(root, "--no-schemas")
    assert code == 1 and errors(rep, check), (field, value, errors(rep))


def test_odd_values_in_fields_the_rules_hash_are_findings_not_a_failed_check(root):
    items = sorted(root.rglob("triplet_*.json"))
    edit(items[0], lambda d: d["properties"].update({"sen12ts:tile": ["10_85_1592"], "ml-aoi:split": {"a": 1}}))
    edit(items[1], lambda d: d.update(collection=["x"], bbox={"a": 1}))
    code, rep = runner(root)
    assert code == 1
    assert not [
        f for f in rep["findings"] if "check failed" in f["message"] or "could not be checked" in f["message"]
    ], errors(rep)
    assert has(rep, "rules", "sen12ts:tile", where=items[0]), errors(rep)


@pytest.mark.parametrize("ext", ["eo", "file:///etc/passwd", "ftp://host/schema.json"])
def test_a_non_url_extension_is_an_error(root, ext):
    item = first(root, "s1_*.json")
    edit(item, lambda d: d["stac_extensions"].append(ext))
    code, rep = runner(root, "--no-assets")
    assert code == 1 and has(rep, "schema", f"{ext!r} is not an http(s) schema URL", where=item), errors(rep)


@pytest.mark.timeout(120)  # a hang fails here, not after the suite's 600 s
def test_a_parent_link_to_a_fifo_is_not_a_regular_file(root):
    item = first(root, "s1_*.json")
    os.mkfifo(item.parent / "parent.json")
    edit(item, lambda d: next(link for link in d["links"] if link["rel"] == "parent").update(href="./parent.json"))
    code, rep = runner(root, "--no-assets")
    assert code == 1 and has(rep, "links", "rel=parent", "not a regular file", where=item), errors(rep)


# -- item 10: every value the file states too must agree with it ---------------------------------
def _rb(path: Path, asset: str, band: int, **change):
    def fn(d):
        b = d["assets"][asset]["raster:bands"][band]
        for k, v in change.items():
            if v is None:
                b.pop(k, None)
            else:
                b[k] = v

    edit(path, fn)


@pytest.mark.slow
def test_real_cli_fails_a_triplet_whose_b04_scale_is_100x(root):
    trip = first(root, "triplet_*.json")
    _rb(trip, "s2", 3, scale=0.01)
    code, rep, _ = cli_run(root)
    assert code == 1 and has(rep, "assets", "band 4 (B04) scale is 0.0001 in the file", "0.01", where=trip), errors(rep)


def _swap_thumbnail_for_jpeg(root: Path) -> Path:
    from PIL import Image

    thumb = first(root, "s2_*.json").parent / "thumbnail.png"
    Image.new("RGB", (8, 8)).save(thumb, format="JPEG")
    return thumb


SIBLINGS = {
    "s2_scale_deleted": (
        "s2_*.json",
        lambda p: _rb(p, "s2", 0, scale=None),
        "assets",
        "scale is 0.0001 in the file, raster:bands does not say",
    ),
    "s2_offset": ("s2_*.json", lambda p: _rb(p, "s2", 5, offset=-0.1), "assets", "offset is 0 in the file"),
    "s2_nodata_deleted": (
        "s2_*.json",
        lambda p: _rb(p, "s2", 2, nodata=None),
        "assets",
        "nodata is -32768.0 in the file, raster:bands does not say",
    ),
    "s1_nodata": ("s1_*.json", lambda p: _rb(p, "s1", 0, nodata=0), "assets", "nodata is nan in the file"),
    "label_raster_bands_deleted": (
        "label_*.json",
        lambda p: edit(p, lambda d: d["assets"]["labels"].pop("raster:bands")),
        "assets",
        "nodata is 255.0 in the file",
    ),
    "s1_scale_added": ("s1_*.json", lambda p: _rb(p, "s1", 16, scale=0.5), "assets", "scale is 1 in the file"),
    "s2_scale_string": ("s2_*.json", lambda p: _rb(p, "s2", 1, scale="0.0001"), "assets", "is not a number"),
    "s2_data_type_last_band": (
        "s2_*.json",
        lambda p: _rb(p, "s2", 13, data_type="uint8"),
        "assets",
        "band 14 (cloud_mask) is int16",
    ),
    "s2_resolution": ("s2_*.json", lambda p: _rb(p, "s2", 0, spatial_resolution=20.0), "assets", "spatial_resolution"),
    "eo_band_name": (
        "s2_*.json",
        lambda p: edit(p, lambda d: d["assets"]["s2"]["eo:bands"][3].update(name="B05")),
        "assets",
        "is named 'B04' in the file, 'B05' in eo:bands",
    ),
    "band_name": (
        "s1_*.json",
        lambda p: edit(p, lambda d: d["assets"]["s1"]["bands"][0].update(name="vv_t0")),
        "assets",
        "is named 'vh_t0' in the file, 'vv_t0' in bands",
    ),
    "file_size_float": (
        "s1_*.json",
        lambda p: edit(p, lambda d: d["assets"]["s1"].update({"file:size": 10.5})),
        "assets",
        "is not a whole number",
    ),
    "checksum_garbage": (
        "s1_*.json",
        lambda p: edit(p, lambda d: d["assets"]["s1"].update({"file:checksum": "zz"})),
        "assets",
        "is not a multihash",
    ),
    "proj_code_junk": (
        "label_*.json",
        lambda p: edit(p, lambda d: d["properties"].update({"proj:code": "EPSG:x"})),
        "assets",
        "is not a CRS PROJ knows",
    ),
    "proj_transform_strings": (
        "label_*.json",
        lambda p: edit(p, lambda d: d["properties"].update({"proj:transform": ["10"] * 6})),
        "assets",
        "is not 6 or 9 numbers",
    ),
    "tile_moved": (
        "s1_*.json",
        lambda p: edit(p, lambda d: d["properties"].update({"sen12ts:tile": "10_85_1593"})),
        "assets",
        "not on the grid of sen12ts:tile 10_85_1593",
    ),
    "radar_dates_deleted": (
        "triplet_*.json",
        lambda p: edit(p, lambda d: d["properties"].pop("sen12ts:radar_dates")),
        "rules",
        "SEN12TS triplet record has no sen12ts:radar_dates",
    ),
    "tile_deleted": (
        "s2_*.json",
        lambda p: edit(p, lambda d: d["properties"].pop("sen12ts:tile")),
        "rules",
        "SEN12TS Sentinel-2 item has no sen12ts:tile",
    ),
    "dltile": (
        "s2_*.json",
        lambda p: edit(p, lambda d: d["properties"].update({"sen12ts:dltile": "256:0:10.0:10:85:1599"})),
        "rules",
        "is not the key of sen12ts:tile",
    ),
    "aoi": (
        "label_*.json",
        lambda p: edit(p, lambda d: d["properties"].update({"sen12ts:aoi": "iowa"})),
        "rules",
        "sen12ts:aoi 'iowa' is not the AOI of its collection",
    ),
    "item_assets_scale": (
        "triplets/collection.json",
        lambda p: edit(p, lambda d: d["item_assets"]["s2"]["raster:bands"][3].update(scale=0.01)),
        "assets",
        "item_assets s2: band 4 scale is 0.01, in an item 0.0001",
    ),
    "item_assets_names": (
        "s2/collection.json",
        lambda p: edit(p, lambda d: d["item_assets"]["s2"]["eo:bands"].reverse()),
        "assets",
        "item_assets s2: band 1 is named 'cloud_mask', in an item 'B01'",
    ),
    "item_assets_count": (
        "s1/collection.json",
        lambda p: edit(p, lambda d: d["item_assets"]["s1"]["raster:bands"].pop()),
        "assets",
        "item_assets s1: raster:bands lists 18 bands, an item's 19",
    ),
    "constellation_swapped": (
        "s1_*.json",
        lambda p: edit(p, lambda d: d["properties"].update(constellation="sentinel-2")),
        "rules",
        "constellation 'sentinel-2' in the s1 collection",
    ),
    "thumbnail_garbage": (
        "s1_*.json",
        lambda p: (p.parent / "thumbnail.png").write_bytes(os.urandom(2000)),
        "assets",
        "thumbnail.png",
        "not a readable image",
    ),
    "thumbnail_truncated": (
        "label_*.json",
        lambda p: (p.parent / "thumbnail.png").write_bytes((p.parent / "thumbnail.png").read_bytes()[:300]),
        "assets",
        "not a readable image",
    ),
    "thumbnail_jpeg": (
        "s2_*.json",
        lambda p: _swap_thumbnail_for_jpeg(p.parents[3]),
        "assets",
        "is a JPEG image, its type says PNG",
    ),
}


@pytest.mark.parametrize("kind", sorted(SIBLINGS))
def test_a_value_that_disagrees_with_the_file_fails(root, kind):
    pattern, change, check, *words = SIBLINGS[kind]
    path = first(root, pattern)
    change(path)
    code, rep = runner(root)
    assert code == 1, (kind, rep["findings"])
    assert has(rep, check, *words), (kind, errors(rep))


def test_a_unit_the_file_states_must_be_the_items(root):
    import rasterio

    item = first(root, "label_*.json")
    tif = item.parent / "labels.tif"
    with rasterio.open(tif, "r+", IGNORE_COG_LAYOUT_BREAK="YES") as ds:  # the COG layout breaks: not what is tested
        ds.units = ("class",)
    code, rep = runner(root, "--no-checksums")
    assert has(rep, "assets", "unit is 'class' in the file, raster:bands says None", where=item), errors(rep)
    for user in (item, first(root, "triplet_*.json")):  # the label item and the triplet that shares the file
        edit(user, lambda d: d["assets"]["labels"]["raster:bands"][0].update(unit="class"))
    code, rep = runner(root, "--no-checksums")
    assert not has(rep, "assets", "unit is"), errors(rep)


# -- symlinks out of the root: findings, not reads (unless --follow-symlinks) ----------------------
def test_symlinks_out_of_the_root_are_not_followed(root, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "catalog.json").write_text(
        '{"type": "Catalog", "id": "secret-id", "stac_version": "1.1.0", "description": "d", "links": []}'
    )
    (outside / "key").write_bytes(b"not yours\n" * 50)
    child = first(root, "s2/block_10_6_210/catalog.json")
    child.unlink()
    child.symlink_to(outside / "catalog.json")
    item = first(root, "s1_*.json")
    (item.parent / "s1.tif").unlink()
    (item.parent / "s1.tif").symlink_to(outside / "key")
    block = first(root, "labels/block_10_10_199/catalog.json").parent
    shutil.move(block, outside / "block")
    block.symlink_to(outside / "block", target_is_directory=True)  # a folder link on the way
    code, rep = runner(root)
    assert code == 1
    assert has(rep, "links", "is a symlink to", "outside the catalog root", "not read"), errors(rep)
    assert has(rep, "assets", "s1.tif", "is a symlink to", "outside the catalog root", where=item), errors(rep)
    assert sum("outside the catalog root" in e for e in errors(rep, "links")) >= 2, errors(
        rep
    )  # the file link and the folder link
    assert "secret-id" not in json.dumps(rep) and "500 bytes" not in json.dumps(rep)
    code, rep = runner(root, "--follow-symlinks")
    assert not [e for e in errors(rep) if "is a symlink to" in e], errors(rep)
    assert has(rep, "assets", "s1.tif", "not a readable GeoTIFF", where=item), errors(rep)


# -- schema downloads: an overall deadline and a byte budget per run --------------------------------
@pytest.fixture
def drip_server():
    """A loopback server: /drip/... sends a JSON schema one byte every 0.5 s; /big/... a 1 MB schema."""
    import http.server
    import threading
    import time

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = (
                b'{"type": "object"' + b" " * (1 << 20) + b"}"
                if self.path.startswith("/big/")
                else b'{"type": "object"}' * 100
            )
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.path.startswith("/big/"):
                self.wfile.write(body)
                return
            try:
                for b in body:
                    self.wfile.write(bytes([b]))
                    self.wfile.flush()
                    time.sleep(0.5)
            except OSError:
                pass

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_a_schema_server_that_drips_is_cut_off_by_the_deadline(drip_server, tmp_path, monkeypatch):
    import time

    from sen12ts_stac.validate import schemas
    from sen12ts_stac.validate.schemas import SchemaStore, SchemaUnavailable

    monkeypatch.setattr(schemas, "FETCH_DEADLINE_S", 2.0)
    store = SchemaStore(tmp_path / "cache", fetch=True, timeout=5.0)
    t0 = time.monotonic()
    with pytest.raises(SchemaUnavailable, match="unreachable"):
        store.get(f"{drip_server}/drip/v1/schema.json")
    assert time.monotonic() - t0 < 10


def test_schema_downloads_of_a_run_share_a_byte_budget(drip_server, tmp_path, monkeypatch):
    from sen12ts_stac.validate import schemas
    from sen12ts_stac.validate.schemas import SchemaStore, SchemaUnavailable

    monkeypatch.setattr(schemas, "MAX_FETCH_BYTES", 3 << 20)
    store = SchemaStore(tmp_path / "cache", fetch=True)
    for i in range(3):
        assert store.get(f"{drip_server}/big/{i}/schema.json")["type"] == "object"
    with pytest.raises(SchemaUnavailable, match="already downloaded 3 MiB"):
        store.get(f"{drip_server}/big/9/schema.json")
    assert len(list((tmp_path / "cache").rglob("*.json"))) == 3


# -- a remote catalog never makes validate read local files ------------------------------------------
def test_a_remote_catalog_never_makes_validate_read_a_local_file(root, tmp_path, serve_dir, monkeypatch):
    from sen12ts_stac.validate import Options, checks, locations, validate

    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "catalog.json").write_text(
        '{"type": "Catalog", "id": "local-secret", "stac_version": "1.1.0", "description": "d", "links": []}'
    )
    (secret / "s2.tif").write_bytes((first(root, "s2.tif")).read_bytes())
    block = first(root, "s2/block_10_10_199/catalog.json")
    edit(
        block,
        lambda d: d["links"].extend(
            [
                {"rel": "child", "href": f"file://{secret}/catalog.json"},
                {"rel": "item", "href": f"{secret}/catalog.json"},
            ]
        ),
    )
    item = first(root, "s2_*.json")
    edit(
        item,
        lambda d: (
            next(link for link in d["links"] if link["rel"] == "root").update(href=f"file://{secret}/catalog.json"),
            d["assets"]["s2"].update(href=f"file://{secret}/s2.tif"),
        ),
    )
    local: list[str] = []
    real_read, real_probe = locations.storage_read.read_bytes, checks.probe_asset

    def read(where, *a, **k):
        if not where.startswith(("http://", "https://")):
            local.append(where)
        return real_read(where, *a, **k)

    def probe(target, *a, **k):
        if not target.startswith(("http://", "https://")):
            local.append(target)
        return real_probe(target, *a, **k)

    monkeypatch.setattr(locations.storage_read, "read_bytes", read)
    monkeypatch.setattr(checks, "probe_asset", probe)
    base = serve_dir(root)
    opts = Options(schema_dir=str(SCHEMAS), fetch_schemas=False, workers=2)
    for entry in (
        f"{base}/catalog.json",
        f"{base}/{item.relative_to(root).as_posix()}",
    ):  # the item alone: its root link
        report = validate(entry, opts)
        assert not report.ok
        assert local == [], local
    text = report.text(0)
    assert "local-secret" not in text
    report = validate(f"{base}/catalog.json", opts)
    errs = [f.message for f in report.findings if f.level == "error"]
    assert sum("outside the catalog root" in m for m in errs) >= 3, errs  # the child, the item link and the asset


def test_a_report_that_cannot_be_written_names_the_file(root, tmp_path, monkeypatch):
    import errno

    from sen12ts_stac import fsio

    def full(path, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # what a write() into a full disk raises: no file name

    monkeypatch.setattr(fsio, "write_bytes", full)
    out = tmp_path / "report.json"
    r = CliRunner().invoke(
        cli, ["validate", str(root), "--offline", "--schemas", str(SCHEMAS), "--no-assets", "-o", str(out)]
    )
    assert r.exit_code == 2 and f"{out}: no space left on device" in r.output, r.output
    assert not out.exists()


def test_control_characters_in_hrefs_cannot_fake_report_lines(root):
    item = first(root, "s1_*.json")
    evil = "./gone.json\nPASS /x: 1 items; 0 errors \x1b[2K\x1b[32m"
    edit(item, lambda d: d["links"].append({"rel": "derived_from", "href": evil}))
    r = CliRunner().invoke(cli, ["validate", str(root), "--offline", "--schemas", str(SCHEMAS), "--no-assets"])
    assert r.exit_code == 1
    lines = r.stdout.splitlines()
    assert sum(line.startswith("PASS") for line in lines) == 0 and lines[-1].startswith("FAIL"), r.stdout
    assert "\x1b" not in r.stdout and "\\x0aPASS" in r.stdout


def test_no_network_keeps_a_local_catalog_off_the_network(root):
    import http.server
    import threading

    hits: list[str] = []

    class Count(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):
            hits.append(self.path)
            self.send_response(404)
            self.end_headers()

        do_GET = do_HEAD

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Count)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{httpd.server_address[1]}"
        item = first(root, "s1_*.json")
        edit(
            item,
            lambda d: (
                d["assets"]["thumbnail"].update(href=f"{base}/evil.png"),
                d["stac_extensions"].append(f"{base}/schema/v1/schema.json"),
            ),
        )
        code, rep = runner(root, "--no-network")  # (runner passes --offline too: --no-network alone is tested below)
        assert hits == [] and code == 0, (hits, errors(rep))
        assert any(f["level"] == "not-checked" and "--no-network" in f["message"] for f in rep["findings"]), rep[
            "findings"
        ]
        r = CliRunner().invoke(
            cli, ["validate", str(root), "--schemas", str(SCHEMAS), "--no-network", "--format", "json"]
        )
        assert hits == [] and r.exit_code == 0, (hits, r.output[-2000:])
        code, rep = runner(root)  # without it: the asset URL is asked for (a 404: missing)
        assert hits and has(rep, "assets", "evil.png", where=item), (hits, errors(rep))
        r = CliRunner().invoke(cli, ["validate", f"{base}/catalog.json", "--no-network"])
        assert r.exit_code == 2 and "without the network" in r.output, r.output
    finally:
        httpd.shutdown()
        httpd.server_close()
