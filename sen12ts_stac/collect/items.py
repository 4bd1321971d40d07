"""The STAC model: items and collections as plain dicts, built from metadata alone.

Items are built as JSON dicts (no pystac tree, no href resolution), so writing 10k items costs
10k small dict builds; pystac reads every one of them back (tests check that, and validate them
against the schemas). Extension versions are the ones pystac 1.15 writes, so reading an item
does not migrate it (classification v2.0.0: pystac rewrites v1.x items to it on read, and its
schema ships in ``spec/data/stac-schemas`` because the offline cache lacks it).

Per triplet: an S1 item, an S2 item, and a triplet record (ml-aoi) that links its label and both
features and carries the split. Per tile: one label item (``label:type`` raster) whose ``source``
links point to every S1 and S2 item it labels.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

from sen12ts_stac.collect.layout import Layout, collection_id, item_id, rel
from sen12ts_stac.spec import bands
from sen12ts_stac.spec import vocabulary as V
from sen12ts_stac.spec.aois import AOI
from sen12ts_stac.spec.classes import class_table
from sen12ts_stac.spec.grid import Tile
from sen12ts_stac.spec.seasons import Candidate
from sen12ts_stac.spec.vocabulary import EXTENSIONS

STAC_VERSION = "1.1.0"
EXT = EXTENSIONS  # short name -> schema URL (spec.vocabulary)
COG = "image/tiff; application=geotiff; profile=cloud-optimized"
PNG = "image/png"
STAC_JSON = "application/json"


@dataclass(frozen=True)
class FileInfo:
    size: int
    checksum: str


@dataclass
class TripletMeta:
    """Everything the catalog needs to know about one written triplet (no pixels)."""

    tile: Tile
    season: str
    split: str
    candidate: Candidate
    s1: FileInfo
    s2: FileInfo
    s1_properties: dict = field(default_factory=dict)
    s2_properties: dict = field(default_factory=dict)
    s1_derived_from: list[str] = field(default_factory=list)
    s2_derived_from: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return self.candidate.key


def _iso(d: dt.date, end_of_day: bool = False) -> str:
    return f"{d.isoformat()}T{'23:59:59' if end_of_day else '00:00:00'}Z"


def _geo(tile: Tile) -> tuple[dict, list[float]]:
    ring = [list(c) for c in tile.polygon_lonlat.exterior.coords]
    return {"type": "Polygon", "coordinates": [ring]}, list(tile.bbox_lonlat)


def _proj(tile: Tile) -> dict:
    t = tile.transform
    return {
        "proj:code": tile.crs,
        "proj:shape": list(tile.shape),
        "proj:transform": [t.a, t.b, t.c, t.d, t.e, t.f],
        "proj:bbox": list(tile.bounds),
    }


def _nodata(value):
    return "nan" if isinstance(value, float) and math.isnan(value) else value


def band_metadata(product: bands.Product) -> dict:
    """Asset fields that describe the file's bands: STAC 1.1 ``bands`` (names), ``raster:bands``
    (dtype, nodata, scale/offset, unit) and ``eo:bands`` for every product, radar and labels
    included: odc-stac 0.5 (and other readers written for STAC 1.0) take band names and aliases
    only from ``eo:bands``, so without it ``odc.stac.load(items, bands=["vh_t0"])`` fails."""
    out: dict = {
        "bands": [{"name": b.name, "description": b.description} for b in product.bands],
        "raster:bands": [],
    }
    for b in product.bands:
        # "name" (a STAC 1.1 band field; raster v1.1 band objects allow more fields) so a reader
        # of raster:bands alone, STAC Browser's raster table among them, knows which band is which
        rb: dict = {
            "name": b.name,
            "data_type": product.dtype,
            "nodata": _nodata(product.nodata),
            "spatial_resolution": 10.0,
        }
        if b.unit:
            rb["unit"] = b.unit
        if b.scale is not None:
            rb["scale"], rb["offset"] = b.scale, b.offset or 0.0
        out["raster:bands"].append(rb)
    out["eo:bands"] = [
        {
            k: v
            for k, v in (
                ("name", b.name),
                ("description", b.description),
                ("common_name", b.common_name),
                ("center_wavelength", b.center_wavelength),
                ("full_width_half_max", b.full_width_half_max),
            )
            if v is not None
        }
        for b in product.bands
    ]
    return out


def _data_asset(href: str, title: str, product: bands.Product, info: FileInfo | None, roles=("data",)) -> dict:
    asset = {"href": href, "type": COG, "title": title, "roles": list(roles), **band_metadata(product)}
    if info is not None:
        asset["file:size"] = info.size
        asset["file:checksum"] = info.checksum
    return asset


def _links(layout_rel: str, kind: str) -> list[dict]:
    """root, parent (the block catalog) and collection links of an item at ``layout_rel``."""
    block_cat = f"{kind}/{layout_rel.split('/')[1]}/catalog.json"
    return [
        {"rel": "root", "href": rel(layout_rel, "../catalog.json"), "type": STAC_JSON},
        {"rel": "parent", "href": rel(layout_rel, block_cat), "type": STAC_JSON},
        {"rel": "collection", "href": rel(layout_rel, f"{kind}/collection.json"), "type": STAC_JSON},
    ]


def s1_title(t: TripletMeta) -> str:
    """What a link to the S1 item of ``t`` says: its four radar dates."""
    d = t.candidate.series.dates
    series = t.candidate.series
    return (
        f"Sentinel-1 radar, {d[-1].isoformat()} to {d[0].isoformat()} (4 dates), "
        f"{series.orbit_state} track {series.track}"
    )


def s2_title(t: TripletMeta) -> str:
    """What a link to the S2 item of ``t`` says: its date and cloud cover."""
    o = t.candidate.optical
    return f"Sentinel-2 optical, {o.date.isoformat()}, {round(100 * o.cloud_fraction, 1)} % cloud"


def _common(aoi: AOI, tile: Tile, source: str) -> dict:
    return {
        V.AOI: aoi.name,
        V.TILE: tile.id,
        "sen12ts:dltile": tile.dltile_key,
        "sen12ts:source": source,
    }


class ItemBuilder:
    """Builds every item of an AOI's catalog from metadata, with hrefs laid out by ``Layout``."""

    def __init__(self, layout: Layout, aoi: AOI, source: str):
        self.layout, self.aoi, self.source = layout, aoi, source

    def path(self, kind: str, tile: Tile, key: str | None = None) -> str:
        return self.layout.item_rel(kind, tile, item_id(kind, tile, key))

    def s1(self, t: TripletMeta) -> dict:
        tile, c = t.tile, t.candidate
        here = self.path("s1", tile, t.key)
        geometry, bbox = _geo(tile)
        dates = c.series.dates
        props = {
            "datetime": _iso(dates[0]),
            "start_datetime": _iso(dates[-1]),
            "end_datetime": _iso(dates[0]),
            "constellation": "sentinel-1",
            "instruments": ["c-sar"],
            "sar:instrument_mode": "IW",
            "sar:frequency_band": "C",
            "sar:center_frequency": 5.405,
            "sar:polarizations": ["VV", "VH"],
            "sar:product_type": "RTC",
            "sat:relative_orbit": c.series.track,
            "sat:orbit_state": c.series.orbit_state,
            **_proj(tile),
            **_common(self.aoi, tile, self.source),
            V.SEASON: t.season,
            V.RADAR_DATES: [d.isoformat() for d in dates],
            V.S2_DATE: c.optical.date.isoformat(),
            "sen12ts:radar_scenes": [s.id for s in c.series.scenes],
            **t.s1_properties,
        }
        return self._item(
            "s1",
            item_id("s1", tile, t.key),
            here,
            geometry,
            bbox,
            props,
            {
                "s1": _data_asset(
                    "./s1.tif",
                    "Sentinel-1 RTC backscatter, coherence, phase (4 dates), LIA, slope, validity",
                    bands.S1,
                    t.s1,
                ),
                "thumbnail": {
                    "href": "./thumbnail.png",
                    "type": PNG,
                    "title": "VV/VH false colour, newest date",
                    "roles": ["thumbnail"],
                },
            },
            ["proj", "raster", "eo", "sar", "sat", "file"],
            t.s1_derived_from,
        )

    def s2(self, t: TripletMeta) -> dict:
        tile, c = t.tile, t.candidate
        here = self.path("s2", tile, t.key)
        geometry, bbox = _geo(tile)
        props = {
            "datetime": _iso(c.optical.date),
            "constellation": "sentinel-2",
            "instruments": ["msi"],
            "eo:cloud_cover": round(100 * c.optical.cloud_fraction, 2),
            **_proj(tile),
            **_common(self.aoi, tile, self.source),
            V.SEASON: t.season,
            "sen12ts:s2_scene": c.optical.id,
            **t.s2_properties,
        }
        return self._item(
            "s2",
            item_id("s2", tile, t.key),
            here,
            geometry,
            bbox,
            props,
            {
                "s2": _data_asset("./s2.tif", "Sentinel-2 L2A reflectance x 10000, SCL, cloud mask", bands.S2, t.s2),
                "thumbnail": {"href": "./thumbnail.png", "type": PNG, "title": "True colour", "roles": ["thumbnail"]},
            },
            ["proj", "raster", "eo", "file"],
            t.s2_derived_from,
        )

    def label(
        self, tile: Tile, triplets: list[TripletMeta], info: FileInfo, derived_from: list[str] | None = None
    ) -> dict:
        table = class_table(self.aoi.label_table)
        here = self.path("labels", tile)
        geometry, bbox = _geo(tile)
        props = {
            "datetime": None,
            "start_datetime": "2020-01-01T00:00:00Z",
            "end_datetime": "2020-12-31T23:59:59Z",
            "label:type": "raster",
            "label:properties": None,
            "label:classes": [{"name": None, "classes": list(table.values)}],
            "label:description": f"{self.aoi.label_source} on the tile grid; 255 = no label",
            "label:tasks": ["segmentation", "classification"],
            "label:methods": ["automated"],
            **_proj(tile),
            **_common(self.aoi, tile, self.source),
            "sen12ts:class_table": table.id,
        }
        asset = _data_asset(
            "./labels.tif", f"Land cover: {self.aoi.label_source}", bands.LABEL, info, roles=("labels", "labels-raster")
        )
        asset["classification:classes"] = table.to_stac_classes()
        item = self._item(
            "labels",
            item_id("labels", tile),
            here,
            geometry,
            bbox,
            props,
            {
                "labels": asset,
                "thumbnail": {
                    "href": "./thumbnail.png",
                    "type": PNG,
                    "title": "Land-cover classes",
                    "roles": ["thumbnail"],
                },
            },
            ["proj", "raster", "eo", "label", "classification", "file"],
            derived_from or [],
        )
        for t in sorted(triplets, key=lambda t: t.key):
            for kind, title in (("s1", s1_title(t)), ("s2", s2_title(t))):
                item["links"].append(
                    {
                        "rel": "source",
                        "href": rel(here, self.path(kind, tile, t.key)),
                        "type": STAC_JSON,
                        "title": title,
                        "label:assets": ["labels"],
                    }
                )
        return item

    def triplet(self, t: TripletMeta) -> dict:
        tile, c = t.tile, t.candidate
        here = self.path("triplets", tile, t.key)
        geometry, bbox = _geo(tile)
        s1, s2, lab = self.path("s1", tile, t.key), self.path("s2", tile, t.key), self.path("labels", tile)
        props = {
            "datetime": _iso(c.optical.date),
            V.SPLIT: t.split,
            **_proj(tile),
            **_common(self.aoi, tile, self.source),
            V.SEASON: t.season,
            V.RADAR_DATES: [d.isoformat() for d in c.series.dates],
            V.S2_DATE: c.optical.date.isoformat(),
            "sen12ts:triplet": t.key,
            "sat:relative_orbit": c.series.track,
            "sat:orbit_state": c.series.orbit_state,
        }

        def copy(product, src_item, name, title, role, info):
            a = _data_asset(
                rel(here, src_item.rsplit("/", 1)[0] + f"/{name}.tif"),
                title,
                product,
                info,
                roles=("labels",) if role == "label" else ("data",),
            )
            a["ml-aoi:role"] = role
            a["ml-aoi:reference-grid"] = True
            return a

        assets = {
            "s1": copy(bands.S1, s1, "s1", "Sentinel-1 stack (feature)", "feature", t.s1),
            "s2": copy(bands.S2, s2, "s2", "Sentinel-2 stack (feature)", "feature", t.s2),
            "labels": copy(bands.LABEL, lab, "labels", "Land-cover label", "label", None),
            "thumbnail": {
                "href": rel(here, s2.rsplit("/", 1)[0] + "/thumbnail.png"),
                "type": PNG,
                "roles": ["thumbnail"],
            },
        }
        item = self._item(
            "triplets",
            item_id("triplets", tile, t.key),
            here,
            geometry,
            bbox,
            props,
            assets,
            ["proj", "raster", "eo", "ml-aoi", "file"],
            [],
        )
        for target, role, title in (
            (lab, "label", f"Land-cover label, 2020: {self.aoi.label_source}"),
            (s1, "feature", s1_title(t)),
            (s2, "feature", s2_title(t)),
        ):
            item["links"].append(
                {
                    "rel": "derived_from",
                    "href": rel(here, target),
                    "type": STAC_JSON,
                    "title": title,
                    "ml-aoi:role": role,
                }
            )
        return item

    def _item(self, kind, iid, here, geometry, bbox, props, assets, exts, derived_from) -> dict:
        links = _links(here, kind)
        links += [{"rel": "derived_from", "href": h, "title": "scene used"} for h in derived_from]
        return {
            "type": "Feature",
            "stac_version": STAC_VERSION,
            "stac_extensions": [EXT[e] for e in exts],
            "id": iid,
            "geometry": geometry,
            "bbox": bbox,
            "properties": props,
            "links": links,
            "assets": assets,
            "collection": collection_id(self.aoi.name, kind),
        }
