"""The checks beyond JSON schemas: what makes a (SEN12TS) STAC catalog right.

* per object (``object_rules``): bbox holds the geometry; ``label:type`` fits the label assets;
  SEN12TS dates follow the pairing rules of ``sen12ts_stac.spec.seasons`` (radar dates 12 days
  apart, newest first; Sentinel-2 within +-3 days of the newest; all inside the season).
* across objects (``cross_rules``): unique ids; label items' sources exist and cover the same
  tile; triplet records link one label and both features that agree with them; no tile in two
  splits.
* links (``link_findings``): every parent/root/child/item/collection/source/derived_from href
  resolves, points at the right kind of object, and stays inside the catalog root.
* assets (``probe_asset`` + ``asset_findings``): the file exists, is a valid COG
  (``rio_cogeo.cog_validate``), is not truncated, and its dtype, band count, nodata, band names,
  block size, ``proj:*``, footprint, size and checksum match what the item says.

Objects travel as small *records* (``record``): the fields these checks need, so item work can
run in worker processes and only records come back.
"""

from __future__ import annotations

import datetime as dt
import math
import os
from collections import defaultdict
from typing import Any, Callable, Iterable

from sen12ts_stac.storage.checksums import sha256_multihash
from sen12ts_stac.validate.locations import inside, is_url, remote_size, resolve
from sen12ts_stac.validate.report import ERROR, NOT_CHECKED, WARNING, Finding

CHECKED_RELS = ("self", "root", "parent", "child", "item", "collection", "source", "derived_from")
CONTAINERS = ("Catalog", "Collection")
KEEP_PROPS = (
    "label:type", "ml-aoi:split", "sen12ts:tile", "sen12ts:aoi", "sen12ts:season", "sen12ts:radar_dates",
    "sen12ts:s2_date", "sen12ts:triplet", "constellation", "datetime", "start_datetime", "end_datetime",
    "sat:relative_orbit",
)
ASSET_KEEP = ("href", "type", "roles", "raster:bands", "bands", "eo:bands", "file:size", "file:checksum")
RASTER_EXT = (".tif", ".tiff")
VECTOR_HINTS = ("geo+json", "geojson", "json", "geopackage", "shapefile", "flatgeobuf", "parquet")
SEN12TS_BLOCK = (256, 256)  # collect.cog.BLOCK


# -- records ---------------------------------------------------------------------------------
def record(obj: dict, where: str, with_assets: bool) -> dict:
    """What the cross-object, link and asset checks need to know about one STAC object."""
    props = obj.get("properties") if isinstance(obj.get("properties"), dict) else {}
    links = []
    for link in obj.get("links") or [] if isinstance(obj.get("links"), list) else []:
        if not isinstance(link, dict):
            continue
        href = link.get("href")
        links.append((link.get("rel"), resolve(where, href), href if isinstance(href, str) else repr(href), link.get("ml-aoi:role")))
    assets = obj.get("assets") if isinstance(obj.get("assets"), dict) else {}
    rec = {
        "where": where, "type": obj.get("type"), "id": obj.get("id"), "collection": obj.get("collection"),
        "props": {k: props[k] for k in KEEP_PROPS if k in props},
        "bbox": obj.get("bbox"), "links": links,
        "asset_targets": {k: resolve(where, a.get("href")) for k, a in assets.items() if isinstance(a, dict)},
    }
    if with_assets and obj.get("type") == "Feature":
        rec["assets"] = {k: {f: a[f] for f in ASSET_KEEP if f in a} | {f: v for f, v in a.items() if f.startswith("proj:")}
                         for k, a in assets.items() if isinstance(a, dict)}
        rec["proj"] = {k: v for k, v in props.items() if k.startswith("proj:")}
        rec["geometry"] = obj.get("geometry")
    return rec


def is_sen12ts(rec_or_props: dict) -> bool:
    props = rec_or_props.get("props", rec_or_props)
    return "sen12ts:tile" in props


# -- per-object rules ------------------------------------------------------------------------
def object_rules(obj: dict, where: str) -> list[Finding]:
    if obj.get("type") != "Feature":
        return []
    props = obj.get("properties")
    if not isinstance(props, dict):
        return []
    return _bbox_rules(obj, where) + _label_rules(obj, props, where) + _date_rules(props, where)


