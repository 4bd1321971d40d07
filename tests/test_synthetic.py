"""The synthetic source: deterministic, and physically plausible in the ways models can learn from."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from sen12ts_stac.sources import make_source
from sen12ts_stac.sources.synthetic import SyntheticSource
from sen12ts_stac.spec import bands
from sen12ts_stac.spec.aois import get_aoi
from sen12ts_stac.spec.classes import class_table
from sen12ts_stac.spec.grid import tiles_in
from sen12ts_stac.spec.seasons import SEASONS, OpticalScene, PairingRules, RadarScene, RadarSeries, candidates

D = dt.date


@pytest.fixture(scope="module")
def iowa():
    aoi = get_aoi("iowa")
    return SyntheticSource(aoi, seed=0), tiles_in(aoi.polygon)[:6]


def _series(day: dt.date, state: str = "ascending", track: int = 42) -> RadarSeries:
    return RadarSeries(
        track, state, tuple(RadarScene(f"x{day}{k}", day - dt.timedelta(days=12 * k), track, state) for k in range(4))
    )


def _s1(src, tile, day):
    """S1 stack for a series ending on ``day`` on the tile's first track."""
    track, state = src.model(tile).tracks[0][:2]
    return src.read_s1(tile, _series(day, state, track)).data


def test_registry_and_determinism(iowa):
    src, tiles = iowa
    other = make_source("synthetic", get_aoi("iowa"), seed=0)
    tile = tiles[0]
    scene = OpticalScene("s", D(2020, 7, 15), 0.0)
    assert np.array_equal(src.read_s2(tile, scene).data, other.read_s2(tile, scene).data)
    assert np.array_equal(src.read_label(tile).data, other.read_label(tile).data)
    different = make_source("synthetic", get_aoi("iowa"), seed=1)
    assert not np.array_equal(src.read_label(tile).data, different.read_label(tile).data)


def test_shapes_dtypes_and_class_codes(iowa):
    src, tiles = iowa
    tile = tiles[0]
    s1 = _s1(src, tile, D(2020, 7, 20))
    s2 = src.read_s2(tile, OpticalScene("s", D(2020, 7, 20), 0.0)).data
    label = src.read_label(tile).data
    assert s1.shape == (19, 256, 256) and s1.dtype == np.float32
    assert s2.shape == (14, 256, 256) and s2.dtype == np.int16
    assert label.shape == (1, 256, 256) and label.dtype == np.uint8
    table = class_table("cdl")
    assert set(np.unique(label)) <= set(table.values)


def test_vh_backscatter_rises_and_coherence_falls_with_vegetation(iowa):
    src, tiles = iowa
    fc_all, vh_all, coh_all = [], [], []
    for tile in tiles[:4]:
        for day in (D(2020, 4, 20), D(2020, 6, 15), D(2020, 7, 25), D(2020, 10, 20)):
            s1 = _s1(src, tile, day)
            fc = src.vegetation(tile, day)
            land = ~src.model(tile).water & np.isin(src.model(tile).label, [1, 5]) & np.isfinite(s1[0])  # corn, soy
            fc_all.append(fc[land])
            vh_all.append(10 ** (s1[0][land] / 10))  # linear, so the mean averages speckle correctly
            coh_all.append(s1[2][land])
    fc, vh, coh = (np.concatenate(x) for x in (fc_all, vh_all, coh_all))
    bare, dense = fc < 0.2, fc > 0.7
    assert bare.sum() > 1000 and dense.sum() > 1000
    vh_gain_db = 10 * np.log10(vh[dense].mean() / vh[bare].mean())
    assert vh_gain_db > 4.0, vh_gain_db  # volume scattering: VH rises with vegetation
    assert coh[dense].mean() < coh[bare].mean() - 0.15  # temporal decorrelation grows with vegetation
    assert np.corrcoef(fc, coh)[0, 1] < -0.5


