"""STAC APIs, through pystac-client: collections, bbox and datetime are searched on the server,
the other filters applied here; one search per triplet collection, run concurrently."""

from __future__ import annotations

import concurrent.futures as cf
from typing import Iterable

import requests

from sen12ts_stac.errors import SourceError, UserError
from sen12ts_stac.spec.filters import Filter
from sen12ts_stac.spec.vocabulary import aoi_of_collection, sibling_collection_ids
from sen12ts_stac.stream.backends import IndexOptions
from sen12ts_stac.stream.fetch import _short
from sen12ts_stac.stream.record import (
    TripletRecord,
    _Interner,
    _merge_stats,
    _self_href,
    is_triplet_collection,
    record_from_item,
)


def _api_collections(all_collections: list[dict], filt: Filter) -> list[str]:
    if filt.collections is not None:
        return sorted(filt.collections)
    out = []
    for c in all_collections:
        cid = str(c.get("id", ""))
        if not is_triplet_collection(c):
            continue
        aoi = aoi_of_collection(cid)
        if aoi is not None and not filt.wants_aoi(aoi):
            continue
        out.append(cid)
    return sorted(out)


def _records_from_item_stream(
    pages: Iterable[dict], cid: str, stats: dict, filt: Filter, intern: _Interner, base: str
) -> list[TripletRecord]:
    out = []
    for item in pages:
        item.setdefault("collection", cid)
        r = record_from_item(item, _self_href(item) or base, stats, intern)
        if r is not None and filt.match(r):
            out.append(r)
    return out


def records(url: str, filt: Filter, opts: IndexOptions) -> list[TripletRecord]:
    """Search a STAC API (pystac-client): collections, bbox and datetime on the server, the
    other filters here; one search per collection, run concurrently."""
    import pystac_client
    from pystac_client.exceptions import APIError

    try:
        client = pystac_client.Client.open(url, timeout=opts.timeout)
        if not client.conforms_to(pystac_client.ConformanceClasses.ITEM_SEARCH):
            raise UserError(f"{url}: this STAC API does not implement item search")
        all_colls = (
            [c.to_dict(transform_hrefs=False) for c in client.get_collections()] if filt.collections is None else []
        )
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
        stats = {cid: _merge_stats(c for c in map(collection, [cid, *sibling_collection_ids(cid)]) if c)}
        try:
            search = client.search(collections=[cid], bbox=filt.bbox, datetime=filt.datetime, limit=opts.page_size)
            return _records_from_item_stream(search.items_as_dicts(), cid, stats, filt, intern, url)
        except APIError as e:
            raise SourceError(f"{url}: search of {cid} failed ({_short(e)})") from None

    with cf.ThreadPoolExecutor(max_workers=max(1, min(opts.concurrency, len(cids)))) as pool:
        return [r for rs in pool.map(one, cids) for r in rs]
