"""Where triplets come from: one flat, filtered list of :class:`TripletRecord` from a local
catalog, a static catalog over http(s), a STAC API, an MLHub-style API (``radiant-mlhub``
client) or a stac-geoparquet file.

A record holds everything a reader needs and nothing it must look up again: absolute asset
hrefs, band names, nodata, scale/offset and the per-band statistics of the catalog's
collections. Records are small, picklable and sorted by id.

Static catalogs are walked concurrently (a thread pool follows ``child``/``item`` links as
documents arrive) and only below triplet collections: the S1/S2/label collections are read for
their statistics but their items are not. Remote documents go through an on-disk HTTP cache
(SQLite, keyed by URL, revalidated with ETag / Last-Modified after ``cache_ttl`` seconds), so a
second start within the TTL costs no request at all, and after it one cheap ``304`` per
document, still concurrent.
"""

from __future__ import annotations

import concurrent.futures as cf
import datetime as dt
import json
import math
import os
import re
import sqlite3
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import orjson
import requests

from sen12ts_stac.errors import SourceError, UserError
from sen12ts_stac.storage import (MAX_JSON_BYTES, BodyTooLarge, DeadlineExceeded, ReadError, capped_get, http_session,
                                  inside, is_http, is_url, open_seekable, read_bytes, resolve)
from sen12ts_stac.storage.walk import walk
from sen12ts_stac.spec import bands as spec_bands
from sen12ts_stac.spec.seasons import SEASONS, SPLITS

ASSET_KEYS = ("s1", "s2", "labels")
SPLIT_ALIASES = {"val": "validate", "valid": "validate", "validation": "validate", "training": "train", "testing": "test"}
DEFAULT_CACHE_TTL = 3600.0
DEFAULT_CONCURRENCY = 16


# --------------------------------------------------------------------------------------------
# The record
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Filters
# --------------------------------------------------------------------------------------------


def _as_set(value, what: str, known: Iterable[str] | None = None, alias: Mapping[str, str] | None = None,
            lower: bool = False) -> frozenset[str] | None:
    """A comma-separated string or an iterable as a set, checked against ``known``."""
    if value is None:
        return None
    items = [v.strip() for v in value.split(",")] if isinstance(value, str) else [str(v).strip() for v in value]
    if lower or known is not None:
        items = [v.lower() for v in items]
    items = [(alias or {}).get(v, v) for v in items if v]
    if not items:
        raise UserError(f"empty {what} filter")
    if known is not None:
        bad = sorted(set(items) - set(known))
        if bad:
            raise UserError(f"unknown {what} {', '.join(bad)}; known: {', '.join(known)}")
    return frozenset(items)


def _as_date(value, what: str) -> dt.date | None:
    if value is None or value == "" or value == "..":
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value)[:10])
    except ValueError:
        raise UserError(f"bad {what} {value!r}: expected an ISO date YYYY-MM-DD") from None


@dataclass(frozen=True)
class Filter:
    """The filters of :func:`load_index`, normalised. ``None`` means "no restriction"."""

    aois: frozenset[str] | None = None
    splits: frozenset[str] | None = None
    seasons: frozenset[str] | None = None
    bbox: tuple[float, float, float, float] | None = None
    tiles: frozenset[str] | None = None
    start: dt.date | None = None
    end: dt.date | None = None
    collections: frozenset[str] | None = None

    @classmethod
    def make(cls, *, aoi=None, split=None, seasons=None, bbox=None, tiles=None, date_range=None, collections=None) -> "Filter":
        if bbox is not None:
            if isinstance(bbox, str):
                from sen12ts_stac.spec.aois import parse_bbox

                bbox = parse_bbox(bbox)
            bbox = tuple(float(v) for v in bbox)
            if len(bbox) != 4 or not (bbox[0] <= bbox[2] and bbox[1] <= bbox[3]):
                raise UserError(f"bad bbox {bbox!r}: expected (minlon, minlat, maxlon, maxlat)")
        start = end = None
        if date_range is not None:
            if isinstance(date_range, str):
                if "/" not in date_range:
                    raise UserError(f"bad date_range {date_range!r}: expected 'START/END' (either may be '..')")
                date_range = date_range.split("/", 1)
            if len(date_range) != 2:
                raise UserError(f"bad date_range {date_range!r}: expected (start, end)")
            start, end = _as_date(date_range[0], "date_range start"), _as_date(date_range[1], "date_range end")
            if start and end and start > end:
                raise UserError(f"bad date_range: start {start} is after end {end}")
        return cls(
            aois=_as_set(aoi, "AOI", lower=True),
            splits=_as_set(split, "split", SPLITS, SPLIT_ALIASES),
            seasons=_as_set(seasons, "season", tuple(SEASONS)),
            bbox=bbox,
            tiles=_as_set(tiles, "tile"),
            start=start,
            end=end,
            collections=_as_set(collections, "collection"),
        )

    def match(self, r: TripletRecord) -> bool:
        if self.aois is not None and r.aoi.lower() not in self.aois:
            return False
        if self.splits is not None and r.split not in self.splits:
            return False
        if self.seasons is not None and r.season not in self.seasons:
            return False
        if self.tiles is not None and r.tile not in self.tiles:
            return False
        if self.collections is not None and r.collection not in self.collections:
            return False
        if self.start is not None and r.s2_date < self.start:
            return False
        if self.end is not None and r.s2_date > self.end:
            return False
        if self.bbox is not None:
            a, b = self.bbox, r.bbox
            if b[0] > a[2] or b[2] < a[0] or b[1] > a[3] or b[3] < a[1]:
                return False
        return True

    @property
    def datetime(self) -> str | None:
        """The date range as a STAC API ``datetime`` interval (the triplet's datetime is its S2 date)."""
        if self.start is None and self.end is None:
            return None
        s = f"{self.start.isoformat()}T00:00:00Z" if self.start else ".."
        e = f"{self.end.isoformat()}T23:59:59Z" if self.end else ".."
        return f"{s}/{e}"

    def wants_aoi(self, name: str) -> bool:
        return self.aois is None or name.lower() in self.aois

    def wants_collection(self, cid: str) -> bool:
        return self.collections is None or cid in self.collections

    def blocks(self) -> frozenset[str] | None:
        """The catalog blocks that can hold the wanted tiles (block catalogs are pruned by name)."""
        if self.tiles is None:
            return None
        from sen12ts_stac.spec.grid import Tile

        out = set()
        for t in self.tiles:
            try:
                out.add(Tile.from_id(t).block)
            except (ValueError, KeyError):
                return None  # not a sen12ts tile id: do not prune
        return frozenset(out)


