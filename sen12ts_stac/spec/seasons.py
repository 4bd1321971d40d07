"""The 2020 seasons and the pairing rules of the original (spec sections 2.3-2.8), as data
and small pure functions: radar series -> candidate triplets -> acceptance.

Fixes kept explicit (spec section 7.2): winter includes 29 February; every Sentinel-2 date within
the window is a candidate, not only the first; the per-tile-season attempt cap really counts.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from sen12ts_stac.errors import UserError

D = dt.date


@dataclass(frozen=True)
class Season:
    name: str
    windows: tuple[tuple[dt.date, dt.date], ...]  # Sentinel-2 search windows, inclusive

    def radar_windows(self, rules: "PairingRules") -> tuple[tuple[dt.date, dt.date], ...]:
        """Radar windows start (steps x interval) days earlier and end on the same day."""
        lead = dt.timedelta(days=rules.radar_steps * rules.radar_interval_days)
        return tuple((a - lead, b) for a, b in self.windows)

    def contains(self, day: dt.date) -> bool:
        return any(a <= day <= b for a, b in self.windows)


SEASONS: dict[str, Season] = {
    s.name: s
    for s in (
        Season("spring", ((D(2020, 3, 1), D(2020, 5, 31)),)),
        Season("summer", ((D(2020, 6, 1), D(2020, 8, 31)),)),
        Season("fall", ((D(2020, 9, 1), D(2020, 11, 30)),)),
        # The original ended the first window on 02-28 and so skipped the leap day.
        Season("winter", ((D(2020, 1, 1), D(2020, 2, 29)), (D(2020, 12, 1), D(2020, 12, 31)))),
    )
}
YEAR = 2020


def parse_seasons(text: str | None) -> tuple[Season, ...]:
    if not text:
        return tuple(SEASONS.values())
    names = [s.strip().lower() for s in text.split(",") if s.strip()]
    bad = [n for n in names if n not in SEASONS]
    if bad or not names:
        raise UserError(f"unknown season {', '.join(bad) or text!r}; known: {', '.join(SEASONS)}")
    return tuple(SEASONS[n] for n in dict.fromkeys(names))


def season_of(day: dt.date) -> str:
    for s in SEASONS.values():
        if s.contains(day):
            return s.name
    raise ValueError(f"{day} is outside the {YEAR} seasons")


def season_of_month(month: int) -> str:
    """The season a calendar month falls in, in any year (the seasons' windows are whole months)."""
    return season_of(dt.date(YEAR, month, 15))


@dataclass(frozen=True)
class PairingRules:
    radar_steps: int = 4  # radar dates per triplet
    radar_interval_days: int = 12  # days between them (one Sentinel-1 repeat cycle)
    s2_max_offset_days: int = 3  # |S2 date - newest radar date| <= this
    max_scene_cloud: float = 0.05  # scene-level cloud fraction of an S2 granule
    max_invalid_fraction: float = 0.01  # per modality: <= 1 % invalid pixels (655.36 of 256^2)
    max_triplets_per_tile_season: int = 4
    max_attempts_per_tile_season: int = 12  # the original's cap, which never counted (a bug)

    def invalid_ok(self, invalid: np.ndarray) -> bool:
        """True when the boolean invalid-pixel mask covers at most the allowed fraction."""
        return float(np.count_nonzero(invalid)) <= self.max_invalid_fraction * invalid.size


@dataclass(frozen=True)
class RadarScene:
    id: str
    date: dt.date
    track: int  # relative orbit
    orbit_state: str  # 'ascending' | 'descending'
    href: str | None = None


@dataclass(frozen=True)
class OpticalScene:
    id: str
    date: dt.date
    cloud_fraction: float  # 0..1, scene level
    href: str | None = None


@dataclass(frozen=True)
class RadarSeries:
    """Four radar dates on one track, newest first (t0 = t, t1 = t - 12 d, ...)."""

    track: int
    orbit_state: str
    scenes: tuple[RadarScene, ...]

    @property
    def dates(self) -> tuple[dt.date, ...]:
        return tuple(s.date for s in self.scenes)

    @property
    def newest(self) -> dt.date:
        return self.scenes[0].date


@dataclass(frozen=True)
class Candidate:
    series: RadarSeries
    optical: OpticalScene

    @property
    def key(self) -> str:
        """Triplet key, unique per tile: newest radar date, S2 date, track."""
        return f"{self.series.newest:%Y%m%d}_{self.optical.date:%Y%m%d}_{self.series.track:03d}"


@dataclass
class Inventory:
    """What a source found over one tile and season: radar scenes and optical scenes."""

    radar: list[RadarScene] = field(default_factory=list)
    optical: list[OpticalScene] = field(default_factory=list)


def radar_series(scenes: Iterable[RadarScene], season: Season, rules: PairingRules) -> list[RadarSeries]:
    """Every run of ``radar_steps`` dates exactly ``radar_interval_days`` apart on one track,
    inside one of the season's radar windows (spec 2.6). Same-date scenes on a track (adjacent
    slices) collapse to the first id. Sorted by (track, newest date)."""
    by_track: dict[tuple[int, str], dict[dt.date, RadarScene]] = defaultdict(dict)
    for s in scenes:
        by_track[(s.track, s.orbit_state)].setdefault(s.date, s)
    step = dt.timedelta(days=rules.radar_interval_days)
    out: list[RadarSeries] = []
    for (track, state), by_date in sorted(by_track.items()):
        for newest in sorted(by_date):
            dates = [newest - k * step for k in range(rules.radar_steps)]
            if not all(d in by_date for d in dates):
                continue
            if not any(a <= dates[-1] and newest <= b for a, b in season.radar_windows(rules)):
                continue
            out.append(RadarSeries(track, state, tuple(by_date[d] for d in dates)))
    return out


def candidates(inventory: Inventory, season: Season, rules: PairingRules) -> list[Candidate]:
    """Every (radar series, S2 scene) pair with the S2 date in the season, within the offset of
    the newest radar date, and with scene cloud at most the limit (spec 2.7)."""
    series = radar_series(inventory.radar, season, rules)
    optical = sorted(
        (o for o in inventory.optical if season.contains(o.date) and o.cloud_fraction <= rules.max_scene_cloud),
        key=lambda o: (o.date, o.id),
    )
    out = []
    for s in series:
        for o in optical:
            if abs((o.date - s.newest).days) <= rules.s2_max_offset_days:
                out.append(Candidate(s, o))
    return out


def seeded_rng(seed: int, *parts: str) -> np.random.Generator:
    """A generator seeded by ``seed`` and a stable hash of ``parts`` (e.g. tile id and season),
    so every tile-season draws the same numbers in any process, on any machine, in any order."""
    digest = hashlib.sha256("/".join((str(seed), *parts)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def candidate_order(cands: Sequence[Candidate], seed: int, tile_id: str, season: str) -> list[Candidate]:
    """Seeded shuffle of the candidates, so accepted triplets are spread over the season."""
    rng = seeded_rng(seed, tile_id, season, "candidates")
    return [cands[i] for i in rng.permutation(len(cands))]


SPLITS = ("train", "validate", "test")


def split_for(group: str, seed: int, fractions: tuple[float, float] = (0.7, 0.15)) -> str:
    """The split of a spatial group: a seeded hash mapped to train/validate/test.

    Hash-based assignment is stable: a tile keeps its split however many tiles the catalog holds,
    and all tiles of a group share it, so no tile (and no neighbourhood) is in two splits."""
    digest = hashlib.sha256(f"{seed}/split/{group}".encode()).digest()
    u = int.from_bytes(digest[:8], "little") / 2**64
    if u < fractions[0]:
        return "train"
    if u < fractions[0] + fractions[1]:
        return "validate"
    return "test"
