"""The original SEN12TS GeoTIFF folders as a source, so ``import-legacy`` reuses ``create``'s
collector, writer, resume and catalog code.

A folder of originals holds (reference spec 2.12, 7.4)::

    s1/lat_{LAT}_lon_{LON}_s1date_{YYYY-MM-DD}_s2date_{YYYY-MM-DD}_s1track_{TRACK}_s1lookpass_{PASS}.tif
    s2/<the same name>.tif                      pairs are matched by identical file names
    labels/lat_{LAT}_lon_{LON}_date_{YEAR}_lulc_label.tif

LAT/LON is the tile centroid rounded to 4 decimals, so the tile is ``tile_for_lonlat(lon, lat)``;
an older ``dltile_{key}_`` prefix is accepted. s1date is the newest radar date t; the series is t,
t-12, t-24, t-36 days. Each file is one triplet already paired by the original, so this source
names its triplets itself (``triplets``) instead of letting the collector pair scenes.

Band layouts (spec 2.9-2.11, 4.1, 7.5; ``sen12ts_stac.spec.bands.LEGACY_*``), nodata -3000:

* S1, 19 bands (the downloader) or 18 (the applications' export, no validity mask; then valid =
  all 16 time-series bands present and VH/VV not exactly 0, the original's zero test).
* S2, 14 bands, either 12 L2A reflectances + SCL + cloud mask (the downloader), or the older
  California export: 13 bands with B10 (cirrus) + the CDL class. The two are told apart by their
  content (SCL is 0-11 and the mask 0/1 in the first); ``s2_layout=l2a|ca`` forces one. From the
  older export B10 is dropped and SCL and the cloud mask, which it lacks, are written as no data.
* Labels, 1 band int16. -3000 and values outside 0-254 become 255 (our no data).

Files on another grid than the tile's are warped onto it (nearest neighbour).
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.errors import RasterioError
from rasterio.vrt import WarpedVRT

from sen12ts_stac.errors import UserError
from sen12ts_stac.sources.base import Reading
from sen12ts_stac.spec import bands
from sen12ts_stac.spec.aois import AOI, AOIS
from sen12ts_stac.spec.grid import Tile, tile_for_lonlat
from sen12ts_stac.spec.seasons import (
    SEASONS,
    Candidate,
    Inventory,
    OpticalScene,
    PairingRules,
    RadarScene,
    RadarSeries,
    Season,
)

NODATA = bands.LEGACY_NODATA
_NUM = r"-?\d+(?:\.\d+)?"
TRIPLET_NAME = re.compile(
    rf"^(?:dltile_(?P<key>.+?)_)?lat_(?P<lat>{_NUM})_lon_(?P<lon>{_NUM})_s1date_(?P<s1>\d{{4}}-\d{{2}}-\d{{2}})"
    rf"_s2date_(?P<s2>\d{{4}}-\d{{2}}-\d{{2}})_s1track_(?P<track>[^_]+)_s1lookpass_(?P<look>[^_]+?)\.tiff?$",
    re.I,
)
LABEL_NAME = re.compile(
    rf"^(?:dltile_(?P<key>.+?)_)?lat_(?P<lat>{_NUM})_lon_(?P<lon>{_NUM})_date_(?P<year>\d{{4}})_lulc_label\.tiff?$",
    re.I,
)
AOI_ALIASES = {"ca_central_valley_cropland": "california"}


@dataclass(frozen=True)
class LegacyTriplet:
    """One original S1/S2 file pair."""

    name: str
    tile: Tile
    lon: float
    lat: float
    s1_date: dt.date  # newest radar date t
    s2_date: dt.date
    track: int
    orbit_state: str

    @property
    def series(self) -> RadarSeries:
        dates = [self.s1_date - dt.timedelta(days=12 * k) for k in range(bands.RADAR_STEPS)]
        tag = f"{self.track:03d}{self.orbit_state[0].upper()}"
        return RadarSeries(
            self.track,
            self.orbit_state,
            tuple(RadarScene(f"legacy_{tag}_{d:%Y%m%d}", d, self.track, self.orbit_state) for d in dates),
        )

    @property
    def optical(self) -> OpticalScene:
        # The originals kept only scenes of at most 5 % cloud; the exact value is not in the files.
        return OpticalScene(Path(self.name).stem, self.s2_date, 0.0)

    @property
    def candidate(self) -> Candidate:
        return Candidate(self.series, self.optical)


@dataclass
class Scan:
    """What a folder of originals holds, by tile."""

    folder: Path
    triplets: dict[str, list[LegacyTriplet]] = field(default_factory=lambda: defaultdict(list))
    labels: dict[str, list[Path]] = field(default_factory=lambda: defaultdict(list))
    unpaired: list[str] = field(default_factory=list)  # s1/ or s2/ files without their partner
    outside: list[str] = field(default_factory=list)  # S2 date outside the 2020 seasons
    ignored: list[str] = field(default_factory=list)  # files that are not .tif

    @property
    def tile_ids(self) -> list[str]:
        return sorted(self.triplets)

    @property
    def n_triplets(self) -> int:
        return sum(len(v) for v in self.triplets.values())

    def points(self) -> list[tuple[float, float]]:
        return [(t.lon, t.lat) for ts in self.triplets.values() for t in ts]


def _parse_date(text: str, where: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise UserError(f"{where}: bad date {text!r} in the file name") from None


def _orbit(token: str, where: str) -> str:
    t = token.strip().lower()
    if t.startswith("a"):
        return "ascending"
    if t.startswith("d"):
        return "descending"
    raise UserError(f"{where}: look pass {token!r} is neither ascending nor descending")


def parse_triplet_name(name: str, where: str | None = None) -> LegacyTriplet:
    """A ``LegacyTriplet`` from an original S1/S2 file name; a UserError naming the file if it is not one."""
    where = where or name
    m = TRIPLET_NAME.match(name)
    if not m:
        raise UserError(
            f"{where}: not an original SEN12TS name "
            "(lat_LAT_lon_LON_s1date_YYYY-MM-DD_s2date_YYYY-MM-DD_s1track_TRACK_s1lookpass_PASS.tif)"
        )
    digits = re.sub(r"\D", "", m["track"])
    if not digits:
        raise UserError(f"{where}: track {m['track']!r} has no orbit number")
    lat, lon = float(m["lat"]), float(m["lon"])
    if not (-80 <= lat <= 84 and -180 <= lon <= 180):
        raise UserError(f"{where}: lat/lon {lat}, {lon} outside the UTM range")
    return LegacyTriplet(
        name,
        tile_for_lonlat(lon, lat),
        lon,
        lat,
        _parse_date(m["s1"], where),
        _parse_date(m["s2"], where),
        int(digits),
        _orbit(m["look"], where),
    )


def scan(folder: str | Path) -> Scan:
    """List and parse a folder of originals; UserErrors name the folder or file at fault."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder")
    s1_dir, s2_dir, label_dir = folder / "s1", folder / "s2", folder / "labels"
    if not s1_dir.is_dir() or not s2_dir.is_dir():
        inner = sorted(p.name for p in folder.iterdir() if (p / "s1").is_dir())
        hint = f"; it holds AOI folders {', '.join(inner)}: import each of them" if inner else ""
        raise UserError(f"{folder}: expected the original layout with s1/ and s2/ folders{hint}")
    out = Scan(folder)

    def tifs(d: Path) -> dict[str, Path]:
        found = {}
        for p in sorted(d.iterdir()) if d.is_dir() else []:
            if p.suffix.lower() in (".tif", ".tiff") and not p.name.startswith("."):
                found[p.name] = p
            elif p.is_file():
                out.ignored.append(f"{d.name}/{p.name}")
        return found

    s1, s2 = tifs(s1_dir), tifs(s2_dir)
    out.unpaired = [f"s1/{n}" for n in sorted(set(s1) - set(s2))] + [f"s2/{n}" for n in sorted(set(s2) - set(s1))]
    seen: set[tuple] = set()
    for name in sorted(set(s1) & set(s2)):
        t = parse_triplet_name(name, f"{s1_dir / name}")
        if not any(season.contains(t.s2_date) for season in SEASONS.values()):
            out.outside.append(name)
            continue
        key = (t.tile.id, t.s1_date, t.s2_date, t.track)
        if key in seen:  # the same triplet under a differently rounded lat/lon
            continue
        seen.add(key)
        out.triplets[t.tile.id].append(t)
    for name, path in tifs(label_dir).items():
        m = LABEL_NAME.match(name)
        if not m:
            raise UserError(f"{path}: not an original SEN12TS label name (lat_LAT_lon_LON_date_YEAR_lulc_label.tif)")
        out.labels[tile_for_lonlat(float(m["lon"]), float(m["lat"])).id].append(path)
    if not out.triplets:
        why = (
            f" ({len(out.outside)} outside the 2020 seasons, {len(out.unpaired)} unpaired)"
            if out.outside or out.unpaired
            else ""
        )
        raise UserError(f"{folder}: no S1/S2 file pairs to import{why}")
    return out


