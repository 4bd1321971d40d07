"""Land-cover class tables of SEN12TS: CDL, SIGPAC, WorldCover and the Sentinel-2 SCL.

The tables are package data (``sen12ts_stac/spec/data/classes/{id}.csv``, columns
``value,name,color,crop``), re-encoded from the four sheets of the original
``sen12ts_lulc_class_value_relationships.xlsx`` (reference spec §3). Names are kept exactly as in
the xlsx, typos ("Pumkpin", "Garlick") and trailing spaces (SIGPAC 42, 54, 165, 166) included;
use :meth:`ClassTable.to_stac_classes` for cleaned-up, unique slugs.

Where the colours come from:

* ``cdl``: the USDA NASS CDL standard colour map (the colour table shipped in the CDL GeoTIFFs,
  as also reproduced in torchgeo's ``CDL.cmap``); 0 Background is black. CDL re-uses colours
  across classes (e.g. all the "Dbl Crop ..." and many vegetables), so they are not unique.
* ``worldcover``: the ESA WorldCover 2020 v100 legend (product user manual), unique per class.
* ``scl``: the ESA/Sentinel Hub Scene Classification legend, unique per class.
* ``sigpac``: NO official palette exists (neither the Generalitat nor the original project
  publishes one). The colours are INVENTED, deterministically, by :func:`_maximin_palette`
  (greedy farthest-point choice in CIELAB): distinguishable, unique, and without meaning.

Crop flags (the ``crop`` column, :attr:`ClassTable.crop_values`, :meth:`ClassTable.is_crop`):

* ``cdl``: exactly the "cropland" set of the original code (reference Appendix A, 105 values:
  1-6, 10-14, 21-39, 41-58, 66-69, 71-72, 74-77, 204-250). Note that it excludes 59 Sod/Grass
  Seed, 60 Switchgrass, 61 Fallow/Idle Cropland, 70 Christmas Trees, 92 Aquaculture and
  254 Dbl Crop Barley/Soybeans, as the original did.
* ``worldcover``: only 40 Cropland.
* ``scl``: none (SCL is not a land-cover map).
* ``sigpac``: every class of SIGPAC is an agricultural parcel declaration, so every class is a
  crop - arable crops, vegetables, herbs, orchards, vineyards, nurseries and fallow (75-77)
  included - **except the pure grass / pasture species**, which mirror CDL's exclusion of grass
  and pasture: 0 Agrostis, 37 Grassland, 45 Tail of Rat (Phleum), 65 Festuca (Grass),
  125 Bread/Poa and 134 Ray-Grass. 51 Canary Grass stays a crop (a grain grown for seed), and the
  legume/cereal forage mixtures (alfalfa, vetch, clover, sainfoin, ...) stay crops, as alfalfa and
  hay do in CDL. This gives 165 crop values out of 171.

This module reads only its own package data; it does no other I/O.
"""

from __future__ import annotations

import csv
import functools
import io
import re
from dataclasses import dataclass, field
from importlib import resources

import numpy as np

__all__ = ["CLASS_TABLE_IDS", "ClassTable", "LandCoverClass", "class_table"]

CLASS_TABLE_IDS: tuple[str, ...] = ("cdl", "sigpac", "worldcover", "scl")

_TITLES: dict[str, tuple[str, str]] = {
    "cdl": (
        "USDA NASS Cropland Data Layer 2020",
        "https://www.nass.usda.gov/Research_and_Science/Cropland/sarsfaqs2.php",
    ),
    "sigpac": (
        "SIGPAC 2020 crop declarations (Catalonia)",
        "https://agricultura.gencat.cat/ca/ambits/desenvolupament-rural/sigpac/",
    ),
    "worldcover": (
        "ESA WorldCover 2020 v100",
        "https://esa-worldcover.org/en/data-access",
    ),
    "scl": (
        "Sentinel-2 L2A Scene Classification (SCL)",
        "https://sentinels.copernicus.eu/web/sentinel/technical-guides/sentinel-2-msi/level-2a/algorithm-overview",
    ),
}

_HEX_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
_CSV_HEADER = ["value", "name", "color", "crop"]
_MAX_VALUE = 65535  # lookup tables are at most 65536 long (uint16 / int16 rasters)