# --------------------------------------------------------------------------------------------
# Locations: local paths and URLs behind one tiny interface
# --------------------------------------------------------------------------------------------


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


def _in_folder(folder: str) -> str:
    """A document location inside ``folder`` (hrefs resolve against a document's folder)."""
    folder = os.fspath(folder)
    if is_url(folder):
        return folder.rstrip("/") + "/"
    return os.path.join(os.path.abspath(folder), "")


def _self_href(item: dict) -> str | None:
    for link in item.get("links", []):
        if link.get("rel") == "self" and link.get("href"):
            return link["href"]
    return None


# --------------------------------------------------------------------------------------------
# HTTP with a conditional-request cache
# --------------------------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """``$SEN12TS_CACHE_DIR``, else ``$XDG_CACHE_HOME/sen12ts-stac``, else ``~/.cache/sen12ts-stac``."""
    if os.environ.get("SEN12TS_CACHE_DIR"):
        return Path(os.environ["SEN12TS_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "sen12ts-stac"


class HttpCache:
    """URL -> (ETag, Last-Modified, fetched-at, body) in one SQLite file, shared by threads (one
    connection behind a lock) and by processes (SQLite's own locking, WAL journal)."""

    def __init__(self, folder: str | os.PathLike):
        folder = Path(folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self.path = folder / "stac-http-cache.sqlite"
            self._db = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS docs (url TEXT PRIMARY KEY, etag TEXT, last_modified TEXT, fetched REAL, body BLOB)"
            )
            self._db.commit()
        except (OSError, sqlite3.Error) as e:
            raise UserError(f"{folder}: cannot use as the STAC HTTP cache ({e})") from None
        self._lock = threading.Lock()
        self._pending = 0

    def get(self, url: str) -> tuple[str | None, str | None, float, bytes] | None:
        with self._lock:
            row = self._db.execute("SELECT etag, last_modified, fetched, body FROM docs WHERE url = ?", (url,)).fetchone()
        return None if row is None else (row[0], row[1], row[2], bytes(row[3]))

    def put(self, url: str, etag: str | None, last_modified: str | None, body: bytes) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO docs VALUES (?, ?, ?, ?, ?)", (url, etag, last_modified, time.time(), body))
            self._pending += 1
            if self._pending >= 500:
                self._db.commit()
                self._pending = 0

    def touch(self, url: str) -> None:
        with self._lock:
            self._db.execute("UPDATE docs SET fetched = ? WHERE url = ?", (time.time(), url))
            self._pending += 1

    def close(self) -> None:
        with self._lock:
            try:
                self._db.commit()
                self._db.close()
            except sqlite3.Error:
                pass


@dataclass
class FetchStats:
    """What one index run cost: documents read, HTTP requests, answers served by the cache."""

    documents: int = 0
    requests: int = 0
    not_modified: int = 0
    cache_hits: int = 0

    def add(self, **kw) -> None:
        for k, v in kw.items():
            setattr(self, k, getattr(self, k) + v)


class Fetcher:
    """Reads JSON documents from local paths or URLs; remembers every document for the life of
    the object (so a document is read at most once per index run) and, for URLs, goes through
    an :class:`HttpCache`."""

    def __init__(self, cache: HttpCache | None = None, ttl: float = DEFAULT_CACHE_TTL, timeout: float = 30.0,
                 retries: int = 5, pool: int = DEFAULT_CONCURRENCY, deadline: float = 120.0):
        self.cache, self.ttl, self.timeout, self.retries, self.pool = cache, ttl, timeout, retries, pool
        self.deadline = deadline
        self.stats = FetchStats()
        self._memo: dict[str, dict] = {}
        self._final: dict[str, str] = {}  # asked-for URL -> final URL after redirects
        self._lock = threading.Lock()
        self._local = threading.local()

    def _session(self) -> requests.Session:
        s = getattr(self._local, "session", None)
        if s is None:
            s = self._local.session = http_session(self.retries, self.pool)
        return s

    def get_json(self, loc: str) -> dict:
        """The document at ``loc``. Catalogs and collections are remembered; items are not (they
        are read once, and a walk of 250k items must not keep them all in memory)."""
        with self._lock:
            if loc in self._memo:
                return self._memo[loc]
        obj = self._read(loc)
        with self._lock:
            if obj.get("type") != "Feature":
                self._memo[loc] = obj
            self.stats.add(documents=1)
        return obj

    def final_url(self, loc: str) -> str:
        """Where the document asked for at ``loc`` really is (after redirects): hrefs in it
        resolve against this."""
        with self._lock:
            return self._final.get(loc, loc)

    def _read(self, loc: str) -> dict:
        if not is_http(loc):  # local files and object stores: no HTTP cache
            try:
                return _parse(read_bytes(loc, MAX_JSON_BYTES).body, loc)
            except ReadError as e:
                raise (UserError if not is_url(loc) or e.missing else SourceError)(f"{loc}: {e}") from None
        cached = self.cache.get(loc) if self.cache is not None else None
        headers = {"Accept": "application/json, application/geo+json;q=0.9, */*;q=0.5"}
        if cached is not None:
            etag, modified, fetched, body = cached
            if time.time() - fetched < self.ttl:
                with self._lock:
                    self.stats.add(cache_hits=1)
                return _parse(body, loc)
            if etag:
                headers["If-None-Match"] = etag
            if modified:
                headers["If-Modified-Since"] = modified
        try:
            r = capped_get(loc, MAX_JSON_BYTES, session=self._session(), headers=headers, timeout=self.timeout,
                           deadline=self.deadline)
        except (BodyTooLarge, DeadlineExceeded) as e:
            raise SourceError(f"{loc}: {e}") from None
        except requests.RequestException as e:
            raise SourceError(f"{loc}: request failed ({_short(e)})") from None
        with self._lock:
            self.stats.add(requests=1)
            if r.url != loc:
                self._final[loc] = r.url
        if r.status == 304 and cached is not None:
            with self._lock:
                self.stats.add(not_modified=1)
            self.cache.touch(loc)
            return _parse(cached[3], loc)
        if r.status != 200:
            raise SourceError(f"{loc}: HTTP {r.status} {r.reason}")
        obj = _parse(r.body, loc)
        if self.cache is not None and r.url == loc:  # a redirected answer is not cached: its final URL is the base
            self.cache.put(loc, r.headers.get("ETag"), r.headers.get("Last-Modified"), r.body)
        return obj


def _parse(body: bytes, loc: str) -> dict:
    try:
        obj = orjson.loads(body)
    except ValueError as e:
        raise UserError(f"{loc}: not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise UserError(f"{loc}: expected a JSON object, got {type(obj).__name__}")
    return obj


def _short(e: BaseException) -> str:
    text = str(e)
    m = re.search(r"\(Caused by (.*)\)\)?$", text)
    return (m.group(1) if m else text)[:200]


# --------------------------------------------------------------------------------------------
# Items -> records
# --------------------------------------------------------------------------------------------


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
        return self.layout(key, [(b or {}).get("name") for b in bands],
                           [((rb or {}).get("nodata"), (rb or {}).get("scale"), (rb or {}).get("offset")) for rb in rbs])

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
        return tuple(names)
    product = spec_bands.PRODUCTS.get(key)
    if product is not None and n_raster in (0, len(product.bands)):
        return product.names
    return tuple(f"b{i + 1}" for i in range(n_raster))


def _band_names(key: str, asset: dict) -> tuple[str, ...]:
    for field_name in ("bands", "eo:bands"):
        names = [(b or {}).get("name") for b in asset.get(field_name) or []]
        if names and all(names):
            return tuple(names)
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
                std = float(st.get("stddev", st.get("std")))
                if math.isfinite(std) and std > 0:
                    per[name] = (float(st["mean"]), std)
        if per:
            out[key] = per
    return out


def is_triplet_collection(c: dict) -> bool:
    ia = c.get("item_assets") or {}
    return (str(c.get("id", "")).endswith("_triplets") or "ml-aoi:split" in (c.get("summaries") or {})
            or any("ml-aoi:role" in (a or {}) for a in ia.values()))


def record_from_item(item: dict, base: str | None, stats: Mapping[str, Mapping] | None = None,
                     intern: _Interner | None = None) -> TripletRecord | None:
    """A record from a triplet item dict (``None`` if the item is not a triplet record).
    Relative asset hrefs resolve against ``base`` (the item's own location), else its self link."""
    intern = intern or _Interner()
    props = item.get("properties") or {}
    assets = item.get("assets") or {}
    if "ml-aoi:split" not in props or not ({"s1", "s2"} & set(assets)):
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
        raise UserError(f"{base or item.get('id')}: malformed triplet item {item.get('id')!r} ({type(e).__name__}: {e})") from None
    return make_record(item.get("id"), item.get("collection"), props, item.get("bbox"), hrefs, metas, stats, intern,
                       base)


def make_record(iid: str, collection: str | None, props: Mapping, bbox, hrefs: dict, metas: dict,
                stats: Mapping[str, Mapping] | None, intern: _Interner, where: str) -> TripletRecord:
    """A record from an item's parts: ``metas`` holds each asset's interned layout."""
    try:
        sig = ("record", tuple((k, id(m)) for k, m in metas.items()))
        names, nodata, scale, offset = intern(tuple({k: m[i] for k, m in metas.items()} for i in range(4)), sig)
        s2_date = props.get("sen12ts:s2_date") or str(props.get("datetime") or "")[:10]
        return TripletRecord(
            id=iid,
            aoi=intern(props.get("sen12ts:aoi") or _aoi_from_collection(collection) or ""),
            tile=props.get("sen12ts:tile") or iid,
            split=intern(props["ml-aoi:split"]),
            season=intern(props.get("sen12ts:season") or ""),
            s2_date=dt.date.fromisoformat(s2_date),
            radar_dates=tuple(dt.date.fromisoformat(d) for d in props.get("sen12ts:radar_dates") or []),
            bbox=_bbox2d(bbox or [math.nan] * 4),
            hrefs=hrefs,
            bands=names,
            nodata=nodata,
            scale=scale,
            offset=offset,
            stats=(stats or {}).get(collection, {}),
            collection=collection,
            shape=tuple(int(v) for v in props["proj:shape"][:2]) if props.get("proj:shape") else None,
        )
    except (KeyError, ValueError, TypeError, AttributeError) as e:
        raise UserError(f"{where or iid}: malformed triplet item {iid!r} ({type(e).__name__}: {e})") from None


def _bbox2d(bbox) -> tuple[float, float, float, float]:
    b = [float(v) for v in bbox]
    return (b[0], b[1], b[3], b[4]) if len(b) == 6 else (b[0], b[1], b[2], b[3])


def _aoi_from_collection(cid: str | None) -> str | None:
    m = re.match(r"^sen12ts_(.+)_(triplets|labels|s1_source|s2_source)$", cid or "")
    return m.group(1) if m else None


def _sibling_collection_ids(triplet_cid: str) -> list[str]:
    aoi = _aoi_from_collection(triplet_cid)
    return [f"sen12ts_{aoi}_s1_source", f"sen12ts_{aoi}_s2_source", f"sen12ts_{aoi}_labels"] if aoi else []


def _merge_stats(collections: Iterable[dict]) -> dict:
    out: dict = {}
    for c in collections:
        for key, per in stats_from_item_assets(c).items():
            out.setdefault(key, per)
    return out


# --------------------------------------------------------------------------------------------
# Progress
# --------------------------------------------------------------------------------------------


class _Progress:
    def __init__(self, enabled: bool | None, what: str):
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._p = None
        if self.enabled:
            from rich.console import Console
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._p = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                               console=Console(stderr=True), transient=True)
            self._task = self._p.add_task(what)
            self._p.start()
        self.what = what

    def update(self, docs: int, records: int) -> None:
        if self._p is not None:
            self._p.update(self._task, description=f"{self.what}: {docs} documents, {records} triplets")

    def close(self) -> None:
        if self._p is not None:
            self._p.stop()


# --------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------


@dataclass
class IndexOptions:
    concurrency: int = DEFAULT_CONCURRENCY
    cache: bool = True
    cache_dir: str | os.PathLike | None = None
    cache_ttl: float = DEFAULT_CACHE_TTL
    timeout: float = 30.0
    retries: int = 5
    page_size: int = 500
    api_key: str | None = None
    progress: bool | None = None
    base_href: str | None = None
    allow_outside_root: bool = False


def _walk_static(entry: str, filt: Filter, opts: IndexOptions, fetcher: Fetcher) -> list[TripletRecord]:
    """Follow child/item links from ``entry`` with the storage walker's threads, descending only
    into triplet collections (and, with filters, only into wanted AOIs and blocks)."""
    blocks = filt.blocks()
    intern = _Interner()
    records: list[TripletRecord] = []
    triplet_collections: dict[str, tuple[dict, str]] = {}
    # one statistics dict per triplet collection, filled after the walk: records made while
    # walking already point at it
    stats: dict[str, dict] = {}
    progress = _Progress(opts.progress, f"indexing {entry}")

    fence = None if is_url(entry) or opts.allow_outside_root else _Fence(_local_root(entry, fetcher))

    def visit(loc: str, obj: dict) -> tuple[TripletRecord | None, list[str]]:
        """Runs in a walker thread: an item becomes its record right here, so the walk never
        holds more than a few parsed items; other documents give the links to follow."""
        t = obj.get("type")
        if t == "Feature":
            record = record_from_item(obj, loc, stats, intern)
            if fence is not None and record is not None:
                for href in record.hrefs.values():
                    fence.check(loc, href)
            return record, []
        if t == "Catalog":
            m = re.match(r"^sen12ts_([a-z]+)$", str(obj.get("id", "")))
            if m and not filt.wants_aoi(m.group(1)):
                return None, []
        if t == "Collection":
            cid = str(obj.get("id", ""))
            if not is_triplet_collection(obj) or not filt.wants_collection(cid):
                return None, []
            aoi = _aoi_from_collection(cid)
            if aoi and not filt.wants_aoi(aoi):
                return None, []
            triplet_collections[cid] = (obj, loc)
            stats.setdefault(cid, {})
        out = []
        for link in obj.get("links") or []:
            if not isinstance(link, dict) or link.get("rel") not in ("child", "item") or not link.get("href"):
                continue
            href = link["href"]
            if blocks is not None and link["rel"] == "child":
                m = re.search(r"(block_[^/]+)/catalog\.json$", str(href))
                if m and m.group(1) not in blocks:
                    continue
            target = resolve_href(loc, href)
            if fence is not None:
                fence.check(loc, target)
            out.append(target)
        return None, out

    def read(loc: str) -> tuple[dict, str]:
        return fetcher.get_json(loc), fetcher.final_url(loc)

    try:
        for record in walk(entry, visit, read=read, workers=max(1, opts.concurrency)):
            if record is not None and filt.match(record):
                records.append(record)
            progress.update(fetcher.stats.documents, len(records))
    finally:
        progress.close()
    for cid, (coll, loc) in triplet_collections.items():
        stats[cid].update(collection_stats(coll, loc, fetcher))
    return records


def _local_root(entry: str, fetcher: Fetcher) -> str:
    """The folder of a local catalog's root: where its ``root`` link points (when that is a local
    file above the entry), else the entry's own folder."""
    folder = os.path.dirname(entry)
    try:
        link = next((l.get("href") for l in fetcher.get_json(entry).get("links") or []
                     if isinstance(l, dict) and l.get("rel") == "root"), None)
        target = resolve(entry, link) if link else None
    except UserError:
        target = None
    if target and not is_url(target) and inside(os.path.dirname(target), entry):
        folder = os.path.dirname(target)
    return os.path.realpath(folder)


class _Fence:
    """A local catalog may not make the loader read outside its root folder (symlinks resolved):
    ``load_index(..., allow_outside_root=True)`` lifts this for trees that really span folders."""

    def __init__(self, root: str):
        self.root = root

    def check(self, where: str, target: str) -> None:
        if is_url(target):
            return
        if not inside(self.root, os.path.realpath(target)):
            raise UserError(f"{where}: refused href {target}: it lies outside the catalog root {self.root} "
                            "(allow_outside_root=True allows it)")


def collection_stats(coll: dict, loc: str, fetcher: Fetcher) -> dict:
    """Statistics for a triplet collection at ``loc``: its own ``item_assets``, then those of its
    sibling collections (the S1/S2/label collections its ``parent`` catalog links)."""
    sources = [coll]
    parent = next((l["href"] for l in coll.get("links", []) if l.get("rel") == "parent" and l.get("href")), None)
    if parent:
        try:
            parent_loc = resolve_href(loc, parent)
            for link in fetcher.get_json(parent_loc).get("links", []):
                if link.get("rel") == "child" and link.get("href"):
                    child_loc = resolve_href(parent_loc, link["href"])
                    if child_loc != loc:
                        c = fetcher.get_json(child_loc)
                        if c.get("type") == "Collection":
                            sources.append(c)
        except UserError:
            pass  # statistics are optional
    return _merge_stats(sources)


def _api_collections(all_collections: list[dict], filt: Filter) -> list[str]:
    if filt.collections is not None:
        return sorted(filt.collections)
    out = []
    for c in all_collections:
        cid = str(c.get("id", ""))
        if not is_triplet_collection(c):
            continue
        aoi = _aoi_from_collection(cid)
        if aoi is not None and not filt.wants_aoi(aoi):
            continue
        out.append(cid)
    return sorted(out)


def _records_from_item_stream(pages: Iterable[dict], cid: str, stats: dict, filt: Filter, intern: _Interner,
                              base: str) -> list[TripletRecord]:
    out = []
    for item in pages:
        item.setdefault("collection", cid)
        r = record_from_item(item, _self_href(item) or base, stats, intern)
        if r is not None and filt.match(r):
            out.append(r)
    return out


def _from_stac_api(url: str, filt: Filter, opts: IndexOptions) -> list[TripletRecord]:
    """Search a STAC API (pystac-client): collections, bbox and datetime on the server, the
    other filters here; one search per collection, run concurrently."""
    import pystac_client
    from pystac_client.exceptions import APIError

    try:
        client = pystac_client.Client.open(url, timeout=opts.timeout)
        if not client.conforms_to(pystac_client.ConformanceClasses.ITEM_SEARCH):
            raise UserError(f"{url}: this STAC API does not implement item search")
        all_colls = [c.to_dict(transform_hrefs=False) for c in client.get_collections()] if filt.collections is None else []
    except APIError as e:
        raise SourceError(f"{url}: STAC API error ({_short(e)})") from None
    except (requests.RequestException, OSError) as e:
        raise SourceError(f"{url}: cannot reach the STAC API ({_short(e)})") from None
    cids = _api_collections(all_colls, filt)
    if not cids:
        return []
    by_id = {c["id"]: c for c in all_colls}

    def collection(cid: str) -> dict | None:
        if cid in by_id:
            return by_id[cid]
        try:
            c = client.get_collection(cid)
            return c.to_dict(transform_hrefs=False) if c is not None else None
        except Exception:  # noqa: BLE001 - a missing sibling collection only means no statistics
            return None

    intern = _Interner()

    def one(cid: str) -> list[TripletRecord]:
        stats = {cid: _merge_stats(c for c in map(collection, [cid, *_sibling_collection_ids(cid)]) if c)}
        try:
            search = client.search(collections=[cid], bbox=filt.bbox, datetime=filt.datetime, limit=opts.page_size)
            return _records_from_item_stream(search.items_as_dicts(), cid, stats, filt, intern, url)
        except APIError as e:
            raise SourceError(f"{url}: search of {cid} failed ({_short(e)})") from None

    with cf.ThreadPoolExecutor(max_workers=max(1, min(opts.concurrency, len(cids)))) as pool:
        return [r for rs in pool.map(one, cids) for r in rs]


def _drop_query(url: str, name: str) -> str:
    parts = urllib.parse.urlsplit(url)
    q = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True) if k != name]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(q)))


