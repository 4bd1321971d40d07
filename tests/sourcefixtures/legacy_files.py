"""Folders laid out exactly like the original SEN12TS files, written at test time.

Plain uncompressed GeoTIFFs (GDAL without creation options), the DLTile grid (EPSG:326zz,
(left, 10, 0, top, 0, -10)), nodata -3000 on every band, names
``lat_{LAT}_lon_{LON}_s1date_..._s2date_..._s1track_{TRACK}_s1lookpass_{PASS}.tif`` with the tile
centroid rounded to 4 decimals, and labels ``lat_..._lon_..._date_2020_lulc_label.tif``. Pixels come
from the synthetic source (so they are plausible), converted to each generation's layout:

* ``downloader``: S1 19 bands, S2 14 = 12 L2A + SCL + cloud mask, int16 label files.
* ``applications``: S1 18 bands (no validity mask), S2 14 = 13 bands with B10 + the CDL class,
  no label files (the older California export).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio

from sen12ts_stac.sources.synthetic import SyntheticSource
from sen12ts_stac.spec import bands
from sen12ts_stac.spec.aois import get_aoi
from sen12ts_stac.spec.grid import Tile, tile_for_lonlat
from sen12ts_stac.spec.seasons import OpticalScene, RadarScene, RadarSeries

D = dt.date
NODATA = -3000
# Inside the California outline, and one tile west of it (outside our hand-drawn polygon).
POINTS = ((-121.42, 38.41), (-122.62, 38.05))


@dataclass(frozen=True)
class Original:
    name: str
    tile: Tile
    s1_date: dt.date
    s2_date: dt.date
    track: int
    orbit_state: str

    @property
    def key(self) -> str:
        return f"{self.s1_date:%Y%m%d}_{self.s2_date:%Y%m%d}_{self.track:03d}"


def name_for(tile: Tile, s1: dt.date, s2: dt.date, track: int, look: str) -> str:
    lon, lat = tile.centroid_lonlat
    return (
        f"lat_{lat:.4f}_lon_{lon:.4f}_s1date_{s1.isoformat()}_s2date_{s2.isoformat()}"
        f"_s1track_{track}_s1lookpass_{look}.tif"
    )


def _write(path: Path, arr: np.ndarray, tile: Tile) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=256,
        height=256,
        count=arr.shape[0],
        dtype=arr.dtype,
        crs=tile.crs,
        transform=tile.transform,
        nodata=NODATA,
    ) as ds:
        ds.write(arr)


def _plan(syn: SyntheticSource, tile: Tile, first: bool) -> list[tuple[int, str, dt.date, dt.date]]:
    """(track, orbit, s1date, s2date) of the originals of a tile. The first tile gets overlapping
    series on one track (36 days apart, and 12 days apart) and a second track whose S2 date lies
    within 3 days of another series: a collector that re-paired scenes would invent triplets."""
    tracks = syn.model(tile).tracks
    t1, o1 = tracks[0][0], tracks[0][1]
    plan = [(t1, o1, D(2020, 6, 10), D(2020, 6, 11)), (t1, o1, D(2020, 7, 16), D(2020, 7, 14))]
    if first:
        plan += [(t1, o1, D(2020, 6, 22), D(2020, 6, 24)), (t1, o1, D(2020, 10, 8), D(2020, 10, 9))]
        if len(tracks) > 1:
            plan.append((tracks[1][0], tracks[1][1], D(2020, 6, 25), D(2020, 6, 26)))
    return plan


def write_originals(folder: Path, generation: str = "downloader") -> list[Original]:
    """Write a folder of originals of one generation; return the triplets written."""
    syn = SyntheticSource(get_aoi("california"), seed=5)
    originals: list[Original] = []
    for i, (lon, lat) in enumerate(POINTS):
        tile = tile_for_lonlat(lon, lat)
        label = syn.read_label(tile).data[0].astype(np.int16)
        label[label == 255] = 0  # the original left masked label pixels at 0 (CDL 'Background')
        label[:3, :3] = NODATA
        for track, orbit, s1, s2 in _plan(syn, tile, first=i == 0):
            look = "ASCENDING" if orbit == "ascending" else "DESCENDING"
            name = name_for(tile, s1, s2, track, look)
            scenes = tuple(RadarScene(f"x{k}", s1 - dt.timedelta(days=12 * k), track, orbit) for k in range(4))
            s1_arr = syn.read_s1(tile, RadarSeries(track, orbit, scenes)).data.copy()
            s1_arr[np.isnan(s1_arr)] = NODATA
            s2_arr = syn.read_s2(tile, OpticalScene(f"y{s2}", s2, 0.01)).data.astype(np.int16)
            s2_arr[s2_arr == bands.S2.nodata] = NODATA
            if generation == "downloader":
                _write(folder / "s1" / name, s1_arr.astype(np.float32), tile)
                _write(folder / "s2" / name, s2_arr, tile)
            else:
                _write(folder / "s1" / name, s1_arr[:18].astype(np.float32), tile)
                cirrus = np.full((1, 256, 256), 12, np.int16)
                ca = np.concatenate([s2_arr[:10], cirrus, s2_arr[10:12], label[None]])
                _write(folder / "s2" / name, ca, tile)
            originals.append(Original(name, tile, s1, s2, track, orbit))
        if generation == "downloader":
            lon_c, lat_c = tile.centroid_lonlat
            _write(folder / "labels" / f"lat_{lat_c:.4f}_lon_{lon_c:.4f}_date_2020_lulc_label.tif", label[None], tile)
    return originals