def _bbox_rules(obj: dict, where: str) -> list[Finding]:
    bbox, geom = obj.get("bbox"), obj.get("geometry")
    if geom is None:
        return []
    if not (isinstance(bbox, list) and len(bbox) in (4, 6) and all(isinstance(v, (int, float)) for v in bbox)):
        return [Finding(ERROR, "rules", where, f"bbox {bbox!r} is not 4 or 6 numbers")]
    try:
        import shapely.geometry

        g = shapely.geometry.shape(geom)
        if g.is_empty:
            return [Finding(ERROR, "rules", where, "geometry is empty")]
        gx0, gy0, gx1, gy1 = g.bounds
    except Exception as e:
        return [Finding(ERROR, "rules", where, f"geometry is not a valid GeoJSON geometry ({str(e)[:100]})")]
    x0, y0 = bbox[0], bbox[1]
    x1, y1 = (bbox[3], bbox[4]) if len(bbox) == 6 else (bbox[2], bbox[3])
    tol = 1e-6
    if gx0 < x0 - tol or gy0 < y0 - tol or gx1 > x1 + tol or gy1 > y1 + tol:
        return [Finding(ERROR, "rules", where, f"bbox {bbox} does not contain the geometry (bounds {[round(v, 7) for v in (gx0, gy0, gx1, gy1)]})")]
    if max(abs(gx0 - x0), abs(gy0 - y0), abs(gx1 - x1), abs(gy1 - y1)) > 0.01 * max(x1 - x0, y1 - y0, 1e-9) + tol:
        return [Finding(WARNING, "rules", where, f"bbox {bbox} is larger than the geometry's bounds {[round(v, 7) for v in (gx0, gy0, gx1, gy1)]}")]
    return []


def _asset_kind(a: dict) -> str:
    media = str(a.get("type", "")).lower()
    href = str(a.get("href", "")).lower().split("?", 1)[0]
    if "tiff" in media or href.endswith(RASTER_EXT) or "jp2" in media or href.endswith(".jp2"):
        return "raster"
    if any(h in media for h in VECTOR_HINTS) or href.endswith((".geojson", ".json", ".gpkg", ".shp", ".fgb", ".parquet")):
        return "vector"
    return "other"


def _label_rules(obj: dict, props: dict, where: str) -> list[Finding]:
    if "label:type" not in props:
        return []
    t = props["label:type"]
    if t not in ("raster", "vector"):
        return [Finding(ERROR, "rules", where, f"label:type is {t!r}; it must be 'raster' or 'vector'")]
    assets = {k: a for k, a in (obj.get("assets") or {}).items() if isinstance(a, dict)}
    labelled = {k: a for k, a in assets.items() if any(str(r).startswith("labels") for r in a.get("roles") or [])}
    kinds = {_asset_kind(a) for a in (labelled or {k: a for k, a in assets.items() if "thumbnail" not in (a.get("roles") or [])}).values()}
    if t == "raster" and "raster" not in kinds and "vector" in kinds:
        return [Finding(ERROR, "rules", where, "label:type is 'raster' but the label assets are vector files")]
    if t == "vector" and "vector" not in kinds and "raster" in kinds:
        return [Finding(ERROR, "rules", where, "label:type is 'vector' but the label assets are rasters (GeoTIFF)")]
    return []


def _day(v: Any) -> dt.date:
    if not isinstance(v, str) or len(v) < 10:
        raise ValueError(f"{v!r} is not an ISO date")
    return dt.date.fromisoformat(v[:10])


