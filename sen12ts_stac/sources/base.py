"""The one small protocol every data source implements (the registry that names them is
:mod:`sen12ts_stac.sources.registry`).

A source answers four questions about a tile: which scenes exist in a season (``inventory``),
and the pixels of a Sentinel-1 series, a Sentinel-2 scene and the land-cover label, already on the
tile grid (256 x 256, 10 m, the tile's UTM zone), in the layouts of ``sen12ts_stac.spec.bands``.
The collector applies the pairing rules; sources never decide what makes a triplet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from sen12ts_stac.spec.grid import Tile
from sen12ts_stac.spec.seasons import Inventory, OpticalScene, RadarSeries, Season


@dataclass
class Reading:
    """Pixels of one product on a tile, plus where they came from."""

    data: np.ndarray  # (bands, 256, 256) in the product's dtype
    derived_from: list[str] = field(default_factory=list)  # hrefs of the scenes used (provenance)
    properties: dict = field(default_factory=dict)  # extra STAC properties for the item


@runtime_checkable
class Source(Protocol):
    name: str
    license: str  # SPDX id (or "other") of the data it produces
    providers: list[dict]  # STAC provider objects describing where the pixels come from

    def inventory(self, tile: Tile, season: Season) -> Inventory: ...

    def read_s1(self, tile: Tile, series: RadarSeries) -> Reading: ...

    def read_s2(self, tile: Tile, scene: OpticalScene) -> Reading: ...

    def read_label(self, tile: Tile) -> Reading: ...
