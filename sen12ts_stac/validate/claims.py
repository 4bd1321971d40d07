"""What an item says about its files, against what the files say (the answers of
``checks.probe_asset``): existence, size and checksum; for GeoTIFFs the COG structure and every
value the file states too: band count, data type, nodata, scale, offset, unit, band names,
resolution, block size, CRS, shape, transform, bounds, footprint and (SEN12TS) the tile grid; for
images (thumbnails) that they decode, as the format their media type names.

A value the file states and the item leaves out is a disagreement too where a reader acts on the
difference: a missing ``scale`` is 1.0 to a loader, a missing ``nodata`` is no mask.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

from sen12ts_stac.spec import vocabulary as V
from sen12ts_stac.storage.checksums import MULTIHASHES
from sen12ts_stac.validate.checks import is_sen12ts, roles_of
from sen12ts_stac.validate.locations import inside, is_url
from sen12ts_stac.validate.report import ERROR, NOT_CHECKED, WARNING, Finding

SEN12TS_BLOCK = (256, 256)  # collect.cog.BLOCK
IMAGE_TYPES = {"image/png": "PNG", "image/jpeg": "JPEG", "image/jpg": "JPEG", "image/webp": "WEBP", "image/gif": "GIF"}
IMAGE_EXT = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".gif": "GIF"}


def asset_targets(rec: dict) -> Iterable[tuple[str, str, dict]]:
    """(asset key, target, asset) for every asset of an item record that has a resolvable href."""
    for key, a in (rec.get("assets") or {}).items():
        target = rec["asset_targets"].get(key)
        if target:
            yield key, target, a


def image_format(a: dict) -> str | None:
    """The image format (Pillow's name) an asset's media type or file name promises, or None."""
    media = str(a.get("type", "")).split(";", 1)[0].strip().lower()
    if media in IMAGE_TYPES:
        return IMAGE_TYPES[media]
    href = str(a.get("href", "")).lower().split("?", 1)[0]
    return next((f for ext, f in IMAGE_EXT.items() if href.endswith(ext)), None) if not media else None


def checksum_code(cs: Any) -> str | None:
    """The multihash code of a well-formed ``file:checksum`` this validator can verify, or None."""
    if not isinstance(cs, str):
        return None
    spec = MULTIHASHES.get(cs[:4].lower())
    return cs[:4].lower() if spec is not None and len(cs) == 4 + spec[1] else None


def _is_hex(s: str) -> bool:
    return len(s) % 2 == 0 and len(s) >= 6 and all(c in "0123456789abcdefABCDEF" for c in s)


def _number(v: Any) -> float | None:
    """A JSON number (not a bool) as a float, or None."""
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _same_nodata(claim: Any, actual: Any) -> bool:
    if claim is None:
        return actual is None
    if actual is None:
        return False
    if isinstance(claim, str):
        claim = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}.get(claim.lower(), claim)
    try:
        c, a = float(claim), float(actual)
    except (TypeError, ValueError, OverflowError):
        return False
    return (math.isnan(c) and math.isnan(a)) or c == a


def _close(x: float, y: float) -> bool:
    return abs(x - y) <= 1e-9 + 1e-6 * max(abs(x), abs(y))


def asset_findings(rec: dict, probes: dict[str, dict], root: str, checksums: bool = True) -> list[Finding]:
    out: list[Finding] = []
    where = rec["where"]
    footprint_checked = False
    for key, target, a in asset_targets(rec):
        if not inside(root, target) and not is_url(target):
            out.append(
                Finding(
                    ERROR, "assets", where, f"asset {key} href {a.get('href')} points outside the catalog root {root}"
                )
            )
            continue
        p = probes.get(target)
        if p is None:
            continue
        label = f"asset {key} ({a.get('href')})"
        if "not_checked" in p:
            out.append(Finding(NOT_CHECKED, "assets", where, p["not_checked"], key="assets:" + p["not_checked"]))
            continue
        if not p.get("exists", False):
            out.append(Finding(ERROR, "assets", where, f"{label}: {p.get('problem') or 'missing'}"))
            continue
        out += _file_claims(where, a, p, label, checksums, is_url(target))
        if "problem" in p:
            out.append(Finding(ERROR, "assets", where, f"{label}: {p['problem']}"))
            continue
        if "image" in p:
            want = image_format(a)
            if want and p["image"] != want:
                out.append(
                    Finding(ERROR, "assets", where, f"{label}: the file is a {p['image']} image, its type says {want}")
                )
        if "count" not in p:
            continue  # not a raster
        out += _raster_claims(rec, key, a, p, label)
        if not footprint_checked and p.get("footprint") and rec.get("geometry") and "thumbnail" not in roles_of(a):
            footprint_checked = True
            out += _footprint_claims(rec, p, label)
    return out


def _file_claims(where: str, a: dict, p: dict, label: str, checksums: bool, remote: bool) -> list[Finding]:
    """file:size and file:checksum against the file."""
    out: list[Finding] = []
    if "file:size" in a:
        fs = a["file:size"]
        if not isinstance(fs, int) or isinstance(fs, bool) or fs < 0:
            out.append(Finding(ERROR, "assets", where, f"{label}: file:size {fs!r} is not a whole number of bytes"))
        elif p.get("size") is not None and fs != p["size"]:
            out.append(
                Finding(ERROR, "assets", where, f"{label}: file:size says {fs:,} bytes, the file has {p['size']:,}")
            )
    if "file:checksum" not in a or not checksums:
        return out
    cs = a["file:checksum"]
    if not isinstance(cs, str) or not _is_hex(cs):
        out.append(
            Finding(ERROR, "assets", where, f"{label}: file:checksum {str(cs)[:80]!r} is not a multihash hex string")
        )
        return out
    code = checksum_code(cs)
    if remote and code not in (p.get("checksums") or {}):
        out.append(
            Finding(
                NOT_CHECKED,
                "assets",
                where,
                "file:checksum of remote assets is not checked (it would download every file; --remote-checksums does)",
                key="remote-checksum",
            )
        )
    elif code is None:
        out.append(
            Finding(
                NOT_CHECKED,
                "assets",
                where,
                f"file:checksum with multihash code {cs[:4]} is not checked (only {', '.join(MULTIHASHES)})",
                key=f"hash:{cs[:4]}",
            )
        )
    elif code in (p.get("checksums") or {}) and cs.lower() != p["checksums"][code]:
        out.append(Finding(ERROR, "assets", where, f"{label}: file:checksum does not match the file's contents"))
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
        if field in a and not isinstance(bl, list):
            err(f"{field} is a {type(bl).__name__}, not a list of bands")
        elif isinstance(bl, list) and len(bl) != count:
            err(f"{field} lists {len(bl)} bands, the file has {count}")
    for msg in _band_values(a, p, is_sen12ts(rec)):
        err(msg)
    desc = p.get("descriptions") or []
    for field in ("bands", "eo:bands"):
        names = a.get(field)
        if isinstance(names, list) and len(names) == count and all(desc):
            for i, (b, d) in enumerate(zip(names, desc)):
                name = b.get("name") if isinstance(b, dict) else None
                if name is not None and name != d:
                    err(f"band {i + 1} is named {d!r} in the file, {name!r} in {field}")
                    break
    if is_sen12ts(rec):
        bad = [i + 1 for i, b in enumerate(p["blocks"]) if tuple(b) != SEN12TS_BLOCK]
        if bad:
            err(f"block size {tuple(p['blocks'][bad[0] - 1])} (band {bad[0]}), SEN12TS COGs use {SEN12TS_BLOCK}")
        out += _tile_claims(rec, p, label)
    out += _proj_claims(rec, a, p, label)
    return out


def _band_values(a: dict, p: dict, sen12ts: bool = False) -> list[str]:
    """raster:bands' data_type, nodata, scale, offset, unit and spatial_resolution against the
    file, band by band: one message per field (the first band that differs, and how many do)."""
    count = p["count"]
    rb = a.get("raster:bands")
    bands: list[dict | None] = [b if isinstance(b, dict) else {} for b in rb[:count]] if isinstance(rb, list) else []
    bands += [None] * (count - len(bands))  # None: the item says nothing about this band
    names = [str(d) if d else f"band {i + 1}" for i, d in enumerate((p.get("descriptions") or [None] * count)[:count])]
    scales = p.get("scales") or [None] * count
    offsets = p.get("offsets") or [None] * count
    units = p.get("units") or [None] * count
    res = [abs(p["transform"][0]), abs(p["transform"][4])] if p.get("transform") else None
    wrong: dict[str, list[str]] = {}

    def bad(field: str, i: int, msg: str) -> None:
        wrong.setdefault(field, []).append(f"band {i + 1} ({names[i]}) {msg}")

    for i, b in enumerate(bands):
        file_scale = scales[i] if scales[i] is not None else 1.0
        file_offset = offsets[i] if offsets[i] is not None else 0.0
        if b is None or not isinstance(b, dict):
            if not _close(file_scale, 1.0) or not _close(file_offset, 0.0):
                bad(
                    "scale",
                    i,
                    f"is stored x {file_scale:g} + {file_offset:g} in the file; the item has no raster:bands entry to "
                    "say so",
                )
            if b is None and p["nodata"][i] is not None and (isinstance(rb, list) or sen12ts):
                bad("nodata", i, f"nodata is {p['nodata'][i]} in the file; raster:bands does not list the band")
            continue
        if "data_type" in b and b["data_type"] != p["dtypes"][i]:
            bad("data_type", i, f"is {p['dtypes'][i]} in the file, raster:bands says {b['data_type']!r}")
        if "nodata" in b:
            if not _same_nodata(b["nodata"], p["nodata"][i]):
                bad("nodata", i, f"nodata is {p['nodata'][i]} in the file, raster:bands says {b['nodata']!r}")
        elif p["nodata"][i] is not None:
            bad("nodata", i, f"nodata is {p['nodata'][i]} in the file, raster:bands does not say")
        for field, file_value, default in (("scale", file_scale, 1.0), ("offset", file_offset, 0.0)):
            claim = b.get(field, default)
            value = _number(claim)
            if value is None:
                bad(field, i, f"{field} {claim!r} in raster:bands is not a number (the file's is {file_value:g})")
            elif not _close(value, file_value):
                said = f"raster:bands says {claim!r}" if field in b else f"raster:bands does not say (so {default:g})"
                bad(field, i, f"{field} is {file_value:g} in the file, {said}")
        if units[i] and b.get("unit") != units[i]:
            bad("unit", i, f"unit is {units[i]!r} in the file, raster:bands says {b.get('unit')!r}")
        if "spatial_resolution" in b and res is not None:
            r = _number(b["spatial_resolution"])
            if r is None or not any(_close(r, x) for x in res):
                bad(
                    "spatial_resolution",
                    i,
                    f"pixels are {res[0]:g} x {res[1]:g} in the file, raster:bands says spatial_resolution "
                    f"{b['spatial_resolution']!r}",
                )
    return [ms[0] + (f" (and {len(ms) - 1} more bands)" if len(ms) > 1 else "") for ms in wrong.values()]


def _tile_claims(rec: dict, p: dict, label: str) -> list[Finding]:
    """A SEN12TS file lies on the grid cell its sen12ts:tile names."""
    from sen12ts_stac.spec.grid import Tile

    tile_id = rec["props"].get(V.TILE)
    try:
        tile = Tile.from_id(tile_id)
    except Exception:
        return []  # a malformed tile id is the rules check's finding
    want = list(tile.transform)[:6]
    crs_ok = _same_crs(tile.crs, p.get("crs"))
    if crs_ok is False or not all(_close(x, y) for x, y in zip(want, p["transform"])):
        return [
            Finding(
                ERROR,
                "assets",
                rec["where"],
                f"{label}: the file is not on the grid of sen12ts:tile {tile_id} "
                f"({p.get('crs')} {p['transform']}, the tile is {tile.crs} {want})",
            )
        ]
    return []


def _same_crs(a: Any, b: Any) -> bool | None:
    """Whether two CRS descriptions name the same CRS; None when one is not understood."""
    if not a or not b:
        return None
    try:
        from rasterio.crs import CRS

        return CRS.from_user_input(a) == CRS.from_user_input(b)
    except Exception:
        return None


def _proj_claims(rec: dict, a: dict, p: dict, label: str) -> list[Finding]:
    where = rec["where"]
    proj = {**rec.get("proj", {}), **{k: v for k, v in a.items() if k.startswith("proj:")}}
    out: list[Finding] = []

    def err(msg: str) -> None:
        out.append(Finding(ERROR, "assets", where, f"{label}: {msg}"))

    if "proj:code" in proj or "proj:epsg" in proj:
        code = proj.get("proj:code") or proj.get("proj:epsg")
        code = f"EPSG:{code}" if isinstance(code, int) and not isinstance(code, bool) else code
        if p.get("crs"):
            same = _same_crs(code, p["crs"]) if isinstance(code, str) else None
            if same is None:
                err(f"proj code {code!r} is not a CRS PROJ knows; the file's is {p['crs']}")
            elif not same:
                err(f"CRS is {p['crs']} in the file, proj says {code}")
        elif code is not None:
            err(f"proj says CRS {code}, the file has none")
    if "proj:shape" in proj and proj["proj:shape"] != [p["height"], p["width"]]:
        err(f"proj:shape is {proj['proj:shape']!r}, the file is {[p['height'], p['width']]} (rows, columns)")
    if "proj:transform" in proj:
        tr = proj["proj:transform"]
        nums = [_number(v) for v in tr[:6]] if isinstance(tr, list) and len(tr) in (6, 9) else None
        if nums is None or None in nums:
            err(f"proj:transform {tr!r} is not 6 or 9 numbers")
        elif any(abs(x - y) > 1e-6 * max(1.0, abs(y)) for x, y in zip(nums, p["transform"])):
            err(f"proj:transform {tr[:6]} differs from the file's {p['transform']}")
    if "proj:bbox" in proj:
        pb = proj["proj:bbox"]
        nums = [_number(v) for v in pb] if isinstance(pb, list) and len(pb) == 4 else None
        if nums is None or None in nums:
            err(f"proj:bbox {pb!r} is not 4 numbers")
        elif any(abs(x - y) > 1e-3 + 1e-6 * abs(y) for x, y in zip(nums, p["bounds"])):
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
        out.append(
            Finding(
                ERROR, "assets", where, f"geometry does not match the raster footprint of {label} (overlap {iou:.3f})"
            )
        )
    bbox = rec.get("bbox")
    if isinstance(bbox, list) and len(bbox) == 4 and all(_number(v) is not None for v in bbox):
        fb = foot.bounds
        res = abs(p["transform"][0])
        px = res if p.get("geographic") else res / 111_320.0  # one pixel in degrees (roughly)
        tol = max(1e-6, px)
        if any(abs(x - y) > tol for x, y in zip(bbox, fb)):
            out.append(
                Finding(
                    ERROR,
                    "assets",
                    where,
                    f"bbox {bbox} differs from the raster footprint's {[round(v, 7) for v in fb]} by more than a pixel",
                )
            )
    return out


BAND_FIELDS = ("data_type", "nodata", "scale", "offset", "unit")


def item_assets_findings(records: dict[str, dict]) -> list[Finding]:
    """A collection's ``item_assets`` describe its items' assets: band count, names (``bands`` /
    ``eo:bands``) and each ``raster:bands`` field it gives (data type, nodata, scale, offset,
    unit) must be the items' (readers take band names and statistics from ``item_assets``).
    One finding per collection, asset and field, with the number of items that differ."""
    wrong: dict[tuple, list[str]] = {}
    for rec in records.values():
        if rec.get("type") != "Feature" or not rec.get("assets"):
            continue
        coll = next(
            (
                records[t]
                for rel, t, _, _ in rec["links"]
                if rel == "collection" and t in records and records[t].get("type") == "Collection"
            ),
            None,
        )
        templates = (coll or {}).get("item_assets") or {}
        for key, a in rec["assets"].items():
            t = templates.get(key)
            if t is None:
                continue
            assert coll is not None  # templates came from it
            for field, msg in _template_diffs(t, a):
                wrong.setdefault((coll["where"], key, field), []).append(f"{msg} ({rec['where']})")
    return [
        Finding(
            ERROR,
            "assets",
            where,
            f"item_assets {key}: {ms[0]}" + (f" (and {len(ms) - 1} more items)" if len(ms) > 1 else ""),
        )
        for (where, key, _), ms in sorted(wrong.items())
    ]


def _template_diffs(t: dict, a: dict) -> Iterable[tuple[str, str]]:
    for field in ("raster:bands", "bands", "eo:bands"):
        tl, al = t.get(field), a.get(field)
        if isinstance(tl, list) and isinstance(al, list) and len(tl) != len(al):
            yield field, f"{field} lists {len(tl)} bands, an item's {len(al)}"
            return
    for field in ("bands", "eo:bands"):
        tl, al = t.get(field), a.get(field)
        if isinstance(tl, list) and isinstance(al, list):
            for i, (tb, ab) in enumerate(zip(tl, al)):
                tn = tb.get("name") if isinstance(tb, dict) else None
                an = ab.get("name") if isinstance(ab, dict) else None
                if tn is not None and tn != an:
                    yield field, f"band {i + 1} is named {tn!r}, in an item {an!r}"
                    break
    tl, al = t.get("raster:bands"), a.get("raster:bands")
    if isinstance(tl, list) and isinstance(al, list):
        for field in BAND_FIELDS:
            for i, (tb, ab) in enumerate(zip(tl, al)):
                if not isinstance(tb, dict) or field not in tb:
                    continue
                av = ab.get(field) if isinstance(ab, dict) else None
                same = _same_nodata(tb[field], av) if field == "nodata" else tb[field] == av
                if not same:
                    yield field, f"band {i + 1} {field} is {tb[field]!r}, in an item {av!r}"
                    break