def _from_mlhub(root: str, filt: Filter, opts: IndexOptions) -> list[TripletRecord]:
    """Through the radiant-mlhub client (its Session: API key as ``key`` parameter, retries,
    ``next``-link paging) against any MLHub-style root: ``GET collections``,
    ``GET collections/{id}/items``."""
    try:
        from radiant_mlhub.exceptions import APIKeyNotFound, MLHubException
        from radiant_mlhub.session import Session, get_session
    except ImportError:
        raise UserError("mlhub+ catalogs need the radiant-mlhub client: pip install 'sen12ts-stac[collect-mlhub]'") from None
    try:
        session = get_session(api_key=opts.api_key)
    except APIKeyNotFound:
        session = Session(api_key=None)  # anonymous, e.g. a mirror or a loopback API
    session.root_url = root.rstrip("/") + "/"

    def get(path: str, **params) -> dict:
        try:
            return session.get(path, params=params or None, timeout=opts.timeout).json()
        except (requests.RequestException, MLHubException, ValueError) as e:
            raise SourceError(f"{session.root_url}{path}: MLHub request failed ({_short(e)})") from None

    all_colls = get("collections").get("collections", []) if filt.collections is None else []
    cids = _api_collections(all_colls, filt)
    intern = _Interner()

    def collection(cid: str) -> dict | None:
        try:
            return get(f"collections/{cid}")
        except SourceError:
            return None

    def pages(cid: str):
        # Our own ``next``-link loop rather than ``Session.paginate``: that one re-sends the
        # first page's parameters with every next link, which already carries them (a strict
        # API answers 400 to a doubled ``limit``). The session adds the key to every request.
        path: str | None = f"collections/{cid}/items"
        params: dict[str, Any] = {"limit": opts.page_size}
        if filt.bbox is not None:
            params["bbox"] = ",".join(str(v) for v in filt.bbox)
        if filt.datetime is not None:
            params["datetime"] = filt.datetime
        while path:
            page = get(path, **params)
            yield from page.get("features", [])
            nxt = next((l.get("href") for l in page.get("links", []) if l.get("rel") == "next"), None)
            path, params = (_drop_query(nxt, "key") if nxt else None), {}

    def one(cid: str) -> list[TripletRecord]:
        stats = {cid: _merge_stats(c for c in map(collection, [cid, *_sibling_collection_ids(cid)]) if c)}
        return _records_from_item_stream(pages(cid), cid, stats, filt, intern, session.root_url)

    if not cids:
        return []
    with cf.ThreadPoolExecutor(max_workers=max(1, min(opts.concurrency, len(cids)))) as pool:
        return [r for rs in pool.map(one, cids) for r in rs]


