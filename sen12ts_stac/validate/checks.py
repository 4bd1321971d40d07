"""The checks beyond JSON schemas: what makes a (SEN12TS) STAC catalog right. The SEN12TS
and STAC rules are in ``rules``, the comparison of items with their files in ``claims``.

* links (``link_findings``): every parent/root/child/item/collection/source/derived_from href
  resolves, points at the right kind of object, and stays inside the catalog root.
* assets (``probe_asset``): reads what each asset file states (only regular local files are
  read); ``claims.asset_findings`` compares it with what the items say.
* structure (``structure``): links, assets and properties the checks above cannot read are
  errors, never skipped in silence.

Objects travel as small *records* (``record``): the fields these checks need, so item work can
run in worker processes and only records come back.
"""

from __future__ import annotations

import math
import os
import stat
from collections import defaultdict
from typing import Any, Callable, Iterable, TypedDict

from sen12ts_stac.spec import vocabulary as V
from sen12ts_stac.validate.locations import inside, is_url, remote_size, resolve
from sen12ts_stac.validate.report import ERROR, NOT_CHECKED, WARNING, Finding

CHECKED_RELS = ("self", "root", "parent", "child", "item", "collection", "source", "derived_from")
CONTAINERS = ("Catalog", "Collection")
KEEP_PROPS = (
    "label:type",
    V.SPLIT,
    V.TILE,
    V.AOI,
    V.SEASON,
    V.RADAR_DATES,
    V.S2_DATE,
    "sen12ts:triplet",
    "constellation",
    "datetime",
    "start_datetime",
    "end_datetime",
    "sat:relative_orbit",
)
ASSET_KEEP = ("href", "type", "roles", "raster:bands", "bands", "eo:bands", "file:size", "file:checksum")
RASTER_EXT = (".tif", ".tiff")
VECTOR_HINTS = ("geo+json", "geojson", "json", "geopackage", "shapefile", "flatgeobuf", "parquet")


# -- records ---------------------------------------------------------------------------------
def record(obj: dict, where: str, with_assets: bool) -> dict:
    """What the cross-object, link and asset checks need to know about one STAC object."""
    props_obj = obj.get("properties")
    props = props_obj if isinstance(props_obj, dict) else {}
    links = []
    for link in obj.get("links") or [] if isinstance(obj.get("links"), list) else []:
        if not isinstance(link, dict):
            continue
        href = link.get("href")
        links.append(
            (
                link.get("rel"),
                resolve(where, href),
                href if isinstance(href, str) else repr(href),
                link.get("ml-aoi:role"),
            )
        )
    assets_obj = obj.get("assets")
    assets = assets_obj if isinstance(assets_obj, dict) else {}
    rec = {
        "where": where,
        "type": obj.get("type") if isinstance(obj.get("type"), str) else None,
        "id": obj.get("id"),
        "collection": obj.get("collection") if isinstance(obj.get("collection"), str) else None,
        "props": {k: props[k] for k in KEEP_PROPS if k in props},
        "bbox": obj.get("bbox"),
        "links": links,
        "asset_targets": {k: resolve(where, a.get("href")) for k, a in assets.items() if isinstance(a, dict)},
    }
    if with_assets and obj.get("type") == "Feature":
        rec["assets"] = {
            k: {f: a[f] for f in ASSET_KEEP if f in a} | {f: v for f, v in a.items() if f.startswith("proj:")}
            for k, a in assets.items()
            if isinstance(a, dict)
        }
        rec["proj"] = {k: v for k, v in props.items() if k.startswith("proj:")}
        rec["geometry"] = obj.get("geometry")
    if with_assets and obj.get("type") == "Collection" and isinstance(obj.get("item_assets"), dict):
        rec["item_assets"] = {
            k: {f: a[f] for f in ("raster:bands", "bands", "eo:bands") if f in a}
            for k, a in obj["item_assets"].items()
            if isinstance(a, dict)
        }
    return rec


