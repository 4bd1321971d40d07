"""The Descartes Labs platform as a source, with the products the original SEN12TS used (reference
spec 2.4-2.11), through the last real client, ``descarteslabs==3.2.2`` (extra ``collect-dl``).

The platform that served these products is gone, so this source is **tested only against a local
stand-in** of its catalog (``PUT /images``) and raster (``POST /npz``, blosc) endpoints
(``tests/sourcefixtures/dl_standin.py``), driven by the real client; it is **untested against the
service**. The client is imported lazily: nothing else in the toolkit needs it.

Products and bands (as the original):

========================  =====================================  ==================================
layer                     product                                bands
========================  =====================================  ==================================
S1 backscatter (dB)       ``sentinel-1:sar:sigma0v:v1``          vh, vv (alpha-masked)
RTC                       ``sentinel-1:sar:rtc:v0`` (per track)  factor (added in dB), localinc, mask (7 = valid)
InSAR, 12-day pairs       ``sentinel-1:insar:ifg:v0``            coherence, phase (alpha-masked)
S2 L2A                    ``esa:sentinel-2:l2a:v1``              12 reflectances (x 10000) + scl
S2 cloud mask             ``sentinel-2:L1C:dlcloud:v1``          valid_cloudfree (/255)
slope                     ``srtm:GL1003``                        slope
labels                    ``usda:cdl:v1`` / SIGPAC / WorldCover  class / crop_class / lulc_class
========================  =====================================  ==================================

Scene keys are parsed from image ids as the original did (spec 2.5): S1 (track = 5th ``-`` token,
date = first 10 characters, pass = second-to-last token), RTC (track = 1st token), InSAR (track,
second-pass date, day gap = last token; only 12-day pairs). A radar date counts only where its
track has RTC and a 12-day interferogram ends on it. Rasters come on the tile grid through the
DLTile key (``dltile=``), as Float64 values taken as physical units. Options: ``platform_url``
(sets ``DESCARTESLABS_PLATFORM_URL`` before the client is configured) and ``token``
(``DESCARTESLABS_TOKEN``).
"""

from __future__ import annotations

import datetime as dt
import os
import warnings
from collections import defaultdict

import numpy as np
from shapely.geometry import mapping

from sen12ts_stac.errors import SourceError, UserError
from sen12ts_stac.sources.base import Reading
from sen12ts_stac.spec import bands
from sen12ts_stac.spec.aois import AOI
from sen12ts_stac.spec.grid import TILE_PX, Tile
from sen12ts_stac.spec.seasons import Inventory, OpticalScene, PairingRules, RadarScene, RadarSeries, Season

N = TILE_PX
S1_PRODUCT = "sentinel-1:sar:sigma0v:v1"
RTC_PRODUCT = "sentinel-1:sar:rtc:v0"
IFG_PRODUCT = "sentinel-1:insar:ifg:v0"
S2_PRODUCT = "esa:sentinel-2:l2a:v1"
CLOUD_PRODUCT = "sentinel-2:L1C:dlcloud:v1"
SRTM_PRODUCT = "srtm:GL1003"
LABEL_PRODUCTS = {
    "cdl": ("usda:cdl:v1", "class"),
    "sigpac": ("dl-interns:sigpac_2020_crop_classifications", "crop_class"),
    "worldcover": ("dl-interns:esa_2020_worldcover", "lulc_class"),
}
S2_BANDS = (
    "coastal-aerosol",
    "blue",
    "green",
    "red",
    "red-edge",
    "red-edge-2",
    "red-edge-3",
    "nir",
    "red-edge-4",
    "water-vapor",
    "swir1",
    "swir2",
    "scl",
)
RTC_VALID = 7
SCL_NOT_CLEAR = (0, 1, 3, 8, 9, 10)


def _name(image_id: str) -> str:
    return image_id.split(":")[-1]


def s1_key(image_id: str) -> tuple[int, dt.date, str]:
    """(track, date, orbit state) of an S1 or InSAR image id, parsed as the original did."""
    name = _name(image_id)
    tokens = name.split("-")
    try:
        day = dt.date.fromisoformat(name[:10])
        track = int(tokens[4])
        look = tokens[-2].lower()
    except (ValueError, IndexError):
        raise SourceError(f"cannot parse track and date from the image id {image_id!r}") from None
    return track, day, "ascending" if look.startswith("a") else "descending"


def ifg_key(image_id: str) -> tuple[int, dt.date, int]:
    """(track, second-pass date, day gap) of an interferogram id."""
    track, day, _ = s1_key(image_id)
    try:
        return track, day, int(_name(image_id).split("-")[-1])
    except ValueError:
        raise SourceError(f"cannot parse the day gap from the interferogram id {image_id!r}") from None


