"""The filter front of ``serve --api``: a small HTTP proxy in front of ``rustac serve`` that adds
what rustac's memory backend lacks and would otherwise ignore in silence (a CQL2 ``filter``
answered with 200 and no features, ``query`` dropped, ``/queryables`` empty).

* ``filter`` (CQL2 text or JSON, parsed and evaluated by the ``cql2`` package) and ``query`` (the
  STAC query extension, translated to CQL2) on ``/search`` (GET and POST) and
  ``/collections/{id}/items`` are evaluated here over the items the API was loaded with; the
  request goes on to rustac as a POST ``/search`` with the matching ``ids`` and the rest of the
  request (collections, bbox, datetime, intersects, limit), so paging, links and the item JSON
  stay rustac's (its next links carry the ids, not the filter).
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
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

import cql2
import requests

from sen12ts_stac.httpserve import Guarded, GuardedServer

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
CRS84 = ("http://www.opengis.net/def/crs/OGC/1.3/CRS84", "https://www.opengis.net/def/crs/OGC/1.3/CRS84", "EPSG:4326")
OPS = {"and", "or", "not", "=", "<>", "<", "<=", ">", ">=", "like", "between", "in", "isNull", "casei", "accenti",
       "s_intersects", "s_equals", "s_disjoint", "s_touches", "s_within", "s_overlaps", "s_crosses", "s_contains",
       "+", "-", "*", "/", "%", "^", "div"}
ARITY = {"not": 1, "isNull": 1, "casei": 1, "accenti": 1, "between": 3, **{op: 2 for op in (
    "=", "<>", "<", "<=", ">", ">=", "like", "in", "s_intersects", "s_equals", "s_disjoint", "s_touches", "s_within",
    "s_overlaps", "s_crosses", "s_contains", "+", "-", "*", "/", "%", "^", "div")}}
MAX_DEPTH = 40  # nesting levels of a filter
MAX_FILTER = 1 << 20  # characters of a filter
QUERY_OPS = {"eq": "=", "neq": "<>", "lt": "<", "lte": "<=", "gt": ">", "gte": ">=", "in": "in"}
REFUSED = ("sortby", "fields", "q")  # rustac's memory backend ignores them
TOP_LEVEL = {"id": {"type": "string", "title": "Item ID"}, "collection": {"type": "string", "title": "Collection ID"},
             "geometry": {"$ref": "https://geojson.org/schema/Geometry.json", "title": "Geometry"}}
DATETIMES = {"datetime", "start_datetime", "end_datetime", "created", "updated"}
MAX_BODY = 64 << 20
ENUM_MAX = 20


class BadRequest(Exception):
    pass


def _json_type(v: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}.get(type(v), "null")


def queryables(items: list[dict], url: str, title: str) -> dict:
    """A JSON Schema of the properties ``items`` have (types seen; enums of short string sets)."""
    types: dict[str, set[str]] = {}
    values: dict[str, set] = {}
    for item in items:
        for k, v in item["properties"].items():
            types.setdefault(k, set()).add(_json_type(v))
            if isinstance(v, str) and len(values.setdefault(k, set())) <= ENUM_MAX:
                values[k].add(v)
    props: dict[str, Any] = dict(TOP_LEVEL)
    for k in sorted(types):
        t = types[k] - {"null"} or {"null"}
        t = {"number"} if t == {"integer", "number"} else t
        schema: dict[str, Any] = {"type": next(iter(t)) if len(t) == 1 else sorted(t)}
        if k in DATETIMES:
            schema["format"] = "date-time"
        elif t == {"string"} and len(values.get(k, ())) <= ENUM_MAX:
            schema["enum"] = sorted(values[k])
        props[k] = schema
    return {"$schema": "https://json-schema.org/draft/2019-09/schema", "$id": url, "type": "object", "title": title,
            "properties": props, "additionalProperties": True}


def _walk(node: Any):
    if isinstance(node, dict):
        yield node
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def _depth(node: Any, limit: int) -> int:
    """Nesting depth of a JSON value, counted only up to ``limit`` + 1 (no deep recursion)."""
    depth, level = 0, [node]
    while level and depth <= limit:
        depth += 1
        level = [v for n in level for v in (n.values() if isinstance(n, dict) else n if isinstance(n, list) else ())]
    return depth if level else depth - 1


def _nesting(text: str) -> int:
    """How deeply CQL2 text can nest: brackets, NOT and operators outside quoted strings. cql2's
    parser hangs or crashes the process (stack overflow) on a few thousand of them."""
    words = re.sub(r"'(?:[^']|'')*'|\"[^\"]*\"", "''", text)
    return words.count("(") + len(re.findall(r"(?i)\bnot\b", words)) + len(re.findall(r"[-+*/%^]", words))


def _check(node: dict, known: set[str]) -> None:
    """What cql2 would accept but not evaluate: an unknown property or operator, a wrong number
    of arguments (cql2's own ``validate`` takes seconds per call, and memory grows with depth)."""
    for n in _walk(node):
        if "property" in n and n["property"] not in known:
            raise BadRequest(f"filter: unknown property {n['property']!r}: see /queryables for what can be filtered on")
        op, args = n.get("op"), n.get("args")
        if op is None or not isinstance(args, list):
            continue
        if op not in OPS:
            raise BadRequest(f"filter: operator {op!r} is not supported")
        want = ARITY.get(op)
        if want is not None and len(args) != want or op in ("and", "or") and len(args) < 2:
            raise BadRequest(f"filter: {op!r} takes {want or 'two or more'} arguments, not {len(args)}")


def parse_filter(flt: Any, lang: str | None, crs: str | None, known: set[str]) -> cql2.Expr:
    """``filter`` (+ ``filter-lang``, ``filter-crs``) as a checked CQL2 expression; BadRequest says why not."""
    if crs and crs not in CRS84:
        raise BadRequest(f"filter-crs {crs!r} is not supported: give coordinates in {CRS84[0]}")
    if not isinstance(flt, (str, dict)):
        raise BadRequest("filter must be CQL2 text (a string) or CQL2 JSON (an object)")
    lang = lang or ("cql2-json" if isinstance(flt, dict) else "cql2-text")
    if lang not in ("cql2-text", "cql2-json") or (lang == "cql2-text" and not isinstance(flt, str)):
        raise BadRequest(f"filter-lang {lang!r} is not supported for this filter (cql2-text: a string, cql2-json: an object)")
    if isinstance(flt, str) and (len(flt) > MAX_FILTER or (lang == "cql2-text" and _nesting(flt) > MAX_DEPTH)):
        raise BadRequest(f"filter is too long or nested too deeply (at most {MAX_FILTER:,} characters, {MAX_DEPTH} levels)")
    try:
        doc = cql2.parse_text(flt).to_json() if lang == "cql2-text" else json.loads(flt) if isinstance(flt, str) else flt
    except Exception as e:  # noqa: BLE001 (cql2 raises ParseError, ValueError and bare Exception)
        raise BadRequest(f"filter is not valid {lang}: {' '.join(str(e).split())}") from None
    if _depth(doc, MAX_DEPTH) > MAX_DEPTH:
        raise BadRequest(f"filter is nested too deeply (at most {MAX_DEPTH} levels)")
    try:
        expr = cql2.Expr(doc)
    except Exception as e:  # noqa: BLE001 (cql2 raises bare Exception)
        raise BadRequest(f"filter is not valid {lang}: {' '.join(str(e).split())}") from None
    _check(expr.to_json(), known)
    return expr


def query_to_cql2(query: Any) -> dict:
    """The STAC query extension (``{"prop": {"eq": v, ...}}``) as CQL2 JSON."""
    if isinstance(query, str):
        try:
            query = json.loads(query)
        except ValueError as e:
            raise BadRequest(f"query is not JSON: {e}") from None
    if not isinstance(query, dict):
        raise BadRequest("query must be an object: {property: {operator: value}}")
    args = []
    for prop, ops in query.items():
        if not isinstance(ops, dict):
            raise BadRequest(f"query: {prop!r} must map operators to values")
        for op, v in ops.items():
            p = {"property": prop}
            if op in QUERY_OPS:
                args.append({"op": QUERY_OPS[op], "args": [p, v]})
            elif op in ("startsWith", "endsWith", "contains") and isinstance(v, str):
                pattern = {"startsWith": f"{v}%", "endsWith": f"%{v}", "contains": f"%{v}%"}[op]
                args.append({"op": "like", "args": [p, pattern]})
            else:
                raise BadRequest(f"query: operator {op!r} on {prop!r} is not supported ({', '.join(QUERY_OPS)}, startsWith, endsWith, contains)")
    return {"op": "and", "args": args} if len(args) > 1 else args[0] if args else {"op": "=", "args": [1, 1]}


def _matches(expr: cql2.Expr, item: dict) -> bool:
    try:
        return bool(expr.matches(item))
    except Exception:  # noqa: BLE001 (a property this item lacks: unknown, so no match, as SQL's NULL)
        return False


def _view(item: dict, refs: set[str]) -> dict:
    """The part of ``item`` an expression reads: cql2 converts what it is given on every call
    (a whole item costs about 10x the properties it names; a geometry costs most)."""
    view = {"id": item["id"], "collection": item.get("collection"),
            "properties": {k: v for k, v in item["properties"].items() if k in refs}}
    if "geometry" in refs:
        view["geometry"] = item.get("geometry")
    return view


def _listify(v: Any) -> list:
    return [s for s in v.split(",") if s] if isinstance(v, str) else list(v)


def _search_body(req: dict, method: str) -> dict:
    """The non-filter part of a search request as a POST /search body (GET strings converted)."""
    body = {k: req[k] for k in ("collections", "ids", "bbox", "datetime", "intersects", "limit", "skip") if req.get(k) not in (None, "")}
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
        host, port = self.server.server_address[:2]
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
                if filtered and m:
                    req = {**req, "collections": [m.group(1)]}
                if filtered or (path == "/search" and method == "GET"):  # rustac's GET /search fails (500) with limit and collections/bbox
                    return self._search(req, method, filtered)
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

    def _search(self, req: dict, method: str, filtered: bool) -> None:
        if not filtered:
            return self._proxy("POST", "/search", json.dumps(_search_body(req, method)).encode())
        known = set(TOP_LEVEL) | {k for i in self.items for k in i["properties"]}
        exprs = []
        if req.get("filter") not in (None, ""):
            exprs.append(parse_filter(req["filter"], req.get("filter-lang"), req.get("filter-crs"), known).to_json())
        if req.get("query") not in (None, ""):
            exprs.append(parse_filter(query_to_cql2(req["query"]), "cql2-json", None, known).to_json())
        expr = cql2.Expr(exprs[0] if len(exprs) == 1 else {"op": "and", "args": exprs})
        body = _search_body(req, method)
        colls = set(body.get("collections") or ()) or None
        wanted = set(body["ids"]) if body.get("ids") else None
        refs = {n["property"] for n in _walk(expr.to_json()) if "property" in n}
        ids = [i["id"] for i in self.items if (colls is None or i.get("collection") in colls)
               and (wanted is None or i["id"] in wanted) and _matches(expr, _view(i, refs))]
        if not ids:  # rustac reads an empty ids list as "any id"
            base = self._base()
            return self._send(200, {"type": "FeatureCollection", "features": [], "numberMatched": 0, "numberReturned": 0,
                                    "links": [{"rel": "root", "href": f"{base}/", "type": "application/json"}]},
                              "application/geo+json")
        self._proxy("POST", "/search", json.dumps({**body, "ids": ids}).encode())

    def _proxy(self, method: str, path: str, data: bytes | None) -> None:
        session = getattr(self._session, "s", None) or requests.Session()
        self._session.s = session
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("accept", "content-type")}
        if data is not None:
            headers["Content-Type"] = "application/json"
        try:
            r = session.request(method, self.upstream + path, data=data, headers=headers, timeout=120)
        except requests.RequestException as e:
            return self._send(502, {"code": "BadGateway", "description": f"rustac serve did not answer: {e}"})
        content = r.content
        p = urlsplit(path).path.rstrip("/") or "/"
        if method == "GET" and r.ok and p in ("/", "/conformance"):
            doc = r.json()
            doc["conformsTo"] = list(dict.fromkeys([*doc.get("conformsTo", []), *CONFORMANCE]))
            if p == "/":
                doc.setdefault("links", []).append({"rel": QUERYABLES_REL, "href": f"{self._base()}/queryables",
                                                    "type": "application/schema+json", "title": "Queryables"})
            content = json.dumps(doc).encode()
        skip = {"connection", "transfer-encoding", "content-length", "content-encoding", "keep-alive", "content-type"}
        self._send(r.status_code, content, r.headers.get("Content-Type", "application/json"),
                   {k: v for k, v in r.headers.items() if k.lower() not in skip})


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
    host, port = httpd.server_address[:2]
    httpd.RequestHandlerClass = type("Front", (FrontHandler,), {
        "upstream": upstream.rstrip("/"), "public": f"http://{host}:{port}", "items": items, "_session": threading.local()})