def is_sen12ts(rec_or_props: dict) -> bool:
    props = rec_or_props.get("props", rec_or_props)
    return V.TILE in props


def _kind(v: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "true/false", type(None): "null"}.get(
        type(v), "a number"
    )


def structure(obj: dict, where: str) -> list[Finding]:
    """Errors for an object whose shape the other checks cannot read (they skip what they cannot
    read, so without these a malformed object would pass with the schemas off): ``links`` not a
    list of link objects with a string rel, ``assets`` not an object of asset objects with a
    string href, ``properties`` not an object, a ``type`` that is not a STAC type."""
    out: list[Finding] = []
    t = obj.get("type")
    if t not in ("Feature", "Catalog", "Collection"):
        out.append(
            Finding(
                ERROR,
                "rules",
                where,
                f"type {str(t)[:40]!r} is not Feature, Catalog or Collection: not checked as a STAC object",
            )
        )
    if "links" in obj:
        links = obj["links"]
        if not isinstance(links, list):
            out.append(
                Finding(ERROR, "links", where, f"links is {_kind(links)}, not a list of links: no link was checked")
            )
        else:
            bad = [(i, x) for i, x in enumerate(links) if not (isinstance(x, dict) and isinstance(x.get("rel"), str))]
            if bad:
                i, x = bad[0]
                what = (
                    f"has rel {_kind(x.get('rel'))}, not a string"
                    if isinstance(x, dict)
                    else f"is {_kind(x)}, not a link object"
                )
                more = f" (and {len(bad) - 1} more malformed links)" if len(bad) > 1 else ""
                out.append(Finding(ERROR, "links", where, f"links[{i}] {what}: not checked{more}"))
    if t == "Feature":
        if "assets" in obj:
            assets = obj["assets"]
            if not isinstance(assets, dict):
                out.append(
                    Finding(
                        ERROR,
                        "assets",
                        where,
                        f"assets is {_kind(assets)}, not an object of assets: no asset was checked",
                    )
                )
            else:
                bad_a = [
                    k
                    for k, a in assets.items()
                    if not (isinstance(a, dict) and isinstance(a.get("href"), str) and a["href"].strip())
                ]
                if bad_a:
                    a = assets[bad_a[0]]
                    what = "has no string href" if isinstance(a, dict) else f"is {_kind(a)}, not an asset object"
                    more = f" (and {len(bad_a) - 1} more)" if len(bad_a) > 1 else ""
                    out.append(Finding(ERROR, "assets", where, f"asset {bad_a[0]} {what}: not checked{more}"))
        if not isinstance(obj.get("properties"), dict):
            out.append(
                Finding(
                    ERROR,
                    "rules",
                    where,
                    f"properties is {_kind(obj.get('properties'))}, not an object: no property was checked",
                )
            )
    return out


def _asset_kind(a: dict) -> str:
    media = str(a.get("type", "")).lower()
    href = str(a.get("href", "")).lower().split("?", 1)[0]
    if "tiff" in media or href.endswith(RASTER_EXT) or "jp2" in media or href.endswith(".jp2"):
        return "raster"
    if any(h in media for h in VECTOR_HINTS) or href.endswith(
        (".geojson", ".json", ".gpkg", ".shp", ".fgb", ".parquet")
    ):
        return "vector"
    return "other"


def roles_of(a: dict) -> list:
    roles = a.get("roles")
    return roles if isinstance(roles, list) else []