def _parquet_filter(schema_names: Sequence[str], filt: Filter):
    """Push the simple filters down into the parquet scan (row groups / pages are skipped)."""
    import pyarrow.compute as pc

    expr = None

    def add(column: str, values):
        nonlocal expr
        if values is None or column not in schema_names:
            return
        e = pc.field(column).isin(sorted(values))
        expr = e if expr is None else expr & e

    add("ml-aoi:split", filt.splits)
    add("sen12ts:season", filt.seasons)
    add("sen12ts:tile", filt.tiles)
    add("collection", filt.collections)
    return expr


def _from_parquet(loc: str, filt: Filter, opts: IndexOptions, fetcher: Fetcher) -> list[TripletRecord]:
    """A stac-geoparquet file (written by stac-geoparquet or rustac). Collections stored in the
    file's ``stac-geoparquet`` metadata give the statistics. Relative asset hrefs resolve
    against the item's ``self`` link, else ``base_href``, else the parquet file's folder."""
    import pyarrow.parquet as pq

    try:
        fh = open_seekable(loc)
    except ReadError as e:
        raise (UserError if e.missing or not is_url(loc) else SourceError)(f"{loc}: cannot open ({e})") from None
    try:
        pf = pq.ParquetFile(fh)
        names = pf.schema_arrow.names
        meta = json.loads((pf.schema_arrow.metadata or {}).get(b"stac-geoparquet", b"{}"))
        expr = _parquet_filter(names, filt)
        table = pq.read_table(fh, filters=expr)
    except Exception as e:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError, ...
        raise UserError(f"{loc}: not a readable stac-geoparquet file ({_short(e)})") from None
    finally:
        fh.close()
    colls = dict(meta.get("collections") or {})
    if meta.get("collection"):
        colls.setdefault(meta["collection"].get("id", ""), meta["collection"])
    base = _in_folder(opts.base_href) if opts.base_href else (loc if is_url(loc) else os.path.abspath(loc))
    stats = {}
    for cid, coll in colls.items():
        if not (is_triplet_collection(coll) or cid.endswith("_triplets")):
            continue
        stats[cid] = _merge_stats(colls[s] for s in [cid, *_sibling_collection_ids(cid)] if s in colls)
        if not ({"s1", "s2"} <= set(stats[cid])):  # siblings not in the file: through the parent link
            stats[cid] = collection_stats(coll, resolve_href(base, "collection.json"), fetcher) or stats[cid]
    return _records_from_table(table, base, stats, filt)


