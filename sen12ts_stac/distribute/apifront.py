"""The filter front of ``serve --api``: a small HTTP proxy in front of ``rustac serve`` that adds
what rustac's memory backend lacks and would otherwise ignore in silence (a CQL2 ``filter``
answered with 200 and no features, ``query`` dropped, ``/queryables`` empty).

* ``filter`` (CQL2 text or JSON, parsed and evaluated by the ``cql2`` package, see
  :mod:`sen12ts_stac.distribute.cql2filter`) and ``query`` (the STAC query extension, translated to CQL2) on
  ``/search`` (GET and POST) and ``/collections/{id}/items`` are answered here: the items the API
  was loaded with are selected (with the request's collections, ids, bbox, intersects and
  datetime) and paged here (``limit``, ``skip``; next links carry the filter), and each page's
  items are fetched from rustac by id, so the item JSON stays rustac's.
* Requests without a filter go to rustac; GET ``/search`` as a POST (rustac answers GET with
  ``limit`` and ``collections`` or ``bbox`` with 500).
* A property the catalog does not have, or an operator CQL2 does not define, is a 400 naming it.
* ``sortby``, ``fields`` and ``q``, which rustac ignores, are refused with 400.
* ``/queryables`` and ``/collections/{id}/queryables`` answer a JSON Schema built from the items
  (string properties with few values list them: ``ml-aoi:split`` -> train, validation, test);
  the landing page and ``/conformance`` announce filter, CQL2 and query.
"""

from __future__ import annotations

import http.server
import json
import re
import threading
from typing import Any, ClassVar, cast
from urllib.parse import parse_qsl, urlencode, urlsplit

import requests

from sen12ts_stac.distribute.cql2filter import (
    TOP_LEVEL,
    BadRequest,
    parse_filter,
    query_to_cql2,
    queryables,
    select,
)
from sen12ts_stac.distribute.httpserve import Guarded, GuardedServer

CONFORMANCE = [
    "https://api.stacspec.org/v1.0.0-rc.2/item-search#filter",
    "https://api.stacspec.org/v1.0.0-rc.1/item-search#query",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-json",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
    "http://www.opengis.net/spec/cql2/1.0/conf/spatial-functions",
]
QUERYABLES_REL = "http://www.opengis.net/def/rel/ogc/1.0/queryables"
REFUSED = ("sortby", "fields", "q")  # rustac's memory backend ignores them
MAX_LIMIT = 10_000  # items per page
_HITS_LOCK = threading.Lock()
MAX_BODY = 64 << 20


def _listify(v: Any) -> list:
    return [s for s in v.split(",") if s] if isinstance(v, str) else list(v)


def _search_body(req: dict, method: str) -> dict:
    """The non-filter part of a search request as a POST /search body (GET strings converted)."""
    body = {
        k: req[k]
        for k in ("collections", "ids", "bbox", "datetime", "intersects", "limit", "skip")
        if req.get(k) not in (None, "")
    }
    if method == "GET":
        try:
            for k in ("collections", "ids"):
                if k in body:
                    body[k] = _listify(body[k])
            if "bbox" in body:
                body["bbox"] = [float(x) for x in _listify(body["bbox"])]
            for k in ("limit", "skip"):
                if k in body:
                    body[k] = int(body[k])
            if "intersects" in body:
                body["intersects"] = json.loads(body["intersects"])
        except ValueError as e:
            raise BadRequest(f"bad search parameter: {e}") from None
    for k in ("collections", "ids"):
        if k in body and not (isinstance(body[k], list) and all(isinstance(v, str) for v in body[k])):
            raise BadRequest(f"{k} must be a list of strings")
    return body


