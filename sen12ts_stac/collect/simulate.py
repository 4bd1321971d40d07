"""Metadata-only catalogs: the same items, layout and tree as ``create``, without pixels.

Used by the benchmarks (catalog-writing cost at 1k, 10k, ... triplets; validation speed; the
full-size 246,400-triplet simulation) and by tests that need many items fast. Asset files do not
exist: validate such catalogs with ``--no-assets``.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from sen12ts_stac.collect.catalog import ItemRecord, write_tile_items, write_tree
from sen12ts_stac.collect.items import FileInfo, ItemBuilder, TripletMeta
from sen12ts_stac.collect.layout import Layout
from sen12ts_stac.spec.aois import get_aoi
from sen12ts_stac.spec.grid import tiles_in
from sen12ts_stac.spec.seasons import SEASONS, Candidate, OpticalScene, RadarScene, RadarSeries, seeded_rng, split_for

# Typical sizes measured on synthetic triplets (see benchmarks/bench_create.py).
S1_BYTES, S2_BYTES, LABEL_BYTES = 3_750_000, 480_000, 1_300
FAKE_SUM = "1220" + "0" * 64


def simulate_triplets(tile, seed: int, n: int) -> list[TripletMeta]:
    """``n`` (<= 16) plausible triplets for a tile: up to 4 per season, radar dates 12 days apart."""
    rng = seeded_rng(seed, tile.id, "simulate")
    out = []
    seasons = list(SEASONS.values())
    track = int(rng.integers(1, 176))
    state = "ascending" if rng.random() < 0.5 else "descending"
    split = split_for(tile.split_group, seed)
    for k in range(n):
        season = seasons[k % 4]
        start, end = season.windows[0]
        newest = start + dt.timedelta(days=int(rng.integers(0, (end - start).days + 1)))
        scenes = tuple(
            RadarScene(
                f"SIM_S1_{newest - dt.timedelta(days=12 * j):%Y%m%d}_{track}",
                newest - dt.timedelta(days=12 * j),
                track,
                state,
            )
            for j in range(4)
        )
        s2_date = min(end, max(start, newest + dt.timedelta(days=int(rng.integers(-3, 4)))))
        cand = Candidate(
            RadarSeries(track, state, scenes),
            OpticalScene(f"SIM_S2_{s2_date:%Y%m%d}_{k}", s2_date, round(float(rng.random()) * 0.05, 4)),
        )
        out.append(
            TripletMeta(
                tile,
                season.name,
                split,
                cand,
                FileInfo(S1_BYTES, FAKE_SUM),
                FileInfo(S2_BYTES, FAKE_SUM),
                {"sat:relative_orbit": track, "sat:orbit_state": state},
            )
        )
    # Keys must be unique per tile; drop accidental repeats.
    seen, unique = set(), []
    for t in out:
        if t.key not in seen:
            seen.add(t.key)
            unique.append(t)
    return unique


def simulate_catalog(root: str | Path, aoi: str, n_triplets: int, seed: int = 0, per_tile: int = 8) -> dict:
    """Write a metadata-only catalog of about ``n_triplets`` triplets (``per_tile`` per tile).
    Returns timings: seconds for items and for the tree, counts of items and triplets."""
    root = Path(root)
    a = get_aoi(aoi)
    layout = Layout(root, a.name)
    builder = ItemBuilder(layout, a, "simulated")
    tiles = tiles_in(a.polygon)
    needed = -(-n_triplets // per_tile)
    if needed > len(tiles):
        raise ValueError(f"{aoi} has only {len(tiles)} tiles; ask for fewer triplets or more per tile")
    records: list[ItemRecord] = []
    triplets = 0
    t0 = time.perf_counter()
    for tile in tiles[:needed]:
        n = min(per_tile, n_triplets - triplets)
        trips = simulate_triplets(tile, seed, n)
        triplets += len(trips)
        _, recs = write_tile_items(layout, builder, tile, trips, FileInfo(LABEL_BYTES, FAKE_SUM))
        records += recs
    t_items = time.perf_counter() - t0
    t0 = time.perf_counter()
    write_tree(layout, a, records, {}, "CC0-1.0", [{"name": "sen12ts-stac simulation", "roles": ["producer"]}])
    t_tree = time.perf_counter() - t0
    return {
        "triplets": triplets,
        "items": len(records),
        "tiles": needed,
        "seconds_items": t_items,
        "seconds_tree": t_tree,
    }
