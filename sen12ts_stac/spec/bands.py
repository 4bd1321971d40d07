"""Band tables: what each band of each product is, in order (spec sections 2.9-2.11, 7.5).

Readers select bands by name, never by position. Two layouts exist for the original files
(``LEGACY_*``); the catalog written by this toolkit uses ``S1_BANDS``, ``S2_BANDS``, ``LABEL_BANDS``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RADAR_STEPS = 4
KINDS = ("measurement", "mask", "class")  # what a band holds: normalise only measurements


@dataclass(frozen=True)
class Band:
    name: str
    description: str
    unit: str | None = None
    common_name: str | None = None  # eo:common_name
    center_wavelength: float | None = None  # micrometres
    full_width_half_max: float | None = None
    scale: float | None = None  # physical = stored * scale + offset
    offset: float | None = None
    kind: str = "measurement"  # measurement | mask (1 valid / 0 not) | class (codes of a class table)


@dataclass(frozen=True)
class Product:
    """One asset's layout: dtype, nodata and its bands in file order."""

    key: str
    dtype: str
    nodata: float | int
    bands: tuple[Band, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(b.name for b in self.bands)

    @property
    def measurements(self) -> tuple[str, ...]:
        """The names of the bands that hold measurements (model inputs; masks and classes not)."""
        return tuple(b.name for b in self.bands if b.kind == "measurement")

    def index(self, names: list[str] | tuple[str, ...]) -> list[int]:
        """0-based positions of ``names``; a KeyError naming unknown bands and the valid ones."""
        pos = {n: i for i, n in enumerate(self.names)}
        missing = [n for n in names if n not in pos]
        if missing:
            raise KeyError(f"{self.key}: unknown band(s) {missing}; bands are {list(self.names)}")
        return [pos[n] for n in names]

    def is_nodata(self, arr: np.ndarray) -> np.ndarray:
        return np.isnan(arr) if isinstance(self.nodata, float) and np.isnan(self.nodata) else arr == self.nodata


def _s1_bands() -> tuple[Band, ...]:
    bands: list[Band] = []
    for t in range(RADAR_STEPS):
        ago = "newest date t" if t == 0 else f"t - {12 * t} days"
        bands += [
            Band(f"vh_t{t}", f"VH backscatter gamma0, RTC, {ago}", "dB"),
            Band(f"vv_t{t}", f"VV backscatter gamma0, RTC, {ago}", "dB"),
            Band(f"coh_t{t}", f"12-day InSAR coherence ending at {ago}", None),
            Band(f"phase_t{t}", f"12-day interferometric phase ending at {ago}", "rad"),
        ]
    bands += [
        Band("lia", "local incidence angle", "deg"),
        Band("slope", "terrain slope", "deg"),
        Band("valid", "valid-radar mask: 1 valid at all dates, 0 shadow/layover/no data", kind="mask"),
    ]
    return tuple(bands)


S1 = Product("s1", "float32", float("nan"), _s1_bands())

_S2_SPECTRAL = (
    ("B01", "coastal", 0.443, 0.027),
    ("B02", "blue", 0.490, 0.098),
    ("B03", "green", 0.560, 0.045),
    ("B04", "red", 0.665, 0.038),
    ("B05", "rededge", 0.704, 0.019),
    ("B06", "rededge", 0.740, 0.018),
    ("B07", "rededge", 0.783, 0.028),
    ("B08", "nir", 0.842, 0.145),
    ("B8A", "nir08", 0.865, 0.033),
    ("B09", "nir09", 0.945, 0.026),
    ("B11", "swir16", 1.610, 0.143),
    ("B12", "swir22", 2.190, 0.242),
)
S2_REFLECTANCE_SCALE = 1e-4
S2 = Product(
    "s2",
    "int16",
    -32768,
    tuple(
        Band(name, f"L2A surface reflectance {name} x 10000", None, cn, wl, fw, S2_REFLECTANCE_SCALE, 0.0)
        for name, cn, wl, fw in _S2_SPECTRAL
    )
    + (
        Band("SCL", "L2A scene classification (see the scl class table)", kind="class"),
        Band("cloud_mask", "1 valid and cloud-free, 0 cloud, cloud shadow or no data", kind="mask"),
    ),
)
LABEL = Product(
    "labels", "uint8", 255, (Band("class", "land-cover class code (see the AOI's class table)", kind="class"),)
)

PRODUCTS = {p.key: p for p in (S1, S2, LABEL)}
# Bands holding codes or masks, by name (never normalised; the loader reads them as they are)
CATEGORICAL = frozenset(b.name for p in PRODUCTS.values() for b in p.bands if b.kind != "measurement")

# The two generations of the original files (spec 7.5): readers of legacy folders use these.
LEGACY_S1_19 = S1.names  # the downloader's layout, same order as ours
LEGACY_S1_18 = S1.names[:18]  # the applications' export, without the validity mask
LEGACY_S2_14 = S2.names  # 12 L2A bands + SCL + DL cloud mask
LEGACY_S2_CA_14 = (
    "B01",
    "B02",
    "B03",
    "B04",
    "B05",
    "B06",
    "B07",
    "B08",
    "B8A",
    "B09",
    "B10",
    "B11",
    "B12",
    "CDL",
)  # older California export: includes cirrus, CDL appended (spec 4.1)
LEGACY_NODATA = -3000