def _date_rules(props: dict, where: str) -> list[Finding]:
    if not any(k in props for k in ("sen12ts:radar_dates", "sen12ts:s2_date", "sen12ts:season")):
        return []
    from sen12ts_stac.spec.seasons import SEASONS, PairingRules

    rules = PairingRules()
    out: list[Finding] = []

    def err(msg: str) -> None:
        out.append(Finding(ERROR, "rules", where, msg))

    try:
        radar = [_day(d) for d in props["sen12ts:radar_dates"]] if "sen12ts:radar_dates" in props else None
        s2 = _day(props["sen12ts:s2_date"]) if "sen12ts:s2_date" in props else None
        when = _day(props["datetime"]) if props.get("datetime") else None
    except (TypeError, ValueError) as e:
        return [Finding(ERROR, "rules", where, f"bad date in sen12ts:radar_dates / sen12ts:s2_date / datetime: {e}")]
    if radar is not None:
        steps, gap = rules.radar_steps, rules.radar_interval_days
        if len(radar) != steps:
            err(f"sen12ts:radar_dates has {len(radar)} dates; a radar series has {steps}")
        elif any((a - b).days != gap for a, b in zip(radar, radar[1:])):
            err(f"sen12ts:radar_dates {[d.isoformat() for d in radar]} are not {gap} days apart, newest first")
    if radar and s2 and abs((s2 - radar[0]).days) > rules.s2_max_offset_days:
        err(f"Sentinel-2 date {s2} is {abs((s2 - radar[0]).days)} days from the newest radar date {radar[0]} (at most {rules.s2_max_offset_days})")
    season_name = props.get("sen12ts:season")
    if season_name is not None:
        season = SEASONS.get(season_name)
        if season is None:
            err(f"sen12ts:season {season_name!r} is not one of {', '.join(SEASONS)}")
        else:
            s2_day = s2 or (when if props.get("constellation") == "sentinel-2" else None)
            if s2_day and not season.contains(s2_day):
                err(f"Sentinel-2 date {s2_day} is outside {season_name}")
            if radar and len(radar) == rules.radar_steps and not any(a <= radar[-1] and radar[0] <= b for a, b in season.radar_windows(rules)):
                err(f"radar dates {radar[-1]}..{radar[0]} are outside the {season_name} radar window")
    if when and "ml-aoi:split" in props and s2 and when != s2:
        err(f"datetime {props['datetime']} is not the Sentinel-2 date {s2}")
    if when and props.get("constellation") == "sentinel-1" and radar and when != radar[0]:
        err(f"datetime {props['datetime']} is not the newest radar date {radar[0]}")
    key = props.get("sen12ts:triplet")
    track = props.get("sat:relative_orbit")
    if key is not None and radar and s2 and isinstance(track, int):
        want = f"{radar[0]:%Y%m%d}_{s2:%Y%m%d}_{track:03d}"
        if key != want:
            err(f"sen12ts:triplet is {key!r}; its dates and track make {want!r}")
    return out


# -- cross-object rules ----------------------------------------------------------------------
def _bbox_iou(a: Any, b: Any) -> float | None:
    try:
        a = (a[0], a[1], a[-2], a[-1]) if len(a) == 4 else (a[0], a[1], a[3], a[4])
        b = (b[0], b[1], b[-2], b[-1]) if len(b) == 4 else (b[0], b[1], b[3], b[4])
        ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = ix * iy
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return inter / union if union > 0 else None
    except (TypeError, IndexError):
        return None


def cross_rules(records: dict[str, dict]) -> list[Finding]:
    """Rules that need several objects: ids, labels and their sources, triplets, splits."""
    out: list[Finding] = []
    out += _unique_ids(records)
    for rec in records.values():
        if rec["type"] != "Feature":
            continue
        if "label:type" in rec["props"]:
            out += _label_sources(rec, records)
        if any(role in ("label", "feature") for rel, _, _, role in rec["links"] if rel == "derived_from"):
            out += _triplet_links(rec, records)
        out += _collection_field(rec, records)
    out += _splits(records)
    return out


def _unique_ids(records: dict[str, dict]) -> list[Finding]:
    out = []
    seen: dict[tuple, str] = {}
    for where, rec in sorted(records.items()):
        rid = rec["id"]
        if not isinstance(rid, str) or not rid:
            out.append(Finding(ERROR, "rules", where, f"id {rid!r} is not a non-empty string"))
            continue
        key = ("item", rec.get("collection"), rid) if rec["type"] == "Feature" else ("node", rid)
        if key in seen:
            what = f"item id {rid!r} in collection {rec.get('collection')!r}" if rec["type"] == "Feature" else f"{rec['type']} id {rid!r}"
            out.append(Finding(ERROR, "rules", where, f"{what} is not unique: also {seen[key]}"))
        else:
            seen[key] = where
    return out


def _collection_field(rec: dict, records: dict[str, dict]) -> list[Finding]:
    for rel, target, href, _ in rec["links"]:
        if rel == "collection" and target in records and records[target]["type"] == "Collection":
            cid = records[target]["id"]
            if rec.get("collection") != cid:
                return [Finding(ERROR, "rules", rec["where"], f"collection is {rec.get('collection')!r} but its collection link {href} is {cid!r}")]
    return []


