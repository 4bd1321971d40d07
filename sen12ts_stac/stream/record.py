"""The triplet record, and how a STAC item becomes one: absolute asset hrefs (a remote catalog
may not point at local files), band names, nodata, scale/offset and the collections'
statistics, shared between records (a catalog of 250k triplets has a handful of layouts).
"""

from __future__ import annotations

import datetime as dt
import math
import threading
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence, cast

from sen12ts_stac.errors import UserError
from sen12ts_stac.spec import bands as spec_bands
from sen12ts_stac.spec import vocabulary as V
from sen12ts_stac.spec.vocabulary import ASSET_KEYS, aoi_of_collection
from sen12ts_stac.storage import is_url, resolve


@dataclass(frozen=True, eq=True)
class TripletRecord:
    """One S1/S2/label triplet, as the loader needs it.

    ``hrefs``, ``bands``, ``nodata``, ``scale``, ``offset`` and ``stats`` are keyed by asset:
    ``"s1"``, ``"s2"``, ``"labels"``. ``hrefs`` are absolute (a local path or an http(s) URL);
    ``bands`` are the band names in file order; ``scale``/``offset`` are per band (physical =
    stored * scale + offset; 1 and 0 when the catalog gives none); ``stats`` maps band name to
    ``(mean, std)`` in *stored* units, from the ``raster:bands`` statistics in the collections'
    ``item_assets`` (empty when the catalog has none). ``shape`` is the pixel grid shared by the
    assets (``proj:shape``), when the item gives it.
    """

    id: str
    aoi: str
    tile: str
    split: str
    season: str
    s2_date: dt.date
    radar_dates: tuple[dt.date, ...]
    bbox: tuple[float, float, float, float]
    hrefs: Mapping[str, str]
    bands: Mapping[str, tuple[str, ...]]
    nodata: Mapping[str, float | int | None]
    scale: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    offset: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    stats: Mapping[str, Mapping[str, tuple[float, float]]] = field(default_factory=dict)
    collection: str | None = None
    shape: tuple[int, int] | None = None  # (rows, cols) of the reference grid (proj:shape), if known

    def __hash__(self) -> int:
        return hash(self.id)


def resolve_href(base: str, href: str) -> str:
    """``href`` made absolute against the document at ``base`` (a local path or a URL; for a
    remote document, its final URL after redirects). Other schemes (``s3://``) pass through.
    A remote document may not point at a local file: a ``file://`` href in it is refused (an
    absolute path in it is a path on the same host)."""
    if not isinstance(href, str):
        raise UserError(f"{base}: an href is {type(href).__name__}, not a string")
    loc = resolve(base, href)
    if loc is None:
        if "://" not in href:
            raise UserError(f"{base}: empty href")
        return href
    if is_url(base) and not is_url(loc):
        raise UserError(f"{base}: refused href {href!r}: a remote catalog may not point at local files")
    return loc


def _self_href(item: dict) -> str | None:
    for link in item.get("links", []):
        if link.get("rel") == "self" and link.get("href"):
            return link["href"]
    return None


class _Interner:
    """Shares equal metadata between records: a catalog of 250k triplets has a handful of
    distinct band layouts, so every record points at the same few tuples and dicts. Keys are
    cheap tuples built from the asset JSON (no serialisation)."""

    def __init__(self):
        self._seen: dict = {}
        self._lock = threading.Lock()

    def __call__(self, value, key=None):
        key = value if key is None else key
        hit = self._seen.get(key)
        if hit is None:
            with self._lock:
                hit = self._seen.setdefault(key, value)
        return hit

    def asset(self, key: str, a: dict) -> tuple:
        """``(names, nodata, scale, offset)`` of one asset (a JSON dict), shared between records."""
        bands = a.get("bands") or a.get("eo:bands") or []
        rbs = a.get("raster:bands") or []
        return self.layout(
            key,
            [(b or {}).get("name") for b in bands],
            [((rb or {}).get("nodata"), (rb or {}).get("scale"), (rb or {}).get("offset")) for rb in rbs],
        )

    def layout(self, key: str, names: Sequence[str | None] | None, raster: Sequence[tuple] | None) -> tuple:
        """The same from band names and ``(nodata, scale, offset)`` per ``raster:bands`` entry."""
        names, raster = tuple(names or ()), tuple(tuple(t) for t in raster or ())
        sig = (key, names, raster)
        hit = self._seen.get(sig)
        if hit is not None:
            return hit
        names = _names(key, names, len(raster))
        n = len(names)
        if len(raster) >= n:
            scale = tuple(float(sc) if sc is not None else 1.0 for _, sc, _ in raster[:n])
            offset = tuple(float(of) if of is not None else 0.0 for _, _, of in raster[:n])
        else:
            scale, offset = (1.0,) * n, (0.0,) * n
        nodata = _nodata(raster[0][0]) if raster else None
        return self(tuple(self(v) for v in (names, nodata, scale, offset)), sig)


def _nodata(value):
    if isinstance(value, str) and value.lower() in ("nan", "+nan", "-nan"):
        return float("nan")
    if isinstance(value, str) and value.lower() in ("inf", "+inf", "-inf"):
        return float(value)
    return value


