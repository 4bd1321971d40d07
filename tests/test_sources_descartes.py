"""The descartes source, driven through the real descarteslabs 3.2.2 client against a loopback
stand-in of the platform's catalog and raster endpoints (the service itself is gone)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import rasterio
from sourcefixtures import dl_standin

from sen12ts_stac.collect.run import CreateConfig, create
from sen12ts_stac.errors import SourceError
from sen12ts_stac.sources.descartes import (
    CLOUD_PRODUCT,
    IFG_PRODUCT,
    RTC_PRODUCT,
    S1_PRODUCT,
    S2_PRODUCT,
    SRTM_PRODUCT,
    ifg_key,
    rtc_track,
    s1_key,
)
from sen12ts_stac.spec import bands
from sen12ts_stac.spec.grid import Tile, tile_for_lonlat
from sen12ts_stac.spec.seasons import PairingRules

pytest.importorskip("descarteslabs", reason="the descartes source needs the collect-dl extra")
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")

TILE = tile_for_lonlat(-120.93, 37.62)
START = dt.date(2020, 4, 15)


def _product(image_id: str) -> str:
    return image_id.rsplit(":", 1)[0]


def _pixels(image_id: str, band: str, x: np.ndarray, y: np.ndarray):
    product, ones = _product(image_id), np.ones(x.shape, bool)
    rows = np.round((TILE.bounds[3] - y) / 10 - 0.5).astype(int)
    cols = np.round((x - TILE.bounds[0]) / 10 - 0.5).astype(int)
    if product == S1_PRODUCT:
        k = (dt.date.fromisoformat(image_id.split(":")[-1][:10]) - START).days // 12
        return np.full(x.shape, (-11.0 if band == "vv" else -18.0) + 0.1 * k), ones
    if product == RTC_PRODUCT:
        return {
            "factor": np.full(x.shape, 1.5),
            "localinc": np.full(x.shape, 38.0),
            "mask": np.where(rows < 2, 1.0, 7.0),
        }[band], ones  # two rows of layover (mask != 7)
    if product == IFG_PRODUCT:
        return np.full(x.shape, 0.6 if band == "coherence" else 0.25), ones
    if product == S2_PRODUCT:
        if band == "scl":
            return np.full(x.shape, 4.0), ones
        from sen12ts_stac.sources.descartes import S2_BANDS

        return np.full(x.shape, 0.05 + 0.01 * S2_BANDS.index(band)), ones
    if product == CLOUD_PRODUCT:
        block = (rows >= 100) & (rows < 110) & (cols >= 100) & (cols < 110)
        return np.where(block, 0.0, 255.0), ones
    if product == SRTM_PRODUCT:
        return np.full(x.shape, 2.5), ones
    return np.where(x < (TILE.bounds[0] + TILE.bounds[2]) / 2, 36.0, 75.0), ones  # usda:cdl:v1


@pytest.fixture(scope="module")
def platform():
    p = dl_standin.Platform(pixels=_pixels)
    p.add(RTC_PRODUCT, "035-A-rtc", dt.datetime(2019, 1, 1), TILE)
    p.add(SRTM_PRODUCT, "N37W121", dt.datetime(2000, 2, 11), TILE)
    p.add("usda:cdl:v1", "2020_cdl_california", dt.datetime(2020, 6, 1), TILE)
    day = START
    while day <= dt.date(2020, 8, 31):
        p.add(S1_PRODUCT, f"{day}-S1A-035-A-01", dt.datetime.combine(day, dt.time(1, 45)), TILE)
        p.add(IFG_PRODUCT, f"{day}-S1A-035-A-12", dt.datetime.combine(day, dt.time(1, 45)), TILE)
        day += dt.timedelta(days=12)
    day = dt.date(2020, 6, 2)
    while day <= dt.date(2020, 8, 31):
        cloud = 0.01 if day.day % 2 else 0.4
        p.add(
            S2_PRODUCT,
            f"S2A_MSIL2A_{day:%Y%m%d}T184921_N0214_R113_T10SFG",
            dt.datetime.combine(day, dt.time(19)),
            TILE,
            cloud,
        )
        p.add(CLOUD_PRODUCT, f"{day}_10SFG_dlcloud", dt.datetime.combine(day, dt.time(19)), TILE)
        day += dt.timedelta(days=5)
    url, httpd = dl_standin.start(p)
    p.url = url
    yield p
    httpd.shutdown()
    httpd.server_close()


def test_scene_ids_parse_as_the_original_did():
    assert s1_key(f"{S1_PRODUCT}:2020-06-10-S1A-035-A-01") == (35, dt.date(2020, 6, 10), "ascending")
    assert ifg_key(f"{IFG_PRODUCT}:2020-06-10-S1B-137-D-12") == (137, dt.date(2020, 6, 10), 12)
    assert rtc_track(f"{RTC_PRODUCT}:115-D-rtc") == 115
    with pytest.raises(SourceError, match="cannot parse"):
        s1_key(f"{S1_PRODUCT}:S1A_IW_GRDH")


def test_dltile_keys_agree_with_our_grid():
    from descarteslabs.core.common.dltile import Tile as DLTile

    for tile in (TILE, Tile(36, -5, 12), Tile(47, 10, -40), tile_for_lonlat(32.5, 0.4)):
        props = DLTile.from_key(tile.dltile_key).geocontext["properties"]
        assert tuple(props["outputBounds"]) == tile.bounds and props["cs_code"] == tile.crs


def test_create_through_the_real_client_against_the_stand_in(platform, tmp_path):
    lon, lat = TILE.centroid_lonlat
    config = CreateConfig(
        aoi="california",
        out=tmp_path,
        source="descartes",
        max_tiles=1,
        seasons=("summer",),
        bbox=(lon - 0.002, lat - 0.002, lon + 0.002, lat + 0.002),
        rules=PairingRules(max_triplets_per_tile_season=2),
        source_options={"platform_url": platform.url, "token": platform.token},
    )
    summary = create(config, progress=False)
    assert summary.triplets == 2 and not summary.rejected
    assert {path.split("?")[0].rsplit("/", 1)[-1] for _, path in platform.requests} == {"images", "npz"}
    s1_path = next(tmp_path.rglob("s1.tif"))
    with rasterio.open(s1_path) as ds:
        s1 = ds.read()
    valid = s1[bands.S1.index(["valid"])[0]]
    assert (valid[:2] == 0).all() and (valid[2:] == 1).all()  # RTC mask != 7 on the first two rows
    vv = s1[bands.S1.index(["vv_t0"])[0]]
    assert np.isnan(vv[:2]).all()
    k = np.round((vv[2:] - (-11.0 + 1.5)) / 0.1)
    assert (
        np.allclose(vv[2:], -11.0 + 0.1 * k + 1.5, atol=1e-4) and (k >= 0).all()
    )  # sigma0 dB + the additive RTC factor
    assert np.allclose(s1[bands.S1.index(["vh_t0"])[0]][2:] - vv[2:], -7.0, atol=1e-4)
    assert np.allclose(s1[bands.S1.index(["coh_t2"])[0]][2:], 0.6) and np.allclose(
        s1[bands.S1.index(["phase_t3"])[0]][2:], 0.25
    )
    assert np.allclose(s1[16], 38.0) and np.allclose(s1[17], 2.5)
    with rasterio.open(next(tmp_path.rglob("s2.tif"))) as ds:
        s2 = ds.read()
    assert list(s2[:12, 50, 50]) == [500 + 100 * i for i in range(12)] and (s2[12] == 4).all()
    mask = s2[13]
    assert (mask[100:110] == 0).sum() == 100 and mask.sum() == 256 * 256 - 100
    with rasterio.open(next(tmp_path.rglob("labels.tif"))) as ds:
        assert set(np.unique(ds.read())) == {36, 75}
