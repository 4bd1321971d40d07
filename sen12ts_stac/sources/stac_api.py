"""The live source: real Sentinel-1, Sentinel-2, land cover and terrain from open STAC APIs.

Per tile and season it searches (pystac-client) the radar and optical windows of the pairing
rules, and reads every asset it needs as a window of a remote COG, reprojected onto the tile grid
with a rasterio ``WarpedVRT``. Where each layer comes from (docs/sources.md has the details):

* **Sentinel-1**: Planetary Computer ``sentinel-1-rtc`` (gamma0, RTC, linear power, assets ``vv``
  and ``vh``), signed with ``planetary-computer`` (hrefs outside Azure blob storage pass through
  unchanged). Converted to dB. All slices of a (track, orbit state, date) are mosaicked.
* **Local incidence angle**: read when the item carries one (``local_incidence_angle``, ``lia`` or
  ``localinc`` asset); PC RTC does not, so it is derived from the DEM and an incidence-angle model:
  the ellipsoid incidence angle grows linearly across the IW swath from 29.1 to 46.0 degrees (near
  to far range, position of the tile inside the scene footprint), the satellite heading follows
  from the orbit inclination (98.18 degrees) and the latitude, the radar looks right; LIA is the
  angle between the DEM surface normal and the direction to the sensor. Layover (terrain facing
  the sensor steeper than the incidence angle) and shadow (LIA >= 90) are invalid.
* **InSAR coherence**: no open 10 m, 12-day product exists. With ``coherence=asf`` (default) each
  date gets the 12-day VV coherence of ASF ``sentinel-1-global-coherence`` (seasonal median, 3
  arcsec ~ 90 m, Dec 2019 - Nov 2020) for its season, resampled bilinearly; November 2019 uses
  fall 2020 and December 2020 winter 2019/20 (same calendar season). With ``coherence=none``, or
  where ASF has no tile, coherence is NaN. Interferometric **phase** has no open product: NaN.
* **Sentinel-2 L2A**: Earth Search ``sentinel-2-c1-l2a`` (Collection 1, asset keys ``coastal,
  blue, ... scl``) by default, or ``sentinel-2-l2a`` of Earth Search or Planetary Computer
  (``B01 ... SCL``); reflectance = DN x scale + offset by the rules of ``provider_items`` (the
  processing baseline, Earth Search's ``earthsearch:boa_offset_applied``, ``raster:bands``),
  stored x 10000. Granules of the same date are mosaicked,
  the least cloudy on top (as the original). ``cloud_mask`` and the tile's cloud and validity
  fractions come from SCL.
* **Land cover**: ESA WorldCover 2020 (``esa-worldcover``, asset ``map``) or USDA CDL 2020
  (``usda-cdl``, asset ``cropland``), nearest-neighbour. Catalonia's SIGPAC has no STAC API.
* **Slope**: Copernicus GLO-30 (``cop-dem-glo-30``, asset ``data``), bilinear to 10 m, then the
  gradient.

Root URLs are options (``stac_url`` for all, or ``s1_url``, ``s2_url``, ``landcover_url``,
``dem_url``, ``coherence_url``) or environment variables (``SEN12TS_STAC_URL``,
``SEN12TS_S1_URL``, ...), so tests point the very same code at a STAC API on 127.0.0.1.
Searches retry 429/5xx with exponential backoff (pystac-client ``StacApiIO`` + urllib3 ``Retry``);
raster reads retry in GDAL and once more around each read. A failure after the retries is a
``SourceError`` for the tile, which the collector records and retries on the next run.
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import logging
import math
import os
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Iterable, cast

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.vrt import WarpedVRT
from shapely.geometry import LineString, mapping, shape

from sen12ts_stac.errors import SourceError, UserError
from sen12ts_stac.sources.base import Reading
from sen12ts_stac.sources.provider_items import (
    is_cdl_cropland,
    is_worldcover_2020,
    item_date,
    raster_meta,
    s2_scale_offset,
)
from sen12ts_stac.spec import bands
from sen12ts_stac.spec.aois import AOI
from sen12ts_stac.spec.grid import RESOLUTION_M, TILE_PX, Tile
from sen12ts_stac.spec.seasons import (
    Inventory,
    OpticalScene,
    PairingRules,
    RadarScene,
    RadarSeries,
    Season,
    season_of_month,
)
from sen12ts_stac.storage.http import retry_policy
from sen12ts_stac.storage.raster import gdal_options as storage_gdal_options

# GDAL reports each HTTP retry as a warning; retries are expected here, failures raise SourceError.
for _name in ("rasterio._env", "rasterio._err"):
    logging.getLogger(_name).setLevel(logging.ERROR)

N = TILE_PX
PC = "https://planetarycomputer.microsoft.com/api/stac/v1"
EARTH_SEARCH = "https://earth-search.aws.element84.com/v1"
ASF = "https://stac.asf.alaska.edu"
ROLES = ("s1", "s2", "landcover", "dem", "coherence")
DEFAULT_ROOTS = {"s1": PC, "s2": EARTH_SEARCH, "landcover": PC, "dem": PC, "coherence": ASF}
ENV_ALL = "SEN12TS_STAC_URL"
ENV = {role: f"SEN12TS_{role.upper()}_URL" for role in ROLES}

S1_COLLECTION = "sentinel-1-rtc"
S2_COLLECTION = "sentinel-2-c1-l2a"  # Earth Search Collection 1 (docs/sources.md: why)
DEM_COLLECTION = "cop-dem-glo-30"
COHERENCE_COLLECTION = "sentinel-1-global-coherence"
# label table -> (collection, asset key, item filter(id, properties), no-data when raster:bands has none)
LANDCOVER = {
    "worldcover": ("esa-worldcover", "map", is_worldcover_2020, 0),  # 0 = "No data" in the WorldCover legend
    "cdl": (
        "usda-cdl",
        "cropland",
        is_cdl_cropland,
        0,
    ),  # 0 = "Background" (outside the survey): no-data, docs/sources.md
}
# Our S2 band -> (Earth Search asset key, Planetary Computer asset key)
S2_ASSETS = {
    "B01": ("coastal", "B01"),
    "B02": ("blue", "B02"),
    "B03": ("green", "B03"),
    "B04": ("red", "B04"),
    "B05": ("rededge1", "B05"),
    "B06": ("rededge2", "B06"),
    "B07": ("rededge3", "B07"),
    "B08": ("nir", "B08"),
    "B8A": ("nir08", "B8A"),
    "B09": ("nir09", "B09"),
    "B11": ("swir16", "B11"),
    "B12": ("swir22", "B12"),
    "SCL": ("scl", "SCL"),
}
SCL_NOT_CLEAR = (0, 1, 3, 8, 9, 10)  # no data, saturated/defective, cloud shadow, cloud medium/high, cirrus
SCL_CLOUD = (3, 8, 9, 10)
LIA_ASSETS = ("local_incidence_angle", "lia", "localinc")
IW_NEAR_DEG, IW_FAR_DEG = 29.1, 46.0  # Sentinel-1 IW swath, near and far range incidence
S1_INCLINATION_DEG = 98.18
OPTIONS = {
    "stac_url",
    *(f"{r}_url" for r in ROLES),
    "s2_collection",
    "coherence",
    "timeout",
    "retries",
    "backoff",
    "threads",
}


@dataclass(frozen=True)
class Settings:
    """Where each layer is searched and how hard to try."""

    roots: dict
    s2_collection: str = S2_COLLECTION
    coherence: str = "asf"  # 'asf' | 'none'
    timeout: float = 60.0
    retries: int = 5
    backoff: float = 1.0
    threads: int = 8

    @classmethod
    def from_options(cls, options: dict, environ=os.environ) -> "Settings":
        unknown = sorted(set(options) - OPTIONS)
        if unknown:
            raise UserError(
                f"unknown stac-api source option(s) {', '.join(unknown)}; known: {', '.join(sorted(OPTIONS))}"
            )
        base = options.get("stac_url") or environ.get(ENV_ALL)
        roots = {
            r: (options.get(f"{r}_url") or environ.get(ENV[r]) or base or DEFAULT_ROOTS[r]).rstrip("/") for r in ROLES
        }
        coherence = str(options.get("coherence", "asf")).lower()
        if coherence not in ("asf", "none"):
            raise UserError(f"stac-api option coherence={coherence!r}: expected asf or none")
        try:
            return cls(
                roots,
                str(options.get("s2_collection", S2_COLLECTION)),
                coherence,
                float(options.get("timeout", 60)),
                int(options.get("retries", 5)),
                float(options.get("backoff", 1.0)),
                int(options.get("threads", 8)),
            )
        except ValueError as e:
            raise UserError(f"bad stac-api source option: {e}") from None


def _retry(s: Settings):
    # the storage layer's policy; connect errors (no network, DNS) fail fast
    return retry_policy(s.retries, backoff=s.backoff, connect=min(2, s.retries), raise_on_status=True)


def _redact(text: str) -> str:
    """Drop URL query strings (signed hrefs carry access tokens) from a message."""
    return re.sub(r"\?[^\s'\"()]*", "", text)


def _one_line(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}".replace("\n", " ")
    if "NameResolutionError" in text or "Failed to resolve" in text:
        return "host name does not resolve: no network?"
    if "Connection refused" in text:
        return "connection refused"
    return text if len(text) < 300 else text[:297] + "..."


# ---------------------------------------------------------------------------------------- raster reads
def gdal_options(s: Settings) -> dict:
    """The storage layer's GDAL settings for remote rasters, with this source's retries and timeout."""
    return storage_gdal_options(
        GDAL_HTTP_MAX_RETRY=str(s.retries),
        GDAL_HTTP_RETRY_DELAY=str(max(s.backoff, 0.01)),
        GDAL_HTTP_TIMEOUT=str(int(s.timeout)),
        GDAL_HTTP_CONNECTTIMEOUT=str(int(min(s.timeout, 30))),
    )


def _transient(e: Exception) -> bool:
    text = str(e).lower()
    return any(
        k in text
        for k in ("response code: 5", "response code: 429", "timed out", "timeout", "connection", "curl error", "ssl")
    )


def read_on_tile(
    href: str,
    tile: Tile,
    *,
    resampling: Resampling = Resampling.nearest,
    band: int = 1,
    src_nodata: float | None = None,
    pad: int = 0,
    settings: Settings | None = None,
) -> np.ma.MaskedArray:
    """Band ``band`` of the raster at ``href``, warped onto the tile grid (plus ``pad`` pixels on
    each side), as a masked array: masked where the source has no data or does not reach.
    Transient HTTP failures are retried (GDAL retries each request; this retries the read)."""
    s = settings or Settings(DEFAULT_ROOTS)
    xmin, _, _, ymax = tile.bounds
    transform = rasterio.Affine(RESOLUTION_M, 0, xmin - pad * RESOLUTION_M, 0, -RESOLUTION_M, ymax + pad * RESOLUTION_M)
    size = N + 2 * pad
    for attempt in range(3):
        options = gdal_options(s)
        if attempt:  # GDAL caches failed URLs for the life of the process: bypass that cache on a retry
            options["CPL_VSIL_CURL_NON_CACHED"] = f"/vsicurl/{href}"
        try:
            with rasterio.Env(**options), rasterio.open(href) as src:
                nodata = src_nodata if src_nodata is not None else src.nodata
                with WarpedVRT(
                    src,
                    crs=tile.crs,
                    transform=transform,
                    width=size,
                    height=size,
                    resampling=resampling,
                    src_nodata=nodata,
                    add_alpha=True,
                ) as vrt:
                    data = vrt.read(band)
                    alpha = vrt.read(vrt.count)
            return np.ma.MaskedArray(data, mask=alpha == 0)
        except RasterioError as e:
            if attempt < 2 and (_transient(e) or (attempt == 0 and "does not exist" in str(e))):
                time.sleep(s.backoff * 2**attempt)
                continue
            raise SourceError(_redact(f"tile {tile.id}: reading {href} failed: {_one_line(e)}")) from None
    raise AssertionError("unreachable")


# ---------------------------------------------------------------------------------------- geometry
def _heading_deg(lat: float, orbit_state: str) -> float:
    """Ground-track heading (clockwise from north) of a sun-synchronous orbit at ``lat``."""
    s = math.cos(math.radians(S1_INCLINATION_DEG)) / max(math.cos(math.radians(lat)), 0.15)
    beta = math.degrees(math.asin(max(-1.0, min(1.0, s))))  # about -8 at the equator, -10 at 37 N
    return beta if orbit_state == "ascending" else 180.0 - beta


def incidence_model(tile: Tile, footprint: dict | None, orbit_state: str) -> np.ndarray:
    """Ellipsoid incidence angle (degrees) over the tile's columns: linear across the IW swath from
    near to far range, from where the tile sits inside the scene footprint (near range is west for
    ascending passes, east for descending ones, the radar looking right)."""
    from pyproj import Transformer

    xmin, ymin, xmax, ymax = tile.bounds
    xs = xmin + (np.arange(N) + 0.5) * RESOLUTION_M
    lon, lat = Transformer.from_crs(tile.crs, "EPSG:4326", always_xy=True).transform(xs, np.full(N, (ymin + ymax) / 2))
    frac = np.full(N, 0.5)
    if footprint:
        geom = shape(footprint)
        clat = float(np.mean(lat))
        line = LineString([(geom.bounds[0] - 1, clat), (geom.bounds[2] + 1, clat)]).intersection(geom)
        if not line.is_empty:
            west, _, east, _ = line.bounds
            if east - west > 0.05:
                frac = np.clip((np.asarray(lon) - west) / (east - west), 0.0, 1.0)
    if orbit_state != "ascending":
        frac = 1.0 - frac
    theta = IW_NEAR_DEG + (IW_FAR_DEG - IW_NEAR_DEG) * frac
    return np.broadcast_to(theta[None, :], (N, N)).astype(np.float64)


def terrain(dem_padded: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(slope degrees, dz/dx east, dz/dy north) on the tile from a DEM with a 1-pixel border."""
    # (numpy's stub types the gradient of an array of unknown dimensions as a 1-d one)
    gy_rows, gx = cast("tuple[np.ndarray, np.ndarray]", np.gradient(dem_padded.astype(np.float64), RESOLUTION_M))
    gy = -gy_rows  # rows run south
    core = (slice(1, -1), slice(1, -1))
    slope = np.degrees(np.arctan(np.hypot(gx, gy)))
    return slope[core], gx[core], gy[core]