def infer_aoi(found: Scan) -> str:
    """The AOI of a folder: from its name (e.g. ``california_0.05``), else from where the files lie."""
    for part in reversed(found.folder.resolve().parts):
        token = part.lower()
        for alias, name in AOI_ALIASES.items():
            if token.startswith(alias):
                return name
        for name in AOIS:
            if token == name or token.startswith(name + "_"):
                return name
    from shapely.geometry import MultiPoint, Point

    pts = found.points()
    votes = {name: sum(aoi.polygon.contains(Point(p)) for p in pts) for name, aoi in AOIS.items()}
    best = max(votes, key=lambda n: votes[n])
    if votes[best]:
        return best
    centre = MultiPoint(pts).centroid
    near = min(AOIS, key=lambda n: AOIS[n].polygon.distance(centre))
    if AOIS[near].polygon.distance(centre) < 2.0:
        return near
    raise UserError(
        f"{found.folder}: cannot tell the AOI (files around lat {centre.y:.3f}, lon {centre.x:.3f}); pass --aoi"
    )


def check_aoi(found: Scan, aoi: AOI) -> None:
    """A UserError when the files lie far (over 2 degrees) from the AOI they are imported into."""
    from shapely.geometry import MultiPoint

    centre = MultiPoint(found.points()).centroid
    if aoi.polygon.distance(centre) > 2.0:
        raise UserError(
            f"{found.folder}: the files lie around lat {centre.y:.3f}, lon {centre.x:.3f}, far from AOI {aoi.name!r}; "
            "check --aoi"
        )