# -- links -----------------------------------------------------------------------------------
def link_findings(
    records: dict[str, dict],
    root: str,
    root_where: str | None,
    linked_from: dict[str, str],
    exists: Callable[[list[str]], dict[str, tuple[bool | None, str]]],
) -> tuple[list[Finding], int]:
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
                scheme = href.split("://", 1)[0] if "://" in href else ""
                if not scheme.isalnum():  # not a string, empty, or no scheme://
                    out.append(Finding(ERROR, "links", where, f"rel={rel} link has no usable href ({href})"))
                else:
                    scheme = href.split(":", 1)[0]
                    out.append(
                        Finding(
                            NOT_CHECKED,
                            "links",
                            where,
                            f"{scheme}:// links are not checked (e.g. {href})",
                            key=f"scheme:{scheme}",
                        )
                    )
                continue
            if rel == "self":
                if target != where:
                    out.append(Finding(WARNING, "links", where, f"self link {href} is not where this file is"))
                continue
            if not inside(root, target):
                if is_url(target) and rel in ("source", "derived_from"):
                    host = target.split("/", 3)[2]
                    out.append(
                        Finding(
                            NOT_CHECKED,
                            "links",
                            where,
                            f"{rel} links to other hosts ({host}) are not checked",
                            key=f"host:{rel}:{host}",
                        )
                    )
                else:
                    out.append(
                        Finding(ERROR, "links", where, f"rel={rel} href {href} points outside the catalog root {root}")
                    )
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
                out.append(
                    Finding(
                        WARNING,
                        "links",
                        where,
                        f"parent link {href} is not {linked_from[where]}, which links this object",
                    )
                )
    if pending:
        answers = exists(sorted(pending))
        for target, uses in pending.items():
            ok, detail = answers.get(target, (None, "not checked"))
            for where, rel, href in uses:
                if ok is None:
                    out.append(Finding(NOT_CHECKED, "links", where, f"rel={rel} href {href}: {detail}"))
                elif not ok:
                    out.append(
                        Finding(ERROR, "links", where, f"broken link rel={rel} href {href}: {detail or 'no such file'}")
                    )
    return out, n


def _link_kind(where: str, rel: str, href: str, hit: dict) -> list[Finding]:
    want = {
        "child": CONTAINERS,
        "item": ("Feature",),
        "source": ("Feature",),
        "derived_from": ("Feature",),
        "parent": CONTAINERS,
        "root": CONTAINERS,
        "collection": ("Collection",),
    }.get(rel)
    if want and hit["type"] not in want:
        return [
            Finding(ERROR, "links", where, f"rel={rel} href {href} is a {hit['type']}, expected {' or '.join(want)}")
        ]
    return []


# -- assets ----------------------------------------------------------------------------------
# (open_raster sets GDAL_HTTP_TIMEOUT itself, from its timeout: passing it here too is a TypeError)
# (a TypedDict: its keys cannot be open_raster's timeout, so mypy accepts it as **options)
_GdalEnv = TypedDict(
    "_GdalEnv",
    {
        "GDAL_DISABLE_READDIR_ON_OPEN": str,
        "GDAL_HTTP_MAX_RETRY": str,
        "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": str,
        "GDAL_NUM_THREADS": str,
    },
)
GDAL_ENV: _GdalEnv = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_HTTP_MAX_RETRY": "1",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff,.TIF,.TIFF",
    "GDAL_NUM_THREADS": "1",
}


def is_raster_asset(a: dict) -> bool:
    return _asset_kind(a) == "raster" and "jp2" not in str(a.get("type", "")).lower()