def local_incidence(
    theta_deg: np.ndarray, heading_deg: float, gx: np.ndarray, gy: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(local incidence angle degrees, geometry-valid mask) from the incidence angle, the heading
    and the terrain gradient. Invalid: layover (slope facing the sensor steeper than the incidence)
    and shadow (LIA >= 90)."""
    to_sensor_az = math.radians(heading_deg - 90.0)  # right-looking: the sensor is left of the track
    hx, hy = math.sin(to_sensor_az), math.cos(to_sensor_az)  # horizontal unit vector towards the sensor
    theta = np.radians(theta_deg)
    norm = np.sqrt(gx**2 + gy**2 + 1.0)
    n = (-gx / norm, -gy / norm, 1.0 / norm)
    s = (np.sin(theta) * hx, np.sin(theta) * hy, np.cos(theta))
    cos_lia = np.clip(n[0] * s[0] + n[1] * s[1] + n[2] * s[2], -1.0, 1.0)
    lia = np.degrees(np.arccos(cos_lia))
    facing = np.degrees(np.arctan(-(gx * hx + gy * hy)))  # slope towards the sensor, degrees
    valid = (facing < theta_deg) & (lia < 90.0)
    return lia.astype(np.float32), valid


# ---------------------------------------------------------------------------------------- source
def _date_range(a: dt.date, b: dt.date) -> str:
    return f"{a.isoformat()}T00:00:00Z/{b.isoformat()}T23:59:59Z"


def _item_date(item) -> dt.date:
    return item_date(item.properties)


def _href(item) -> str:
    return item.get_self_href() or item.id


class StacApiSource:
    """Real Sentinel-1/2 triplets from open STAC APIs (see the module docstring)."""

    name = "stac-api"
    license = "other"
    providers = [
        {
            "name": "Microsoft Planetary Computer",
            "roles": ["host", "processor"],
            "url": "https://planetarycomputer.microsoft.com",
            "description": "Sentinel-1 RTC (Catalyst), ESA WorldCover, USDA CDL, Copernicus DEM GLO-30",
        },
        {
            "name": "Element 84 Earth Search",
            "roles": ["host"],
            "url": "https://earth-search.aws.element84.com/v1",
            "description": "Sentinel-2 L2A",
        },
        {
            "name": "Alaska Satellite Facility",
            "roles": ["host"],
            "url": "https://stac.asf.alaska.edu",
            "description": "Global seasonal Sentinel-1 interferometric coherence (Kellndorfer et al. 2022)",
        },
        {"name": "ESA Copernicus", "roles": ["producer", "licensor"], "url": "https://sentinels.copernicus.eu"},
        {
            "name": "sen12ts-stac stac-api source",
            "roles": ["processor"],
            "description": (
                "Searches per tile and season, SEN12TS pairing rules, reprojection to the tile grid (docs/sources.md)"
            ),
        },
    ]

    def __init__(self, aoi: AOI, seed: int = 0, rules: PairingRules | None = None, **options):
        self.aoi, self.seed, self.rules = aoi, seed, rules or PairingRules()
        self.settings = Settings.from_options(options)
        if aoi.label_table not in LANDCOVER:
            raise UserError(
                f"AOI {aoi.name!r}: {aoi.label_source} has no open STAC API; use --source synthetic, "
                "or import-legacy for the original SEN12TS files"
            )
        self.landcover = LANDCOVER[aoi.label_table]
        self._clients: dict[str, object] = {}
        roles = [r for r in ROLES if r != "coherence" or self.settings.coherence == "asf"]
        for role in roles:  # fail fast, with one line, when an API cannot be reached
            self._client(role)
        self._cache: OrderedDict[str, dict] = OrderedDict()  # per tile: search results, static layers

    # ------------------------------------------------------------------ API access
    def _client(self, role: str):
        import planetary_computer
        from pystac_client import Client
        from pystac_client.stac_api_io import StacApiIO

        url = self.settings.roots[role]
        if url not in self._clients:
            try:
                io = StacApiIO(timeout=self.settings.timeout, max_retries=_retry(self.settings))
                self._clients[url] = Client.open(url, stac_io=io, modifier=planetary_computer.sign_inplace)
            except Exception as e:  # noqa: BLE001 - any failure here means the API is unusable
                raise SourceError(
                    f"cannot reach the STAC API {url} ({_one_line(e)}); to work offline use --source synthetic"
                ) from None
        return self._clients[url]

    def _search(self, role: str, collection: str, tile: Tile, when: str | None) -> list:
        client = self._client(role)
        kwargs = {"collections": [collection], "intersects": mapping(tile.polygon_lonlat), "limit": 100}
        if when:
            kwargs["datetime"] = when
        try:
            return list(client.search(**kwargs).items())
        except Exception as e:  # noqa: BLE001
            raise SourceError(
                f"tile {tile.id}: search of {collection} at {self.settings.roots[role]} failed: {_one_line(e)}"
            ) from None

    def _tile_cache(self, tile: Tile) -> dict:
        if tile.id not in self._cache:
            self._cache[tile.id] = {"radar": {}, "optical": {}}
            while len(self._cache) > 4:
                self._cache.popitem(last=False)
        self._cache.move_to_end(tile.id)
        return self._cache[tile.id]

    def _parallel(self, fn: Callable, args: Iterable) -> list:
        args = list(args)
        if len(args) <= 1 or self.settings.threads <= 1:
            return [fn(a) for a in args]
        with cf.ThreadPoolExecutor(max_workers=min(self.settings.threads, len(args))) as pool:
            return list(pool.map(fn, args))

    # ------------------------------------------------------------------ inventory
    def inventory(self, tile: Tile, season: Season) -> Inventory:
        cache = self._tile_cache(tile)
        radar_groups: dict[tuple, dict] = {}
        for a, b in season.radar_windows(self.rules):
            for item in self._search("s1", S1_COLLECTION, tile, _date_range(a, b)):
                p = item.properties
                pols = {x.upper() for x in p.get("sar:polarizations", [])}
                if not {"VV", "VH"} <= pols or "vv" not in item.assets or "vh" not in item.assets:
                    continue
                if p.get("sar:instrument_mode", "IW") != "IW" or "sat:relative_orbit" not in p:
                    continue
                key = (int(p["sat:relative_orbit"]), str(p.get("sat:orbit_state", "")).lower(), _item_date(item))
                radar_groups.setdefault(key, {})[item.id] = item
        radar = []
        for (track, state, day), group in sorted(radar_groups.items()):
            items = [group[k] for k in sorted(group)]
            cache["radar"][(track, state, day)] = items
            radar.append(RadarScene(items[0].id, day, track, state, _href(items[0])))
        optical_groups: dict[dt.date, dict] = {}
        for a, b in season.windows:
            for item in self._search("s2", self.settings.s2_collection, tile, _date_range(a, b)):
                if "eo:cloud_cover" not in item.properties or self._s2_keys(item) is None:
                    continue
                optical_groups.setdefault(_item_date(item), {})[item.id] = item
        optical = []
        for day, group in sorted(optical_groups.items()):
            items = sorted(
                group.values(), key=lambda i: (-float(i.properties["eo:cloud_cover"]), i.id)
            )  # least cloudy last
            scene_id = "+".join(sorted(group))
            cloud = max(float(i.properties["eo:cloud_cover"]) for i in items) / 100.0
            cache["optical"][scene_id] = items
            optical.append(OpticalScene(scene_id, day, round(cloud, 6), _href(items[-1])))
        return Inventory(radar=radar, optical=optical)

    # ------------------------------------------------------------------ Sentinel-2
    @staticmethod
    def _s2_keys(item) -> dict | None:
        """Our band name -> asset key, for Earth Search or Planetary Computer naming."""
        for column in (0, 1):
            keys = {b: names[column] for b, names in S2_ASSETS.items()}
            if all(k in item.assets for k in keys.values()):
                return keys
        return None

    def read_s2(self, tile: Tile, scene: OpticalScene) -> Reading:
        items = self._tile_cache(tile)["optical"].get(scene.id) or self._optical_items(tile, scene)
        refl = np.full((12, N, N), np.nan, np.float32)
        scl = np.zeros((N, N), np.int16)
        have = np.zeros((N, N), bool)
        for item in items:  # most cloudy first, least cloudy last (on top)
            keys = self._s2_keys(item)
            if keys is None:  # the catalog changed since the inventory (which kept only items with them)
                raise SourceError(f"tile {tile.id}: Sentinel-2 item {item.id} no longer has the S2 band assets")
            names = list(S2_ASSETS)

            def read(name, item=item, keys=keys):
                asset = item.assets[keys[name]]
                rs = Resampling.nearest if name == "SCL" else Resampling.bilinear
                return read_on_tile(
                    asset.href,
                    tile,
                    resampling=rs,
                    src_nodata=raster_meta(asset).get("nodata", 0),
                    settings=self.settings,
                )

            layers = self._parallel(read, names)
            ok = ~np.any([np.ma.getmaskarray(x) for x in layers], axis=0)
            ok &= np.asarray(layers[-1].filled(0)) != 0
            for i, name in enumerate(names[:-1]):
                scale, offset = s2_scale_offset(item.properties, raster_meta(item.assets[keys[name]]))
                refl[i][ok] = layers[i].data[ok].astype(np.float32) * scale + offset
            scl[ok] = layers[-1].data[ok]
            have |= ok
        dn = np.clip(np.round(np.nan_to_num(refl, nan=0.0) * 10000.0), 0, 10000).astype(np.int16)
        clear = ~np.isin(scl, SCL_NOT_CLEAR)
        out = np.concatenate([dn, scl[None], clear[None].astype(np.int16)])
        out[:, ~have] = bands.S2.nodata
        n_have = int(have.sum())
        props = {
            "eo:cloud_cover": round(100 * scene.cloud_fraction, 2),
            "sen12ts:valid_fraction": round(n_have / have.size, 4),
            "sen12ts:cloud_fraction": round(float(np.isin(scl[have], SCL_CLOUD).sum()) / n_have, 4) if n_have else None,
            "sen12ts:s2_collection": self.settings.s2_collection,
        }
        return Reading(out, [_href(i) for i in items], props)

    def _optical_items(self, tile: Tile, scene: OpticalScene) -> list:
        ids = set(scene.id.split("+"))
        found = [
            i
            for i in self._search("s2", self.settings.s2_collection, tile, _date_range(scene.date, scene.date))
            if i.id in ids
        ]
        if not found:
            raise SourceError(f"tile {tile.id}: Sentinel-2 scene {scene.id} is no longer found")
        return sorted(found, key=lambda i: (-float(i.properties.get("eo:cloud_cover", 0)), i.id))

    # ------------------------------------------------------------------ Sentinel-1
    def _radar_items(self, tile: Tile, series: RadarSeries, scene: RadarScene) -> list:
        key = (series.track, series.orbit_state, scene.date)
        cached = self._tile_cache(tile)["radar"].get(key)
        if cached:
            return cached
        items = [
            i
            for i in self._search("s1", S1_COLLECTION, tile, _date_range(scene.date, scene.date))
            if int(i.properties.get("sat:relative_orbit", -1)) == series.track
            and str(i.properties.get("sat:orbit_state", "")).lower() == series.orbit_state
        ]
        if not items:
            raise SourceError(f"tile {tile.id}: Sentinel-1 scene {scene.id} is no longer found")
        return sorted(items, key=lambda i: i.id)

    def _backscatter(self, tile: Tile, items: list) -> tuple[np.ndarray, np.ndarray]:
        """(VH, VV) gamma0 in dB on the tile, mosaicked over the slices of one date; NaN = no data."""

        def read(arg):
            item, pol = arg
            asset = item.assets[pol]
            return read_on_tile(
                asset.href,
                tile,
                resampling=Resampling.bilinear,
                src_nodata=raster_meta(asset).get("nodata", -32768),
                settings=self.settings,
            )

        layers = self._parallel(read, [(i, p) for i in items for p in ("vh", "vv")])
        out = []
        for k in (0, 1):
            db = np.full((N, N), np.nan, np.float32)
            for layer in layers[k::2]:
                lin = layer.filled(np.nan).astype(np.float64)
                ok = np.isfinite(lin) & (lin > 0) & np.isnan(db)
                db[ok] = 10.0 * np.log10(lin[ok])
            out.append(db)
        return out[0], out[1]

    def _static(self, tile: Tile) -> dict:
        """Slope and terrain gradient from the DEM (cached per tile)."""
        cache = self._tile_cache(tile)
        if "dem" not in cache:
            items = [i for i in self._search("dem", DEM_COLLECTION, tile, None) if "data" in i.assets]
            if not items:
                raise SourceError(
                    f"tile {tile.id}: no {DEM_COLLECTION} item at {self.settings.roots['dem']} covers the tile "
                    "(needed for slope)"
                )
            dem = np.full((N + 2, N + 2), np.nan)
            for item in items:
                layer = read_on_tile(
                    item.assets["data"].href,
                    tile,
                    resampling=Resampling.bilinear,
                    pad=1,
                    src_nodata=raster_meta(item.assets["data"]).get("nodata"),
                    settings=self.settings,
                )
                fill = np.isnan(dem) & ~np.ma.getmaskarray(layer)
                dem[fill] = layer.data[fill]
            slope, gx, gy = terrain(dem)
            cache["dem"] = {"slope": slope.astype(np.float32), "gx": gx, "gy": gy, "hrefs": [_href(i) for i in items]}
        return cache["dem"]

    def _coherence(self, tile: Tile, day: dt.date) -> tuple[np.ndarray, list[str]]:
        """12-day VV coherence of the ASF seasonal product for ``day``'s season (NaN where none)."""
        if self.settings.coherence != "asf":
            return np.full((N, N), np.nan, np.float32), []
        cache = self._tile_cache(tile)
        if "coherence_items" not in cache:
            cache["coherence_items"] = [
                i
                for i in self._search("coherence", COHERENCE_COLLECTION, tile, None)
                if str(i.properties.get("sar:product_type", "")).upper() == "COH12"
                and "VV" in {p.upper() for p in i.properties.get("sar:polarizations", [])}
            ]
        season = season_of_month(day.month)
        key = f"coherence_{season}"
        if key not in cache:
            arr = np.full((N, N), np.nan, np.float32)
            used = []
            for item in cache["coherence_items"]:
                if str(item.properties.get("season", "")).lower() != season:
                    continue
                asset = next((a for k, a in item.assets.items() if k.lower() == "data"), None)
                if asset is None:
                    continue
                layer = read_on_tile(
                    asset.href, tile, resampling=Resampling.bilinear, src_nodata=0, settings=self.settings
                )
                fill = np.isnan(arr) & ~np.ma.getmaskarray(layer)
                arr[fill] = layer.data[fill].astype(np.float32) / 100.0  # coherence x 100 as bytes; 0 = no data
                used.append(_href(item))
            cache[key] = (np.clip(arr, 0.0, 1.0), used)
        return cache[key]

    def read_s1(self, tile: Tile, series: RadarSeries) -> Reading:
        groups = [self._radar_items(tile, series, s) for s in series.scenes]
        static = self._static(tile)
        layers, derived = [], []
        valid = np.ones((N, N), bool)
        coherence_used: list[str] = []
        for scene, items in zip(series.scenes, groups):
            vh, vv = self._backscatter(tile, items)
            coh, used = self._coherence(tile, scene.date)
            coherence_used += [u for u in used if u not in coherence_used]
            layers += [vh, vv, coh, np.full((N, N), np.nan, np.float32)]
            valid &= np.isfinite(vh) & np.isfinite(vv)
            derived += [_href(i) for i in items]
        newest = groups[0][0]
        lia_asset = next((newest.assets[k] for k in LIA_ASSETS if k in newest.assets), None)
        if lia_asset is not None:
            lia = (
                read_on_tile(
                    lia_asset.href,
                    tile,
                    resampling=Resampling.bilinear,
                    src_nodata=raster_meta(lia_asset).get("nodata"),
                    settings=self.settings,
                )
                .filled(np.nan)
                .astype(np.float32)
            )
            geometry_ok = np.isfinite(lia) & (lia < 90.0)
        else:
            lat = tile.centroid_lonlat[1]
            theta = incidence_model(tile, newest.geometry, series.orbit_state)
            lia, geometry_ok = local_incidence(theta, _heading_deg(lat, series.orbit_state), static["gx"], static["gy"])
        valid &= geometry_ok & np.isfinite(static["slope"])
        out = np.stack([*layers, lia, static["slope"], valid.astype(np.float32)]).astype(np.float32)
        out[:16, ~valid] = np.nan
        props = {
            "sat:relative_orbit": series.track,
            "sat:orbit_state": series.orbit_state,
            "sen12ts:lia": "product" if lia_asset is not None else "dem_incidence_model",
            "sen12ts:coherence": "asf_global_seasonal_coh12_vv_90m" if coherence_used else "missing",
            "sen12ts:phase": "missing",
        }
        return Reading(out, derived + static["hrefs"] + coherence_used, props)

    # ------------------------------------------------------------------ land cover
    def read_label(self, tile: Tile) -> Reading:
        collection, key, keep, nodata = self.landcover
        items = [
            i
            for i in self._search(
                "landcover", collection, tile, _date_range(dt.date(2020, 1, 1), dt.date(2020, 12, 31))
            )
            if key in i.assets and keep(i.id, i.properties)
        ]
        label = np.full((N, N), bands.LABEL.nodata, np.uint8)
        have = np.zeros((N, N), bool)
        for item in items:
            asset = item.assets[key]
            layer = read_on_tile(
                asset.href,
                tile,
                resampling=Resampling.nearest,
                src_nodata=raster_meta(asset).get("nodata", nodata),
                settings=self.settings,
            )
            values = layer.data.astype(np.int64)
            ok = ~np.ma.getmaskarray(layer) & ~have & (values >= 0) & (values < 255)
            label[ok] = values[ok]
            have |= ok
        return Reading(label[None], [_href(i) for i in items], {})


__all__ = ["StacApiSource", "Settings", "read_on_tile", "incidence_model", "local_incidence", "terrain"]
