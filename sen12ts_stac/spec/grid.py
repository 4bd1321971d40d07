"""The SEN12TS tile grid: 256 x 256 px at 10 m in the tile's UTM zone.

It reproduces the Descartes Labs "DLTile" grid the original used (spec section 2.2): per UTM zone an
origin-anchored square grid, tile key ``256:0:10.0:<zone>:<path>:<row>`` with unpadded bounds

    x_min = 500000 + path * 2560,  y_min = row * 2560,  x_max = x_min + 2560,  y_max = y_min + 2560

in WGS84 / UTM *north* (EPSG:326zz) even south of the equator, where northings are negative.
A tile belongs to the zone that holds its centroid's longitude, so no tile is listed twice.
Our tile id is ``<zone>_<path>_<row>`` (e.g. ``36_-5_12``): stable, short and parseable.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import shapely
from affine import Affine
from pyproj import Transformer
from shapely.geometry import Polygon, box

from sen12ts_stac.errors import UserError

TILE_PX = 256
RESOLUTION_M = 10.0
TILE_M = TILE_PX * RESOLUTION_M
FALSE_EASTING = 500_000.0
_ID = re.compile(r"^(\d{1,2})_(-?\d+)_(-?\d+)$")


def _to_utm(zone: int) -> Transformer:
    return Transformer.from_crs("EPSG:4326", f"EPSG:{32600 + zone}", always_xy=True)


def _to_lonlat(zone: int) -> Transformer:
    return Transformer.from_crs(f"EPSG:{32600 + zone}", "EPSG:4326", always_xy=True)


def utm_zone(lon: float) -> int:
    """UTM zone number (1-60) for a longitude (no Norway/Svalbard exceptions, as DLTiles)."""
    return int(min(max(math.floor((lon + 180.0) / 6.0) + 1, 1), 60))


@dataclass(frozen=True, order=True)
class Tile:
    zone: int
    path: int
    row: int

    @property
    def id(self) -> str:
        return f"{self.zone}_{self.path}_{self.row}"

    @property
    def dltile_key(self) -> str:
        return f"{TILE_PX}:0:{RESOLUTION_M}:{self.zone}:{self.path}:{self.row}"

    @classmethod
    def from_id(cls, tile_id: str) -> "Tile":
        m = _ID.match(tile_id)
        if not m or not 1 <= int(m.group(1)) <= 60:
            raise UserError(f"bad tile id {tile_id!r}: expected <zone>_<path>_<row>, e.g. 36_-5_12")
        return cls(int(m.group(1)), int(m.group(2)), int(m.group(3)))

    @property
    def epsg(self) -> int:
        return 32600 + self.zone

    @property
    def crs(self) -> str:
        return f"EPSG:{self.epsg}"

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(xmin, ymin, xmax, ymax) in the tile's UTM zone, metres."""
        x0 = FALSE_EASTING + self.path * TILE_M
        y0 = self.row * TILE_M
        return (x0, y0, x0 + TILE_M, y0 + TILE_M)

    @property
    def transform(self) -> Affine:
        xmin, _, _, ymax = self.bounds
        return Affine(RESOLUTION_M, 0.0, xmin, 0.0, -RESOLUTION_M, ymax)

    @property
    def shape(self) -> tuple[int, int]:
        return (TILE_PX, TILE_PX)

    @cached_property
    def polygon_lonlat(self) -> Polygon:
        """The tile footprint in WGS84, densified (8 points a side) so it follows the UTM square."""
        xmin, ymin, xmax, ymax = self.bounds
        t = np.linspace(0.0, 1.0, 9)
        xs = np.concatenate([xmin + (xmax - xmin) * t, np.full(9, xmax), xmax - (xmax - xmin) * t, np.full(9, xmin)])
        ys = np.concatenate([np.full(9, ymin), ymin + (ymax - ymin) * t, np.full(9, ymax), ymax - (ymax - ymin) * t])
        lon, lat = _to_lonlat(self.zone).transform(xs, ys)
        return Polygon(zip(np.round(lon, 7), np.round(lat, 7)))

    @property
    def bbox_lonlat(self) -> tuple[float, float, float, float]:
        return tuple(round(v, 7) for v in self.polygon_lonlat.bounds)

    @property
    def centroid_lonlat(self) -> tuple[float, float]:
        xmin, ymin, xmax, ymax = self.bounds
        lon, lat = _to_lonlat(self.zone).transform((xmin + xmax) / 2, (ymin + ymax) / 2)
        return (lon, lat)

    @property
    def block(self) -> str:
        """The 8 x 8-tile block (20.48 km) the tile falls in: the catalog's partition key."""
        return f"block_{self.zone}_{self.path // 8}_{self.row // 8}"

    @property
    def split_group(self) -> str:
        """The 4 x 4-tile group (10.24 km) that shares one train/validate/test split."""
        return f"{self.zone}_{self.path // 4}_{self.row // 4}"

    def lonlat_to_pixel(self, lon: float, lat: float) -> tuple[float, float]:
        x, y = _to_utm(self.zone).transform(lon, lat)
        col, row = ~self.transform * (x, y)
        return (row, col)


def tile_for_lonlat(lon: float, lat: float) -> Tile:
    """The tile whose footprint contains a WGS84 point."""
    zone = utm_zone(lon)
    x, y = _to_utm(zone).transform(lon, lat)
    return Tile(zone, math.floor((x - FALSE_EASTING) / TILE_M), math.floor(y / TILE_M))


def tiles_in(polygon: Polygon, *, seed: int = 7) -> list[Tile]:
    """Every tile whose centroid lies inside ``polygon`` (WGS84), in a seeded shuffled order.

    Keeping only centroid-inside tiles follows the original deployment script; the seeded shuffle
    (seed 7, as the original) spreads a ``--max-tiles`` prefix over the whole area, and a longer
    prefix always starts with a shorter one, so growing a catalog never changes its first tiles.
    """
    minlon, minlat, maxlon, maxlat = polygon.bounds
    tiles: list[Tile] = []
    for zone in range(utm_zone(minlon), utm_zone(maxlon) + 1):
        zone_west = -180.0 + (zone - 1) * 6.0
        part = polygon.intersection(box(zone_west, -90, zone_west + 6.0, 90))
        if part.is_empty:
            continue
        fwd = _to_utm(zone)
        utm_part = shapely.transform(part, lambda xy, f=fwd: np.column_stack(f.transform(xy[:, 0], xy[:, 1])))
        xmin, ymin, xmax, ymax = utm_part.bounds
        paths = np.arange(math.floor((xmin - FALSE_EASTING) / TILE_M), math.floor((xmax - FALSE_EASTING) / TILE_M) + 1)
        rows = np.arange(math.floor(ymin / TILE_M), math.floor(ymax / TILE_M) + 1)
        pp, rr = np.meshgrid(paths, rows, indexing="ij")
        cx = FALSE_EASTING + (pp.ravel() + 0.5) * TILE_M
        cy = (rr.ravel() + 0.5) * TILE_M
        inside = shapely.contains_xy(utm_part, cx, cy)
        # A centroid must also fall in this zone's longitude band, else the next zone owns it.
        lon, _ = _to_lonlat(zone).transform(cx[inside], cy[inside])
        own = (lon >= zone_west) & (lon < zone_west + 6.0)
        for p, r in zip(pp.ravel()[inside][own], rr.ravel()[inside][own]):
            tiles.append(Tile(zone, int(p), int(r)))
    tiles.sort()
    order = np.random.default_rng(seed).permutation(len(tiles))
    return [tiles[i] for i in order]