def _list_field(lists, name: str) -> list:
    """``list<struct>`` column -> per row, the list of one struct field (None for null rows)."""
    import pyarrow.compute as pc

    import pyarrow as pa

    vt = lists.type.value_type
    if not pa.types.is_struct(vt) or name not in [f.name for f in vt]:
        return [None] * len(lists)
    values = lists.flatten().field(name).to_pylist()
    out, i = [], 0
    for n in pc.list_value_length(lists).to_pylist():
        if n is None:
            out.append(None)
        else:
            out.append(values[i:i + n])
            i += n
    return out


def _records_from_table(table, base: str, stats: dict, filt: Filter) -> list[TripletRecord]:
    """Records straight from the parquet columns: asset hrefs, band names and raster:bands
    fields are pulled out column-wise, and each row's band layout is looked up, not rebuilt.
    No geometry is decoded and no item dict is made (a generic reader spends most of its time
    there: about 0.7 ms per row)."""
    import pyarrow as pa

    intern = _Interner()
    out: list[TripletRecord] = []
    if table.num_rows == 0 or "assets" not in table.column_names or "ml-aoi:split" not in table.column_names:
        return out
    props_cols = [c for c in table.column_names if c in ("datetime", "proj:shape") or c.startswith(("ml-aoi:", "sen12ts:"))]
    for batch in table.to_batches(max_chunksize=16384):
        n = batch.num_rows
        col = {name: batch.column(name) for name in batch.schema.names}
        assets = col["assets"]
        per_asset = {}
        for key in ASSET_KEYS:
            if key not in [f.name for f in assets.type]:
                continue
            a = pa.compute.struct_field(assets, key)
            fields = [f.name for f in a.type]
            hrefs = pa.compute.struct_field(a, "href").to_pylist() if "href" in fields else [None] * n
            band_field = "bands" if "bands" in fields else ("eo:bands" if "eo:bands" in fields else None)
            names = _list_field(pa.compute.struct_field(a, band_field), "name") if band_field else [None] * n
            if "raster:bands" in fields:
                rb = pa.compute.struct_field(a, "raster:bands")
                triples = list(zip(*[_list_field(rb, f) for f in ("nodata", "scale", "offset")]))
            else:
                triples = [(None, None, None)] * n
            per_asset[key] = (hrefs, names, triples)
        links = col.get("links")
        rels = _list_field(links, "rel") if links is not None else [None] * n
        lhrefs = _list_field(links, "href") if links is not None else [None] * n
        bbox = col.get("bbox")
        if bbox is not None and pa.types.is_struct(bbox.type):
            bbox_rows = list(zip(*[pa.compute.struct_field(bbox, f).to_pylist() for f in ("xmin", "ymin", "xmax", "ymax")]))
        else:
            bbox_rows = bbox.to_pylist() if bbox is not None else [None] * n
        props_rows = {c: col[c].to_pylist() for c in props_cols if c in col}
        ids = col["id"].to_pylist()
        colls = col["collection"].to_pylist() if "collection" in col else [None] * n
        for i in range(n):
            props = {c: v[i] for c, v in props_rows.items() if v[i] is not None}
            if "ml-aoi:split" not in props:
                continue
            if isinstance(props.get("datetime"), dt.datetime):
                props["datetime"] = props["datetime"].isoformat()
            self_href = next((h for r, h in zip(rels[i] or (), lhrefs[i] or ()) if r == "self"), None)
            where = self_href or base
            hrefs, metas = {}, {}
            for key, (h, names, triples) in per_asset.items():
                if h[i]:
                    hrefs[key] = resolve_href(where, h[i])
                    nod, sc, of = triples[i]
                    m = len(nod or sc or of or ())
                    raster = list(zip(nod or [None] * m, sc or [None] * m, of or [None] * m))
                    metas[key] = intern.layout(key, names[i], raster)
            if not ({"s1", "s2"} & set(hrefs)):
                continue
            r = make_record(ids[i], colls[i], props, bbox_rows[i], hrefs, metas, stats, intern, where)
            if filt.match(r):
                out.append(r)
    return out