def probe_asset(target: str, raster: bool, checksums: Iterable[str] = (), image: bool = False) -> dict:
    """Everything the asset checks compare against, read once per file: never raises. A local
    file is read only when it is a regular file (a FIFO, device or socket is a finding, never a
    read); ``checksums`` are the multihash codes to compute, ``image`` asks Pillow to verify it."""
    info: dict[str, Any] = {"target": target}
    try:
        if is_url(target):
            info["size"] = remote_size(target)
            if checksums and info["size"] is not None:
                info["checksums"] = _hash_remote(target, sorted(set(checksums)), info["size"])
            if info["size"] is None and not raster:
                from sen12ts_stac.validate.locations import exists

                ok, detail = exists(target)
                info["exists"] = bool(ok)
                if not ok:
                    info["problem"] = detail or "no such file"
                return info
        else:
            try:
                st = os.stat(target)
            except FileNotFoundError:
                info["exists"], info["problem"] = False, "no such file"
                return info
            if not stat.S_ISREG(st.st_mode):
                info["exists"] = True
                info["problem"] = "is a folder, not a file" if stat.S_ISDIR(st.st_mode) else NOT_REGULAR
                return info
            info["size"] = st.st_size
            if checksums:
                info["checksums"] = _hash_local(target, sorted(set(checksums)))
            if image:
                info.update(_image_info(target))
        info["exists"] = True
        if raster:
            info.update(_raster_info(target, info.get("size")))
    except Exception as e:  # anything unexpected is still one finding, not a crash
        info.setdefault("exists", True)
        info["problem"] = f"could not be read ({type(e).__name__}: {str(e)[:160]})"
    return info


NOT_REGULAR = "not a regular file (a FIFO, device or socket is not read)"


def _open_regular(path: str):
    """``path`` opened for reading, only if it is a regular file (checked on the open file, so a
    FIFO swapped in after a stat neither blocks the open nor is read)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ValueError(NOT_REGULAR)
    return os.fdopen(fd, "rb")


def _hash_local(path: str, codes: list[str]) -> dict[str, str]:
    """{multihash code: multihash hex} of a local regular file, in one pass."""
    from sen12ts_stac.storage.checksums import CHUNK, MULTIHASHES

    hashers = {c: MULTIHASHES[c][0]() for c in codes if c in MULTIHASHES}
    with _open_regular(path) as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            for h in hashers.values():
                h.update(chunk)
    return {c: c + h.hexdigest() for c, h in hashers.items()}


def _hash_remote(url: str, codes: list[str], size: int) -> dict[str, str]:
    """{multihash code: multihash hex} of a remote file, streamed in one pass (at most its
    announced ``size`` is read: a longer body is not the file the size describes)."""
    from sen12ts_stac.storage.checksums import MULTIHASHES
    from sen12ts_stac.storage.read import open_chunks

    hashers = {c: MULTIHASHES[c][0]() for c in codes if c in MULTIHASHES}
    stream = open_chunks(url)
    n = 0
    try:
        for chunk in stream.chunks:
            n += len(chunk)
            if n > size:
                raise ValueError(f"the body is longer than the {size:,} bytes announced")
            for h in hashers.values():
                h.update(chunk)
    finally:
        stream.close()
    return {c: c + h.hexdigest() for c, h in hashers.items()}


def _image_info(path: str) -> dict:
    """{"image": format} for a picture Pillow can open and verify; else {"problem": ...}."""
    import warnings

    from PIL import Image

    try:
        with _open_regular(path) as f, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(f) as im:
                fmt = im.format
                im.verify()  # structure and checksums, without decoding the pixels
        return {"image": fmt}
    except Exception as e:  # UnidentifiedImageError, SyntaxError (Pillow's "broken PNG"), OSError, bombs
        return {"problem": f"not a readable image ({type(e).__name__}: {str(e)[:120]})"}


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
                out.update(
                    driver=ds.driver,
                    count=ds.count,
                    dtypes=list(ds.dtypes),
                    nodata=list(ds.nodatavals),
                    blocks=[list(b) for b in ds.block_shapes],
                    width=ds.width,
                    height=ds.height,
                    crs=ds.crs.to_string() if ds.crs else None,
                    transform=list(ds.transform)[:6],
                    bounds=list(ds.bounds),
                    descriptions=list(ds.descriptions),
                )
                out["truncated"] = _truncated(ds, size)
                out.update(scales=list(ds.scales), offsets=list(ds.offsets), units=list(ds.units))
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
                end = int(off) + int(n)
                return f"band {b} block ({i}, {j}) ends at byte {end:,} but the file has {size:,} bytes (truncated)"
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