def _label_sources(rec: dict, records: dict[str, dict]) -> list[Finding]:
    where, tile = rec["where"], rec["props"].get("sen12ts:tile")
    sources = [(target, href) for rel, target, href, _ in rec["links"] if rel == "source"]
    if not sources:
        level = ERROR if tile else WARNING
        return [Finding(level, "rules", where, "label item has no source links (rel=source) to the imagery it labels")]
    out = []
    for target, href in sources:
        src = records.get(target)
        if src is None:
            continue  # a broken link is the links check's finding
        if src["type"] != "Feature":
            out.append(Finding(ERROR, "rules", where, f"source {href} is a {src['type']}, not an item"))
            continue
        stile = src["props"].get("sen12ts:tile")
        if tile and stile and stile != tile:
            out.append(Finding(ERROR, "rules", where, f"source {href} is on tile {stile}, this label is on tile {tile}"))
            continue
        iou = _bbox_iou(rec.get("bbox"), src.get("bbox"))
        if iou is not None and iou < 0.9:
            out.append(Finding(ERROR, "rules", where, f"source {href} does not cover the same area (bbox overlap {iou:.2f})"))
    return out


def _triplet_links(rec: dict, records: dict[str, dict]) -> list[Finding]:
    where, props = rec["where"], rec["props"]
    sen = is_sen12ts(rec)
    labels = [(t, h) for rel, t, h, role in rec["links"] if rel == "derived_from" and role == "label"]
    features = [(t, h) for rel, t, h, role in rec["links"] if rel == "derived_from" and role == "feature"]
    out: list[Finding] = []

    def err(msg: str) -> None:
        out.append(Finding(ERROR, "rules", where, msg))

    if not labels:
        err("triplet record has no derived_from link with ml-aoi:role 'label'")
    if sen and (len(labels) != 1 or len(features) != 2):
        err(f"triplet record links {len(labels)} label(s) and {len(features)} feature(s); it needs 1 label, an S1 and an S2 feature")
    label_rec = None
    for target, href in labels:
        lab = records.get(target)
        if lab is None:
            continue
        if "label:type" not in lab["props"]:
            err(f"derived_from {href} has ml-aoi:role 'label' but is not a label item (no label:type)")
        else:
            label_rec = lab
        if props.get("sen12ts:tile") and lab["props"].get("sen12ts:tile") not in (None, props.get("sen12ts:tile")):
            err(f"label {href} is on tile {lab['props'].get('sen12ts:tile')}, the triplet on {props.get('sen12ts:tile')}")
    found: dict[str, dict] = {}
    for target, href in features:
        f = records.get(target)
        if f is None:
            continue
        const = f["props"].get("constellation")
        if sen:
            if const not in ("sentinel-1", "sentinel-2"):
                err(f"feature {href} is neither a Sentinel-1 nor a Sentinel-2 item (constellation {const!r})")
                continue
            if const in found:
                err(f"triplet record links two {const} features")
            found[const] = f
            if f["props"].get("sen12ts:tile") not in (None, props.get("sen12ts:tile")):
                err(f"feature {href} is on tile {f['props'].get('sen12ts:tile')}, the triplet on {props.get('sen12ts:tile')}")
    if sen and features and all(records.get(t) is not None for t, _ in features):
        for const in ("sentinel-1", "sentinel-2"):
            if const not in found:
                err(f"triplet record links no {const} feature")
    s1, s2 = found.get("sentinel-1"), found.get("sentinel-2")
    if s1 is not None and "sen12ts:radar_dates" in props and s1["props"].get("sen12ts:radar_dates") != props["sen12ts:radar_dates"]:
        err(f"radar dates {props['sen12ts:radar_dates']} differ from its S1 item's {s1['props'].get('sen12ts:radar_dates')} ({s1['where']})")
    if s2 is not None and props.get("sen12ts:s2_date") and str(s2["props"].get("datetime", ""))[:10] != props["sen12ts:s2_date"]:
        err(f"Sentinel-2 date {props['sen12ts:s2_date']} differs from its S2 item's datetime {s2['props'].get('datetime')} ({s2['where']})")
    # The triplet's assets are the very files of the items it links.
    for key, linked in (("s1", s1), ("s2", s2), ("labels", label_rec)):
        mine = rec["asset_targets"].get(key)
        theirs = linked["asset_targets"].get(key) if linked else None
        if mine and theirs and mine != theirs:
            err(f"asset {key} points to {mine}, but the linked item's {key} asset is {theirs}")
    # Its label item must name both features as sources.
    if label_rec is not None and sen:
        srcs = {t for rel, t, _, _ in label_rec["links"] if rel == "source"}
        for f in (s1, s2):
            if f is not None and f["where"] not in srcs:
                err(f"its label item {label_rec['where']} does not list {f['where']} as a source")
    return out