# --------------------------------------------------------------------------------------------
# The entry point
# --------------------------------------------------------------------------------------------


def detect(catalog: str | os.PathLike, fetcher: Fetcher | None = None) -> tuple[str, str]:
    """``(kind, location)``: kind is ``local``, ``remote`` (a static catalog at an http(s) or
    object-store URL), ``api``, ``mlhub`` or ``parquet``.
    Explicit prefixes ``stac-api+http(s)://`` and ``mlhub+http(s)://`` win; an http(s) URL is
    an API when its landing page conforms to item search or has a ``search`` link."""
    s = os.fspath(catalog)
    if s.startswith("stac-api+"):
        return "api", s[len("stac-api+"):]
    if s.startswith("mlhub+"):
        return "mlhub", s[len("mlhub+"):]
    if s.startswith("file://"):
        s = s[len("file://"):]
    if is_url(s):
        if urllib.parse.urlsplit(s).path.endswith((".parquet", ".geoparquet")):
            return "parquet", s
        if fetcher is not None and is_http(s):  # an object store holds static catalogs only
            obj = fetcher.get_json(s)
            conforms = " ".join(obj.get("conformsTo") or [])
            if "item-search" in conforms or any(l.get("rel") == "search" for l in obj.get("links", [])):
                return "api", s
        return "remote", s
    p = Path(s).expanduser()
    if p.suffix in (".parquet", ".geoparquet"):
        return "parquet", str(p.resolve())
    if p.is_dir():
        p = p / "catalog.json"
        if not p.exists():
            raise UserError(f"{catalog}: no catalog.json in this folder")
    if not p.exists():
        raise UserError(f"{catalog}: no such file or folder")
    return "local", str(p.resolve())


