"""The dataset as data: AOIs, the tile grid, seasons and the pairing rules."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from pyproj import Geod
from shapely.geometry import Point

from sen12ts_stac.errors import UserError
from sen12ts_stac.spec import bands
from sen12ts_stac.spec.aois import AOIS, get_aoi, parse_bbox, restrict
from sen12ts_stac.spec.grid import TILE_M, Tile, tile_for_lonlat, tiles_in, utm_zone
from sen12ts_stac.spec.seasons import (
    SEASONS,
    Inventory,
    OpticalScene,
    PairingRules,
    RadarScene,
    candidate_order,
    candidates,
    parse_seasons,
    radar_series,
    split_for,
)

D = dt.date


# ---------------------------------------------------------------- AOIs
def test_six_aois_with_their_label_sources():
    assert list(AOIS) == ["california", "iowa", "catalonia", "ethiopia", "uganda", "sumatra"]
    tables = {n: a.label_table for n, a in AOIS.items()}
    assert tables == {
        "california": "cdl",
        "iowa": "cdl",
        "catalonia": "sigpac",
        "ethiopia": "worldcover",
        "uganda": "worldcover",
        "sumatra": "worldcover",
    }
    for a in AOIS.values():
        assert a.polygon.is_valid and a.polygon.area > 0


def test_aoi_lookup_and_bbox_errors():
    assert get_aoi(" Uganda ").name == "uganda"
    with pytest.raises(UserError, match="unknown AOI 'mars'.*uganda"):
        get_aoi("mars")
    assert parse_bbox("32,0,33,1") == (32.0, 0.0, 33.0, 1.0)
    for bad in ("1,2,3", "a,b,c,d", "10,0,5,1", "0,0,1,95"):
        with pytest.raises(UserError, match="bad bbox"):
            parse_bbox(bad)
    with pytest.raises(UserError, match="does not overlap"):
        restrict(get_aoi("uganda"), (0.0, 40.0, 1.0, 41.0))


# ---------------------------------------------------------------- grid
def test_tile_geometry_follows_the_dltile_grid():
    t = Tile(11, -5, 1500)
    assert t.dltile_key == "256:0:10.0:11:-5:1500"
    assert t.bounds == (500000 - 5 * 2560, 1500 * 2560, 500000 - 4 * 2560, 1501 * 2560)
    assert t.transform.a == 10 and t.transform.e == -10
    assert (t.transform.c, t.transform.f) == (t.bounds[0], t.bounds[3])
    assert t.epsg == 32611 and t.shape == (256, 256)
    assert Tile.from_id(t.id) == t
    with pytest.raises(UserError):
        Tile.from_id("11_a_3")


def test_south_of_equator_uses_north_zone_with_negative_northing():
    t = tile_for_lonlat(32.5, -1.0)  # Uganda, Lake Victoria shore
    assert t.epsg == 32636 and t.row < 0 and t.bounds[1] < 0
    assert t.polygon_lonlat.contains(Point(32.5, -1.0))


def test_tile_for_lonlat_round_trips_centroid():
    for lon, lat in [(-120.0, 36.5), (-93.5, 42.0), (1.0, 41.6), (38.7, 9.0), (32.5, 0.3), (101.4, 0.5)]:
        t = tile_for_lonlat(lon, lat)
        assert t.polygon_lonlat.contains(Point(lon, lat))
        assert tile_for_lonlat(*t.centroid_lonlat) == t
        assert utm_zone(t.centroid_lonlat[0]) == t.zone


def test_tiles_in_are_unique_inside_and_stable_prefix():
    poly = restrict(get_aoi("catalonia"), (0.9, 41.5, 1.3, 41.8))
    tiles = tiles_in(poly)
    assert len(tiles) == len(set(tiles)) > 50
    for t in tiles:
        assert poly.contains(Point(*t.centroid_lonlat))
    assert tiles_in(poly) == tiles  # deterministic
    assert tiles_in(poly, seed=8) != tiles and sorted(tiles_in(poly, seed=8)) == sorted(tiles)
    # About one tile per 2.56 km x 2.56 km of area.
    assert abs(len(tiles) - _area_km2(poly) / (TILE_M / 1000) ** 2) < 0.1 * len(tiles)


def test_tiles_cover_a_zone_boundary_without_duplicates():
    # Sumatra spans UTM zones 46-48: every tile belongs to exactly one zone, by its centroid.
    poly = restrict(get_aoi("sumatra"), (101.8, -1.5, 102.2, -1.1))  # straddles 102 E (zone 47/48)
    tiles = tiles_in(poly)
    assert {t.zone for t in tiles} == {47, 48}
    centroids = np.array([t.centroid_lonlat for t in tiles])
    assert ((centroids[:, 0] < 102) == np.array([t.zone == 47 for t in tiles])).all()
    # Exact cross-check by brute force: every tile of both zones' grids whose centroid (in lon/lat)
    # lies in the polygon and in its own zone's longitude band.
    brute = set()
    for zone in (47, 48):
        for path in [*range(-135, -115), *range(115, 135)]:
            for row in range(-70, -40):
                t = Tile(zone, path, row)
                lon, lat = t.centroid_lonlat
                if utm_zone(lon) == zone and poly.contains(Point(lon, lat)):
                    brute.add(t)
    assert set(tiles) == brute


def _area_km2(poly) -> float:
    return abs(Geod(ellps="WGS84").geometry_area_perimeter(poly)[0]) / 1e6


# ---------------------------------------------------------------- seasons and pairing
def test_seasons_cover_2020_including_leap_day():
    days = [D(2020, 1, 1) + dt.timedelta(days=i) for i in range(366)]
    owners = [[s.name for s in SEASONS.values() if s.contains(d)] for d in days]
    assert all(len(o) == 1 for o in owners)
    assert SEASONS["winter"].contains(D(2020, 2, 29))
    rules = PairingRules()
    assert SEASONS["spring"].radar_windows(rules)[0][0] == D(2020, 3, 1) - dt.timedelta(days=48)
    assert [s.name for s in parse_seasons("summer, spring")] == ["summer", "spring"]
    with pytest.raises(UserError):
        parse_seasons("monsoon")


def _radar(track, dates, state="ascending"):
    return [RadarScene(f"S1_{d}_{track}", d, track, state) for d in dates]


def test_radar_series_need_four_dates_twelve_days_apart():
    rules = PairingRules()
    summer = SEASONS["summer"]
    base = D(2020, 6, 10)
    dates = [base + dt.timedelta(days=12 * k) for k in range(6)]
    series = radar_series(_radar(30, dates), summer, rules)
    # 6 consecutive acquisitions -> 3 sliding series of 4, newest first.
    assert [s.newest for s in series] == dates[3:]
    assert series[0].dates == (dates[3], dates[2], dates[1], dates[0])
    # A gap breaks every series that spans it.
    gappy = dates[:2] + dates[3:]
    assert radar_series(_radar(30, gappy), summer, rules) == []
    # Dates on different tracks never mix.
    mixed = _radar(30, dates[:2]) + _radar(31, dates[2:4])
    assert radar_series(mixed, summer, rules) == []


def test_candidates_apply_offset_cloud_and_season_rules():
    rules = PairingRules()
    summer = SEASONS["summer"]
    dates = [D(2020, 7, 1) + dt.timedelta(days=12 * k) for k in range(4)]
    t = dates[-1]
    optical = [
        OpticalScene("ok_minus3", t - dt.timedelta(days=3), 0.01),
        OpticalScene("ok_plus2", t + dt.timedelta(days=2), 0.05),
        OpticalScene("too_far", t + dt.timedelta(days=4), 0.0),
        OpticalScene("cloudy", t, 0.051),
    ]
    cands = candidates(Inventory(_radar(7, dates), optical), summer, rules)
    # Every S2 date within +-3 days is a candidate (the original only took the first: a bug).
    assert sorted(c.optical.id for c in cands) == ["ok_minus3", "ok_plus2"]
    assert all(c.series.newest == t for c in cands)
    assert len({c.key for c in cands}) == 2


def test_candidate_order_is_seeded_and_split_is_stable():
    dates = [D(2020, 6, 1) + dt.timedelta(days=12 * k) for k in range(8)]
    optical = [OpticalScene(f"o{d}", d, 0.0) for d in dates]
    cands = candidates(Inventory(_radar(7, dates), optical), SEASONS["summer"], PairingRules())
    a = candidate_order(cands, 0, "10_1_2", "summer")
    assert a == candidate_order(cands, 0, "10_1_2", "summer")
    assert sorted(c.key for c in a) == sorted(c.key for c in cands)
    assert [c.key for c in candidate_order(cands, 1, "10_1_2", "summer")] != [c.key for c in a]
    splits = [split_for(f"g{i}", 0) for i in range(4000)]
    frac = {s: splits.count(s) / len(splits) for s in ("train", "validate", "test")}
    assert abs(frac["train"] - 0.7) < 0.03 and abs(frac["validate"] - 0.15) < 0.03
    assert split_for("g1", 0) == split_for("g1", 0)


def test_invalid_pixel_rule_is_one_percent():
    rules = PairingRules()
    mask = np.zeros((256, 256), bool)
    mask.flat[:655] = True
    assert rules.invalid_ok(mask)
    mask.flat[:656] = True
    assert not rules.invalid_ok(mask)


# ---------------------------------------------------------------- bands
def test_band_tables():
    assert len(bands.S1.bands) == 19 and bands.S1.names[:4] == ("vh_t0", "vv_t0", "coh_t0", "phase_t0")
    assert bands.S1.names[-3:] == ("lia", "slope", "valid")
    assert len(bands.S2.bands) == 14 and "B10" not in bands.S2.names and bands.S2.names[-2:] == ("SCL", "cloud_mask")
    assert bands.S2.index(["B04", "B08"]) == [3, 7]
    assert len(bands.LEGACY_S1_18) == 18 and len(bands.LEGACY_S2_CA_14) == 14
    with pytest.raises(KeyError, match="unknown band"):
        bands.S1.index(["vv_t9"])