def _splits(records: dict[str, dict]) -> list[Finding]:
    from sen12ts_stac.spec.grid import Tile

    by_tile: dict[str, dict[str, str]] = defaultdict(dict)
    by_group: dict[str, dict[str, str]] = defaultdict(dict)
    for where, rec in sorted(records.items()):
        split, tile = rec["props"].get("ml-aoi:split"), rec["props"].get("sen12ts:tile")
        if split is None or tile is None:
            continue
        by_tile[tile].setdefault(split, where)
        try:
            by_group[Tile.from_id(tile).split_group].setdefault(split, where)
        except Exception:
            pass
    out = []
    for tile, splits in sorted(by_tile.items()):
        if len(splits) > 1:
            first, *rest = sorted(splits.items(), key=lambda kv: kv[1])
            out.append(Finding(ERROR, "rules", first[1], f"tile {tile} is in more than one split: " + ", ".join(f"{s} ({w})" for s, w in [first, *rest])))
    for group, splits in sorted(by_group.items()):
        if len(splits) > 1 and not any(len(by_tile[t]) > 1 for t in by_tile if _group(t) == group):
            first = min(splits.values())
            out.append(Finding(WARNING, "rules", first, f"split group {group} (4 x 4 tiles) spans splits {sorted(splits)}: neighbouring tiles leak across splits"))
    return out


def _group(tile: str) -> str | None:
    from sen12ts_stac.spec.grid import Tile

    try:
        return Tile.from_id(tile).split_group
    except Exception:
        return None


# -- links -----------------------------------------------------------------------------------
def link_findings(records: dict[str, dict], root: str, root_where: str | None, linked_from: dict[str, str],
                  exists: Callable[[list[str]], dict[str, tuple[bool | None, str]]]) -> tuple[list[Finding], int]:
    """Findings for every checked link of every record; ``exists`` answers for targets that were
    not walked (child and item targets the walk could not read were reported by the walk).
    Returns (findings, number of links checked)."""
    out: list[Finding] = []
    pending: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    n = 0
    for where, rec in records.items():
        for rel, target, href, _ in rec["links"]:
            if rel not in CHECKED_RELS:
                continue
            n += 1
            if target is None:
                if not isinstance(href, str) or not href.strip() or href.startswith("None"):
                    out.append(Finding(ERROR, "links", where, f"rel={rel} link has no usable href ({href})"))
                else:
                    scheme = href.split(":", 1)[0]
                    out.append(Finding(NOT_CHECKED, "links", where, f"{scheme}:// links are not checked (e.g. {href})", key=f"scheme:{scheme}"))
                continue
            if rel == "self":
                if target != where:
                    out.append(Finding(WARNING, "links", where, f"self link {href} is not where this file is"))
                continue
            if not inside(root, target):
                if is_url(target) and rel in ("source", "derived_from"):
                    host = target.split("/", 3)[2]
                    out.append(Finding(NOT_CHECKED, "links", where, f"{rel} links to other hosts ({host}) are not checked", key=f"host:{rel}:{host}"))
                else:
                    out.append(Finding(ERROR, "links", where, f"rel={rel} href {href} points outside the catalog root {root}"))
                continue
            hit = records.get(target)
            if hit is None:
                if not (rel in ("child", "item") and linked_from.get(target) == where):
                    pending[target].append((where, rel, href))
                continue
            out += _link_kind(where, rel, href, hit)
            if rel == "root" and root_where and target != root_where:
                out.append(Finding(WARNING, "links", where, f"root link {href} is not the catalog root {root_where}"))
            if rel == "parent" and where in linked_from and target != linked_from[where]:
                out.append(Finding(WARNING, "links", where, f"parent link {href} is not {linked_from[where]}, which links this object"))
    if pending:
        answers = exists(sorted(pending))
        for target, uses in pending.items():
            ok, detail = answers.get(target, (None, "not checked"))
            for where, rel, href in uses:
                if ok is None:
                    out.append(Finding(NOT_CHECKED, "links", where, f"rel={rel} href {href}: {detail}"))
                elif not ok:
                    out.append(Finding(ERROR, "links", where, f"broken link rel={rel} href {href}: {detail or 'no such file'}"))
    return out, n


