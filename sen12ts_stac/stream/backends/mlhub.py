"""MLHub-style APIs, through the ``radiant-mlhub`` client (the ``collect-mlhub`` extra): the
service's own paging, with its API key on every request."""

from __future__ import annotations

import concurrent.futures as cf
import urllib.parse
from typing import Any

import requests

from sen12ts_stac.errors import SourceError, UserError
from sen12ts_stac.spec.filters import Filter
from sen12ts_stac.spec.vocabulary import sibling_collection_ids
from sen12ts_stac.stream.backends import IndexOptions
from sen12ts_stac.stream.backends.api import _api_collections, _records_from_item_stream
from sen12ts_stac.stream.fetch import _short
from sen12ts_stac.stream.record import TripletRecord, _Interner, _merge_stats


def _drop_query(url: str, name: str) -> str:
    parts = urllib.parse.urlsplit(url)
    q = [(k, v) for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True) if k != name]
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(q)))


def records(root: str, filt: Filter, opts: IndexOptions) -> list[TripletRecord]:
    """Through the radiant-mlhub client (its Session: API key as ``key`` parameter, retries,
    ``next``-link paging) against any MLHub-style root: ``GET collections``,
    ``GET collections/{id}/items``."""
    try:
        from radiant_mlhub.exceptions import APIKeyNotFound, MLHubException
        from radiant_mlhub.session import Session, get_session
    except ImportError:
        raise UserError(
            "mlhub+ catalogs need the radiant-mlhub client: pip install 'sen12ts-stac[collect-mlhub]'"
        ) from None
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
        stats = {cid: _merge_stats(c for c in map(collection, [cid, *sibling_collection_ids(cid)]) if c)}
        return _records_from_item_stream(pages(cid), cid, stats, filt, intern, session.root_url)

    if not cids:
        return []
    with cf.ThreadPoolExecutor(max_workers=max(1, min(opts.concurrency, len(cids)))) as pool:
        return [r for rs in pool.map(one, cids) for r in rs]
