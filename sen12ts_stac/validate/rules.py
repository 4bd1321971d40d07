"""The SEN12TS and STAC rules beyond JSON schemas, on one object and across objects.

* per object (``object_rules``): bbox holds the geometry; ``label:type`` fits the label assets;
  SEN12TS dates follow the pairing rules of ``sen12ts_stac.spec.seasons`` (radar dates 12 days
  apart, newest first; Sentinel-2 within +-3 days of the newest; all inside the season); SEN12TS
  items carry the fields of their kind (``SEN12TS_REQUIRED``).
* across objects (``cross_rules``): unique ids; label items' sources exist and cover the same
  tile; triplet records link one label and both features that agree with them; no tile in two
  splits.

Cross-object rules work on *records* (``checks.record``), never on whole objects.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from sen12ts_stac.spec import vocabulary as V
from sen12ts_stac.validate.checks import _asset_kind, _kind, is_sen12ts, roles_of
from sen12ts_stac.validate.report import ERROR, WARNING, Finding


# -- per-object rules ------------------------------------------------------------------------
def object_rules(obj: dict, where: str) -> list[Finding]:
    if obj.get("type") != "Feature":
        return []
    props = obj.get("properties")
    if not isinstance(props, dict):
        return []  # structure()'s finding
    return (
        _bbox_rules(obj, where)
        + _label_rules(obj, props, where)
        + _date_rules(props, where)
        + _sen12ts_fields(obj, props, where)
    )


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
        return [
            Finding(
                ERROR,
                "rules",
                where,
                f"bbox {bbox} does not contain the geometry (bounds {[round(v, 7) for v in (gx0, gy0, gx1, gy1)]})",
            )
        ]
    if max(abs(gx0 - x0), abs(gy0 - y0), abs(gx1 - x1), abs(gy1 - y1)) > 0.01 * max(x1 - x0, y1 - y0, 1e-9) + tol:
        return [
            Finding(
                WARNING,
                "rules",
                where,
                f"bbox {bbox} is larger than the geometry's bounds {[round(v, 7) for v in (gx0, gy0, gx1, gy1)]}",
            )
        ]
    return []


# The fields every SEN12TS item of a kind carries (collect.items writes them; the loader and
# these rules read them). The kind comes from the collection id (collect.layout.collection_id),
# else from the properties.
SEN12TS_COMMON = (V.AOI, V.TILE)
SEN12TS_REQUIRED = {
    "s1": ("constellation", V.SEASON, V.RADAR_DATES, V.S2_DATE, "sat:relative_orbit"),
    "s2": ("constellation", V.SEASON),
    "labels": ("label:type", "sen12ts:class_table"),
    "triplets": (
        V.SPLIT,
        V.SEASON,
        V.RADAR_DATES,
        V.S2_DATE,
        "sen12ts:triplet",
        "sat:relative_orbit",
    ),
}
_KIND_SUFFIX = (("s1", "_s1_source"), ("s2", "_s2_source"), ("labels", "_labels"), ("triplets", "_triplets"))


def sen12ts_kind(collection: Any, props: dict) -> str | None:
    """s1, s2, labels or triplets for a SEN12TS item; None for any other item."""
    if isinstance(collection, str) and collection.startswith("sen12ts_"):
        for kind, suffix in _KIND_SUFFIX:
            if collection.endswith(suffix):
                return kind
    if V.TILE not in props:
        return None
    if "label:type" in props:
        return "labels"
    if V.SPLIT in props or "sen12ts:triplet" in props:
        return "triplets"
    constellation = props.get("constellation")
    return {"sentinel-1": "s1", "sentinel-2": "s2"}.get(constellation) if isinstance(constellation, str) else None


def _sen12ts_fields(obj: dict, props: dict, where: str) -> list[Finding]:
    """A SEN12TS item carries the fields of its kind, as strings / a list of dates, on a real tile."""
    kind = sen12ts_kind(obj.get("collection"), props)
    if kind is None and V.TILE not in props:
        return []
    out: list[Finding] = []
    missing = [k for k in SEN12TS_COMMON + SEN12TS_REQUIRED.get(kind or "", ()) if k not in props]
    if missing:
        what = {
            "s1": "Sentinel-1 item",
            "s2": "Sentinel-2 item",
            "labels": "label item",
            "triplets": "triplet record",
        }.get(kind or "", "item")
        out.append(Finding(ERROR, "rules", where, f"SEN12TS {what} has no {', '.join(missing)}"))
    for k in (
        V.AOI,
        V.TILE,
        V.SEASON,
        V.S2_DATE,
        "sen12ts:triplet",
        "sen12ts:class_table",
    ):
        if k in props and not (isinstance(props[k], str) and props[k]):
            out.append(Finding(ERROR, "rules", where, f"{k} {str(props[k])[:60]!r} is not a non-empty string"))
    if V.RADAR_DATES in props and not isinstance(props[V.RADAR_DATES], list):
        out.append(
            Finding(
                ERROR,
                "rules",
                where,
                f"sen12ts:radar_dates is {_kind(props[V.RADAR_DATES])}, not a list of dates",
            )
        )
    if isinstance(props.get(V.TILE), str):
        from sen12ts_stac.spec.grid import Tile

        try:
            tile = Tile.from_id(props[V.TILE])
        except Exception:
            out.append(
                Finding(
                    ERROR,
                    "rules",
                    where,
                    f"sen12ts:tile {props[V.TILE][:40]!r} is not a tile id (<zone>_<path>_<row>)",
                )
            )
        else:
            dl = props.get("sen12ts:dltile")
            if dl is not None and dl != tile.dltile_key:
                out.append(
                    Finding(
                        ERROR,
                        "rules",
                        where,
                        f"sen12ts:dltile {str(dl)[:60]!r} is not the key of sen12ts:tile {tile.id} ({tile.dltile_key})",
                    )
                )
    aoi, coll = props.get(V.AOI), obj.get("collection")
    if (
        isinstance(aoi, str)
        and isinstance(coll, str)
        and coll.startswith("sen12ts_")
        and not coll.startswith(f"sen12ts_{aoi}_")
    ):
        out.append(
            Finding(ERROR, "rules", where, f"sen12ts:aoi {aoi[:40]!r} is not the AOI of its collection {coll[:80]!r}")
        )
    want = {"s1": "sentinel-1", "s2": "sentinel-2"}.get(kind or "")
    if want and "constellation" in props and props["constellation"] != want:
        out.append(
            Finding(
                ERROR,
                "rules",
                where,
                f"constellation {str(props['constellation'])[:40]!r} in the {kind} collection; it must be {want!r}",
            )
        )
    return out


def _label_rules(obj: dict, props: dict, where: str) -> list[Finding]:
    if "label:type" not in props:
        return []
    t = props["label:type"]
    if t not in ("raster", "vector"):
        return [Finding(ERROR, "rules", where, f"label:type is {t!r}; it must be 'raster' or 'vector'")]
    raw = obj.get("assets")
    assets = {k: a for k, a in raw.items() if isinstance(a, dict)} if isinstance(raw, dict) else {}
    labelled = {k: a for k, a in assets.items() if any(str(r).startswith("labels") for r in roles_of(a))}
    kinds = {
        _asset_kind(a)
        for a in (labelled or {k: a for k, a in assets.items() if "thumbnail" not in roles_of(a)}).values()
    }
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
    if not any(k in props for k in (V.RADAR_DATES, V.S2_DATE, V.SEASON)):
        return []
    from sen12ts_stac.spec.seasons import SEASONS, PairingRules

    rules = PairingRules()
    out: list[Finding] = []

    def err(msg: str) -> None:
        out.append(Finding(ERROR, "rules", where, msg))

    try:
        radar = [_day(d) for d in props[V.RADAR_DATES]] if V.RADAR_DATES in props else None
        s2 = _day(props[V.S2_DATE]) if V.S2_DATE in props else None
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
        err(
            f"Sentinel-2 date {s2} is {abs((s2 - radar[0]).days)} days from the newest radar date {radar[0]} (at most "
            f"{rules.s2_max_offset_days})"
        )
    season_name = props.get(V.SEASON)
    if season_name is not None:
        season = SEASONS.get(season_name) if isinstance(season_name, str) else None
        if season is None:
            err(f"sen12ts:season {season_name!r} is not one of {', '.join(SEASONS)}")
        else:
            s2_day = s2 or (when if props.get("constellation") == "sentinel-2" else None)
            if s2_day and not season.contains(s2_day):
                err(f"Sentinel-2 date {s2_day} is outside {season_name}")
            if (
                radar
                and len(radar) == rules.radar_steps
                and not any(a <= radar[-1] and radar[0] <= b for a, b in season.radar_windows(rules))
            ):
                err(f"radar dates {radar[-1]}..{radar[0]} are outside the {season_name} radar window")
    if when and V.SPLIT in props and s2 and when != s2:
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
    except Exception:  # not a list of numbers: the bbox rule's finding
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
            what = (
                f"item id {rid!r} in collection {rec.get('collection')!r}"
                if rec["type"] == "Feature"
                else f"{rec['type']} id {rid!r}"
            )
            out.append(Finding(ERROR, "rules", where, f"{what} is not unique: also {seen[key]}"))
        else:
            seen[key] = where
    return out


def _collection_field(rec: dict, records: dict[str, dict]) -> list[Finding]:
    for rel, target, href, _ in rec["links"]:
        if rel == "collection" and target in records and records[target]["type"] == "Collection":
            cid = records[target]["id"]
            if rec.get("collection") != cid:
                return [
                    Finding(
                        ERROR,
                        "rules",
                        rec["where"],
                        f"collection is {rec.get('collection')!r} but its collection link {href} is {cid!r}",
                    )
                ]
    return []


def _label_sources(rec: dict, records: dict[str, dict]) -> list[Finding]:
    where, tile = rec["where"], rec["props"].get(V.TILE)
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
        stile = src["props"].get(V.TILE)
        if tile and stile and stile != tile:
            out.append(
                Finding(ERROR, "rules", where, f"source {href} is on tile {stile}, this label is on tile {tile}")
            )
            continue
        iou = _bbox_iou(rec.get("bbox"), src.get("bbox"))
        if iou is not None and iou < 0.9:
            out.append(
                Finding(ERROR, "rules", where, f"source {href} does not cover the same area (bbox overlap {iou:.2f})")
            )
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
        err(
            f"triplet record links {len(labels)} label(s) and {len(features)} feature(s); it needs 1 label, an S1 and "
            "an S2 feature"
        )
    label_rec = None
    for target, href in labels:
        lab = records.get(target)
        if lab is None:
            continue
        if "label:type" not in lab["props"]:
            err(f"derived_from {href} has ml-aoi:role 'label' but is not a label item (no label:type)")
        else:
            label_rec = lab
        if props.get(V.TILE) and lab["props"].get(V.TILE) not in (None, props.get(V.TILE)):
            err(f"label {href} is on tile {lab['props'].get(V.TILE)}, the triplet on {props.get(V.TILE)}")
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
            if f["props"].get(V.TILE) not in (None, props.get(V.TILE)):
                err(f"feature {href} is on tile {f['props'].get(V.TILE)}, the triplet on {props.get(V.TILE)}")
    if sen and features and all(records.get(t) is not None for t, _ in features):
        for const in ("sentinel-1", "sentinel-2"):
            if const not in found:
                err(f"triplet record links no {const} feature")
    s1, s2 = found.get("sentinel-1"), found.get("sentinel-2")
    if s1 is not None and V.RADAR_DATES in props and s1["props"].get(V.RADAR_DATES) != props[V.RADAR_DATES]:
        err(
            f"radar dates {props[V.RADAR_DATES]} differ from its S1 item's "
            f"{s1['props'].get(V.RADAR_DATES)} ({s1['where']})"
        )
    if s2 is not None and props.get(V.S2_DATE) and str(s2["props"].get("datetime", ""))[:10] != props[V.S2_DATE]:
        err(
            f"Sentinel-2 date {props[V.S2_DATE]} differs from its S2 item's datetime "
            f"{s2['props'].get('datetime')} ({s2['where']})"
        )
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
        split, tile = rec["props"].get(V.SPLIT), rec["props"].get(V.TILE)
        if not isinstance(split, str) or not isinstance(tile, str):
            continue  # a malformed split or tile is the schema's and the SEN12TS fields' finding
        by_tile[tile].setdefault(split, where)
        try:
            by_group[Tile.from_id(tile).split_group].setdefault(split, where)
        except Exception:
            pass
    out = []
    for tile, splits in sorted(by_tile.items()):
        if len(splits) > 1:
            first, *rest = sorted(splits.items(), key=lambda kv: kv[1])
            out.append(
                Finding(
                    ERROR,
                    "rules",
                    first[1],
                    f"tile {tile} is in more than one split: " + ", ".join(f"{s} ({w})" for s, w in [first, *rest]),
                )
            )
    for group, splits in sorted(by_group.items()):
        if len(splits) > 1 and not any(len(by_tile[t]) > 1 for t in by_tile if _group(t) == group):
            first_where = min(splits.values())
            out.append(
                Finding(
                    WARNING,
                    "rules",
                    first_where,
                    f"split group {group} (4 x 4 tiles) spans splits {sorted(splits)}: neighbouring tiles leak across "
                    "splits",
                )
            )
    return out


def _group(tile: str) -> str | None:
    from sen12ts_stac.spec.grid import Tile

    try:
        return Tile.from_id(tile).split_group
    except Exception:
        return None