def _link_kind(where: str, rel: str, href: str, hit: dict) -> list[Finding]:
    want = {"child": CONTAINERS, "item": ("Feature",), "source": ("Feature",), "derived_from": ("Feature",),
            "parent": CONTAINERS, "root": CONTAINERS, "collection": ("Collection",)}.get(rel)
    if want and hit["type"] not in want:
        return [Finding(ERROR, "links", where, f"rel={rel} href {href} is a {hit['type']}, expected {' or '.join(want)}")]
    return []


# -- assets ----------------------------------------------------------------------------------
GDAL_ENV = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR", "GDAL_HTTP_TIMEOUT": "30", "GDAL_HTTP_MAX_RETRY": "1",
            "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff,.TIF,.TIFF", "GDAL_NUM_THREADS": "1"}


def is_raster_asset(a: dict) -> bool:
    return _asset_kind(a) == "raster" and "jp2" not in str(a.get("type", "")).lower()


def probe_asset(target: str, raster: bool, checksum: bool) -> dict:
    """Everything the asset checks compare against, read once per file: never raises."""
    info: dict[str, Any] = {"target": target}
    try:
        if is_url(target):
            info["size"] = remote_size(target)
            if info["size"] is None and not raster:
                from sen12ts_stac.validate.locations import exists

                ok, detail = exists(target)
                info["exists"] = bool(ok)
                info["problem"] = None if ok else detail
                return info
        else:
            if not os.path.isfile(target):
                info["exists"], info["problem"] = False, "no such file"
                return info
            info["size"] = os.path.getsize(target)
            if checksum:
                info["checksum"] = sha256_multihash(target)
        info["exists"] = True
        if raster:
            info.update(_raster_info(target, info.get("size")))
    except Exception as e:  # anything unexpected is still one finding, not a crash
        info.setdefault("exists", True)
        info["problem"] = f"could not be read ({type(e).__name__}: {str(e)[:160]})"
    return info


def _raster_info(target: str, size: int | None) -> dict:
    import warnings

    from rasterio.errors import RasterioError
    from rio_cogeo.cogeo import cog_validate

    from sen12ts_stac.storage import ReadError, open_raster

    out: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with open_raster(target, **GDAL_ENV) as ds:
                out.update(driver=ds.driver, count=ds.count, dtypes=list(ds.dtypes), nodata=list(ds.nodatavals),
                           blocks=[list(b) for b in ds.block_shapes], width=ds.width, height=ds.height,
                           crs=ds.crs.to_string() if ds.crs else None, transform=list(ds.transform)[:6],
                           bounds=list(ds.bounds), descriptions=list(ds.descriptions))
                out["truncated"] = _truncated(ds, size)
                if ds.crs:
                    out["footprint"] = _footprint(ds)
                    out["geographic"] = bool(ds.crs.is_geographic)
                if out.get("driver") == "GTiff":
                    try:  # the same open file (GDAL path, or the in-memory copy of a no-Range host)
                        ok, errors, warns = cog_validate(ds.name, quiet=True)
                        out["cog_errors"], out["cog_warnings"] = list(errors), list(warns)
                    except Exception as e:
                        out["cog_errors"], out["cog_warnings"] = [f"COG validation failed: {str(e)[:160]}"], []
        except (RasterioError, OSError, ValueError, ReadError) as e:
            out["problem"] = f"not a readable GeoTIFF ({str(e)[:160]})"
            return out
        if out.get("driver") != "GTiff":
            out["problem"] = f"is a {out.get('driver')} file, not a GeoTIFF"
            return out
    return out


def _truncated(ds, size: int | None) -> str | None:
    """Whether the file ends before its last data blocks (cheap: offsets from the TIFF header)."""
    if size is None:
        return None
    for b in range(1, ds.count + 1):
        h, w = ds.block_shapes[b - 1]
        nx, ny = math.ceil(ds.width / w), math.ceil(ds.height / h)
        blocks = [(i, j) for j in range(ny) for i in range(nx)]
        for i, j in blocks if len(blocks) <= 64 else [blocks[-1]]:
            off = ds.get_tag_item(f"BLOCK_OFFSET_{i}_{j}", "TIFF", bidx=b)
            n = ds.get_tag_item(f"BLOCK_SIZE_{i}_{j}", "TIFF", bidx=b)
            if off and n and int(off) + int(n) > size:
                return f"band {b} block ({i}, {j}) ends at byte {int(off) + int(n):,} but the file has {size:,} bytes (truncated)"
    return None


