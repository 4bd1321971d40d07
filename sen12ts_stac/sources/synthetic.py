"""A synthetic, deterministic, physically plausible source: the offline default.

Everything is drawn from a generator seeded by (seed, tile id, scene), so the same tile always
gets the same pixels in any process. The model (documented in docs/synthetic-model.md):

* **Land cover.** Parcels from recursive rectangle splits (parcel size set by the AOI's farming
  style), each given a class drawn from an AOI palette of real class codes (CDL, SIGPAC or
  WorldCover); water bodies are blobs of a smooth random field.
* **Phenology.** Each class has a surface type with a double-logistic vegetation curve over the
  day of year (fractional cover ``fc`` in 0..1, ``LAI = 5 fc``); each parcel jitters its dates and
  peak. Alfalfa is cut monthly, winter cereals peak in spring, tropical crops have two seasons.
* **Sentinel-2.** Linear mixing of vegetation, soil (darker when wet), water and urban spectra
  for the 12 L2A bands, plus sensor noise; clouds are thresholded smooth fields with a bright flat
  spectrum, their shadows darken the ground; SCL and the cloud mask are derived from the same
  clouds, so they agree. Stored as int16 reflectance x 10000.
* **Sentinel-1.** Water-cloud model per polarisation,
  ``g0 = A V cos(t) (1 - T2) + T2 g0_soil``, ``T2 = exp(-2 B V / cos t)``, with V = LAI and the
  soil term rising with soil moisture (a daily rain/dry-down series per tile); water is specular
  (dark), built-up is double-bounce (bright). Local incidence angle comes from the swath position
  of the track and the terrain normal; multiplicative gamma speckle (ENL 4.9). 12-day coherence
  falls as vegetation grows and when soil moisture changes; phase is a smooth atmospheric screen
  plus noise whose spread follows the coherence. Slope from a fractal terrain surface.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from sen12ts_stac.sources.base import Reading
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
    seeded_rng,
)

N = TILE_PX
ENL = 4.9  # equivalent number of looks of an RTC product at 10 m

# Surface types: vegetation curve parameters (vmin, vmax, start, end of season in day of year),
# and what shows through where vegetation is sparse.
#               vmin  vmax  sos  eos  background
SURFACES = {
    "summer_crop": (0.04, 0.92, 150, 262, "soil"),
    "soy": (0.04, 0.88, 168, 272, "soil"),
    "winter_crop": (0.20, 0.90, 70, 160, "soil"),
    "rice": (0.02, 0.92, 170, 270, "flooded"),
    "alfalfa": (0.30, 0.85, 80, 300, "soil"),
    "orchard": (0.30, 0.62, 75, 305, "soil"),
    "vineyard": (0.12, 0.48, 110, 290, "soil"),
    "tropical_crop": (0.10, 0.85, 75, 170, "soil"),  # plus a second season, see _vegetation
    "highland_crop": (0.08, 0.85, 185, 300, "soil"),
    "deciduous": (0.30, 0.92, 115, 295, "soil"),
    "evergreen": (0.82, 0.90, 0, 366, "soil"),
    "grass": (0.28, 0.66, 95, 215, "soil"),
    "grass_winter": (0.20, 0.62, -30, 130, "soil"),  # mediterranean: green in the wet winter
    "shrub": (0.22, 0.42, 90, 260, "soil"),
    "fallow": (0.04, 0.14, 90, 200, "soil"),
    "wetland": (0.40, 0.80, 90, 280, "flooded"),
    "urban": (0.06, 0.12, 100, 250, "urban"),
    "water": (0.0, 0.0, 0, 366, "water"),
}

# Per AOI: class code -> (surface type, weight). Codes are the AOI's label table (CDL, SIGPAC,
# WorldCover); None marks land with no label (SIGPAC covers only declared parcels).
PALETTES: dict[str, dict[int | None, tuple[str, float]]] = {
    "california": {
        75: ("orchard", 0.16),
        69: ("vineyard", 0.09),
        36: ("alfalfa", 0.09),
        3: ("rice", 0.08),
        54: ("summer_crop", 0.07),
        61: ("fallow", 0.10),
        24: ("winter_crop", 0.07),
        1: ("summer_crop", 0.05),
        2: ("summer_crop", 0.04),
        204: ("orchard", 0.06),
        121: ("urban", 0.05),
        176: ("grass_winter", 0.08),
        111: ("water", 0.02),
    },
    "iowa": {
        1: ("summer_crop", 0.42),
        5: ("soy", 0.33),
        176: ("grass", 0.08),
        37: ("alfalfa", 0.04),
        141: ("deciduous", 0.05),
        121: ("urban", 0.04),
        122: ("urban", 0.02),
        111: ("water", 0.02),
    },
    "catalonia": {
        110: ("winter_crop", 0.24),
        16: ("winter_crop", 0.14),
        13: ("summer_crop", 0.12),
        5: ("alfalfa", 0.10),
        109: ("orchard", 0.08),
        169: ("vineyard", 0.05),
        8: ("orchard", 0.06),
        127: ("orchard", 0.04),
        75: ("fallow", 0.07),
        37: ("grass_winter", 0.05),
        None: ("urban", 0.05),
    },
    "ethiopia": {
        40: ("highland_crop", 0.45),
        30: ("grass", 0.20),
        20: ("shrub", 0.12),
        10: ("evergreen", 0.12),
        60: ("fallow", 0.05),
        50: ("urban", 0.04),
        80: ("water", 0.02),
    },
    "uganda": {
        40: ("tropical_crop", 0.38),
        10: ("evergreen", 0.20),
        30: ("grass", 0.18),
        20: ("shrub", 0.10),
        90: ("wetland", 0.06),
        50: ("urban", 0.04),
        80: ("water", 0.04),
    },
    "sumatra": {
        10: ("evergreen", 0.45),
        40: ("tropical_crop", 0.25),
        30: ("grass", 0.08),
        20: ("shrub", 0.07),
        95: ("wetland", 0.04),
        50: ("urban", 0.06),
        80: ("water", 0.05),
    },
}
PARCEL_PX = {"california": 32, "iowa": 40, "catalonia": 16, "ethiopia": 8, "uganda": 10, "sumatra": 20}
# Median terrain slope (degrees) of the synthetic terrain, by AOI.
MEDIAN_SLOPE_DEG = {"california": 0.4, "iowa": 1.5, "catalonia": 3.0, "ethiopia": 7.0, "uganda": 2.5, "sumatra": 3.5}
# Mean scene cloud fraction by climate and season (drives how many S2 scenes pass the 5 % rule).
CLOUDINESS = {
    "mediterranean": {"winter": 0.45, "spring": 0.30, "summer": 0.06, "fall": 0.20},
    "temperate": {"winter": 0.60, "spring": 0.45, "summer": 0.30, "fall": 0.40},
    "highland": {"winter": 0.25, "spring": 0.45, "summer": 0.80, "fall": 0.45},
    "tropical": {"winter": 0.45, "spring": 0.55, "summer": 0.45, "fall": 0.55},
}
SOIL_MOISTURE = {
    "mediterranean": (0.08, 0.8),
    "temperate": (0.18, 1.2),
    "highland": (0.12, 1.0),
    "tropical": (0.22, 1.5),
}

# 12-band endmember reflectance spectra (B01..B12 without B10), fraction 0..1.
SPEC_VEG = np.array([0.030, 0.040, 0.080, 0.040, 0.120, 0.300, 0.380, 0.420, 0.440, 0.450, 0.220, 0.100])
SPEC_SOIL = np.array([0.080, 0.100, 0.140, 0.180, 0.210, 0.230, 0.250, 0.260, 0.270, 0.270, 0.330, 0.280])
SPEC_WATER = np.array([0.060, 0.060, 0.050, 0.030, 0.020, 0.015, 0.012, 0.010, 0.010, 0.008, 0.005, 0.003])
SPEC_URBAN = np.array([0.100, 0.120, 0.140, 0.160, 0.180, 0.190, 0.200, 0.210, 0.210, 0.210, 0.240, 0.220])
SPEC_CLOUD = np.array([0.550, 0.560, 0.560, 0.580, 0.590, 0.600, 0.600, 0.600, 0.600, 0.450, 0.450, 0.400])

# Water-cloud model parameters (linear power), per polarisation: A, B, soil C (dB), D (dB per m3/m3).
WCM = {"vv": (0.060, 0.20, -17.0, 22.0), "vh": (0.015, 0.25, -25.5, 14.0)}
START = dt.date(2019, 11, 1)  # radar windows of winter reach back into November 2019
END = dt.date(2020, 12, 31)


def gaussian_field(rng: np.random.Generator, beta: float = 3.0, shape=(N, N)) -> np.ndarray:
    """A zero-mean, unit-variance random field with power spectrum ~ 1/f^beta (FFT synthesis)."""
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    f = np.sqrt(fx**2 + fy**2)
    f[0, 0] = 1.0
    amp = f ** (-beta / 2.0)
    amp[0, 0] = 0.0
    noise = rng.normal(size=(shape[0], shape[1] // 2 + 1)) + 1j * rng.normal(size=(shape[0], shape[1] // 2 + 1))
    field = np.fft.irfft2(noise * amp, s=shape)
    return (field - field.mean()) / (field.std() + 1e-12)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


@dataclass
class TileModel:
    """Everything about a tile that does not change with the date."""

    label: np.ndarray  # (N, N) uint8 class codes (255 = no label)
    parcel: np.ndarray  # (N, N) int32 parcel index
    parcel_surface: list[str]  # surface type per parcel
    parcel_sos_shift: np.ndarray  # days, per parcel
    parcel_vmax_scale: np.ndarray  # per parcel
    parcel_soil_offset: np.ndarray  # soil moisture offset per parcel (irrigation, texture)
    water: np.ndarray  # (N, N) bool: open water
    elevation: np.ndarray  # (N, N) metres
    slope_deg: np.ndarray
    normal: np.ndarray  # (3, N, N) unit surface normals (east, north, up)
    soil_moisture: dict[dt.date, float]  # daily tile-mean volumetric soil moisture
    s2_offset: int  # S2 revisit phase (days)
    tracks: list[tuple[int, str, int, float]]  # (relative orbit, orbit state, phase, swath position)


class SyntheticSource:
    """Offline, seeded, physically plausible SEN12TS triplets (see module docstring)."""

    name = "synthetic"
    license = "CC0-1.0"
    providers = [
        {
            "name": "sen12ts-stac synthetic source",
            "roles": ["producer", "processor"],
            "description": "Simulated Sentinel-1/2 and land cover; see docs/synthetic-model.md",
        }
    ]

    def __init__(self, aoi: AOI, seed: int = 0, rules: PairingRules | None = None):
        self.aoi = aoi
        self.seed = seed
        self.rules = rules or PairingRules()
        self.palette = PALETTES[aoi.name]

    # ------------------------------------------------------------------ static tile model
    @lru_cache(maxsize=8)  # noqa: B019 - a few tiles per source object, which lives for the run
    def model(self, tile: Tile) -> TileModel:
        rng = seeded_rng(self.seed, self.aoi.name, tile.id, "model")
        parcel = _parcels(rng, PARCEL_PX[self.aoi.name])
        n_parcels = int(parcel.max()) + 1
        codes = list(self.palette)
        weights = np.array([self.palette[c][1] for c in codes])
        picks = rng.choice(len(codes), size=n_parcels, p=weights / weights.sum())
        # Open water as blobs of a smooth field, in about a third of the tiles.
        water = np.zeros((N, N), bool)
        water_codes = [c for c in codes if c is not None and self.palette[c][0] == "water"]
        if water_codes and rng.random() < 0.35:
            water = gaussian_field(rng, 4.0) > rng.uniform(1.3, 2.2)
        label = np.empty((N, N), np.uint8)
        surfaces = []
        for p in range(n_parcels):
            code = codes[picks[p]]
            surfaces.append(self.palette[code][0])
        code_arr = np.array([255 if codes[i] is None else codes[i] for i in picks], np.uint8)
        label[:] = code_arr[parcel]
        if water.any():
            label[water] = water_codes[0]
        relief = gaussian_field(rng, 4.5)
        gy, gx = np.gradient(relief, RESOLUTION_M)
        # Scale the relief so its median slope matches the AOI's terrain.
        scale = np.tan(np.radians(MEDIAN_SLOPE_DEG[self.aoi.name])) / np.median(np.hypot(gx, gy))
        elevation, gy, gx = relief * scale + 300.0, gy * scale, gx * scale
        # Image rows run south (down), so north-facing gradient is -gy.
        zx, zy = gx, -gy
        norm = np.sqrt(zx**2 + zy**2 + 1.0)
        normal = np.stack([-zx / norm, -zy / norm, 1.0 / norm]).astype(np.float32)
        slope = np.degrees(np.arctan(np.sqrt(zx**2 + zy**2))).astype(np.float32)
        base, rain = SOIL_MOISTURE[self.aoi.climate]
        soil = _soil_moisture_series(rng, base, rain, self.aoi.climate)
        n_tracks = 2 if rng.random() < 0.6 else 1
        states = ["ascending", "descending"]
        rng.shuffle(states)
        tracks = [
            (int(rng.integers(1, 176)), states[k], int(rng.integers(0, 12)), float(rng.random()))
            for k in range(n_tracks)
        ]
        return TileModel(
            label=label,
            parcel=parcel,
            parcel_surface=surfaces,
            parcel_sos_shift=rng.normal(0, 9, n_parcels),
            parcel_vmax_scale=rng.uniform(0.8, 1.05, n_parcels),
            parcel_soil_offset=rng.normal(0, 0.03, n_parcels),
            water=water,
            elevation=elevation.astype(np.float32),
            slope_deg=slope,
            normal=normal,
            soil_moisture=soil,
            s2_offset=int(rng.integers(0, 5)),
            tracks=tracks,
        )

    def vegetation(self, tile: Tile, day: dt.date) -> np.ndarray:
        """Fractional vegetation cover (0..1) of every pixel on ``day``."""
        m = self.model(tile)
        doy = day.timetuple().tm_yday + (365 if day.year > 2020 else 0) - (366 if day.year < 2020 else 0)
        per_parcel = np.array(
            [
                _curve(s, doy - shift, scale)
                for s, shift, scale in zip(m.parcel_surface, m.parcel_sos_shift, m.parcel_vmax_scale)
            ],
            np.float32,
        )
        fc = per_parcel[m.parcel]
        fc[m.water] = 0.0
        return fc

    # ------------------------------------------------------------------ protocol
    def inventory(self, tile: Tile, season: Season) -> Inventory:
        m = self.model(tile)
        rng = seeded_rng(self.seed, self.aoi.name, tile.id, "inventory")
        radar: list[RadarScene] = []
        for track, state, phase, _ in m.tracks:
            day = START + dt.timedelta(days=phase)
            while day <= END:
                if rng.random() >= 0.04:  # ~4 % of acquisitions missing (outages, slicing gaps)
                    radar.append(
                        RadarScene(f"SYN_S1_{day:%Y%m%d}_{track:03d}_{state[:3].upper()}_{tile.id}", day, track, state)
                    )
                day += dt.timedelta(days=12)
        optical: list[OpticalScene] = []
        day = dt.date(2020, 1, 1) + dt.timedelta(days=m.s2_offset)
        while day <= END:
            mean = CLOUDINESS[self.aoi.climate][_season_name(day)]
            k = 1.2
            cloud = float(rng.beta(mean * k, (1 - mean) * k))
            optical.append(OpticalScene(f"SYN_S2_{day:%Y%m%d}_{tile.id}", day, round(cloud, 4)))
            day += dt.timedelta(days=5)
        windows = season.radar_windows(self.rules)
        return Inventory(
            radar=[r for r in radar if any(a <= r.date <= b for a, b in windows)],
            optical=[o for o in optical if season.contains(o.date)],
        )

    def read_label(self, tile: Tile) -> Reading:
        return Reading(self.model(tile).label[None].copy(), [], {})

    def read_s2(self, tile: Tile, scene: OpticalScene) -> Reading:
        m = self.model(tile)
        rng = seeded_rng(self.seed, self.aoi.name, tile.id, scene.id)
        fc = self.vegetation(tile, scene.date)[..., None]
        wet = np.clip(m.soil_moisture[scene.date] + m.parcel_soil_offset[m.parcel], 0.02, 0.5)[..., None]
        soil = SPEC_SOIL[None, None, :] * (1.0 - 0.9 * wet)
        surfaces = np.array(m.parcel_surface)[m.parcel]
        background = np.where((surfaces == "urban")[..., None], SPEC_URBAN, soil)
        flooded = (surfaces == "flooded") | np.isin(surfaces, ["rice", "wetland"]) & (fc[..., 0] < 0.3)
        background = np.where(flooded[..., None], 0.5 * SPEC_WATER + 0.5 * soil, background)
        refl = fc * SPEC_VEG + (1.0 - fc) * background
        refl = np.where(m.water[..., None], SPEC_WATER, refl)
        refl = refl * (1.0 + 0.04 * gaussian_field(rng, 2.0)[..., None]) + rng.normal(0, 0.004, refl.shape)
        # Clouds over the tile: the scene is <= 5 % cloudy overall, but clouds cluster.
        tile_cloud = 0.0 if rng.random() < 0.55 else min(0.6, scene.cloud_fraction * rng.gamma(0.8, 2.0))
        opacity = np.zeros((N, N))
        if tile_cloud > 0:
            f = gaussian_field(rng, 3.5)
            thr = np.quantile(f, 1.0 - tile_cloud)
            opacity = np.clip((f - thr) / 0.6, 0.0, 1.0)
        shadow = np.roll(opacity, shift=(12, -9), axis=(0, 1)) > 0.3
        shadow &= opacity < 0.05
        refl = np.where(shadow[..., None], refl * 0.35, refl)
        refl = refl * (1.0 - opacity[..., None]) + SPEC_CLOUD * opacity[..., None]
        dn = np.clip(np.round(refl * 10000.0), 0, 10000).astype(np.int16).transpose(2, 0, 1)
        ndvi = (refl[..., 7] - refl[..., 3]) / (refl[..., 7] + refl[..., 3] + 1e-6)
        scl = np.where(ndvi > 0.35, 4, 5).astype(np.int16)
        scl[(m.water | flooded) & (ndvi < 0.2)] = 6
        scl[shadow] = 3
        scl[(opacity > 0.05) & (opacity <= 0.4)] = 10
        scl[(opacity > 0.4) & (opacity <= 0.75)] = 8
        scl[opacity > 0.75] = 9
        nodata = np.zeros((N, N), bool)
        if rng.random() < 0.03:  # the tile sits on the edge of the granule's data swath
            cut = int(rng.integers(20, 200))
            nodata[:, :cut] = True
        scl[nodata] = 0
        clear = ~np.isin(scl, [0, 1, 3, 8, 9, 10])
        out = np.concatenate([dn, scl[None], clear[None].astype(np.int16)])
        out[:, nodata] = bands.S2.nodata
        props = {"eo:cloud_cover": round(100 * scene.cloud_fraction, 2)}
        return Reading(out, [scene.href] if scene.href else [], props)

    def read_s1(self, tile: Tile, series: RadarSeries) -> Reading:
        m = self.model(tile)
        rng = seeded_rng(self.seed, self.aoi.name, tile.id, "s1", str(series.track), *(s.id for s in series.scenes))
        track = next(t for t in m.tracks if t[0] == series.track)
        theta = np.radians(30.5 + 15.5 * track[3] + np.linspace(-0.08, 0.08, N)[None, :])  # near -> far range
        theta = np.broadcast_to(theta, (N, N))
        east = 1.0 if series.orbit_state == "ascending" else -1.0  # right-looking: east when heading north
        to_sensor = np.stack([-east * np.sin(theta), np.zeros((N, N)), np.cos(theta)])
        cos_lia = np.clip((m.normal * to_sensor).sum(0), -1.0, 1.0)
        lia = np.degrees(np.arccos(cos_lia)).astype(np.float32)
        surfaces = np.array(m.parcel_surface)[m.parcel]
        layers = []
        valid = (lia > 5.0) & (lia < 80.0)  # layover / shadow where the terrain faces or hides
        if rng.random() < 0.03:  # tile on the edge of the swath: a strip with no data
            cut = int(rng.integers(15, 120))
            valid[:, :cut] = False
        prev_mv = None
        for scene in series.scenes:
            fc = self.vegetation(tile, scene.date)
            lai = 5.0 * fc
            mv = np.clip(m.soil_moisture[scene.date] + m.parcel_soil_offset[m.parcel], 0.02, 0.5)
            flooded = np.isin(surfaces, ["rice", "wetland"]) & (fc < 0.3)
            cos_l = np.clip(cos_lia, 0.05, 1.0)
            step = []
            for pol in ("vh", "vv"):
                a, b, c, d = WCM[pol]
                soil = 10 ** ((c + d * mv) / 10.0) * (cos_l / np.cos(theta)) ** 1.5
                t2 = np.exp(-2.0 * b * lai / cos_l)
                g0 = a * lai * cos_l * (1.0 - t2) + t2 * soil
                g0 = np.where(m.water | flooded, 10 ** ((-24.0 if pol == "vv" else -30.0) / 10) * (1 + 0.5 * fc), g0)
                g0 = np.where(surfaces == "urban", 10 ** ((-4.0 if pol == "vv" else -11.0) / 10), g0)
                g0 = g0 * rng.gamma(ENL, 1.0 / ENL, size=(N, N))
                step.append(10.0 * np.log10(np.maximum(g0, 1e-6)))
            # 12-day coherence: temporal decorrelation grows with vegetation volume and soil change.
            dmv = 0.0 if prev_mv is None else np.abs(mv - prev_mv)
            gamma0 = np.where(surfaces == "urban", 0.78, 0.62 * np.exp(-0.45 * lai) + 0.08)
            gamma0 = np.where(m.water | flooded, 0.06, gamma0) * np.exp(-4.0 * dmv)
            coh_noise = rng.normal(0, 1, (N, N)) * (1 - gamma0**2) / np.sqrt(2 * 20)
            coh = np.clip(gamma0 + coh_noise + 0.04, 0.0, 1.0)
            sigma_phi = np.sqrt((1 - gamma0**2) / (2 * 20 * np.maximum(gamma0, 0.05) ** 2))
            phase = 1.2 * gaussian_field(rng, 3.8) + rng.normal(0, 1, (N, N)) * np.minimum(sigma_phi, 3.0)
            phase = np.angle(np.exp(1j * phase))
            step += [coh, phase]
            layers += step
            prev_mv = mv
        out = np.stack([*layers, lia, m.slope_deg, valid.astype(np.float32)]).astype(np.float32)
        out[:16, ~valid] = np.nan
        props = {"sat:relative_orbit": series.track, "sat:orbit_state": series.orbit_state}
        return Reading(out, [s.href for s in series.scenes if s.href], props)


def _curve(surface: str, doy: float, scale: float) -> float:
    vmin, vmax, sos, eos, _ = SURFACES[surface]
    vmax = vmin + (vmax - vmin) * scale
    k = 8.0
    if surface == "evergreen" or surface == "water":
        return vmin + (vmax - vmin) * 0.5 * (1 + np.sin(2 * np.pi * doy / 365.0))
    v = _sigmoid((doy - sos) / k) - _sigmoid((doy - eos) / k)
    if surface == "tropical_crop":  # bimodal rains: a second season Sep-Dec
        v = max(v, _sigmoid((doy - 250) / k) - _sigmoid((doy - 340) / k))
    if surface == "winter_crop":  # sown in autumn: low cover through winter
        v = max(v, 0.25 * _sigmoid((doy - 300) / k))
    if surface == "grass_winter":
        v = max(v, _sigmoid((doy - 335) / k))
    if surface == "alfalfa" and sos <= doy <= eos:  # cut about every 30 days
        v *= 0.35 + 0.65 * ((doy - sos) % 30) / 30.0
    return float(vmin + (vmax - vmin) * v)


def _parcels(rng: np.random.Generator, size: int) -> np.ndarray:
    """Parcel index map from recursive random splits of the tile into rectangles."""
    out = np.zeros((N, N), np.int32)
    stack = [(0, 0, N, N)]
    n = 0
    while stack:
        r0, c0, r1, c1 = stack.pop()
        h, w = r1 - r0, c1 - c0
        if max(h, w) <= size * rng.uniform(0.8, 1.6) or min(h, w) < 4:
            out[r0:r1, c0:c1] = n
            n += 1
            continue
        if h >= w:
            cut = r0 + int(h * rng.uniform(0.3, 0.7))
            stack += [(r0, c0, cut, c1), (cut, c0, r1, c1)]
        else:
            cut = c0 + int(w * rng.uniform(0.3, 0.7))
            stack += [(r0, c0, r1, cut), (r0, cut, r1, c1)]
    return out


def _season_name(day: dt.date) -> str:
    return season_of_month(day.month)


def _soil_moisture_series(rng: np.random.Generator, base: float, rain: float, climate: str) -> dict[dt.date, float]:
    """Daily tile-mean soil moisture: rain pulses that dry down exponentially (tau = 6 days)."""
    days = (END - START).days + 1
    out: dict[dt.date, float] = {}
    mv = base
    for i in range(days):
        day = START + dt.timedelta(days=i)
        wet_season = CLOUDINESS[climate][_season_name(day)]
        if rng.random() < 0.35 * wet_season * rain:
            mv += rng.exponential(0.06)
        mv = base + (mv - base) * np.exp(-1.0 / 6.0)
        out[day] = float(np.clip(mv, 0.03, 0.48))
    return out


__all__ = ["SyntheticSource", "gaussian_field"]
