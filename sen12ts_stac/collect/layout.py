"""Where everything lives in a catalog on disk, and what everything is called.

::

    <root>/catalog.json                                 root catalog "sen12ts", one child per AOI
    <root>/<aoi>/catalog.json                           AOI catalog, one child per collection
    <root>/<aoi>/<kind>/collection.json                 kind: s1 | s2 | labels | triplets
    <root>/<aoi>/<kind>/<block>/catalog.json            8 x 8-tile block (<= 64 tiles x 16 items)
    <root>/<aoi>/<kind>/<block>/<item>/<item>.json      the item, its COG and quick-look beside it
    <root>/<aoi>/.sen12ts/run.json, tiles/<tile>.json   run state for resume (not part of STAC)

Every link is relative, so the folder can be moved, served or uploaded as it is.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path

from sen12ts_stac.spec.grid import Tile
from sen12ts_stac.spec.vocabulary import KINDS, ROOT_ID, collection_id

__all__ = ["KINDS", "ROOT_ID", "STATE_DIR", "Layout", "collection_id", "item_id", "rel"]

STATE_DIR = ".sen12ts"


def item_id(kind: str, tile: Tile, key: str | None = None) -> str:
    """``s1_<tile>_<key>``, ``s2_...``, ``triplet_...`` per triplet; ``label_<tile>_2020`` per tile."""
    if kind == "labels":
        return f"label_{tile.id}_2020"
    prefix = {"s1": "s1", "s2": "s2", "triplets": "triplet"}[kind]
    return f"{prefix}_{tile.id}_{key}"


@dataclass(frozen=True)
class Layout:
    root: Path
    aoi: str

    @property
    def aoi_dir(self) -> Path:
        return self.root / self.aoi

    @property
    def state_dir(self) -> Path:
        return self.aoi_dir / STATE_DIR

    def tile_state(self, tile_id: str) -> Path:
        return self.state_dir / "tiles" / f"{tile_id}.json"

    def collection_dir(self, kind: str) -> Path:
        return self.aoi_dir / kind

    def block_dir(self, kind: str, block: str) -> Path:
        return self.collection_dir(kind) / block

    def item_rel(self, kind: str, tile: Tile, iid: str) -> str:
        """Item JSON path relative to the AOI folder (POSIX)."""
        return f"{kind}/{tile.block}/{iid}/{iid}.json"

    def item_path(self, kind: str, tile: Tile, iid: str) -> Path:
        return self.aoi_dir / self.item_rel(kind, tile, iid)


def rel(from_file: str, to_file: str) -> str:
    """Relative href from one AOI-relative file to another, ``./``-prefixed when local."""
    r = posixpath.relpath(to_file, posixpath.dirname(from_file) or ".")
    return r if r.startswith("../") else f"./{r}"