def _footprint(ds) -> list[list[float]]:
    """The raster's outline in WGS84, 9 points a side."""
    from rasterio.warp import transform as warp

    x0, y0, x1, y1 = ds.bounds
    t = [k / 8 for k in range(9)]
    xs = [x0 + (x1 - x0) * k for k in t] + [x1] * 9 + [x1 - (x1 - x0) * k for k in t] + [x0] * 9
    ys = [y0] * 9 + [y0 + (y1 - y0) * k for k in t] + [y1] * 9 + [y1 - (y1 - y0) * k for k in t]
    lon, lat = warp(ds.crs, "EPSG:4326", xs, ys)
    return [[a, b] for a, b in zip(lon, lat)]


def asset_targets(rec: dict) -> Iterable[tuple[str, str, dict]]:
    """(asset key, target, asset) for every asset of an item record that has a resolvable href."""
    for key, a in (rec.get("assets") or {}).items():
        target = rec["asset_targets"].get(key)
        if target:
            yield key, target, a


def _same_nodata(claim: Any, actual: Any) -> bool:
    if claim is None:
        return actual is None
    if actual is None:
        return False
    if isinstance(claim, str):
        claim = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}.get(claim.lower(), claim)
    try:
        c, a = float(claim), float(actual)
    except (TypeError, ValueError):
        return False
    return (math.isnan(c) and math.isnan(a)) or c == a


def asset_findings(rec: dict, probes: dict[str, dict], root: str, checksums: bool = True) -> list[Finding]:
    out: list[Finding] = []
    where = rec["where"]
    footprint_checked = False
    for key, target, a in asset_targets(rec):
        if not inside(root, target) and not is_url(target):
            out.append(Finding(ERROR, "assets", where, f"asset {key} href {a.get('href')} points outside the catalog root {root}"))
            continue
        p = probes.get(target)
        if p is None:
            continue
        label = f"asset {key} ({a.get('href')})"
        if not p.get("exists", False):
            out.append(Finding(ERROR, "assets", where, f"{label}: {p.get('problem') or 'missing'}"))
            continue
        fs = a.get("file:size")
        if isinstance(fs, int) and p.get("size") is not None and fs != p["size"]:
            out.append(Finding(ERROR, "assets", where, f"{label}: file:size says {fs:,} bytes, the file has {p['size']:,}"))
        cs = a.get("file:checksum")
        if isinstance(cs, str) and checksums and "checksum" not in p and is_url(target):
            out.append(Finding(NOT_CHECKED, "assets", where, "file:checksum of remote assets is not checked (it would download every file)",
                               key="remote-checksum"))
        if isinstance(cs, str) and "checksum" in p:
            if not cs.startswith("1220"):
                out.append(Finding(NOT_CHECKED, "assets", where, f"file:checksum with multihash code {cs[:4]} is not checked (only sha2-256)", key=f"hash:{cs[:4]}"))
            elif cs.lower() != p["checksum"]:
                out.append(Finding(ERROR, "assets", where, f"{label}: file:checksum does not match the file's sha2-256"))
        if "problem" in p:
            out.append(Finding(ERROR, "assets", where, f"{label}: {p['problem']}"))
            continue
        if "count" not in p:
            continue  # not a raster
        out += _raster_claims(rec, key, a, p, label)
        if not footprint_checked and p.get("footprint") and rec.get("geometry") and "thumbnail" not in (a.get("roles") or []):
            footprint_checked = True
            out += _footprint_claims(rec, p, label)
    return out