def test_speckle_is_multiplicative_gamma(iowa):
    src, tiles = iowa
    tile = tiles[1]
    m = src.model(tile)
    s1 = _s1(src, tile, D(2020, 7, 1))
    vv_lin = 10 ** (s1[1] / 10)
    parcel = np.bincount(m.parcel.ravel()).argmax()  # the largest parcel: homogeneous
    x = vv_lin[(m.parcel == parcel) & ~m.water]
    cv = x.std() / x.mean()
    assert 0.35 < cv < 0.6, cv  # 1 / sqrt(ENL = 4.9) = 0.45, plus the parcel's slight texture


def test_optical_follows_phenology_and_clouds_agree_with_scl(iowa):
    src, tiles = iowa
    tile = tiles[2]
    corn = src.model(tile).label == 1
    if not corn.any():
        corn = src.model(tile).label == 5
    summer = src.read_s2(tile, OpticalScene("a", D(2020, 7, 25), 0.0)).data.astype(float) * 1e-4
    spring = src.read_s2(tile, OpticalScene("b", D(2020, 4, 10), 0.0)).data.astype(float) * 1e-4
    ndvi = lambda s: (s[7] - s[3]) / (s[7] + s[3])  # noqa: E731
    assert ndvi(summer)[corn].mean() > ndvi(spring)[corn].mean() + 0.3
    fc = src.vegetation(tile, D(2020, 7, 25))
    clear = (summer[13] * 1e4 == 1) & (summer[7] + summer[3] > 0)
    assert np.corrcoef(fc[clear], ndvi(summer)[clear])[0, 1] > 0.9
    # A cloudy scene: cloud pixels are bright, and SCL, mask and brightness agree.
    for k in range(40):
        s2 = src.read_s2(tile, OpticalScene(f"c{k}", D(2020, 5, 1), 0.05)).data
        scl, mask = s2[12], s2[13]
        if (mask == 0).mean() > 0.01:
            break
    else:
        pytest.fail("no cloudy scene in 40 draws")
    cloudy = np.isin(scl, [3, 8, 9, 10]) | (scl == 0)
    assert np.array_equal(mask == 0, cloudy)
    thick = scl == 9
    if thick.any():
        assert s2[1][thick].mean() > 3 * s2[1][scl == 4].mean()


def test_incidence_angle_and_terrain(iowa):
    src, tiles = iowa
    tile = tiles[3]
    m = src.model(tile)
    s1 = _s1(src, tile, D(2020, 8, 1))
    lia, slope = s1[bands.S1.index(["lia"])[0]], s1[bands.S1.index(["slope"])[0]]
    assert 25 < np.median(lia) < 52  # IW swath 30-46 deg, plus terrain
    assert 0.8 < np.median(slope) < 2.5  # Iowa's rolling terrain (median 1.5 deg)
    # On a flat surface LIA equals the ellipsoid incidence; slopes facing the radar lower it.
    east_facing = m.normal[0] > np.quantile(m.normal[0], 0.9)
    west_facing = m.normal[0] < np.quantile(m.normal[0], 0.1)
    state = m.tracks[0][1]
    facing, away = (west_facing, east_facing) if state == "ascending" else (east_facing, west_facing)
    assert lia[facing].mean() < lia[away].mean()


def test_inventory_obeys_sensor_cadence(iowa):
    src, tiles = iowa
    inv = src.inventory(tiles[0], SEASONS["summer"])
    by_track = {}
    for r in inv.radar:
        by_track.setdefault(r.track, []).append(r.date)
    for dates in by_track.values():
        gaps = np.diff(sorted(dates))
        assert all(g.days % 12 == 0 for g in gaps)  # Sentinel-1 12-day repeat per track
    gaps = np.diff(sorted(o.date for o in inv.optical))
    assert all(g.days == 5 for g in gaps)  # Sentinel-2 5-day revisit
    assert all(0 <= o.cloud_fraction <= 1 for o in inv.optical)
    assert candidates(inv, SEASONS["summer"], PairingRules()) is not None


def test_every_aoi_yields_triplets():
    for name in ("california", "iowa", "catalonia", "ethiopia", "uganda", "sumatra"):
        aoi = get_aoi(name)
        src = SyntheticSource(aoi, seed=0)
        n = sum(
            min(4, len(candidates(src.inventory(t, s), s, PairingRules())))
            for t in tiles_in(aoi.polygon)[:8]
            for s in SEASONS.values()
        )
        assert n >= 8, (name, n)