@dataclass(frozen=True)
class LandCoverClass:
    """One class of a table: raster value, name as in the source sheet, ``#rrggbb``, crop flag."""

    value: int
    name: str
    color: str
    crop: bool

    @property
    def rgb(self) -> tuple[int, int, int]:
        """The colour as an ``(r, g, b)`` tuple of ints in 0..255."""
        c = self.color.lstrip("#")
        return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def _slug(name: str) -> str:
    """Lowercase, runs of non-alphanumerics -> ``_``, leading/trailing ``_`` stripped."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


@dataclass(frozen=True)
class ClassTable:
    """An immutable table of land-cover classes, indexable by raster value."""

    id: str
    title: str
    source_url: str
    classes: tuple[LandCoverClass, ...]
    _by_value: dict[int, LandCoverClass] = field(init=False, repr=False, compare=False, hash=False)
    _crop_lut: np.ndarray = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        by_value: dict[int, LandCoverClass] = {}
        for c in self.classes:
            if not 0 <= c.value <= _MAX_VALUE:
                raise ValueError(f"table {self.id!r}: value {c.value} outside 0..{_MAX_VALUE}")
            if c.value in by_value:
                raise ValueError(f"table {self.id!r}: duplicate value {c.value}")
            if not _HEX_COLOR.match(c.color):
                raise ValueError(f"table {self.id!r}: value {c.value} has bad colour {c.color!r}")
            by_value[c.value] = c
        lut = np.zeros(_MAX_VALUE + 1, dtype=bool)
        for c in self.classes:
            lut[c.value] = c.crop
        lut.setflags(write=False)
        object.__setattr__(self, "_by_value", by_value)
        object.__setattr__(self, "_crop_lut", lut)

    # -- mapping-like access -------------------------------------------------------------------

    def __getitem__(self, value: int) -> LandCoverClass:
        try:
            return self._by_value[int(value)]
        except (KeyError, TypeError, ValueError):
            vals = self.values
            raise KeyError(
                f"{value!r} is not a class value of table {self.id!r} ({self.title}); "
                f"it has {len(vals)} values between {vals[0]} and {vals[-1]}"
            ) from None

    def __contains__(self, value: object) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            return False
        return int(value) in self._by_value

    def __len__(self) -> int:
        return len(self.classes)

    def __iter__(self):
        return iter(self.classes)

    @property
    def values(self) -> tuple[int, ...]:
        """All class values, ascending."""
        return tuple(sorted(self._by_value))

    @property
    def crop_values(self) -> frozenset[int]:
        """The values flagged as crop."""
        return frozenset(c.value for c in self.classes if c.crop)

    def name(self, value: int) -> str:
        """The class name exactly as in the source sheet (typos and spaces kept)."""
        return self[value].name

    # -- array helpers -------------------------------------------------------------------------

    def is_crop(self, arr: np.ndarray) -> np.ndarray:
        """Boolean crop mask of an integer label array, same shape.

        Vectorised through a 256-entry (uint8) or 65536-entry lookup table. Values that are not in
        the table (nodata such as -3000, or anything out of range) are ``False``.
        """
        a = np.asarray(arr)
        if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.integer):
            raise TypeError(f"is_crop needs an integer array, got dtype {a.dtype}")
        if a.dtype == np.uint8:
            return self._crop_lut[:256][a]
        if a.dtype == np.uint16:
            return self._crop_lut[a]
        if a.dtype == np.int16:
            # negative values land at >= 32768 in the uint16 view, where no class lives
            return self._crop_lut[a.view(np.uint16)]
        out = np.zeros(a.shape, dtype=bool)
        ok = (a >= 0) & (a <= _MAX_VALUE)
        out[ok] = self._crop_lut[a[ok]]
        return out

    def rgb_lut(self, size: int = 256) -> np.ndarray:
        """A ``(size, 3)`` uint8 colour lookup table; values not in the table are black."""
        if size <= self.values[-1]:
            raise ValueError(f"rgb_lut size {size} too small for table {self.id!r} (largest value {self.values[-1]})")
        lut = np.zeros((size, 3), dtype=np.uint8)
        for c in self.classes:
            lut[c.value] = c.rgb
        return lut

    # -- STAC ----------------------------------------------------------------------------------

    def to_stac_classes(self) -> list[dict]:
        """``classification:classes`` objects (classification extension v2.0.0, also valid v1.1.0).

        Each is ``{"value", "name", "title", "description", "color_hint"}``: ``name`` is a slug of
        the source name (lowercase, runs of non-alphanumerics -> ``_``, stripped), made unique by
        appending ``_<value>`` to every member of a group of colliding slugs; ``title`` (what a
        legend shows) and ``description`` are the source name with surrounding whitespace
        stripped; ``color_hint`` is ``RRGGBB`` (uppercase, no ``#``).
        """
        slugs = {c.value: _slug(c.name) or f"class_{c.value}" for c in self.classes}
        counts: dict[str, int] = {}
        for s in slugs.values():
            counts[s] = counts.get(s, 0) + 1
        for v, s in slugs.items():
            if counts[s] > 1:
                slugs[v] = f"{s}_{v}"
        if len(set(slugs.values())) != len(slugs):  # pragma: no cover - guard for future data
            raise ValueError(f"table {self.id!r}: class slugs are not unique after disambiguation")
        return [
            {
                "value": c.value,
                "name": slugs[c.value],
                "title": c.name.strip(),
                "description": c.name.strip(),
                "color_hint": c.color.lstrip("#").upper(),
            }
            for c in sorted(self.classes, key=lambda c: c.value)
        ]


def _srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIELAB (D65) of an ``(n, 3)`` array of 0..255 sRGB colours."""
    c = np.asarray(rgb, dtype=np.float64) / 255.0
    c = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    r, g, b = c[:, 0], c[:, 1], c[:, 2]
    x = (0.4124564 * r + 0.3575761 * g + 0.1804375 * b) / 0.95047
    y = 0.2126729 * r + 0.7151522 * g + 0.0721750 * b
    z = (0.0193339 * r + 0.1191920 * g + 0.9503041 * b) / 1.08883
    xyz = np.stack([x, y, z], axis=1)
    d = 6.0 / 29.0
    f = np.where(xyz > d**3, np.cbrt(xyz), xyz / (3 * d * d) + 4.0 / 29.0)
    return np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], axis=1)