def load_index(catalog: str | os.PathLike, *, aoi=None, split=None, seasons=None, bbox=None, tiles=None,
               date_range=None, collections=None, concurrency: int = DEFAULT_CONCURRENCY, cache: bool = True,
               cache_dir: str | os.PathLike | None = None, cache_ttl: float = DEFAULT_CACHE_TTL, timeout: float = 30.0,
               retries: int = 5, page_size: int = 500, api_key: str | None = None, base_href: str | None = None,
               progress: bool | None = None, stats_out: FetchStats | None = None,
               allow_outside_root: bool = False) -> list[TripletRecord]:
    """Every triplet record of ``catalog`` that passes the filters, sorted by id.

    ``catalog`` is one of:

    * a local folder (holding ``catalog.json``) or a catalog/collection JSON file;
    * the http(s) URL of a static ``catalog.json`` (walked with ``concurrency`` threads, through
      the on-disk cache in ``cache_dir``: documents younger than ``cache_ttl`` seconds are not
      re-requested, older ones are revalidated with ETag / Last-Modified);
    * the object-store URL of a static ``catalog.json``: ``s3://``, ``az://``, ``gs://``
      (configured as in :mod:`sen12ts_stac.storage.objects`; no cache);
    * a STAC API root: ``stac-api+http(s)://...``, or any http(s) URL whose landing page conforms
      to item search (pystac-client; ``page_size`` items per page, one search per collection);
    * ``mlhub+http(s)://host/root``: an MLHub-style API through the ``radiant-mlhub`` client;
      the key is ``api_key``, else ``MLHUB_API_KEY`` / ``~/.mlhub/profiles``, else anonymous;
    * a stac-geoparquet file (``.parquet``: local, http(s) or object store).

    Filters (``None`` = all): ``aoi`` (name or list), ``split`` (train / validate / test; "val"
    is accepted), ``seasons`` (spring / summer / fall / winter), ``bbox`` (minlon, minlat,
    maxlon, maxlat; intersects), ``tiles`` (tile ids such as ``"10_85_1592"``), ``date_range``
    (``(start, end)`` dates or ``"2020-03-01/2020-06-30"``, inclusive, on the S2 date; either
    end may be ``None`` / ``..``) and ``collections`` (triplet collection ids).

    A remote catalog may not point at local files, and a local static catalog may not point
    outside its root folder (the folder of the catalog its ``root`` link names; symlinks are
    resolved) unless ``allow_outside_root=True``.

    Errors (missing file, HTTP failure after retries, malformed item) raise
    :class:`~sen12ts_stac.errors.UserError` naming the file or URL.
    """
    filt = Filter.make(aoi=aoi, split=split, seasons=seasons, bbox=bbox, tiles=tiles, date_range=date_range,
                       collections=collections)
    opts = IndexOptions(concurrency=concurrency, cache=cache, cache_dir=cache_dir, cache_ttl=cache_ttl,
                        timeout=timeout, retries=retries, page_size=page_size, api_key=api_key, progress=progress,
                        base_href=base_href, allow_outside_root=allow_outside_root)
    if concurrency < 1:
        raise UserError(f"concurrency must be at least 1, got {concurrency}")
    http_cache = None
    s = os.fspath(catalog)
    if cache and is_http(s.split("+", 1)[-1]):
        http_cache = HttpCache(cache_dir or default_cache_dir())
    fetcher = Fetcher(http_cache, ttl=cache_ttl if cache else 0.0, timeout=timeout, retries=retries, pool=concurrency)
    try:
        kind, loc = detect(catalog, fetcher)
        if kind in ("local", "remote"):
            records = _walk_static(loc, filt, opts, fetcher)
        elif kind == "api":
            records = _from_stac_api(loc, filt, opts)
        elif kind == "mlhub":
            records = _from_mlhub(loc, filt, opts)
        else:
            records = _from_parquet(loc, filt, opts, fetcher)
    finally:
        if http_cache is not None:
            http_cache.close()
    if stats_out is not None:
        stats_out.add(**fetcher.stats.__dict__)
    records.sort(key=lambda r: r.id)
    dupes = [a.id for a, b in zip(records, records[1:]) if a.id == b.id]
    if dupes:
        records = list({r.id: r for r in records}.values())
    return records


def summarize(records: Sequence[TripletRecord]) -> dict:
    """Counts by split, season and AOI, and the number of tiles (for logs and docs)."""
    from collections import Counter

    return {
        "triplets": len(records),
        "tiles": len({r.tile for r in records}),
        "splits": dict(Counter(r.split for r in records)),
        "seasons": dict(Counter(r.season for r in records)),
        "aois": dict(Counter(r.aoi for r in records)),
    }
