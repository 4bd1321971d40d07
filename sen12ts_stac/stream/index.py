"""Where triplets come from: one flat, filtered list of :class:`TripletRecord` from a local
catalog, a static catalog over http(s) or in an object store, a STAC API, an MLHub-style API
(``radiant-mlhub`` client) or a stac-geoparquet file. :func:`detect` tells which; one backend
per form (:mod:`sen12ts_stac.stream.backends`) makes the records.

A record holds everything a reader needs and nothing it must look up again: absolute asset
hrefs, band names, nodata, scale/offset and the per-band statistics of the catalog's
collections. Records are small, picklable and sorted by id.
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path
from typing import Sequence

from sen12ts_stac.errors import UserError
from sen12ts_stac.spec.filters import Filter
from sen12ts_stac.storage import is_http, is_url
from sen12ts_stac.stream.backends import IndexOptions, api, mlhub, parquet, static
from sen12ts_stac.stream.fetch import (
    DEFAULT_CACHE_TTL,
    DEFAULT_CONCURRENCY,
    Fetcher,
    FetchStats,
    HttpCache,
    default_cache_dir,
)
from sen12ts_stac.stream.record import TripletRecord

__all__ = [
    "DEFAULT_CACHE_TTL",
    "DEFAULT_CONCURRENCY",
    "FetchStats",
    "Filter",
    "IndexOptions",
    "TripletRecord",
    "detect",
    "load_index",
    "summarize",
]


def detect(catalog: str | os.PathLike, fetcher: Fetcher | None = None) -> tuple[str, str]:
    """``(kind, location)``: kind is ``local``, ``remote`` (a static catalog at an http(s) or
    object-store URL), ``api``, ``mlhub`` or ``parquet``.
    Explicit prefixes ``stac-api+http(s)://`` and ``mlhub+http(s)://`` win; an http(s) URL is
    an API when its landing page conforms to item search or has a ``search`` link."""
    s = os.fspath(catalog)
    if s.startswith("stac-api+"):
        return "api", s[len("stac-api+") :]
    if s.startswith("mlhub+"):
        return "mlhub", s[len("mlhub+") :]
    if s.startswith("file://"):
        s = s[len("file://") :]
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


def load_index(
    catalog: str | os.PathLike,
    *,
    aoi=None,
    split=None,
    seasons=None,
    bbox=None,
    tiles=None,
    date_range=None,
    collections=None,
    concurrency: int = DEFAULT_CONCURRENCY,
    cache: bool = True,
    cache_dir: str | os.PathLike | None = None,
    cache_ttl: float = DEFAULT_CACHE_TTL,
    timeout: float = 30.0,
    retries: int = 5,
    page_size: int = 500,
    api_key: str | None = None,
    base_href: str | None = None,
    progress: bool | None = None,
    stats_out: FetchStats | None = None,
    allow_outside_root: bool = False,
) -> list[TripletRecord]:
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
    filt = Filter.make(
        aoi=aoi, split=split, seasons=seasons, bbox=bbox, tiles=tiles, date_range=date_range, collections=collections
    )
    opts = IndexOptions(
        concurrency=concurrency,
        cache=cache,
        cache_dir=cache_dir,
        cache_ttl=cache_ttl,
        timeout=timeout,
        retries=retries,
        page_size=page_size,
        api_key=api_key,
        progress=progress,
        base_href=base_href,
        allow_outside_root=allow_outside_root,
    )
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
            records = static.records(loc, filt, opts, fetcher)
        elif kind == "api":
            records = api.records(loc, filt, opts)
        elif kind == "mlhub":
            records = mlhub.records(loc, filt, opts)
        else:
            records = parquet.records(loc, filt, opts, fetcher)
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