def _maximin_palette(n: int) -> list[str]:
    """``n`` distinct, deterministic ``#rrggbb`` colours (used for SIGPAC, which has no palette).

    Greedy farthest-point selection in CIELAB over the sRGB grid with 16 levels per channel
    (0, 17, ..., 255), keeping lightness 30 < L* < 92 (nothing near the black used for unknown
    values, nothing near white). Black is pre-seeded as taken; each step picks the first candidate
    (grid order) farthest from everything chosen so far. For n = 171 the smallest pairwise
    CIE76 distance is about 15 (golden-ratio HSV hue steps, tried first, give near-identical
    pairs because hue offsets of 144 = F12 steps nearly cancel).
    """
    levels = np.arange(0, 256, 17, dtype=np.float64)
    cand = np.array(np.meshgrid(levels, levels, levels, indexing="ij")).reshape(3, -1).T
    lab = _srgb_to_lab(cand)
    keep = (lab[:, 0] > 30) & (lab[:, 0] < 92)
    cand, lab = cand[keep], lab[keep]
    dist = np.linalg.norm(lab - _srgb_to_lab(np.zeros((1, 3))), axis=1)
    out: list[str] = []
    for _ in range(n):
        i = int(np.argmax(np.round(dist, 6)))  # rounding makes tie-breaks platform-stable
        out.append("#%02x%02x%02x" % tuple(int(v) for v in cand[i]))
        dist = np.minimum(dist, np.linalg.norm(lab - lab[i], axis=1))
    return out


def _parse_csv(table_id: str, text: str) -> tuple[LandCoverClass, ...]:
    rows = list(csv.reader(io.StringIO(text)))
    if not rows or rows[0] != _CSV_HEADER:
        raise ValueError(f"{table_id}.csv: header must be {','.join(_CSV_HEADER)}")
    classes = []
    for lineno, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != 4 or row[3] not in ("0", "1"):
            raise ValueError(f"{table_id}.csv line {lineno}: bad row {row!r}")
        value, name, color, crop = row
        classes.append(LandCoverClass(int(value), name, color.lower(), crop == "1"))
    return tuple(classes)


@functools.cache
def class_table(table_id: str) -> ClassTable:
    """The class table ``table_id`` (one of :data:`CLASS_TABLE_IDS`), loaded once and cached."""
    if table_id not in CLASS_TABLE_IDS:
        raise ValueError(f"unknown class table {table_id!r}; known ids: {', '.join(CLASS_TABLE_IDS)}")
    res = resources.files("sen12ts_stac.spec") / "data" / "classes" / f"{table_id}.csv"
    text = res.read_text(encoding="utf-8")
    title, url = _TITLES[table_id]
    return ClassTable(table_id, title, url, _parse_csv(table_id, text))