def _raster_claims(rec: dict, key: str, a: dict, p: dict, label: str) -> list[Finding]:
    where = rec["where"]
    out: list[Finding] = []

    def err(msg: str) -> None:
        out.append(Finding(ERROR, "assets", where, f"{label}: {msg}"))

    for msg in p.get("cog_errors") or []:
        err(f"not a valid COG: {msg}")
    for msg in p.get("cog_warnings") or []:
        out.append(Finding(WARNING, "assets", where, f"{label}: COG warning: {msg}"))
    if p.get("truncated"):
        err(p["truncated"])
    count = p["count"]
    for field in ("raster:bands", "bands", "eo:bands"):
        bl = a.get(field)
        if isinstance(bl, list) and len(bl) != count:
            err(f"{field} lists {len(bl)} bands, the file has {count}")
    rb = a.get("raster:bands")
    if isinstance(rb, list):
        for i, b in enumerate(rb[:count]):
            if not isinstance(b, dict):
                continue
            if "data_type" in b and b["data_type"] != p["dtypes"][i]:
                err(f"band {i + 1} is {p['dtypes'][i]} in the file, raster:bands says {b['data_type']}")
                break
            if "nodata" in b and not _same_nodata(b["nodata"], p["nodata"][i]):
                err(f"band {i + 1} nodata is {p['nodata'][i]} in the file, raster:bands says {b['nodata']}")
                break
    names = a.get("bands") if isinstance(a.get("bands"), list) else a.get("eo:bands")
    desc = p.get("descriptions") or []
    if isinstance(names, list) and len(names) == count and all(desc):
        for i, (b, d) in enumerate(zip(names, desc)):
            if isinstance(b, dict) and b.get("name") and b["name"] != d:
                err(f"band {i + 1} is named {d!r} in the file, {b['name']!r} in the item")
                break
    if is_sen12ts(rec):
        bad = [i + 1 for i, b in enumerate(p["blocks"]) if tuple(b) != SEN12TS_BLOCK]
        if bad:
            err(f"block size {tuple(p['blocks'][bad[0] - 1])} (band {bad[0]}), SEN12TS COGs use {SEN12TS_BLOCK}")
    out += _proj_claims(rec, a, p, label)
    return out


def _proj_claims(rec: dict, a: dict, p: dict, label: str) -> list[Finding]:
    where = rec["where"]
    proj = {**rec.get("proj", {}), **{k: v for k, v in a.items() if k.startswith("proj:")}}
    out: list[Finding] = []

    def err(msg: str) -> None:
        out.append(Finding(ERROR, "assets", where, f"{label}: {msg}"))

    code = proj.get("proj:code") or (f"EPSG:{proj['proj:epsg']}" if isinstance(proj.get("proj:epsg"), int) else None)
    if code and p.get("crs"):
        try:
            from rasterio.crs import CRS

            if CRS.from_user_input(code) != CRS.from_user_input(p["crs"]):
                err(f"CRS is {p['crs']} in the file, proj says {code}")
        except Exception:
            out.append(Finding(NOT_CHECKED, "assets", where, f"{label}: proj code {code!r} is not understood", key=f"crs:{code}"))
    shape = proj.get("proj:shape")
    if isinstance(shape, list) and len(shape) == 2 and shape != [p["height"], p["width"]]:
        err(f"proj:shape is {shape}, the file is {[p['height'], p['width']]} (rows, columns)")
    tr = proj.get("proj:transform")
    if isinstance(tr, list) and len(tr) >= 6 and all(isinstance(v, (int, float)) for v in tr[:6]):
        if any(abs(x - y) > 1e-6 * max(1.0, abs(y)) for x, y in zip(tr[:6], p["transform"])):
            err(f"proj:transform {tr[:6]} differs from the file's {p['transform']}")
    pb = proj.get("proj:bbox")
    if isinstance(pb, list) and len(pb) == 4 and all(isinstance(v, (int, float)) for v in pb):
        if any(abs(x - y) > 1e-3 + 1e-6 * abs(y) for x, y in zip(pb, p["bounds"])):
            err(f"proj:bbox {pb} differs from the file's bounds {[round(v, 3) for v in p['bounds']]}")
    return out


def _footprint_claims(rec: dict, p: dict, label: str) -> list[Finding]:
    import shapely.geometry

    where = rec["where"]
    try:
        geom = shapely.geometry.shape(rec["geometry"])
        foot = shapely.geometry.Polygon(p["footprint"])
        inter = geom.intersection(foot).area
        union = geom.union(foot).area
    except Exception:
        return []  # an invalid geometry is the rules check's finding
    iou = inter / union if union > 0 else 0.0
    out = []
    if iou < 0.98:
        out.append(Finding(ERROR, "assets", where, f"geometry does not match the raster footprint of {label} (overlap {iou:.3f})"))
    bbox = rec.get("bbox")
    if isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox):
        fb = foot.bounds
        res = abs(p["transform"][0])
        px = res if p.get("geographic") else res / 111_320.0  # one pixel in degrees (roughly)
        tol = max(1e-6, px)
        if any(abs(x - y) > tol for x, y in zip(bbox, fb)):
            out.append(Finding(ERROR, "assets", where, f"bbox {bbox} differs from the raster footprint's {[round(v, 7) for v in fb]} by more than a pixel"))
    return out