def rtc_track(image_id: str) -> int:
    try:
        return int(_name(image_id).split("-")[0])
    except ValueError:
        raise SourceError(f"cannot parse the track from the RTC image id {image_id!r}") from None


class DescartesSource:
    """SEN12TS triplets from the Descartes Labs platform (see the module docstring)."""

    name = "descartes"
    license = "other"
    providers = [
        {
            "name": "Descartes Labs",
            "roles": ["host", "processor"],
            "url": "https://descarteslabs.com",
            "description": "Products of the original SEN12TS (untested against the service; see docs/sources.md)",
        },
        {"name": "ESA Copernicus", "roles": ["producer", "licensor"], "url": "https://sentinels.copernicus.eu"},
    ]

    def __init__(
        self,
        aoi: AOI,
        seed: int = 0,
        rules: PairingRules | None = None,
        platform_url: str | None = None,
        token: str | None = None,
    ):
        self.aoi, self.seed, self.rules = aoi, seed, rules or PairingRules()
        if platform_url:
            os.environ["DESCARTESLABS_ENV"] = os.environ.get("DESCARTESLABS_ENV", "aws-production")
            os.environ["DESCARTESLABS_PLATFORM_URL"] = platform_url.rstrip("/")
        if token:
            os.environ["DESCARTESLABS_TOKEN"] = token
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pkg_resources deprecation inside the client
                from descarteslabs.catalog import Image, properties
                from descarteslabs.config import get_settings
                from descarteslabs.core.client.services.raster import Raster
        except ImportError as e:
            raise UserError(
                f"the descartes source needs the collect-dl extra: pip install 'sen12ts-stac[collect-dl]' ({e})"
            ) from None
        if platform_url and not get_settings().raster_url.startswith(platform_url.rstrip("/")):
            raise UserError(
                f"the Descartes Labs client is already configured for {get_settings().raster_url} in this process"
            )
        self._Image, self._p, self._raster = Image, properties, Raster.get_default_client()
        self.label_product = LABEL_PRODUCTS[aoi.label_table]
        self._groups: dict = {}

    # ------------------------------------------------------------------ platform access
    def _search(self, product: str, tile: Tile, start: dt.date | None = None, end: dt.date | None = None) -> list:
        p = self._p
        s = self._Image.search().filter(p.product_id == product).intersects(mapping(tile.polygon_lonlat))
        if start is not None:
            assert end is not None  # the callers give both dates or neither
            s = s.filter(p.acquired >= start.isoformat()).filter(p.acquired < (end + dt.timedelta(days=1)).isoformat())
        try:
            return sorted(s, key=lambda i: i.id)
        except Exception as e:  # noqa: BLE001 - auth, HTTP and server errors of the client
            raise SourceError(
                f"tile {tile.id}: Descartes Labs search of {product} failed: {type(e).__name__}: {e}".replace("\n", " ")
            ) from None

    def _mosaic(self, ids: list[str], names: list[str], tile: Tile) -> np.ma.MaskedArray:
        """(bands, 256, 256) Float64 on the tile (the DLTile key gives bounds, CRS and 10 m)."""
        try:
            arr, _ = self._raster.ndarray(
                inputs=ids, bands=names, dltile=tile.dltile_key, order="gdal", data_type="Float64", masked=True
            )
        except Exception as e:  # noqa: BLE001
            raise SourceError(
                f"tile {tile.id}: Descartes Labs raster of {ids[0] if ids else '?'} failed: {type(e).__name__}: "
                f"{e}".replace("\n", " ")
            ) from None
        arr = np.ma.asarray(arr)
        return arr[None] if arr.ndim == 2 else arr

    # ------------------------------------------------------------------ inventory
    def inventory(self, tile: Tile, season: Season) -> Inventory:
        groups = self._groups.setdefault(
            tile.id, {"s1": defaultdict(list), "ifg": {}, "rtc": defaultdict(list), "s2": {}}
        )
        rtc_tracks = set()
        for image in self._search(RTC_PRODUCT, tile):  # static per track: no dates (spec 2.4)
            groups["rtc"][rtc_track(image.id)].append(image.id)
            rtc_tracks.add(rtc_track(image.id))
        radar: dict[tuple, RadarScene] = {}
        for a, b in season.radar_windows(self.rules):
            pairs = set()
            for image in self._search(IFG_PRODUCT, tile, a, b):
                track, day, gap = ifg_key(image.id)
                if gap == self.rules.radar_interval_days:
                    groups["ifg"].setdefault((track, day), []).append(image.id)
                    pairs.add((track, day))
            for image in self._search(S1_PRODUCT, tile, a, b):
                track, day, state = s1_key(image.id)
                if track in rtc_tracks and (track, day) in pairs:
                    groups["s1"][(track, state, day)].append(image.id)
                    radar.setdefault((track, state, day), RadarScene(image.id, day, track, state))
        optical = {}
        for a, b in season.windows:
            for image in self._search(S2_PRODUCT, tile, a, b):
                day = image.acquired.date()
                entry = groups["s2"].setdefault(day, [])
                entry.append((image.id, float(image.cloud_fraction or 0.0)))
                scene_id = "+".join(sorted(i for i, _ in entry))
                optical[day] = OpticalScene(scene_id, day, max(c for _, c in entry))
        return Inventory(radar=list(radar.values()), optical=list(optical.values()))

    def _group(self, tile: Tile, kind: str, key):
        try:
            return self._groups[tile.id][kind][key]
        except KeyError:
            raise SourceError(f"tile {tile.id}: no {kind} images for {key}; run inventory first") from None

    # ------------------------------------------------------------------ pixels
    def read_s1(self, tile: Tile, series: RadarSeries) -> Reading:
        rtc = self._mosaic(self._group(tile, "rtc", series.track), ["factor", "localinc", "mask"], tile)
        factor = rtc[0].filled(np.nan)
        valid = ~np.ma.getmaskarray(rtc[2]) & (rtc[2].filled(0) == RTC_VALID)
        layers, used = [], []
        for scene in series.scenes:
            ids = self._group(tile, "s1", (series.track, series.orbit_state, scene.date))
            s1 = self._mosaic(ids, ["vh", "vv"], tile)
            ifg = self._mosaic(self._group(tile, "ifg", (series.track, scene.date)), ["coherence", "phase"], tile)
            valid &= ~np.ma.getmaskarray(s1).any(0) & ~np.ma.getmaskarray(ifg).any(0)
            layers += [
                s1[0].filled(np.nan) + factor,
                s1[1].filled(np.nan) + factor,
                ifg[0].filled(np.nan),
                ifg[1].filled(np.nan),
            ]
            used += ids
        slope = self._mosaic([i.id for i in self._search(SRTM_PRODUCT, tile)], ["slope"], tile)[0].filled(np.nan)
        out = np.stack([*layers, rtc[1].filled(np.nan), slope, valid.astype(np.float64)]).astype(np.float32)
        out[:16, ~valid] = np.nan
        props = {"sat:relative_orbit": series.track, "sat:orbit_state": series.orbit_state}
        return Reading(out, [], props | {"sen12ts:descartes_images": used})

    def read_s2(self, tile: Tile, scene: OpticalScene) -> Reading:
        entries = sorted(self._group(tile, "s2", scene.date), key=lambda e: -e[1])  # least cloudy last, on top
        l2a = self._mosaic([i for i, _ in entries], list(S2_BANDS), tile)
        have = ~np.ma.getmaskarray(l2a).any(0)
        dn = np.clip(np.round(l2a[:12].filled(0) * 10000.0), 0, 10000).astype(np.int16)
        scl = l2a[12].filled(0).astype(np.int16)
        clouds = [i.id for i in self._search(CLOUD_PRODUCT, tile, scene.date, scene.date)]
        if clouds:
            cm = self._mosaic(clouds, ["valid_cloudfree"], tile)[0]
            mask = (cm.filled(0) / 255.0 == 1.0).astype(np.int16)
        else:  # the original: no cloud scenes for the date -> all ones
            mask = np.ones((N, N), np.int16)
        out = np.concatenate([dn, scl[None], mask[None]])
        out[:, ~have] = bands.S2.nodata
        return Reading(out, [], {"eo:cloud_cover": round(100 * scene.cloud_fraction, 2)})

    def read_label(self, tile: Tile) -> Reading:
        product, band = self.label_product
        images = self._search(product, tile, dt.date(2020, 1, 1), dt.date(2020, 12, 31))
        if not images:
            return Reading(np.full((1, N, N), bands.LABEL.nodata, np.uint8), [], {})
        arr = self._mosaic([i.id for i in images], [band], tile)[0]
        values = arr.filled(-1).astype(np.int64)
        ok = (values >= 0) & (values < 255)
        return Reading(np.where(ok, values, bands.LABEL.nodata).astype(np.uint8)[None], [], {})


__all__ = ["DescartesSource", "s1_key", "ifg_key", "rtc_track", "LABEL_PRODUCTS"]
