"""``validate`` end to end: the real CLI on a good catalog, and on each kind of broken one; single
items, http catalogs, STAC 1.0.0 MLHub-style catalogs with absolute links, the schema cache."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from click.testing import CliRunner

from sen12ts_stac.cli import cli, main
from sen12ts_stac.validate import Options, validate
from sen12ts_stac.validate.rules import _date_rules
from sen12ts_stac.validate.schemas import SchemaStore, SchemaUnavailable

CLI = Path(sys.executable).with_name("sen12ts-stac")


def clone(src: Path, dst: Path) -> Path:
    """A copy of a catalog whose JSON files are real copies and whose binaries are hard links
    (replace, never edit, a binary: ``replace_bytes``). Not symlinks: validate refuses files that
    symlinks inside the root point to outside it."""

    def copy(s, d):
        if s.endswith(".json"):
            return shutil.copy2(s, d)
        os.link(s, d)
        return d

    shutil.copytree(src, dst, copy_function=copy, ignore=shutil.ignore_patterns(".sen12ts"))
    return dst


def replace_bytes(path: Path, data: bytes) -> None:
    path.unlink()
    path.write_bytes(data)


def edit(path: Path, fn) -> None:
    d = json.loads(path.read_text())
    fn(d)
    path.write_text(json.dumps(d))


def first(root: Path, pattern: str) -> Path:
    return sorted(root.rglob(pattern))[0]


def run(target, schemas_dir, *args) -> tuple[int, dict]:
    """CliRunner: exit code and the JSON report."""
    r = CliRunner().invoke(
        cli, ["validate", str(target), "--offline", "--schemas", str(schemas_dir), "--format", "json", *args]
    )
    assert r.exception is None or isinstance(r.exception, SystemExit), r.output
    return r.exit_code, json.loads(r.stdout)


def errors(report: dict) -> list[dict]:
    return [f for f in report["findings"] if f["level"] == "error"]


# -- the good catalog --------------------------------------------------------------------------
@pytest.mark.slow
def test_real_cli_passes_the_good_catalog_with_zero_findings(small_catalog, schemas_dir):
    p = subprocess.run(
        [str(CLI), "validate", str(small_catalog), "--offline", "--schemas", str(schemas_dir), "--strict"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.startswith("PASS"), p.stdout
    assert "0 errors, 0 warnings, 0 not checked" in p.stdout
    assert "Traceback" not in p.stderr
    code, rep = run(small_catalog, schemas_dir)
    assert code == 0 and rep["findings"] == []
    c = rep["counts"]
    assert (
        c["items"] >= 60
        and c["collections"] == 4
        and c["asset files"] >= c["items"] // 2
        and c["links"] > 4 * c["items"]
    )
    assert all(rep["checks"].values())


def test_real_cli_exits_1_with_a_one_line_finding_on_a_broken_catalog(small_catalog, schemas_dir, tmp_path):
    root = clone(small_catalog, tmp_path / "c")
    bad = first(root, "s1_*.json")
    bad.write_text('{"type": "Feature", "id": ')
    p = subprocess.run(
        [str(CLI), "validate", str(root), "--offline", "--schemas", str(schemas_dir), "--no-assets"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 1, p.stdout + p.stderr
    assert f"ERROR       read    {bad}: malformed JSON" in p.stdout
    assert p.stdout.splitlines()[-1].startswith("FAIL") and "Traceback" not in p.stderr


# -- each kind of broken catalog ---------------------------------------------------------------
def _truncate(root: Path):
    item = first(root, "s1_*.json")
    tif = item.parent / "s1.tif"
    replace_bytes(tif, tif.read_bytes()[: tif.stat().st_size * 2 // 3])
    return item, "assets", "truncated"


def _not_tiff(root: Path):
    item = first(root, "label_*.json")
    replace_bytes(item.parent / "labels.tif", b"this is not a TIFF\n" * 10)
    return item, "assets", "not a readable GeoTIFF"


def _dtype(root: Path):
    item = first(root, "s2_*.json")
    edit(item, lambda d: d["assets"]["s2"]["raster:bands"][3].update(data_type="uint16"))
    return item, "assets", "band 4 (B04) is int16 in the file, raster:bands says 'uint16'"


def _proj(root: Path):
    item = first(root, "s1_*.json")
    edit(item, lambda d: d["properties"].update({"proj:transform": [10.0, 0.0, 1.0, 0.0, -10.0, 2.0]}))
    return item, "assets", "proj:transform"


def _geometry(root: Path):
    item = first(root, "s2_*.json")

    def shift(d):
        d["geometry"]["coordinates"][0] = [[x + 0.01, y] for x, y in d["geometry"]["coordinates"][0]]
        d["bbox"] = [d["bbox"][0] + 0.01, d["bbox"][1], d["bbox"][2] + 0.01, d["bbox"][3]]

    edit(item, shift)
    return item, "assets", "does not match the raster footprint"


def _malformed(root: Path):
    item = sorted(root.rglob("triplet_*.json"))[-1]
    item.write_text(item.read_text()[:200])
    return item, "read", "malformed JSON"


def _missing(root: Path):
    item = first(root, "s2_*.json")
    item.unlink()
    return item.parent.parent / "catalog.json", "links", "broken link rel=item"


def _loop(root: Path):
    aoi = root / "california" / "catalog.json"
    edit(aoi, lambda d: d["links"].append({"rel": "child", "href": "../catalog.json"}))
    return aoi, "links", "link loop"


def _broken_href(root: Path):
    item = first(root, "triplet_*.json")
    edit(item, lambda d: d["links"][3].update(href="../../../labels/nowhere/label.json"))
    return item, "links", "broken link rel=derived_from"


def _label_type(root: Path):
    item = first(root, "label_*.json")
    edit(item, lambda d: d["properties"].update({"label:type": "vector"}))
    return item, "rules", "label:type is 'vector' but the label assets are rasters"


def _huge(root: Path):
    item = first(root, "s1_*.json")
    item.unlink()
    with open(item, "wb") as f:  # 3 GB, sparse: costs no disk and must never be read
        f.truncate(3 << 30)
    return item, "read", "over the"


def _outside(root: Path):
    item = first(root, "s2_*.json")
    (root.parent / "elsewhere.tif").write_bytes(b"II*\x00")
    edit(item, lambda d: d["assets"]["s2"].update(href="../../../../../elsewhere.tif"))
    return item, "assets", "points outside the catalog root"


def _outside_link(root: Path):
    item = first(root, "s1_*.json")
    edit(item, lambda d: d["links"].append({"rel": "derived_from", "href": "../../../../../../../etc/hostname"}))
    return item, "links", "points outside the catalog root"


def _split_leak(root: Path):
    items = sorted(root.rglob("triplet_*.json"))
    tile = json.loads(items[0].read_text())["properties"]["sen12ts:tile"]
    other = next(p for p in items[1:] if json.loads(p.read_text())["properties"]["sen12ts:tile"] == tile)
    edit(
        other,
        lambda d: d["properties"].update(
            {"ml-aoi:split": "test" if d["properties"]["ml-aoi:split"] != "test" else "train"}
        ),
    )
    return None, "rules", f"tile {tile} is in more than one split"


def _duplicate_id(root: Path):
    a, b = sorted(root.rglob("s2_*.json"))[:2]
    edit(b, lambda d: d.update(id=json.loads(a.read_text())["id"]))
    return max(a, b), "rules", "is not unique"


def _dates(root: Path):
    item = first(root, "triplet_*.json")
    edit(item, lambda d: d["properties"].update({"sen12ts:s2_date": "2020-01-01"}))
    return item, "rules", "days from the newest radar date"


def _schema(root: Path):
    item = first(root, "s1_*.json")
    edit(item, lambda d: d["properties"].update({"proj:shape": [256]}))
    return item, "schema", "proj:shape"


BROKEN = {
    f.__name__[1:]: f
    for f in (
        _truncate,
        _not_tiff,
        _dtype,
        _proj,
        _geometry,
        _malformed,
        _missing,
        _loop,
        _broken_href,
        _label_type,
        _huge,
        _outside,
        _outside_link,
        _split_leak,
        _duplicate_id,
        _dates,
        _schema,
    )
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_each_kind_of_broken_catalog_fails_with_a_finding_naming_the_file(kind, small_catalog, schemas_dir, tmp_path):
    root = clone(small_catalog, tmp_path / "c")
    where, check, message = BROKEN[kind](root)
    assets = [] if check == "assets" else ["--no-assets"]
    code, rep = run(root, schemas_dir, *assets)
    assert code == 1
    hits = [
        f
        for f in errors(rep)
        if f["check"] == check and message in f["message"] and (where is None or f["where"] == str(where))
    ]
    assert hits, json.dumps(errors(rep), indent=1)[:3000]


def test_switches_turn_checks_off(small_catalog, schemas_dir, tmp_path):
    root = clone(small_catalog, tmp_path / "c")
    _label_type(root)
    _truncate(root)
    code, rep = run(root, schemas_dir, "--no-rules", "--no-assets", "--no-schemas")
    assert code == 0 and rep["checks"] == {"schemas": False, "links": True, "rules": False, "assets": False}
    code, rep = run(root, schemas_dir, "--no-rules", "--no-schemas", "--no-links")
    assert code == 1 and {f["check"] for f in errors(rep)} == {"assets"}


def test_process_pool_finds_what_a_single_process_finds(small_catalog, schemas_dir, tmp_path):
    root = clone(small_catalog, tmp_path / "c")
    for f in (_malformed, _dates, _schema, _label_type):
        f(root)
    _, serial = run(root, schemas_dir, "--no-assets", "--executor", "serial")
    _, procs = run(root, schemas_dir, "--no-assets", "--executor", "process", "--workers", "2")
    assert serial["findings"] == procs["findings"] and len(errors(serial)) >= 4


# -- other inputs ------------------------------------------------------------------------------
def test_a_single_item_file_and_a_collection_file(small_catalog, schemas_dir):
    item = first(small_catalog, "label_*.json")
    code, rep = run(item, schemas_dir)
    assert code == 0, rep["findings"]
    assert rep["counts"]["items"] == 1 and rep["counts"]["asset files"] == 2 and rep["counts"]["links"] >= 5
    code, rep = run(small_catalog / "california" / "labels" / "collection.json", schemas_dir, "--no-assets")
    assert code == 0 and rep["findings"] == [] and rep["counts"]["collections"] == 1 and rep["counts"]["items"] >= 6


@pytest.mark.slow
def test_a_served_http_catalog_with_cogs_over_vsicurl(small_catalog, schemas_dir, serve_dir, tmp_path):
    url = serve_dir(small_catalog)
    code, rep = run(url + "/catalog.json", schemas_dir, "--no-checksums")
    assert code == 0, rep["findings"][:5]
    assert rep["counts"]["items"] >= 60 and rep["counts"]["asset files"] > 0
    root = clone(small_catalog, tmp_path / "c")
    gone, _, _ = _missing(root)
    item, _, _ = _truncate(root)
    url = serve_dir(root)
    code, rep = run(url + "/", schemas_dir)
    assert code == 1
    msgs: dict[tuple, str] = {}
    for f in errors(rep):
        msgs[(f["check"], f["where"])] = msgs.get((f["check"], f["where"]), "") + f["message"] + "\n"
    assert "HTTP 404" in msgs[("links", url + "/" + gone.relative_to(root).as_posix())]
    assert "truncated" in msgs[("assets", url + "/" + item.relative_to(root).as_posix())]
    assert any(
        f["level"] == "not-checked" and "file:checksum of remote assets" in f["message"] for f in rep["findings"]
    )


def _mlhub_catalog(folder: Path, base: str) -> Path:
    """A tiny STAC 1.0.0 catalog in the style of Radiant MLHub exports: label and source
    collections, a vector label item with rel=source, every link absolute (``base`` + path)."""
    folder.mkdir(parents=True, exist_ok=True)
    bbox = [36.0, 0.5, 36.01, 0.51]
    geom = {"type": "Polygon", "coordinates": [[[36.0, 0.5], [36.01, 0.5], [36.01, 0.51], [36.0, 0.51], [36.0, 0.5]]]}
    profile = {
        "driver": "COG",
        "dtype": "uint16",
        "count": 2,
        "width": 64,
        "height": 64,
        "crs": "EPSG:4326",
        "transform": rasterio.transform.from_bounds(*bbox, 64, 64),
        "nodata": 0,
    }
    (folder / "source" / "src_1").mkdir(parents=True)
    (folder / "labels" / "lab_1").mkdir(parents=True)
    with rasterio.open(folder / "source" / "src_1" / "B02.tif", "w", **profile) as ds:
        ds.write(np.ones((2, 64, 64), "uint16"))
    (folder / "labels" / "lab_1" / "labels.geojson").write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [{"type": "Feature", "geometry": geom, "properties": {"crop": 1}}],
            }
        )
    )
    u = lambda p: f"{base}/{p}"  # noqa: E731
    common = {
        "stac_version": "1.0.0",
        "license": "CC-BY-4.0",
        "extent": {"spatial": {"bbox": [bbox]}, "temporal": {"interval": [["2019-01-01T00:00:00Z", None]]}},
    }
    docs = {
        "catalog.json": {
            "type": "Catalog",
            "stac_version": "1.0.0",
            "id": "ref_crops",
            "description": "MLHub-style",
            "links": [
                {"rel": "self", "href": u("catalog.json")},
                {"rel": "root", "href": u("catalog.json")},
                {"rel": "child", "href": u("source/collection.json")},
                {"rel": "child", "href": u("labels/collection.json")},
            ],
        },
        "source/collection.json": {
            "type": "Collection",
            "id": "ref_crops_source",
            "description": "imagery",
            **common,
            "links": [
                {"rel": "root", "href": u("catalog.json")},
                {"rel": "parent", "href": u("catalog.json")},
                {"rel": "item", "href": u("source/src_1/src_1.json")},
            ],
        },
        "labels/collection.json": {
            "type": "Collection",
            "id": "ref_crops_labels",
            "description": "labels",
            **common,
            "stac_extensions": ["https://stac-extensions.github.io/label/v1.0.0/schema.json"],
            "summaries": {"label:type": ["vector"]},
            "links": [
                {"rel": "root", "href": u("catalog.json")},
                {"rel": "parent", "href": u("catalog.json")},
                {"rel": "item", "href": u("labels/lab_1/lab_1.json")},
            ],
        },
        "source/src_1/src_1.json": {
            "type": "Feature",
            "stac_version": "1.0.0",
            "id": "src_1",
            "collection": "ref_crops_source",
            "stac_extensions": ["https://stac-extensions.github.io/eo/v1.0.0/schema.json"],
            "geometry": geom,
            "bbox": bbox,
            "properties": {"datetime": "2019-06-01T00:00:00Z"},
            "links": [
                {"rel": "root", "href": u("catalog.json")},
                {"rel": "parent", "href": u("source/collection.json")},
                {"rel": "collection", "href": u("source/collection.json")},
            ],
            "assets": {
                "B02": {
                    "href": u("source/src_1/B02.tif"),
                    "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                    "eo:bands": [{"name": "B02"}, {"name": "B03"}],
                }
            },
        },
        "labels/lab_1/lab_1.json": {
            "type": "Feature",
            "stac_version": "1.0.0",
            "id": "lab_1",
            "collection": "ref_crops_labels",
            "stac_extensions": ["https://stac-extensions.github.io/label/v1.0.0/schema.json"],
            "geometry": geom,
            "bbox": bbox,
            "properties": {
                "datetime": "2019-06-01T00:00:00Z",
                "label:type": "vector",
                "label:properties": ["crop"],
                "label:classes": [{"name": "crop", "classes": [1, 2]}],
                "label:tasks": ["classification"],
                "label:description": "crop types",
            },
            "links": [
                {"rel": "root", "href": u("catalog.json")},
                {"rel": "parent", "href": u("labels/collection.json")},
                {"rel": "collection", "href": u("labels/collection.json")},
                {"rel": "source", "href": u("source/src_1/src_1.json")},
            ],
            "assets": {
                "labels": {
                    "href": u("labels/lab_1/labels.geojson"),
                    "type": "application/geo+json",
                    "roles": ["labels"],
                }
            },
        },
    }
    for rel_path, doc in docs.items():
        (folder / rel_path).write_text(json.dumps(doc, indent=1))
    return folder / "catalog.json"


@pytest.mark.parametrize("where", ["http", "local"])
def test_stac_1_0_0_mlhub_style_catalog_with_absolute_links(where, schemas_dir, serve_dir, tmp_path):
    folder = tmp_path / "mlhub"
    folder.mkdir()
    base = serve_dir(folder) if where == "http" else str(folder)
    entry = _mlhub_catalog(folder, base)
    code, rep = run(f"{base}/catalog.json" if where == "http" else entry, schemas_dir, "--strict")
    assert code == 0, rep["findings"]
    assert rep["counts"] == {"catalogs": 1, "collections": 2, "items": 2, "asset files": 2, "links": 17}
    edit(folder / "labels" / "lab_1" / "lab_1.json", lambda d: d["properties"].update({"label:type": "raster"}))
    code, rep = run(f"{base}/catalog.json" if where == "http" else entry, schemas_dir)
    assert code == 1 and any(
        "label:type is 'raster' but the label assets are vector" in f["message"] for f in errors(rep)
    )


# -- schemas -----------------------------------------------------------------------------------
def test_unknown_extension_is_reported_not_checked_and_not_fatal(small_catalog, schemas_dir, tmp_path):
    item = tmp_path / "item.json"
    d = json.loads(first(small_catalog, "s1_*.json").read_text())
    d["stac_extensions"].append("https://example.invalid/unknown/v9.9.9/schema.json")
    d["links"] = [d2 for d2 in d["links"] if d2["rel"] not in ("root", "parent", "collection")]
    d["assets"] = {}
    del d["collection"]  # STAC: an item naming its collection must link it
    item.write_text(json.dumps(d))
    code, rep = run(item, schemas_dir)
    assert code == 0
    nc = [f for f in rep["findings"] if f["level"] == "not-checked"]
    assert (
        len(nc) == 1
        and "https://example.invalid/unknown/v9.9.9/schema.json" in nc[0]["message"]
        and nc[0]["where"] == str(item)
    )
    code, _ = run(item, schemas_dir, "--strict")
    assert code == 1


def test_schemas_missing_from_the_cache_are_fetched_once_and_stored(serve_dir, tmp_path):
    served = tmp_path / "served"
    (served / "myext" / "v1.0.0").mkdir(parents=True)
    (served / "myext" / "v1.0.0" / "schema.json").write_text(
        json.dumps(
            {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "type": "object",
                "properties": {
                    "properties": {
                        "type": "object",
                        "properties": {"my:count": {"type": "integer"}},
                        "required": ["my:count"],
                    }
                },
            }
        )
    )
    base = serve_dir(served)
    ext = f"{base}/myext/v1.0.0/schema.json"
    item = tmp_path / "item.json"
    item.write_text(
        json.dumps(
            {
                "type": "Feature",
                "stac_version": "1.1.0",
                "stac_extensions": [ext],
                "id": "a",
                "geometry": None,
                "properties": {"datetime": "2020-01-01T00:00:00Z", "my:count": "three"},
                "links": [],
                "assets": {},
            }
        )
    )
    cache = tmp_path / "cache"
    r = CliRunner().invoke(cli, ["validate", str(item), "--schemas", str(cache), "--format", "json"])
    rep = json.loads(r.stdout)
    assert r.exit_code == 1 and any(
        "my:count" in f["message"] and "'three' is not of type 'integer'" in f["message"] for f in errors(rep)
    )
    stored = cache / base.split("://")[1] / "myext" / "v1.0.0" / "schema.json"
    assert json.loads(stored.read_text())["type"] == "object"
    (served / "myext" / "v1.0.0" / "schema.json").unlink()  # now only the cache has it
    store = SchemaStore(cache, fetch=False)
    assert store.get(ext)["type"] == "object"
    with pytest.raises(SchemaUnavailable, match="not in the cache"):
        store.get(f"{base}/other/v1.0.0/schema.json")


def test_schema_cache_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SEN12TS_SCHEMAS", str(tmp_path))
    assert SchemaStore().cache_dir == tmp_path


# -- rules and usage ---------------------------------------------------------------------------
def test_date_rules_follow_the_pairing_rules():
    good = {
        "sen12ts:radar_dates": ["2020-07-13", "2020-07-01", "2020-06-19", "2020-06-07"],
        "sen12ts:s2_date": "2020-07-15",
        "sen12ts:season": "summer",
        "datetime": "2020-07-15T00:00:00Z",
        "ml-aoi:split": "train",
        "sen12ts:triplet": "20200713_20200715_034",
        "sat:relative_orbit": 34,
    }
    assert _date_rules(good, "x") == []
    cases = {
        "not 12 days apart": {"sen12ts:radar_dates": ["2020-07-13", "2020-07-02", "2020-06-19", "2020-06-07"]},
        "oldest first": {"sen12ts:radar_dates": ["2020-06-07", "2020-06-19", "2020-07-01", "2020-07-13"]},
        "4 days from the newest": {
            "sen12ts:s2_date": "2020-07-17",
            "datetime": "2020-07-17T00:00:00Z",
            "sen12ts:triplet": "20200713_20200717_034",
        },
        "outside fall": {"sen12ts:season": "fall"},
        "not the Sentinel-2 date": {"datetime": "2020-07-14T00:00:00Z"},
        "its dates and track make": {"sat:relative_orbit": 35},
        "has 3 dates": {"sen12ts:radar_dates": ["2020-07-13", "2020-07-01", "2020-06-19"]},
    }
    for expect, change in cases.items():
        found = _date_rules(good | change, "x")
        assert found and all(f.level == "error" for f in found), expect
        assert (
            any(expect.split(" (")[0] in f.message or expect in f.message for f in found) or expect == "oldest first"
        ), (expect, found)


def test_usage_errors_exit_2_with_one_line(tmp_path, capsys):
    r = CliRunner().invoke(cli, ["validate", str(tmp_path / "nothing")])
    assert r.exit_code == 2 and "no such file or folder" in r.output
    r = CliRunner().invoke(cli, ["validate", str(tmp_path), "--workers", "-1"])
    assert r.exit_code == 2
    r = CliRunner().invoke(cli, ["validate", str(tmp_path)])  # a folder without a catalog
    assert r.exit_code == 2 and "no catalog.json" in r.output
    with pytest.raises(SystemExit) as e:
        main(["validate", str(tmp_path / "nothing")])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("sen12ts-stac: error:") and "nothing" in err


def test_api_never_raises_on_odd_json(tmp_path, schemas_dir):
    for i, body in enumerate(
        [
            b"[]",
            b"null",
            b'"x"',
            b"{}",
            b'{"type": "Catalog"}',
            b'{"type": "Feature", "links": [1, {"rel": "item"}]}',
            b'{"type": "Catalog", "stac_version": "1.1.0", "id": "c", "description": "d", "links": {"a": 1}}',
            b"\xff\xfe not utf-8",
        ]
    ):
        p = tmp_path / f"o{i}.json"
        p.write_bytes(body)
        rep = validate(p, Options(schema_dir=str(schemas_dir), fetch_schemas=False))
        assert not rep.ok and rep.findings and all(f.where == str(p) for f in rep.findings), (body, rep.findings)
