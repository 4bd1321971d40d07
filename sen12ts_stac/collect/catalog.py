"""Write the catalog tree (root, AOI, collections, block catalogs) from per-tile records.

Items are written by the tile workers; this module only writes the nodes above them, from the
small records each tile left in the run state. Nothing is read back through pystac and no tree is
resolved, so the cost is one pass over the records: linear in the number of items.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sen12ts_stac.collect.items import (
    COG,
    EXT,
    PNG,
    STAC_JSON,
    STAC_VERSION,
    FileInfo,
    ItemBuilder,
    TripletMeta,
    band_metadata,
)
from sen12ts_stac.collect.layout import KINDS, ROOT_ID, Layout, collection_id
from sen12ts_stac.fsio import write_json
from sen12ts_stac.spec import bands
from sen12ts_stac.spec import vocabulary as V
from sen12ts_stac.spec.aois import AOI, AOIS
from sen12ts_stac.spec.classes import class_table
from sen12ts_stac.spec.grid import Tile
from sen12ts_stac.spec.vocabulary import aoi_catalog_id

KIND_INFO = {
    "s1": (
        "Sentinel-1 source imagery",
        "Sentinel-1 RTC backscatter (VH, VV), 12-day InSAR coherence and phase at four dates 12 days apart (newest "
        "first), local incidence angle, slope and a validity mask, on 256 x 256 px tiles at 10 m.",
    ),
    "s2": (
        "Sentinel-2 source imagery",
        "Sentinel-2 L2A surface reflectance (12 bands x 10000), scene classification and a cloud mask, within 3 days "
        "of the newest radar date, on the same tiles.",
    ),
    "labels": (
        "Land-cover labels",
        "One land-cover raster per tile for 2020, linked to every S1 and S2 item it labels (rel=source).",
    ),
    "triplets": (
        "Training triplets",
        "One record per S1/S2/label triplet (ml-aoi): links its label and both features and carries a spatially "
        "grouped, seeded train/validate/test split.",
    ),
}
ASSET_PRODUCT = {"s1": bands.S1, "s2": bands.S2, "labels": bands.LABEL}


@dataclass
class ItemRecord:
    """What the tree needs to know of one written item."""

    kind: str
    id: str
    href: str  # relative to the AOI folder
    block: str
    bbox: list[float]
    start: str  # ISO datetime
    end: str
    props: dict  # summary-worthy properties (split, orbit state, cloud cover, ...)

    def to_json(self) -> dict:
        return self.__dict__

    @classmethod
    def from_json(cls, d: dict) -> "ItemRecord":
        return cls(**d)


class BandStats:
    """Exact streaming per-band statistics (count, mean, M2, min, max), mergeable across tiles
    (Chan et al.), ignoring no-data. Used for the normalisation statistics in the collections."""

    def __init__(self, n_bands: int):
        self.n = np.zeros(n_bands)
        self.mean = np.zeros(n_bands)
        self.m2 = np.zeros(n_bands)
        self.min = np.full(n_bands, np.inf)
        self.max = np.full(n_bands, -np.inf)

    def update(self, data: np.ndarray, product: bands.Product) -> None:
        for i in range(data.shape[0]):
            x = data[i].astype(np.float64)
            x = x[~product.is_nodata(data[i])]
            if x.size:
                other = BandStats(1)
                other.n[0], other.mean[0] = x.size, x.mean()
                other.m2[0] = ((x - other.mean[0]) ** 2).sum()
                other.min[0], other.max[0] = x.min(), x.max()
                self._merge_band(i, other, 0)

    def _merge_band(self, i: int, o: "BandStats", j: int) -> None:
        n = self.n[i] + o.n[j]
        if n == 0:
            return
        delta = o.mean[j] - self.mean[i]
        self.mean[i] += delta * o.n[j] / n
        self.m2[i] += o.m2[j] + delta**2 * self.n[i] * o.n[j] / n
        self.n[i] = n
        self.min[i] = min(self.min[i], o.min[j])
        self.max[i] = max(self.max[i], o.max[j])

    def merge(self, other: "BandStats") -> None:
        for i in range(len(self.n)):
            self._merge_band(i, other, i)

    def to_json(self) -> dict:
        return {k: [float(v) for v in getattr(self, k)] for k in ("n", "mean", "m2", "min", "max")}

    @classmethod
    def from_json(cls, d: dict) -> "BandStats":
        s = cls(len(d["n"]))
        for k in ("n", "mean", "m2", "min", "max"):
            setattr(s, k, np.array(d[k], dtype=np.float64))
        return s

    def stac(self) -> list[dict]:
        """raster:bands ``statistics`` objects (stddev is the population std of all pixels)."""
        out: list[dict] = []
        for i in range(len(self.n)):
            if self.n[i] == 0:
                out.append({})
                continue
            out.append(
                {
                    "mean": round(float(self.mean[i]), 6),
                    "stddev": round(float(np.sqrt(self.m2[i] / self.n[i])), 6),
                    "minimum": float(self.min[i]),
                    "maximum": float(self.max[i]),
                }
            )
        return out


def write_tile_items(
    layout: Layout,
    builder: ItemBuilder,
    tile: Tile,
    triplets: list[TripletMeta],
    label: FileInfo,
    label_derived_from: list[str] | None = None,
) -> tuple[list[Path], list[ItemRecord]]:
    """Write every item JSON of one tile (its label item, then S1, S2 and triplet items per
    triplet); return the paths written and the records the tree needs."""
    items = [builder.label(tile, triplets, label, label_derived_from)]
    for t in triplets:
        items += [builder.s1(t), builder.s2(t), builder.triplet(t)]
    paths, records = [], []
    for item in items:
        kind = {"s1": "s1", "s2": "s2", "label": "labels", "triplet": "triplets"}[item["id"].split("_", 1)[0]]
        rel_path = layout.item_rel(kind, tile, item["id"])
        path = layout.aoi_dir / rel_path
        paths.append(path)
        write_json(path, item)
        p = item["properties"]
        keep = (V.SPLIT, "sat:orbit_state", "eo:cloud_cover", V.SEASON)
        records.append(
            ItemRecord(
                kind,
                item["id"],
                rel_path,
                tile.block,
                item["bbox"],
                p.get("start_datetime") or p["datetime"],
                p.get("end_datetime") or p["datetime"],
                {k: p[k] for k in keep if k in p},
            )
        )
    return paths, records


def _lonlat(lon: float, lat: float) -> str:
    return f"{abs(lat):.2f}°{'N' if lat >= 0 else 'S'} {abs(lon):.2f}°{'E' if lon >= 0 else 'W'}"


def block_text(kind: str, block: str, records: list[ItemRecord]) -> tuple[str, str]:
    """Title and description of a block catalog, for a person: what, where, how many, when."""
    b = np.array([r.bbox for r in records])
    west, south, east, north = b[:, 0].min(), b[:, 1].min(), b[:, 2].max(), b[:, 3].max()
    tiles = len({tuple(r.id.split("_")[1:4]) for r in records})  # <kind>_<zone>_<path>_<row>_...
    start, end = min(r.start for r in records)[:10], max(r.end for r in records)[:10]
    zone = block.split("_")[1]
    n = len(records)
    title = f"{KIND_INFO[kind][0]} near {_lonlat((west + east) / 2, (south + north) / 2)}: {n} item{'s' * (n != 1)}"
    description = (
        f"{n} item{'s' * (n != 1)} on {tiles} tile{'s' * (tiles != 1)} (2.56 km square), {start} to {end}, within "
        f"{_lonlat(west, south)} - {_lonlat(east, north)}: one of the 8 x 8-tile (20.48 km) blocks the catalog is "
        f"split into (UTM zone {zone}, {block})."
    )
    return title, description


def _extent(records: list[ItemRecord]) -> dict:
    if not records:
        return {
            "spatial": {"bbox": [[-180, -90, 180, 90]]},
            "temporal": {"interval": [["2020-01-01T00:00:00Z", "2020-12-31T23:59:59Z"]]},
        }
    b = np.array([r.bbox for r in records])
    return {
        "spatial": {"bbox": [[float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()), float(b[:, 3].max())]]},
        "temporal": {"interval": [[min(r.start for r in records), max(r.end for r in records)]]},
    }


def _summaries(kind: str, records: list[ItemRecord], aoi: AOI) -> dict:
    s: dict = {}
    if kind == "s1":
        s = {
            "constellation": ["sentinel-1"],
            "sar:instrument_mode": ["IW"],
            "sar:frequency_band": ["C"],
            "sar:polarizations": ["VV", "VH"],
            "sar:product_type": ["RTC"],
            "sat:orbit_state": sorted({r.props["sat:orbit_state"] for r in records}),
        }
    elif kind == "s2":
        cc = [r.props["eo:cloud_cover"] for r in records] or [0.0]
        s = {"constellation": ["sentinel-2"], "eo:cloud_cover": {"minimum": min(cc), "maximum": max(cc)}}
    elif kind == "labels":
        s = {
            "label:type": ["raster"],
            "label:tasks": ["segmentation", "classification"],
            "label:classes": [{"name": None, "classes": list(class_table(aoi.label_table).values)}],
        }
    elif kind == "triplets":
        s = {V.SPLIT: sorted({r.props[V.SPLIT] for r in records})}
    s[V.SEASON] = sorted({r.props[V.SEASON] for r in records if V.SEASON in r.props})
    if not s[V.SEASON]:
        del s[V.SEASON]
    return s


def _item_assets(kind: str, stats: dict[str, BandStats], aoi: AOI) -> dict:
    if kind == "triplets":
        out = {}
        for key, product in ASSET_PRODUCT.items():
            meta = band_metadata(product)
            out[key] = {
                "type": COG,
                "roles": ["labels"] if key == "labels" else ["data"],
                **meta,
                "ml-aoi:role": "label" if key == "labels" else "feature",
            }
        return out
    product = ASSET_PRODUCT[kind]
    meta = band_metadata(product)
    if kind in stats:
        for rb, st in zip(meta["raster:bands"], stats[kind].stac()):
            if st:
                rb["statistics"] = st
    if kind == "labels":
        meta["classification:classes"] = class_table(aoi.label_table).to_stac_classes()
    roles = ["labels", "labels-raster"] if kind == "labels" else ["data"]
    return {
        kind: {"type": COG, "title": KIND_INFO[kind][0], "roles": roles, **meta},
        "thumbnail": {"type": PNG, "roles": ["thumbnail"]},
    }


COLLECTION_EXTENSIONS = {
    "s1": ["sar", "sat", "raster", "eo"],
    "s2": ["eo", "raster"],
    "labels": ["label", "raster", "eo", "classification"],
    "triplets": ["ml-aoi", "raster", "eo"],
}


def create_block_catalog(kind: str, aoi: AOI, block: str, items: list[ItemRecord]) -> dict:
    """The catalog of one 8 x 8-tile block of a collection: links its items (pure)."""
    title, description = block_text(kind, block, items)
    return {
        "type": "Catalog",
        "stac_version": STAC_VERSION,
        "id": f"{collection_id(aoi.name, kind)}_{block}",
        "title": title,
        "description": description,
        "links": [
            {"rel": "root", "href": "../../../catalog.json", "type": STAC_JSON},
            {"rel": "parent", "href": "../collection.json", "type": STAC_JSON},
            *({"rel": "item", "href": "./" + r.href.split("/", 2)[2], "type": "application/geo+json"} for r in items),
        ],
    }


def create_collection(
    kind: str,
    aoi: AOI,
    blocks: dict[str, list[ItemRecord]],
    stats: dict[str, BandStats],
    source_license: str,
    providers: list[dict],
) -> dict:
    """A collection (S1, S2, labels or triplets of one AOI) over its block catalogs, in the
    stactools manner: a pure function of what was collected; :func:`write_tree` writes it."""
    recs = [r for b in sorted(blocks) for r in blocks[b]]
    return {
        "type": "Collection",
        "stac_version": STAC_VERSION,
        "stac_extensions": [EXT[e] for e in COLLECTION_EXTENSIONS[kind]],
        "id": collection_id(aoi.name, kind),
        "title": f"SEN12TS {aoi.title}: {KIND_INFO[kind][0]}",
        "description": KIND_INFO[kind][1]
        + (f" Labels: {aoi.label_source}." if kind == "labels" else "")
        + " The items are listed in catalogs of 8 x 8 tiles (about 20 km square) each,"
        " named by where they are.",
        "keywords": ["SEN12TS", "Sentinel-1", "Sentinel-2", "land cover", "machine learning", aoi.name],
        "license": source_license,
        "providers": providers,
        "extent": _extent(recs),
        "summaries": _summaries(kind, recs, aoi),
        "item_assets": _item_assets(kind, stats, aoi),
        "links": [
            {"rel": "root", "href": "../../catalog.json", "type": STAC_JSON},
            {"rel": "parent", "href": "../catalog.json", "type": STAC_JSON},
            *(
                {
                    "rel": "child",
                    "href": f"./{b}/catalog.json",
                    "type": STAC_JSON,
                    "title": block_text(kind, b, blocks[b])[0],
                }
                for b in sorted(blocks)
            ),
        ],
    }


def create_aoi_catalog(aoi: AOI) -> dict:
    """An AOI's catalog: one child per collection (pure)."""
    return {
        "type": "Catalog",
        "stac_version": STAC_VERSION,
        "id": aoi_catalog_id(aoi.name),
        "title": f"SEN12TS: {aoi.title}",
        "description": f"SEN12TS-style Sentinel-1, Sentinel-2 and land-cover triplets over {aoi.title}, 2020.",
        "links": [
            {"rel": "root", "href": "../catalog.json", "type": STAC_JSON},
            {"rel": "parent", "href": "../catalog.json", "type": STAC_JSON},
            *(
                {"rel": "child", "href": f"./{k}/collection.json", "type": STAC_JSON, "title": KIND_INFO[k][0]}
                for k in KINDS
            ),
        ],
    }