class FrontHandler(Guarded, http.server.BaseHTTPRequestHandler):
    """Proxies to ``upstream`` (rustac) and answers filter, query and queryables itself."""

    upstream = ""  # rustac's own address
    public = ""  # the URL clients use (the front's), as rustac writes it in its links
    items: ClassVar[list[dict]] = []
    _hits: ClassVar[dict[str, list[dict]]] = {}  # recent selections (search -> items)
    quiet = True
    _session = threading.local()

    def log_message(self, fmt, *args) -> None:
        if not self.quiet:
            super().log_message(fmt, *args)

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_OPTIONS(self) -> None:
        if self.upstream:
            return self._proxy("OPTIONS", self.path, None)
        self._send(503, {"code": "ServiceUnavailable", "description": "the STAC API is starting"})

    def _send(self, status: int, doc: Any, ctype: str = "application/json", headers: dict | None = None) -> None:
        data = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        if not any(k.lower() == "access-control-allow-origin" for k in (headers or {})):
            self.send_header("Access-Control-Allow-Origin", "*")
        self.end_headers()
        self.wfile.write(data)

    def _base(self) -> str:
        host, port, *_ = cast(tuple, self.server.server_address)
        return self.public or f"http://{host}:{port}"

    def _route(self, method: str) -> None:
        if not self.upstream:
            return self._send(503, {"code": "ServiceUnavailable", "description": "the STAC API is starting"})
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        try:
            try:
                n = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                raise BadRequest("Content-Length is not a number") from None
            if n < 0 or n > MAX_BODY:
                raise BadRequest(f"request body over {MAX_BODY >> 20} MiB")
            raw = self.rfile.read(n) if n else b""
            if method == "GET":
                req = dict(parse_qsl(url.query, keep_blank_values=True))
            else:
                try:
                    req = json.loads(raw or b"{}")
                except (ValueError, RecursionError) as e:
                    raise BadRequest(f"request body is not JSON: {e}") from None
                if not isinstance(req, dict):
                    raise BadRequest("request body must be a JSON object")
            m = re.fullmatch(r"/collections/([^/]+)/(items|queryables)", path)
            if method == "GET" and (path == "/queryables" or (m and m.group(2) == "queryables")):
                return self._queryables(m.group(1) if m else None)
            if path == "/collections" and any(req.get(k) not in (None, "") for k in ("filter", "q", "query")):
                raise BadRequest("collection search (filter, q, query on /collections) is not supported by this API")
            if path == "/search" or (m and m.group(2) == "items"):
                for k in REFUSED:
                    if req.get(k) not in (None, "", [], {}):
                        raise BadRequest(f"{k} is not supported by this API (rustac serve, memory backend)")
                filtered = req.get("filter") not in (None, "") or req.get("query") not in (None, "")
                if filtered or (
                    path == "/search" and method == "GET"
                ):  # rustac's GET /search fails (500) with limit and collections/bbox
                    return self._search(req, method, filtered, path, [m.group(1)] if m else None)
            self._proxy(method, self.path, raw if method != "GET" else None)
        except BadRequest as e:
            self._send(400, {"code": "BadRequest", "description": str(e)})
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True
        except Exception as e:  # noqa: BLE001 (a bug here: one line, not a traceback on the console)
            self.log_error("%s %s: %s: %s", method, self.path, type(e).__name__, e)
            self._send(500, {"code": "InternalServerError", "description": f"{type(e).__name__}: {e}"})

    def _queryables(self, cid: str | None) -> None:
        items = [i for i in self.items if cid is None or i.get("collection") == cid]
        if cid is not None and not items:
            return self._send(404, {"code": "NotFound", "description": f"no collection {cid!r} with items"})
        url = f"{self._base()}{'/collections/' + cid if cid else ''}/queryables"
        self._send(200, queryables(items, url, f"Queryables of {cid or 'every collection'}"), "application/schema+json")

    def _search(
        self, req: dict, method: str, filtered: bool, path: str = "/search", only: list[str] | None = None
    ) -> None:
        """A search: rustac's when nothing is filtered, else selected and paged here (``only``: the
        collection of an ``/collections/{id}/items`` request)."""
        if not filtered:
            return self._proxy("POST", "/search", json.dumps(_search_body(req, method)).encode())
        known = set(TOP_LEVEL) | {k for i in self.items for k in i["properties"]}
        exprs = []
        if req.get("filter") not in (None, ""):
            exprs.append(parse_filter(req["filter"], req.get("filter-lang"), req.get("filter-crs"), known).to_json())
        if req.get("query") not in (None, ""):
            exprs.append(parse_filter(query_to_cql2(req["query"]), "cql2-json", None, known).to_json())
        body = _search_body(req, method)
        if only:
            body["collections"] = only
        key = json.dumps([exprs, {k: v for k, v in body.items() if k not in ("limit", "skip")}], sort_keys=True)
        hits = self._hits.get(key)
        if hits is None:  # the next pages of a search reuse its selection
            hits = select(self.items, exprs[0] if len(exprs) == 1 else {"op": "and", "args": exprs}, body)
            with _HITS_LOCK:
                while len(self._hits) >= 32:
                    self._hits.pop(next(iter(self._hits)))
                self._hits[key] = hits
        # paged here, not by rustac: its next links would carry every matching id, and it matches
        # ids against every item (seconds per page for a split of tens of thousands)
        limit, skip = body.get("limit", 10), body.get("skip", 0)
        if not (isinstance(limit, int) and 1 <= limit <= MAX_LIMIT and isinstance(skip, int) and skip >= 0):
            raise BadRequest(f"limit must be 1-{MAX_LIMIT:,} and skip 0 or more")
        page = hits[skip : skip + limit]
        features = []
        if page:  # rustac fetches the page's items by id (an empty ids list would be "any id")
            query = {
                "ids": [i["id"] for i in page],
                "collections": sorted({i["collection"] for i in page if i.get("collection")}),
                "limit": len(page),
            }
            r = self._upstream("POST", "/search", json.dumps(query).encode())
            if r is None or not r.ok:
                return self._send(
                    502, {"code": "BadGateway", "description": "rustac serve did not answer the page's items"}
                )
            got = {(f.get("collection"), f.get("id")): f for f in r.json().get("features", [])}
            features = [got[k] for k in ((i.get("collection"), i["id"]) for i in page) if k in got]
        base = self._base()
        links: list[dict[str, Any]] = [{"rel": "root", "href": f"{base}/", "type": "application/json"}]
        if skip + limit < len(hits):
            nxt = {**req, "skip": skip + limit}
            if method == "GET":
                links.append(
                    {
                        "rel": "next",
                        "href": f"{base}{path}?{urlencode(nxt)}",
                        "type": "application/geo+json",
                        "method": "GET",
                    }
                )
            else:
                links.append(
                    {
                        "rel": "next",
                        "href": f"{base}/search",
                        "type": "application/geo+json",
                        "method": "POST",
                        "body": nxt,
                    }
                )
        self._send(
            200,
            {
                "type": "FeatureCollection",
                "features": features,
                "numberMatched": len(hits),
                "numberReturned": len(features),
                "links": links,
            },
            "application/geo+json",
        )

    def _upstream(self, method: str, path: str, data: bytes | None) -> requests.Response | None:
        session = getattr(self._session, "s", None) or requests.Session()
        self._session.s = session
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("accept", "content-type")}
        if data is not None:
            headers["Content-Type"] = "application/json"
        try:
            return session.request(method, self.upstream + path, data=data, headers=headers, timeout=120)
        except requests.RequestException:
            return None

    def _proxy(self, method: str, path: str, data: bytes | None) -> None:
        r = self._upstream(method, path, data)
        if r is None:
            return self._send(502, {"code": "BadGateway", "description": "rustac serve did not answer"})
        content = r.content
        p = urlsplit(path).path.rstrip("/") or "/"
        if method == "GET" and r.ok and p in ("/", "/conformance"):
            doc = r.json()
            doc["conformsTo"] = list(dict.fromkeys([*doc.get("conformsTo", []), *CONFORMANCE]))
            if p == "/":
                doc.setdefault("links", []).append(
                    {
                        "rel": QUERYABLES_REL,
                        "href": f"{self._base()}/queryables",
                        "type": "application/schema+json",
                        "title": "Queryables",
                    }
                )
            content = json.dumps(doc).encode()
        skip = {"connection", "transfer-encoding", "content-length", "content-encoding", "keep-alive", "content-type"}
        self._send(
            r.status_code,
            content,
            r.headers.get("Content-Type", "application/json"),
            {k: v for k, v in r.headers.items() if k.lower() not in skip},
        )


def load_items(ndjson_files: list) -> list[dict]:
    """What filtering needs of each item (id, collection, geometry, bbox, properties)."""
    items = []
    for path in ndjson_files:
        with open(path, "rb") as f:
            for line in f:
                if line.strip():
                    i = json.loads(line)
                    items.append({k: i[k] for k in ("id", "collection", "geometry", "bbox", "properties") if k in i})
    return items


def bind_front(host: str, port: int) -> http.server.ThreadingHTTPServer:
    """Serve the front on ``host:port`` (0: any free port) in a daemon thread; it answers 503
    until ``start_front`` gives it rustac's address."""
    httpd = GuardedServer((host, port), FrontHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True, name=f"api front {host}:{port}").start()
    return httpd


def start_front(httpd: http.server.ThreadingHTTPServer, upstream: str, items: list[dict]) -> None:
    """Point the front at ``upstream`` (rustac) with the items it filters."""
    host, port, *_ = cast(tuple, httpd.server_address)
    httpd.RequestHandlerClass = type(
        "Front",
        (FrontHandler,),
        {
            "upstream": upstream.rstrip("/"),
            "public": f"http://{host}:{port}",
            "items": items,
            "_session": threading.local(),
            "_hits": {},
        },
    )
