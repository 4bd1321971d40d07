"""CQL2 filtering over item dicts for the ``serve --api`` front (:mod:`sen12ts_stac.distribute.apifront`):
parse and check a ``filter`` (``cql2`` does the parsing and evaluating), translate the STAC
``query`` extension, select the items a search asks for, and describe them as ``/queryables``.
No HTTP here; every refusal is a ``BadRequest`` whose message the front returns as a 400."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import cql2

CRS84 = ("http://www.opengis.net/def/crs/OGC/1.3/CRS84", "https://www.opengis.net/def/crs/OGC/1.3/CRS84", "EPSG:4326")
ARITY = {
    "not": 1,
    "isNull": 1,
    "casei": 1,
    "accenti": 1,
    "between": 3,
    **{
        op: 2
        for op in (
            "=",
            "<>",
            "<",
            "<=",
            ">",
            ">=",
            "like",
            "in",
            "s_intersects",
            "s_equals",
            "s_disjoint",
            "s_touches",
            "s_within",
            "s_overlaps",
            "s_crosses",
            "s_contains",
            "+",
            "-",
            "*",
            "/",
            "%",
            "^",
            "div",
        )
    },
}
OPS = {"and", "or", *ARITY}  # every operator the front evaluates (and/or take any number)
MAX_DEPTH = 40  # nesting levels of a filter
MAX_FILTER = 1 << 20  # characters of a filter
QUERY_OPS = {"eq": "=", "neq": "<>", "lt": "<", "lte": "<=", "gt": ">", "gte": ">=", "in": "in"}
REFUSED = ("sortby", "fields", "q")  # rustac's memory backend ignores them
TOP_LEVEL = {
    "id": {"type": "string", "title": "Item ID"},
    "collection": {"type": "string", "title": "Collection ID"},
    "geometry": {"$ref": "https://geojson.org/schema/Geometry.json", "title": "Geometry"},
}
DATETIMES = {"datetime", "start_datetime", "end_datetime", "created", "updated"}
ENUM_MAX = 20


class BadRequest(Exception):
    pass


def _json_type(v: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}.get(
        type(v), "null"
    )


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
    return {
        "$schema": "https://json-schema.org/draft/2019-09/schema",
        "$id": url,
        "type": "object",
        "title": title,
        "properties": props,
        "additionalProperties": True,
    }


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
        raise BadRequest(
            f"filter-lang {lang!r} is not supported for this filter (cql2-text: a string, cql2-json: an object)"
        )
    if isinstance(flt, str) and (len(flt) > MAX_FILTER or (lang == "cql2-text" and _nesting(flt) > MAX_DEPTH)):
        raise BadRequest(
            f"filter is too long or nested too deeply (at most {MAX_FILTER:,} characters, {MAX_DEPTH} levels)"
        )
    try:
        if isinstance(flt, str):
            doc = cql2.parse_text(flt).to_json() if lang == "cql2-text" else json.loads(flt)
        else:
            doc = flt
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
                raise BadRequest(
                    f"query: operator {op!r} on {prop!r} is not supported ({', '.join(QUERY_OPS)}, startsWith, "
                    "endsWith, contains)"
                )
    return {"op": "and", "args": args} if len(args) > 1 else args[0] if args else {"op": "=", "args": [1, 1]}


def _matches(expr: cql2.Expr, item: dict) -> bool:
    try:
        return bool(expr.matches(item))
    except Exception:  # noqa: BLE001 (a property this item lacks: unknown, so no match, as SQL's NULL)
        return False


def _view(item: dict, refs: set[str]) -> dict:
    """The part of ``item`` an expression reads: cql2 converts what it is given on every call
    (a whole item costs about 10x the properties it names; a geometry costs most)."""
    view = {
        "id": item["id"],
        "collection": item.get("collection"),
        "properties": {k: v for k, v in item["properties"].items() if k in refs},
    }
    if "geometry" in refs:
        view["geometry"] = item.get("geometry")
    return view


def _instant(s: str, end: bool = False) -> datetime | None:
    if s in ("", ".."):
        return None
    try:
        t = datetime.fromisoformat(s)
    except ValueError:
        raise BadRequest(f"datetime {s!r} is not RFC 3339") from None
    if len(s) == 10 and end:  # a bare date as the end of an interval: the whole day
        t = t.replace(hour=23, minute=59, second=59, microsecond=999999)
    return t if t.tzinfo else t.replace(tzinfo=UTC)


def _interval(value: str) -> tuple[datetime | None, datetime | None]:
    """A STAC ``datetime`` parameter (an instant, ``a/b``, ``../b``, ``a/..``) as (start, end)."""
    if "/" in value:
        a, b = value.split("/", 1)
        return _instant(a), _instant(b, end=True)
    return _instant(value), _instant(value, end=True)


def _in_interval(props: dict, start: datetime | None, end: datetime | None) -> bool:
    lo = props.get("start_datetime") or props.get("datetime")
    hi = props.get("end_datetime") or props.get("datetime")
    if not lo or not hi:
        return False
    try:
        lo_t, hi_t = _instant(lo), _instant(hi)
    except BadRequest:
        return False
    if lo_t is None or hi_t is None:
        return False
    return (end is None or lo_t <= end) and (start is None or hi_t >= start)


def _bbox_overlaps(item: dict, box: list[float]) -> bool:
    ib = item.get("bbox")
    if not ib or len(ib) not in (4, 6) or len(box) not in (4, 6):
        return True  # no bbox to pre-filter on: the geometry test decides
    h, k = len(ib) // 2, len(box) // 2
    return ib[0] <= box[k] and box[0] <= ib[h] and ib[1] <= box[k + 1] and box[1] <= ib[h + 1]


def select(items: list[dict], expr: dict | None, search: dict) -> list[dict]:
    """The items (in load order) that a search body (collections, ids, bbox, intersects,
    datetime) and a CQL2 JSON ``expr`` select."""
    colls = set(search.get("collections") or ()) or None
    wanted = set(search["ids"]) if search.get("ids") else None
    parts = [expr] if expr else []
    box = search.get("bbox")
    if box is not None:
        if not (isinstance(box, list) and len(box) in (4, 6) and all(isinstance(v, (int, float)) for v in box)):
            raise BadRequest("bbox must be 4 or 6 numbers")
        parts.append({"op": "s_intersects", "args": [{"property": "geometry"}, {"bbox": box}]})
    if search.get("intersects") is not None:
        if not isinstance(search["intersects"], dict):
            raise BadRequest("intersects must be a GeoJSON geometry")
        parts.append({"op": "s_intersects", "args": [{"property": "geometry"}, search["intersects"]]})
    start = end = None
    if search.get("datetime"):
        if not isinstance(search["datetime"], str):
            raise BadRequest("datetime must be a string")
        start, end = _interval(search["datetime"])
    try:
        full = cql2.Expr(parts[0] if len(parts) == 1 else {"op": "and", "args": parts}) if parts else None
    except Exception as e:  # noqa: BLE001 (cql2 raises bare Exception, e.g. for a bad intersects geometry)
        raise BadRequest(f"search is not valid: {' '.join(str(e).split())}") from None
    refs = {n["property"] for n in _walk(parts) if "property" in n}
    return [
        i
        for i in items
        if (colls is None or i.get("collection") in colls)
        and (wanted is None or i["id"] in wanted)
        and (box is None or _bbox_overlaps(i, box))
        and (not search.get("datetime") or _in_interval(i["properties"], start, end))
        and (full is None or _matches(full, _view(i, refs)))
    ]
