"""The six SEN12TS areas of interest, as data.

The original AOI shapefiles were never published (spec section 2.1), so the polygons here are
simplified outlines of each area's agricultural region, drawn by hand in WGS84 lon/lat. They are
good enough to place tiles in the right UTM zones, climates and land-cover tables; they are not
survey-grade boundaries. Replace them with ``--bbox`` or your own polygon for real work.
"""

from __future__ import annotations

from dataclasses import dataclass

from shapely.geometry import Polygon, box

from sen12ts_stac.errors import UserError


@dataclass(frozen=True)
class AOI:
    """An area of interest: a name, an outline and where its labels come from."""

    name: str
    title: str
    outline: tuple[tuple[float, float], ...]  # (lon, lat) ring, WGS84
    label_table: str  # id of the class table in sen12ts_stac.spec.classes
    label_source: str  # human-readable product name
    climate: str  # 'temperate' | 'mediterranean' | 'tropical' | 'highland' (drives the synthetic source)

    @property
    def polygon(self) -> Polygon:
        return Polygon(self.outline)

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        return tuple(self.polygon.bounds)


AOIS: dict[str, AOI] = {
    a.name: a
    for a in (
        AOI(
            "california",
            "California Central Valley",
            (
                (-122.45, 40.35),
                (-121.75, 40.45),
                (-121.20, 39.30),
                (-120.90, 38.30),
                (-120.10, 37.20),
                (-119.30, 36.40),
                (-118.70, 35.35),
                (-119.20, 34.95),
                (-119.85, 35.45),
                (-120.45, 36.35),
                (-121.10, 37.10),
                (-121.75, 37.90),
                (-122.10, 38.60),
                (-122.45, 39.50),
                (-122.45, 40.35),
            ),
            "cdl",
            "USDA NASS Cropland Data Layer 2020",
            "mediterranean",
        ),
        AOI(
            "iowa",
            "Iowa",
            (
                (-96.45, 43.50),
                (-91.22, 43.50),
                (-91.05, 42.75),
                (-90.15, 42.10),
                (-90.65, 41.45),
                (-91.05, 40.95),
                (-91.40, 40.38),
                (-95.77, 40.58),
                (-95.87, 41.05),
                (-96.08, 41.90),
                (-96.35, 42.40),
                (-96.60, 42.85),
                (-96.45, 43.50),
            ),
            "cdl",
            "USDA NASS Cropland Data Layer 2020",
            "temperate",
        ),
        AOI(
            "catalonia",
            "Catalonia (Lleida plain and central depression)",
            (
                (0.35, 41.35),
                (1.10, 41.20),
                (1.75, 41.35),
                (2.20, 41.70),
                (2.05, 42.05),
                (1.45, 42.10),
                (0.75, 41.95),
                (0.35, 41.80),
                (0.35, 41.35),
            ),
            "sigpac",
            "SIGPAC 2020 crop declarations (Generalitat de Catalunya)",
            "mediterranean",
        ),
        AOI(
            "ethiopia",
            "Ethiopia (central highlands)",
            (
                (37.00, 7.50),
                (39.60, 7.30),
                (40.20, 8.60),
                (39.80, 10.20),
                (38.40, 10.60),
                (37.20, 9.80),
                (36.80, 8.60),
                (37.00, 7.50),
            ),
            "worldcover",
            "ESA WorldCover 2020 v100",
            "highland",
        ),
        AOI(
            "uganda",
            "Uganda",
            (
                (29.70, -1.40),
                (33.90, -1.00),
                (34.10, 0.40),
                (35.00, 1.90),
                (34.50, 3.80),
                (33.00, 3.90),
                (31.00, 3.70),
                (30.60, 2.40),
                (29.95, 0.60),
                (29.70, -1.40),
            ),
            "worldcover",
            "ESA WorldCover 2020 v100",
            "tropical",
        ),
        AOI(
            "sumatra",
            "Sumatra",
            (
                (95.30, 5.60),
                (97.50, 5.20),
                (100.30, 2.40),
                (103.80, 0.20),
                (106.00, -3.00),
                (105.80, -5.90),
                (104.50, -5.90),
                (102.20, -3.80),
                (100.30, -1.00),
                (98.60, 1.60),
                (95.30, 4.20),
                (95.30, 5.60),
            ),
            "worldcover",
            "ESA WorldCover 2020 v100",
            "tropical",
        ),
    )
}


def get_aoi(name: str) -> AOI:
    """The AOI called ``name`` (case-insensitive); a one-line UserError for an unknown one."""
    key = name.strip().lower()
    if key not in AOIS:
        raise UserError(f"unknown AOI {name!r}; known AOIs: {', '.join(AOIS)}")
    return AOIS[key]


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    """Parse ``minlon,minlat,maxlon,maxlat`` and check it is a real, small-enough WGS84 box."""
    parts = [p for p in text.replace(" ", "").split(",") if p]
    try:
        values = [float(p) for p in parts]
    except ValueError:
        raise UserError(f"bad bbox {text!r}: expected four numbers minlon,minlat,maxlon,maxlat") from None
    if len(values) != 4:
        raise UserError(f"bad bbox {text!r}: expected four numbers minlon,minlat,maxlon,maxlat, got {len(values)}")
    minx, miny, maxx, maxy = values
    if not (-180 <= minx < maxx <= 180 and -80 <= miny < maxy <= 84):
        raise UserError(
            f"bad bbox {text!r}: need -180 <= minlon < maxlon <= 180 and -80 <= minlat < maxlat <= 84 (UTM range)"
        )
    return minx, miny, maxx, maxy


def restrict(aoi: AOI, bbox: tuple[float, float, float, float] | None) -> Polygon:
    """The AOI polygon, clipped to ``bbox`` when one is given; an error if they do not overlap."""
    poly = aoi.polygon
    if bbox is None:
        return poly
    clipped = poly.intersection(box(*bbox))
    if clipped.is_empty:
        raise UserError(
            f"bbox {bbox} does not overlap AOI {aoi.name!r} (its bbox is {tuple(round(v, 2) for v in aoi.bbox)})"
        )
    return clipped
