"""import-legacy on small folders laid out exactly as the original SEN12TS files, both band-layout
generations: the same catalog as create, the original triplets and nothing else, pixels kept."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from sourcefixtures.legacy_files import NODATA, write_originals

from sen12ts_stac.cli import main
from sen12ts_stac.collect.legacy import import_legacy
from sen12ts_stac.errors import UserError
from sen12ts_stac.sources.legacy import LABEL_NAME, LegacySource, parse_triplet_name, s2_layout, scan
from sen12ts_stac.spec import bands
from sen12ts_stac.spec.aois import get_aoi
from sen12ts_stac.spec.grid import tile_for_lonlat
from sen12ts_stac.spec.seasons import SEASONS, PairingRules, candidates


@pytest.fixture(scope="module")
def downloader(tmp_path_factory) -> tuple[Path, list]:
    folder = tmp_path_factory.mktemp("originals") / "california_0.05"
    originals = write_originals(folder, "downloader")
    # the clutter a real folder has: a note, an S1 file without its S2 partner, a 2021 pair
    (folder / "s1" / "notes.txt").write_text("downloaded 2021")
    o = originals[0]
    shutil.copy(folder / "s1" / o.name, folder / "s1" / o.name.replace("s2date_2020-06-11", "s2date_2020-06-12"))
    late = o.name.replace("2020-06-10", "2021-06-10").replace("2020-06-11", "2021-06-11")
    for kind in ("s1", "s2"):
        shutil.copy(folder / kind / o.name, folder / kind / late)
    return folder, originals


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "sen12ts_stac.cli", *args], capture_output=True, text=True, timeout=600
    )


def _items(root: Path) -> dict[str, dict]:
    out = {}
    for p in root.rglob("*.json"):
        d = json.loads(p.read_text())
        if ".sen12ts" not in p.parts and d.get("type") == "Feature":
            out[d["id"]] = d | {"_path": p}
    return out


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read()


def test_names_parse_into_tile_dates_track_and_pass():
    t = parse_triplet_name(
        "lat_36.7712_lon_-119.8853_s1date_2020-06-10_s2date_2020-06-11_s1track_137_s1lookpass_DESCENDING.tif"
    )
    assert t.tile == tile_for_lonlat(-119.8853, 36.7712) and t.track == 137 and t.orbit_state == "descending"
    assert [str(d) for d in t.series.dates] == ["2020-06-10", "2020-05-29", "2020-05-17", "2020-05-05"]
    assert t.candidate.key == "20200610_20200611_137"
    old = parse_triplet_name(
        "dltile_256:0:10.0:11:-5:1600_lat_-0.5_lon_33.1_s1date_2020-01-05_s2date_2020-01-06_s1track_057_s1lookpass_A.tif"
    )
    assert old.track == 57 and old.orbit_state == "ascending" and old.tile.zone == 36
    for bad in (
        "lat_1_lon_2.tif",
        "lat_36.7_lon_-119.8_s1date_2020-13-10_s2date_2020-06-11_s1track_1_s1lookpass_A.tif",
        "lat_36.7_lon_-119.8_s1date_2020-06-10_s2date_2020-06-11_s1track_x_s1lookpass_A.tif",
        "lat_36.7_lon_-119.8_s1date_2020-06-10_s2date_2020-06-11_s1track_1_s1lookpass_sideways.tif",
    ):
        with pytest.raises(UserError, match=bad.split("_s1date")[0][:10]):
            parse_triplet_name(bad)


def test_downloader_generation_imports_exactly_the_original_triplets(downloader, tmp_path, schemas_dir):
    folder, originals = downloader
    out = tmp_path / "cat"
    r = _cli("import-legacy", str(folder), "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    assert f"wrote {out / 'california'}" in r.stdout
    assert "unpaired" in r.stdout and "outside the 2020 seasons" in r.stdout and "not .tif" in r.stdout
    items = _items(out)
    triplets = {i["properties"]["sen12ts:triplet"]: i for i in items.values() if i["id"].startswith("triplet_")}
    # every original pair and nothing else: the collector did not re-pair overlapping series
    assert sorted((i["properties"]["sen12ts:tile"], k) for k, i in triplets.items()) == sorted(
        (o.tile.id, o.key) for o in originals
    )
    # (re-pairing the scenes of the first tile's summer would have made more candidates than files)
    source = LegacySource(get_aoi("california"), dir=str(folder))
    tile, summer = originals[0].tile, SEASONS["summer"]
    assert (
        len(candidates(source.inventory(tile, summer), summer, PairingRules()))
        > len(source.triplets(tile, summer))
        >= 3
    )
    west = tile_for_lonlat(-122.62, 38.05).id  # outside our hand-drawn AOI outline, kept
    assert any(i["properties"]["sen12ts:tile"] == west for i in triplets.values())
    v = _cli("validate", str(out), "--offline", "--schemas", str(schemas_dir))
    assert v.returncode == 0, v.stdout[-3000:] + v.stderr

    o = originals[0]
    s1_item = items[f"s1_{o.tile.id}_{o.key}"]
    assert s1_item["properties"]["sen12ts:legacy_file"] == f"s1/{o.name}"
    assert s1_item["properties"]["sen12ts:legacy_layout"] == "s1_19"
    assert s1_item["properties"]["sen12ts:radar_dates"][0] == "2020-06-10"
    new = _read(s1_item["_path"].parent / "s1.tif")
    orig = _read(folder / "s1" / o.name)
    valid = orig[18] == 1
    assert np.array_equal(new[18], valid.astype(np.float32))
    same = np.where(orig == NODATA, np.nan, orig)[:18]
    same[:16, ~valid] = np.nan
    assert np.array_equal(new[:18], same, equal_nan=True)
    s2_item = items[f"s2_{o.tile.id}_{o.key}"]
    s2 = _read(s2_item["_path"].parent / "s2.tif")
    orig2 = _read(folder / "s2" / o.name)
    assert np.array_equal(s2, np.where(orig2 == NODATA, bands.S2.nodata, orig2))
    assert s2_item["properties"]["sen12ts:legacy_layout"] == "s2_l2a_14"
    label = next(i for i in items.values() if i["id"] == f"label_{o.tile.id}_2020")
    lab = _read(label["_path"].parent / "labels.tif")[0]
    orig_lab = _read(_label_file(folder, o.tile))[0]
    assert lab[0, 0] == 255 and np.array_equal(lab[3:, 3:], orig_lab[3:, 3:].astype(np.uint8))
    # a second run resumes
    again = _cli("import-legacy", str(folder), "--out", str(out), "--quiet")
    assert again.returncode == 0 and "2 resumed" in again.stdout, again.stderr


def _label_file(folder: Path, tile) -> Path:
    for p in (folder / "labels").glob("*.tif"):
        m = LABEL_NAME.match(p.name)
        if tile_for_lonlat(float(m["lon"]), float(m["lat"])) == tile:
            return p
    raise AssertionError(f"no label file for {tile}")


def test_applications_generation_derives_mask_drops_b10_and_labels_from_cdl(tmp_path):
    folder = tmp_path / "ca_central_valley_cropland"
    originals = write_originals(folder, "applications")
    found = scan(folder)
    assert found.n_triplets == len(originals) and not found.labels
    summary, report = import_legacy(folder, out=tmp_path / "cat", progress=False)
    assert report.aoi == "california" and summary.triplets == len(originals)  # AOI from the folder name
    assert any("without a label file" in line for line in report.lines())
    items = _items(tmp_path / "cat")
    o = originals[0]
    s1 = _read(items[f"s1_{o.tile.id}_{o.key}"]["_path"].parent / "s1.tif")
    orig = _read(folder / "s1" / o.name)
    dyn_ok = (orig[:16] != NODATA).all(0) & (orig[[0, 1, 4, 5, 8, 9, 12, 13]] != 0).all(0)
    assert np.array_equal(s1[18] == 1, dyn_ok) and np.isnan(s1[:16, ~dyn_ok]).all()
    s2_item = items[f"s2_{o.tile.id}_{o.key}"]
    s2 = _read(s2_item["_path"].parent / "s2.tif")
    orig2 = _read(folder / "s2" / o.name)
    ok = (orig2[:13] != NODATA).all(0)
    assert np.array_equal(s2[:10][:, ok], orig2[:10][:, ok]) and np.array_equal(
        s2[10:12][:, ok], orig2[11:13][:, ok]
    )  # B10 dropped
    assert (s2[12:] == bands.S2.nodata).all() and s2_item["properties"]["sen12ts:legacy_layout"] == "s2_ca_14"
    label = _read(items[f"label_{o.tile.id}_2020"]["_path"].parent / "labels.tif")[0]
    cdl = orig2[13]
    assert np.array_equal(label[cdl >= 0], cdl[cdl >= 0].astype(np.uint8)) and (label[cdl < 0] == 255).all()


def test_layout_is_told_apart_by_content():
    l2a = np.zeros((14, 8, 8), np.int32)
    l2a[:12] = 1500
    l2a[12] = 4
    l2a[13] = 1
    assert s2_layout(l2a) == "l2a"
    ca = l2a.copy()
    ca[12] = 1800  # B12 reflectance where SCL would be
    ca[13] = 75  # CDL almonds where the mask would be
    assert s2_layout(ca) == "ca"


def _main(capsys, *args: str) -> tuple[int, list[str]]:
    """The console entry point in-process: (exit code, stderr lines)."""
    with pytest.raises(SystemExit) as e:
        main(list(args))
    return e.value.code, capsys.readouterr().err.strip().splitlines()


def test_bad_folders_are_one_line_naming_the_file(downloader, tmp_path, capsys):
    folder, _ = downloader
    code, lines = _main(capsys, "import-legacy", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o"))
    assert code == 2 and len(lines) == 1 and lines[0].endswith("no such folder")
    bad = tmp_path / "bad"
    shutil.copytree(folder, bad)
    (bad / "s2" / "scene_07.tif").write_bytes(b"")
    (bad / "s1" / "scene_07.tif").write_bytes(b"")
    code, lines = _main(capsys, "import-legacy", str(bad), "--aoi", "california", "--out", str(tmp_path / "o"))
    assert code == 2 and len(lines) == 1 and "scene_07.tif: not an original SEN12TS name" in lines[0], lines
    code, lines = _main(capsys, "import-legacy", str(folder), "--aoi", "sumatra", "--out", str(tmp_path / "o"))
    assert code == 2 and len(lines) == 1 and "far from AOI 'sumatra'" in lines[0]
    parent = tmp_path / "all"
    shutil.copytree(folder, parent / "california_0.05")
    code, lines = _main(capsys, "import-legacy", str(parent), "--out", str(tmp_path / "o"))
    assert code == 2 and len(lines) == 1 and "california_0.05: import each" in lines[0]
    code, lines = _main(capsys, "import-legacy", str(folder), "--max-invalid", "2", "--out", str(tmp_path / "o"))
    assert code == 2 and "--max-invalid must be between 0 and 1" in lines[0]
    assert not list((tmp_path / "o").rglob("*.json"))