def read_tile_grid(path: Path, tile: Tile) -> np.ndarray:
    """All bands of a legacy file on the tile grid; pixels it does not cover are -3000."""
    try:
        with rasterio.open(path) as src:
            same = (
                src.crs is not None
                and src.crs.to_epsg() == tile.epsg
                and src.shape == tile.shape
                and all(abs(a - b) < 1e-3 for a, b in zip(src.transform[:6], tile.transform[:6]))
            )
            if same or (src.crs is None and src.shape == tile.shape):
                return src.read()
            if src.crs is None:
                raise UserError(f"{path}: no CRS and not 256 x 256; cannot place it on tile {tile.id}")
            with WarpedVRT(
                src,
                crs=tile.crs,
                transform=tile.transform,
                width=256,
                height=256,
                resampling=Resampling.nearest,
                src_nodata=src.nodata if src.nodata is not None else NODATA,
                nodata=NODATA,
            ) as vrt:
                return vrt.read()
    except RasterioError as e:
        raise UserError(f"{path}: cannot read it ({e})") from None


def s2_layout(arr: np.ndarray) -> str:
    """'l2a' (12 reflectances + SCL + cloud mask) or 'ca' (13 with B10 + CDL), from the content."""
    scl, mask = arr[12], arr[13]
    ok = scl != NODATA
    looks_l2a = bool(np.isin(mask, (0, 1, NODATA)).all() and ((scl[ok] >= 0) & (scl[ok] <= 11)).all())
    return "l2a" if looks_l2a else "ca"