def _names(key: str, names: Sequence[str | None], n_raster: int) -> tuple[str, ...]:
    """Band names from ``bands``/``eo:bands``; else the SEN12TS band table of the asset key when
    the band count fits; else ``b1, b2, ...``."""
    if names and all(names):
        return tuple(n for n in names if n)
    product = spec_bands.PRODUCTS.get(key)
    if product is not None and n_raster in (0, len(product.bands)):
        return product.names
    return tuple(f"b{i + 1}" for i in range(n_raster))


def _band_names(key: str, asset: dict) -> tuple[str, ...]:
    for field_name in ("bands", "eo:bands"):
        names = [(b or {}).get("name") for b in asset.get(field_name) or []]
        if names and all(names):
            return tuple(n for n in names if n)
    return _names(key, (), len(asset.get("raster:bands") or []))


def stats_from_item_assets(collection: dict) -> dict[str, dict[str, tuple[float, float]]]:
    """``{asset key: {band name: (mean, std)}}`` from a collection's ``item_assets``
    ``raster:bands[i].statistics`` (bands named by ``bands`` / ``eo:bands``)."""
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for key, asset in (collection.get("item_assets") or {}).items():
        if key not in ASSET_KEYS:
            continue
        names = _band_names(key, asset)
        per = {}
        for name, rb in zip(names, asset.get("raster:bands") or []):
            st = (rb or {}).get("statistics") or {}
            if "mean" in st and ("stddev" in st or "std" in st):
                std = float(st["stddev"] if "stddev" in st else st["std"])
                if math.isfinite(std) and std > 0:
                    per[name] = (float(st["mean"]), std)
        if per:
            out[key] = per
    return out


def is_triplet_collection(c: dict) -> bool:
    ia = c.get("item_assets") or {}
    return (
        str(c.get("id", "")).endswith("_triplets")
        or V.SPLIT in (c.get("summaries") or {})
        or any("ml-aoi:role" in (a or {}) for a in ia.values())
    )


def record_from_item(
    item: dict, base: str | None, stats: Mapping[str, Mapping] | None = None, intern: _Interner | None = None
) -> TripletRecord | None:
    """A record from a triplet item dict (``None`` if the item is not a triplet record).
    Relative asset hrefs resolve against ``base`` (the item's own location), else its self link."""
    intern = intern or _Interner()
    props = item.get("properties") or {}
    assets = item.get("assets") or {}
    if V.SPLIT not in props or not ({"s1", "s2"} & set(assets)):
        return None
    base = base or _self_href(item) or ""
    try:
        hrefs, metas = {}, {}
        for key in ASSET_KEYS:
            a = assets.get(key)
            if a and a.get("href"):
                hrefs[key] = resolve_href(base, a["href"])
                metas[key] = intern.asset(key, a)
    except (ValueError, TypeError, AttributeError) as e:
        raise UserError(
            f"{base or item.get('id')}: malformed triplet item {item.get('id')!r} ({type(e).__name__}: {e})"
        ) from None
    # a STAC item's id is a required string
    return make_record(
        cast(str, item.get("id")), item.get("collection"), props, item.get("bbox"), hrefs, metas, stats, intern, base
    )


def make_record(
    iid: str,
    collection: str | None,
    props: Mapping,
    bbox,
    hrefs: dict,
    metas: dict,
    stats: Mapping[str, Mapping] | None,
    intern: _Interner,
    where: str,
) -> TripletRecord:
    """A record from an item's parts: ``metas`` holds each asset's interned layout."""
    try:
        sig = ("record", tuple((k, id(m)) for k, m in metas.items()))
        names, nodata, scale, offset = intern(tuple({k: m[i] for k, m in metas.items()} for i in range(4)), sig)
        s2_date = props.get(V.S2_DATE) or str(props.get("datetime") or "")[:10]
        return TripletRecord(
            id=iid,
            aoi=intern(props.get(V.AOI) or aoi_of_collection(collection) or ""),
            tile=props.get(V.TILE) or iid,
            split=intern(props[V.SPLIT]),
            season=intern(props.get(V.SEASON) or ""),
            s2_date=dt.date.fromisoformat(s2_date),
            radar_dates=tuple(dt.date.fromisoformat(d) for d in props.get(V.RADAR_DATES) or []),
            bbox=_bbox2d(bbox or [math.nan] * 4),
            hrefs=hrefs,
            bands=names,
            nodata=nodata,
            scale=scale,
            offset=offset,
            stats=(stats or {}).get(collection, {}) if collection is not None else {},
            collection=collection,
            # proj:shape is [rows, cols]
            shape=cast("tuple[int, int]", tuple(int(v) for v in props["proj:shape"][:2]))
            if props.get("proj:shape")
            else None,
        )
    except (KeyError, ValueError, TypeError, AttributeError) as e:
        raise UserError(f"{where or iid}: malformed triplet item {iid!r} ({type(e).__name__}: {e})") from None


def _bbox2d(bbox) -> tuple[float, float, float, float]:
    b = [float(v) for v in bbox]
    return (b[0], b[1], b[3], b[4]) if len(b) == 6 else (b[0], b[1], b[2], b[3])


def _merge_stats(collections: Iterable[dict]) -> dict:
    out: dict = {}
    for c in collections:
        for key, per in stats_from_item_assets(c).items():
            out.setdefault(key, per)
    return out
