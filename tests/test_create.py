"""``create`` end to end: COGs, STAC (schemas offline), links, splits, resume after a kill, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from click.testing import CliRunner
from pystac.validation import JsonSchemaSTACValidator, RegisteredValidator
from rio_cogeo.cogeo import cog_validate

from sen12ts_stac.cli import cli
from sen12ts_stac.collect.run import CreateConfig, create
from sen12ts_stac.sources import register
from sen12ts_stac.sources.synthetic import SyntheticSource
from sen12ts_stac.spec import bands
from sen12ts_stac.validate.schemas import BUNDLED_DIR

REPO = Path(__file__).resolve().parents[1]


def _items(root: Path) -> dict[str, dict]:
    out = {}
    for p in root.rglob("*.json"):
        if ".sen12ts" in p.parts:
            continue
        d = json.loads(p.read_text())
        if d.get("type") == "Feature":
            out[d["id"]] = d | {"_path": p}
    return out


def test_cogs_are_valid_band_interleaved_and_match_the_items(small_catalog):
    items = _items(small_catalog)
    assert items
    checked = 0
    for item in items.values():
        for key, asset in item["assets"].items():
            if key == "thumbnail" or "ml-aoi:role" in asset:
                continue
            path = (item["_path"].parent / asset["href"]).resolve()
            assert cog_validate(str(path)) == (True, [], []), path
            with rasterio.open(path) as ds:
                product = {"s1": bands.S1, "s2": bands.S2, "labels": bands.LABEL}[key]
                assert ds.count == len(product.bands) == len(asset["raster:bands"]) == len(asset["bands"])
                assert ds.dtypes[0] == product.dtype == asset["raster:bands"][0]["data_type"]
                assert ds.block_shapes[0] == (256, 256)
                assert ds.tags(ns="IMAGE_STRUCTURE")["INTERLEAVE"] == "BAND"
                assert ds.tags(ns="IMAGE_STRUCTURE")["COMPRESSION"] == "ZSTD"
                assert list(ds.descriptions) == [b["name"] for b in asset["bands"]]
                assert ds.crs.to_string() == item["properties"]["proj:code"]
                assert list(ds.transform)[:6] == item["properties"]["proj:transform"]
                assert os.path.getsize(path) == asset["file:size"]
                checked += 1
    assert checked >= 3 * 10


def test_stac_is_valid_offline_against_the_schema_cache(small_catalog, schemas_dir):
    validator = JsonSchemaSTACValidator()
    for folder in (schemas_dir, BUNDLED_DIR):  # the package carries classification v2.0.0, the cache lacks it
        for p in folder.rglob("*.json"):
            url = "https://" + p.relative_to(folder).as_posix()
            validator.schema_cache[url] = json.loads(p.read_text())
    RegisteredValidator.set_validator(validator)
    try:
        # Validate the JSON exactly as written (pystac objects would migrate extension versions).
        n = 0
        for p in small_catalog.rglob("*.json"):
            if ".sen12ts" in p.parts:
                continue
            d = json.loads(p.read_text())
            assert pystac.validation.validate_dict(d, href=str(p)), p
            n += d["type"] == "Feature"
        assert n == len(_items(small_catalog)) > 0
        broken = json.loads(next(small_catalog.rglob("label_*.json")).read_text())
        broken["properties"]["label:type"] = "pixels"
        with pytest.raises(pystac.errors.STACValidationError):
            pystac.validation.validate_dict(broken)
    finally:
        RegisteredValidator.set_validator(JsonSchemaSTACValidator())


def test_links_resolve_and_label_sources_cover_the_tile(small_catalog):
    items = _items(small_catalog)
    by_path = {v["_path"].resolve(): v for v in items.values()}
    triplets = [i for i in items.values() if i["id"].startswith("triplet_")]
    labels = [i for i in items.values() if i["id"].startswith("label_")]
    assert triplets and labels
    for item in items.values():
        for link in item["links"]:
            if link["rel"] in ("root", "parent", "collection", "source", "derived_from"):
                assert (item["_path"].parent / link["href"]).resolve().exists(), (item["id"], link)
    for lab in labels:
        sources = [by_path[(lab["_path"].parent / l["href"]).resolve()] for l in lab["links"] if l["rel"] == "source"]
        assert sources and {s["properties"]["sen12ts:tile"] for s in sources} == {lab["properties"]["sen12ts:tile"]}
        assert lab["properties"]["label:type"] == "raster"
    for t in triplets:
        roles = sorted(l["ml-aoi:role"] for l in t["links"] if l["rel"] == "derived_from")
        assert roles == ["feature", "feature", "label"]
        for key in ("s1", "s2", "labels"):
            assert (t["_path"].parent / t["assets"][key]["href"]).resolve().exists()
    # pystac walks the tree the same way (no absolute paths, no broken parents).
    root = pystac.Catalog.from_file(str(small_catalog / "catalog.json"))
    assert len(list(root.get_items(recursive=True))) == len(items)


def test_splits_are_spatially_grouped_and_dates_follow_the_rules(small_catalog):
    split_of_tile: dict[str, set] = {}
    for t in (i for i in _items(small_catalog).values() if i["id"].startswith("triplet_")):
        p = t["properties"]
        split_of_tile.setdefault(p["sen12ts:tile"], set()).add(p["ml-aoi:split"])
        radar = [np.datetime64(d) for d in p["sen12ts:radar_dates"]]
        assert [int((radar[k] - radar[k + 1]).astype(int)) for k in range(3)] == [12, 12, 12]
        assert abs(int((np.datetime64(p["sen12ts:s2_date"]) - radar[0]).astype(int))) <= 3
    assert all(len(s) == 1 for s in split_of_tile.values())  # no tile in two splits


def test_collections_have_item_assets_summaries_and_train_statistics(small_catalog):
    s1 = json.loads((small_catalog / "california" / "s1" / "collection.json").read_text())
    assert s1["id"] == "sen12ts_california_s1_source"
    rb = s1["item_assets"]["s1"]["raster:bands"]
    assert len(rb) == 19
    if any(
        json.loads(p.read_text())["triplets"]
        for p in (small_catalog / "california" / ".sen12ts" / "tiles").glob("*.json")
    ):
        vv = rb[bands.S1.index(["vv_t0"])[0]].get("statistics")
        if vv:  # present whenever a train tile exists
            assert -25 < vv["mean"] < -3 and 0.5 < vv["stddev"] < 10
    assert s1["summaries"]["sar:polarizations"] == ["VV", "VH"]
    triplets = json.loads((small_catalog / "california" / "triplets" / "collection.json").read_text())
    assert set(triplets["summaries"]["ml-aoi:split"]) <= {"train", "validate", "test"}


def test_atomic_writes_leave_no_temporary_files(small_catalog):
    assert not [p for p in small_catalog.rglob("*.tmp")]


def _cli(*args, out=None):
    runner = CliRunner()
    return runner.invoke(cli, list(args), catch_exceptions=False) if out is None else None


def _run_main(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sen12ts_stac.cli", *args], capture_output=True, text=True, timeout=600
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--aoi", "mars"], "unknown AOI 'mars'"),
        (["--aoi", "uganda", "--bbox", "1,2,3"], "bad bbox"),
        (["--aoi", "uganda", "--bbox", "0,40,1,41"], "does not overlap"),
        (["--aoi", "uganda", "--max-tiles", "0"], "--max-tiles must be at least 1"),
        (["--aoi", "uganda", "--seasons", "monsoon"], "unknown season"),
    ],
)
def test_bad_input_is_one_line_nonzero_and_writes_nothing(tmp_path, args, message):
    out = tmp_path / "out"
    r = _run_main(["create", *args, "--out", str(out), "--quiet"])
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sen12ts-stac: error:") and message in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert not out.exists()  # nothing made, not even the empty folder


def test_unwritable_output_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    r = _run_main(["create", "--aoi", "uganda", "--max-tiles", "1", "--out", str(blocker / "sub"), "--quiet"])
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "not writable" in r.stderr, r.stderr


class ExplodingSource(SyntheticSource):
    """Fails on the second tile it reads."""

    name = "exploding"
    calls = 0

    def read_s2(self, tile, scene):
        ExplodingSource.calls += 1
        if ExplodingSource.calls > 3:
            raise ConnectionError("upstream 503 Service Unavailable")
        return super().read_s2(tile, scene)


def test_a_source_that_raises_gives_one_line_and_no_half_written_tile(tmp_path):
    register("exploding", ExplodingSource)
    ExplodingSource.calls = 0
    r = CliRunner().invoke(
        cli, ["create", "--aoi", "iowa", "--source", "exploding", "--max-tiles", "3", "--out", str(tmp_path), "--quiet"]
    )
    # CliRunner goes through click, not main(): the UserError arrives as the exception.
    assert r.exit_code != 0
    assert "source failed" in str(r.exception) and "503" in str(r.exception) and "\n" not in str(r.exception)
    states = list((tmp_path / "iowa" / ".sen12ts" / "tiles").glob("*.json"))
    done_ids = {json.loads(p.read_text())["tile"] for p in states}
    # Every item on disk belongs to a finished tile: the failed tile removed what it wrote.
    for p in (tmp_path / "iowa").rglob("*.tif"):
        assert any(tid in p.parent.name for tid in done_ids), p


def test_cli_end_to_end_with_info(tmp_path):
    r = _run_main(
        [
            "create",
            "--aoi",
            "uganda",
            "--source",
            "synthetic",
            "--max-tiles",
            "2",
            "--seasons",
            "spring,summer",
            "--out",
            str(tmp_path),
            "--quiet",
        ]
    )
    assert r.returncode == 0, r.stderr
    assert "triplets:" in r.stdout and "MB per triplet" in r.stdout and "seconds:" in r.stdout
    info = _run_main(["info", str(tmp_path)])
    assert info.returncode == 0 and "sen12ts_uganda_triplets" in info.stdout
    # A second identical run resumes: nothing to do, same catalog; a killed run's temporary is
    # swept (named as fsio.atomic_path names them), anything else left alone.
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.tif")}
    s1 = next(tmp_path.rglob("s1.tif"))
    stale, mine = s1.with_name(".s1.tif.0a1b2c3d.tmp"), s1.with_name("notes.tmp")
    stale.write_bytes(b"half a COG")
    mine.write_text("keep me")
    again = _run_main(
        [
            "create",
            "--aoi",
            "uganda",
            "--max-tiles",
            "2",
            "--seasons",
            "spring,summer",
            "--out",
            str(tmp_path),
            "--quiet",
        ]
    )
    assert again.returncode == 0 and "2 resumed" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*.tif")} == before
    assert not stale.exists() and mine.read_text() == "keep me"
    mine.unlink()
    # Different settings on the same folder are refused, with a hint.
    other = _run_main(
        ["create", "--aoi", "uganda", "--max-tiles", "2", "--seed", "5", "--out", str(tmp_path), "--quiet"]
    )
    assert other.returncode == 2 and "different" in other.stderr and "--overwrite" in other.stderr


@pytest.mark.slow
def test_resume_after_kill_gives_the_same_catalog(tmp_path):
    args = [
        "create",
        "--aoi",
        "california",
        "--source",
        "synthetic",
        "--max-tiles",
        "6",
        "--seasons",
        "summer,fall",
        "--quiet",
    ]
    clean = tmp_path / "clean"
    assert _run_main([*args, "--out", str(clean)]).returncode == 0
    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sen12ts_stac.cli", *args, "--out", str(killed)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    states = killed / "california" / ".sen12ts" / "tiles"
    deadline = time.time() + 300
    while time.time() < deadline and len(list(states.glob("*.json"))) < 2:
        time.sleep(0.05)
    time.sleep(0.3)  # let it get into the middle of the next tile
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n_done = len(list(states.glob("*.json")))
    assert 2 <= n_done < 6, "the kill should land mid-run"
    assert _run_main([*args, "--out", str(killed)]).returncode == 0
    a, b = _items(clean), _items(killed)
    assert sorted(a) == sorted(b)  # no duplicate, no missing item
    for iid in a:
        for key, asset in a[iid]["assets"].items():
            if "file:checksum" in asset:
                assert asset["file:checksum"] == b[iid]["assets"][key]["file:checksum"]
    assert not list(killed.rglob("*.tmp"))
    # Block catalogs list exactly the items on disk.
    linked = set()
    for cat in killed.rglob("catalog.json"):
        for l in json.loads(cat.read_text())["links"]:
            if l["rel"] == "item":
                linked.add((cat.parent / l["href"]).resolve())
    assert linked == {v["_path"].resolve() for v in b.values()}


@pytest.mark.slow
def test_parallel_workers_give_the_same_catalog(tmp_path, small_catalog):
    out = tmp_path / "par"
    summary = create(
        CreateConfig(aoi="california", out=out, max_tiles=6, seasons=("summer", "fall"), workers=2), progress=False
    )
    assert summary.triplets > 0
    a, b = _items(small_catalog), _items(out)
    assert sorted(a) == sorted(b)
    assert all(
        a[i]["assets"].get("s1", {}).get("file:checksum") == b[i]["assets"].get("s1", {}).get("file:checksum")
        for i in a
    )


def test_sample_catalog_in_repo_is_browsable_as_is():
    root = REPO / "catalogs" / "catalog.json"
    assert root.exists(), "catalogs/ should hold the committed sample (make sample)"
    cat = pystac.Catalog.from_file(str(root))
    items = list(cat.get_items(recursive=True))
    assert items and all(not i.get_self_href().startswith("http") for i in items)
    for item in items:
        for asset in item.assets.values():
            assert Path(asset.get_absolute_href()).exists()