class LegacySource:
    """Triplets from a folder of original SEN12TS files (see the module docstring)."""

    name = "legacy"
    license = "other"
    providers = [
        {
            "name": "SEN12TS (Conlon et al., Descartes Labs / Radiant MLHub)",
            "roles": ["producer"],
            "url": "https://github.com/tconlon/sen12ts",
            "description": "The original SEN12TS GeoTIFFs",
        },
        {
            "name": "sen12ts-stac import-legacy",
            "roles": ["processor"],
            "description": "Original files re-encoded as COGs with named bands and no-data; see docs/sources.md",
        },
    ]

    def __init__(
        self,
        aoi: AOI,
        seed: int = 0,
        rules: PairingRules | None = None,
        dir: str | None = None,
        s2_layout: str = "auto",
    ):
        if not dir:
            raise UserError(
                "the legacy source needs the folder of original files (source option dir=...); use import-legacy"
            )
        if s2_layout not in ("auto", "l2a", "ca"):
            raise UserError(f"legacy option s2_layout={s2_layout!r}: expected auto, l2a or ca")
        self.aoi, self.seed, self.rules = aoi, seed, rules or PairingRules()
        self.folder = Path(dir)
        self.layout = s2_layout
        self.found = scan(self.folder)
        self._by_series = {
            (t.tile.id, t.track, t.orbit_state, t.s1_date): t for ts in self.found.triplets.values() for t in ts
        }
        self._by_optical = {(t.tile.id, t.optical.id): t for ts in self.found.triplets.values() for t in ts}

    def tiles(self) -> list[str]:
        return self.found.tile_ids

    def _season(self, tile: Tile, season: Season) -> list[LegacyTriplet]:
        return [t for t in self.found.triplets.get(tile.id, []) if season.contains(t.s2_date)]

    def triplets(self, tile: Tile, season: Season) -> list[Candidate]:
        """The original pairs of this tile and season (the collector uses these, not its own pairing)."""
        return [t.candidate for t in sorted(self._season(tile, season), key=lambda t: (t.s2_date, t.s1_date, t.track))]

    def inventory(self, tile: Tile, season: Season) -> Inventory:
        radar: dict[str, RadarScene] = {}
        optical: dict[str, OpticalScene] = {}
        for t in self._season(tile, season):
            for s in t.series.scenes:
                radar.setdefault(s.id, s)
            optical.setdefault(t.optical.id, t.optical)
        return Inventory(radar=list(radar.values()), optical=list(optical.values()))

    # ------------------------------------------------------------------ pixels
    def read_s1(self, tile: Tile, series: RadarSeries) -> Reading:
        t = self._by_series.get((tile.id, series.track, series.orbit_state, series.newest))
        if t is None:
            raise UserError(
                f"{self.folder / 's1'}: no file for tile {tile.id}, track {series.track}, s1date {series.newest}"
            )
        path = self.folder / "s1" / t.name
        arr = read_tile_grid(path, tile).astype(np.float32)
        if arr.shape[0] not in (19, 18):
            raise UserError(f"{path}: expected 19 or 18 bands (spec 2.10), found {arr.shape[0]}")
        arr[arr == NODATA] = np.nan
        layout = f"s1_{arr.shape[0]}"
        if arr.shape[0] == 19:
            valid = arr[18] == 1
        else:  # the applications' export has no mask: derive it as the original did
            dyn = arr[:16]
            backscatter = dyn[[0, 1, 4, 5, 8, 9, 12, 13]]
            valid = np.isfinite(dyn).all(0) & (backscatter != 0).all(0)
        out = np.concatenate([arr[:18], valid[None].astype(np.float32)])
        out[:16, ~valid] = np.nan
        props = {
            "sat:relative_orbit": t.track,
            "sat:orbit_state": t.orbit_state,
            "sen12ts:legacy_file": f"s1/{t.name}",
            "sen12ts:legacy_layout": layout,
        }
        return Reading(out, [], props)

    def _s2_array(self, path: Path, tile: Tile) -> tuple[np.ndarray, str]:
        arr = read_tile_grid(path, tile)
        if arr.shape[0] != 14:
            raise UserError(f"{path}: expected 14 bands (spec 2.9 or 4.1), found {arr.shape[0]}")
        arr = arr.astype(np.int32)
        return arr, (self.layout if self.layout != "auto" else s2_layout(arr))

    def read_s2(self, tile: Tile, scene: OpticalScene) -> Reading:
        t = self._by_optical.get((tile.id, scene.id))
        if t is None:
            raise UserError(f"{self.folder / 's2'}: no file {scene.id}.tif for tile {tile.id}")
        path = self.folder / "s2" / t.name
        arr, layout = self._s2_array(path, tile)
        if layout == "l2a":
            spectral, extra = arr[:12], arr[12:14]
        else:  # B01..B09, B10 (cirrus), B11, B12, CDL: drop B10; no SCL or cloud mask in this export
            spectral, extra = np.concatenate([arr[:10], arr[11:13]]), np.full((2, *tile.shape), bands.S2.nodata)
        nodata = (spectral == NODATA).any(0)
        out = np.concatenate([np.clip(spectral, 0, 10000), extra]).astype(np.int16)
        if layout == "l2a":
            out[12:][arr[12:14] == NODATA] = bands.S2.nodata
        out[:, nodata] = bands.S2.nodata
        props: dict[str, str | float] = {
            "sen12ts:legacy_file": f"s2/{t.name}",
            "sen12ts:legacy_layout": f"s2_{layout}_14",
        }
        if layout == "l2a":
            covered = out[13] != bands.S2.nodata
            cloudy = covered & (out[13] == 0)
            props["eo:cloud_cover"] = round(100.0 * cloudy.sum() / max(covered.sum(), 1), 2)
        else:
            props["eo:cloud_cover"] = 5.0  # unknown: the original kept scenes of at most 5 %
        return Reading(out, [], props)

    def read_label(self, tile: Tile) -> Reading:
        paths = sorted(self.found.labels.get(tile.id, []), key=lambda p: ("_date_2020_" not in p.name, p.name))
        if paths:
            arr = read_tile_grid(paths[0], tile)
            if arr.shape[0] != 1:
                raise UserError(f"{paths[0]}: expected 1 band, found {arr.shape[0]}")
            return Reading(_classes(arr[0])[None], [], {})
        for t in self.found.triplets.get(tile.id, []):  # the older California export carries the CDL class
            arr, layout = self._s2_array(self.folder / "s2" / t.name, tile)
            if layout == "ca":
                return Reading(_classes(arr[13])[None], [], {})
        return Reading(np.full((1, *tile.shape), bands.LABEL.nodata, np.uint8), [], {})


def _classes(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.int64)
    return np.where((a >= 0) & (a < 255), a, bands.LABEL.nodata).astype(np.uint8)


__all__ = [
    "LegacySource",
    "LegacyTriplet",
    "Scan",
    "scan",
    "infer_aoi",
    "check_aoi",
    "parse_triplet_name",
    "read_tile_grid",
    "s2_layout",
]