def create_root_catalog(aois: list[str]) -> dict:
    """The root catalog: one child per AOI folder that holds a catalog (pure)."""
    return {
        "type": "Catalog",
        "stac_version": STAC_VERSION,
        "id": ROOT_ID,
        "title": "SEN12TS (sen12ts-stac)",
        "description": "Sentinel-1 / Sentinel-2 / land-cover triplets, 256 x 256 px at 10 m, 2020, as COGs and STAC.",
        "links": [
            {"rel": "root", "href": "./catalog.json", "type": STAC_JSON},
            *({"rel": "child", "href": f"./{a}/catalog.json", "type": STAC_JSON, "title": AOIS[a].title} for a in aois),
        ],
    }


def write_tree(
    layout: Layout,
    aoi: AOI,
    records: list[ItemRecord],
    stats: dict[str, BandStats],
    source_license: str,
    providers: list[dict],
) -> int:
    """Write block catalogs, collections, the AOI catalog and the root catalog (made by the
    ``create_*`` functions above; this only groups and writes). Returns the number of JSON
    files written."""
    by_kind: dict[str, list[ItemRecord]] = defaultdict(list)
    for r in records:
        by_kind[r.kind].append(r)
    written = 0
    for kind in KINDS:
        blocks: dict[str, list[ItemRecord]] = defaultdict(list)
        for r in sorted(by_kind.get(kind, []), key=lambda r: (r.block, r.id)):
            blocks[r.block].append(r)
        for block, items in blocks.items():
            write_json(layout.block_dir(kind, block) / "catalog.json", create_block_catalog(kind, aoi, block, items))
            written += 1
        collection = create_collection(kind, aoi, blocks, stats, source_license, providers)
        write_json(layout.collection_dir(kind) / "collection.json", collection)
        written += 1
    write_json(layout.aoi_dir / "catalog.json", create_aoi_catalog(aoi))
    write_root(layout.root)
    return written + 2


def write_root(root: Path) -> None:
    """The root catalog links every AOI folder that holds a catalog, so AOIs can be added one by one."""
    aois = sorted(p.parent.name for p in root.glob("*/catalog.json") if p.parent.name in AOIS)
    write_json(root / "catalog.json", create_root_catalog(aois))
