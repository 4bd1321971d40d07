"""CQL2 filter, query and queryables on `serve --api` (issue 12 item 3), through pystac-client and
plain HTTP, against the served items: each answer is compared with what plain Python finds in the
catalog's own JSON. rustac's memory backend alone answers a filter with 200 and no features."""

from __future__ import annotations

import itertools
import json
import shutil
import socket
import warnings
from datetime import datetime

import pytest
import requests

from sen12ts_stac.distribute.export import find_collections, iter_items
from sen12ts_stac.distribute.serve import start

pystac_client = pytest.importorskip("pystac_client")
shapely_geometry = pytest.importorskip("shapely.geometry")

SPLITS = ("train", "validation", "test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def api(small_catalog, tmp_path_factory):
    """The test catalog with its triplets spread over the three splits, served with --api; yields
    (api URL, every item as a dict)."""
    root = tmp_path_factory.mktemp("filter") / "cat"
    shutil.copytree(small_catalog, root)
    split = itertools.cycle(SPLITS)
    items = []
    for cpath in find_collections(root):
        for d, item in iter_items(cpath):
            if "ml-aoi:split" in item["properties"]:
                item["properties"]["ml-aoi:split"] = next(split)
                (cpath.parent / d / f"{item['id']}.json").write_text(json.dumps(item))
            items.append(item)
    with start(root, port=0, api=True, api_port=free_port()) as s:
        yield s.api_url, items


def expect(items, pred) -> set[str]:
    return {i["id"] for i in items if pred(i["properties"], i)}


def search(url, **kw) -> set[str]:
    client = pystac_client.Client.open(url)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. DoesNotConformTo("FILTER")
        return {i.id for i in client.search(limit=7, **kw).items()}  # small pages: paging is exercised


def ts(s: str) -> datetime:
    return datetime.fromisoformat(s)


def test_filter_by_split_returns_exactly_the_train_items(api):
    url, items = api
    want = expect(items, lambda p, i: p.get("ml-aoi:split") == "train")
    assert 0 < len(want) < len([i for i in items if "ml-aoi:split" in i["properties"]])
    assert search(url, filter={"op": "=", "args": [{"property": "ml-aoi:split"}, "train"]}) == want
    assert search(url, filter="\"ml-aoi:split\" = 'train'", filter_lang="cql2-text") == want


CASES = {
    "<>": (
        {"op": "<>", "args": [{"property": "ml-aoi:split"}, "train"]},
        lambda p, i: "ml-aoi:split" in p and p["ml-aoi:split"] != "train",
    ),
    "in": ("\"ml-aoi:split\" IN ('validation', 'test')", lambda p, i: p.get("ml-aoi:split") in ("validation", "test")),
    "and/not": (
        "\"sen12ts:season\" = 'fall' AND NOT \"ml-aoi:split\" = 'train'",
        lambda p, i: p.get("sen12ts:season") == "fall" and "ml-aoi:split" in p and p["ml-aoi:split"] != "train",
    ),
    "or": (
        {
            "op": "or",
            "args": [
                {"op": "=", "args": [{"property": "ml-aoi:split"}, "test"]},
                {"op": "=", "args": [{"property": "sen12ts:season"}, "summer"]},
            ],
        },
        lambda p, i: p.get("ml-aoi:split") == "test" or p.get("sen12ts:season") == "summer",
    ),
    "datetime >=": (
        "datetime >= TIMESTAMP('2020-09-01T00:00:00Z')",
        lambda p, i: bool(p["datetime"]) and ts(p["datetime"]) >= ts("2020-09-01T00:00:00Z"),
    ),
    "datetime < json": (
        {"op": "<", "args": [{"property": "datetime"}, {"timestamp": "2020-07-15T00:00:00Z"}]},
        lambda p, i: bool(p["datetime"]) and ts(p["datetime"]) < ts("2020-07-15T00:00:00Z"),
    ),
    "id": ({"op": "like", "args": [{"property": "id"}, "triplet_%"]}, lambda p, i: i["id"].startswith("triplet_")),
}


@pytest.mark.parametrize("case", CASES)
def test_filter_operators_match_the_catalog(api, case):
    url, items = api
    flt, pred = CASES[case]
    want = expect(items, pred)
    assert want, "the case selects nothing: it proves nothing"
    assert search(url, filter=flt) == want


def test_s_intersects_with_a_bbox_and_the_query_extension(api):
    url, items = api
    one = next(i for i in items if "ml-aoi:split" in i["properties"])
    w, s, e, n = one["bbox"]
    box = [w, s, w + (e - w) / 4, s + (n - s) / 4]
    want = {i["id"] for i in items if shapely_geometry.shape(i["geometry"]).intersects(shapely_geometry.box(*box))}
    assert one["id"] in want and len(want) < len(items)
    assert search(url, filter={"op": "s_intersects", "args": [{"property": "geometry"}, {"bbox": box}]}) == want
    assert search(url, filter=f"S_INTERSECTS(geometry, BBOX({', '.join(map(str, box))}))") == want
    both = {
        "op": "and",
        "args": [
            {"op": "s_intersects", "args": [{"property": "geometry"}, {"bbox": box}]},
            {"op": "=", "args": [{"property": "ml-aoi:split"}, "test"]},
        ],
    }
    assert search(url, filter=both, collections=[one["collection"]]) == {
        i["id"]
        for i in items
        if i["id"] in want and i["properties"].get("ml-aoi:split") == "test" and i["collection"] == one["collection"]
    }
    assert search(url, query={"ml-aoi:split": {"eq": "validation"}}) == expect(
        items, lambda p, i: p.get("ml-aoi:split") == "validation"
    )
    assert search(url, query={"ml-aoi:split": {"in": ["test"]}}, datetime="2020-09-01/2020-12-31") == expect(
        items, lambda p, i: p.get("ml-aoi:split") == "test" and (p["datetime"] or "") >= "2020-09-01"
    )


def test_plain_http_get_post_and_items_endpoint(api):
    url, items = api
    r = requests.get(url + "/search", params={"filter": "1 = 1", "filter-lang": "cql2-text", "limit": 1000}, timeout=30)
    assert r.status_code == 200 and len(r.json()["features"]) == len(items)
    r = requests.get(url + "/search", params={"filter": "1 = 0"}, timeout=30)
    assert r.status_code == 200 and r.json()["features"] == []
    r = requests.post(
        url + "/search",
        json={"filter-lang": "cql2-text", "filter": "\"ml-aoi:split\" = 'test'", "limit": 1000},
        timeout=30,
    )
    assert {f["id"] for f in r.json()["features"]} == expect(items, lambda p, i: p.get("ml-aoi:split") == "test")
    triplets = next(i["collection"] for i in items if "ml-aoi:split" in i["properties"])
    r = requests.get(
        f"{url}/collections/{triplets}/items",
        params={"filter": "\"ml-aoi:split\" = 'validation'", "limit": 1000},
        timeout=30,
    )
    assert {f["id"] for f in r.json()["features"]} == expect(
        items, lambda p, i: p.get("ml-aoi:split") == "validation" and i["collection"] == triplets
    )


@pytest.mark.parametrize(
    "params, says",
    [
        ({"filter": "\"ml-aoi:spilt\" = 'train'"}, "unknown property 'ml-aoi:spilt'"),
        ({"filter": '"ml-aoi:split" = '}, "not valid cql2-text"),
        ({"filter": '{"op": "="}', "filter-lang": "cql2-json"}, "not valid cql2-json"),
        ({"filter": "1 = 1", "filter-lang": "sql"}, "filter-lang 'sql'"),
        ({"filter": "1 = 1", "filter-crs": "EPSG:32610"}, "filter-crs"),
        ({"query": '{"ml-aoi:split": {"regex": "t.*"}}'}, "operator 'regex'"),
        (
            {"filter": '{"op": "=", "args": [{"property": "ml-aoi:split"}]}', "filter-lang": "cql2-json"},
            "'=' takes 2 arguments",
        ),
        # cql2's parser hangs on thousands of NOTs and overflows its stack (killing serve) on thousands of minus signs
        ({"filter": "NOT " * 2400 + "1 = 1"}, "nested too deeply"),
        ({"filter": "-" * 5000 + "1 = 1"}, "nested too deeply"),
        ({"filter": "(" * 5000 + "1 = 1" + ")" * 5000}, "nested too deeply"),
        (
            {"filter": '{"op": "not", "args": [' * 300 + "true" + "]}" * 300, "filter-lang": "cql2-json"},
            "nested too deeply",
        ),
        ({"sortby": "-datetime"}, "sortby is not supported"),
        ({"fields": "id"}, "fields is not supported"),
    ],
)
def test_what_cannot_be_honoured_is_a_400_naming_it(api, params, says):
    url, _ = api
    r = requests.get(url + "/search", params=params, timeout=30)
    assert r.status_code == 400 and says in r.json()["description"], r.text


@pytest.mark.parametrize(
    "body, says",
    [
        ({"filter": 5}, "filter must be CQL2 text"),
        ({"filter": "1 = 1", "collections": 5}, "collections must be a list of strings"),
        ({"filter": "1 = 1", "ids": "abc"}, "ids must be a list of strings"),
    ],
)
def test_hostile_post_bodies_are_400s(api, body, says):
    url, _ = api
    r = requests.post(url + "/search", json=body, timeout=30)
    assert r.status_code == 400 and says in r.json()["description"], r.text[:200]
    deep = b'{"filter": ' + b"[" * 100000 + b"]" * 100000 + b"}"
    r = requests.post(url + "/search", data=deep, headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 400 and "not JSON" in r.json()["description"], r.text[:200]
    assert requests.get(url + "/", timeout=30).ok  # still alive


def test_queryables_and_conformance(api):
    url, items = api
    client = pystac_client.Client.open(url)
    assert client.conforms_to("FILTER") and client.conforms_to("QUERY")
    q = requests.get(url + "/queryables", timeout=30)
    assert q.ok and q.headers["Content-Type"].startswith("application/schema+json")
    props = q.json()["properties"]
    assert props["ml-aoi:split"] == {"type": "string", "enum": sorted(SPLITS)}
    assert props["datetime"]["format"] == "date-time" and "geometry" in props and "sen12ts:season" in props
    coll = next(i["collection"] for i in items if i["id"].startswith("s1"))
    assert "ml-aoi:split" not in requests.get(f"{url}/collections/{coll}/queryables", timeout=30).json()["properties"]
    assert requests.get(f"{url}/collections/nope/queryables", timeout=30).status_code == 404


def test_plain_get_searches_that_rustac_alone_fails_with_500(api):
    url, items = api
    coll = next(i["collection"] for i in items if "ml-aoi:split" in i["properties"])
    r = requests.get(url + "/search", params={"collections": coll, "limit": 1000}, timeout=30)
    assert r.status_code == 200 and {f["id"] for f in r.json()["features"]} == {
        i["id"] for i in items if i["collection"] == coll
    }
    w, s, e, n = items[0]["bbox"]
    r = requests.get(url + "/search", params={"bbox": f"{w},{s},{e},{n}", "limit": 2}, timeout=30)
    assert r.status_code == 200 and len(r.json()["features"]) == 2
    r = requests.get(url + "/search", params={"limit": "many"}, timeout=30)
    assert r.status_code == 400 and "bad search parameter" in r.json()["description"]
    r = requests.get(url + "/collections", params={"filter": "id = 'x'"}, timeout=30)
    assert r.status_code == 400 and "collection search" in r.json()["description"]


def test_fuzzed_filters_are_answered_200_or_400(api):
    """A seeded loop of random CQL2 text and JSON: every answer is a 200 or a 400 with a message."""
    import random

    url, _ = api
    tokens = [
        "(",
        ")",
        "NOT",
        "AND",
        "OR",
        "=",
        "<>",
        "<",
        ">=",
        "'train'",
        '"ml-aoi:split"',
        "datetime",
        "1",
        "-",
        "+",
        "*",
        "TIMESTAMP('2020-09-01T00:00:00Z')",
        "IN",
        "('a', 'b')",
        "S_INTERSECTS",
        "BBOX(0, 0, 1, 1)",
        "geometry",
        ",",
        "'",
        '"',
        "LIKE",
        "'tr%'",
        "IS NULL",
        "BETWEEN",
        "id",
        "true",
        "CASEI",
        "%00",
        "\\",
    ]
    ops = ["=", "<>", "and", "or", "not", "in", "like", "between", "s_intersects", "isNull", "frob", "+"]
    args = [
        {"property": "ml-aoi:split"},
        {"property": "datetime"},
        {"property": "nope"},
        "train",
        1,
        None,
        [1, 2],
        {"timestamp": "2020-09-01T00:00:00Z"},
        {"bbox": [0, 0, 1, 1]},
        {"op": "=", "args": [1, 1]},
        True,
    ]
    rng = random.Random(12)
    statuses = set()
    for n in range(150):
        if n % 2:
            params = {"filter": " ".join(rng.choice(tokens) for _ in range(rng.randint(1, 12)))}
        else:
            doc = {"op": rng.choice(ops), "args": [rng.choice(args) for _ in range(rng.randint(0, 3))]}
            params = {"filter": json.dumps(doc), "filter-lang": "cql2-json"}
        r = requests.get(url + "/search", params=params, timeout=30)
        statuses.add(r.status_code)
        assert r.status_code in (200, 400), (params, r.status_code, r.text[:200])
        assert r.status_code == 200 or r.json()["description"], params
    assert statuses == {200, 400}


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_filtered_pages_carry_the_filter_not_every_matching_id(api, method):
    url, items = api
    want = expect(items, lambda p, i: p.get("ml-aoi:split") == "test")
    req = {"filter": "\"ml-aoi:split\" = 'test'", "limit": 4}
    r = (
        requests.get(url + "/search", params=req, timeout=30)
        if method == "GET"
        else requests.post(url + "/search", json=req, timeout=30)
    )
    got, pages = [], 0
    while True:
        doc = r.json()
        assert r.status_code == 200 and doc["numberMatched"] == len(want)
        got += [f["id"] for f in doc["features"]]
        pages += 1
        nxt = [lk for lk in doc["links"] if lk["rel"] == "next"]
        if not nxt:
            break
        assert "ids" not in nxt[0].get("body", {}) and "ids=" not in nxt[0]["href"]
        r = (
            requests.get(nxt[0]["href"], timeout=30)
            if nxt[0].get("method", "GET") == "GET"
            else requests.post(nxt[0]["href"], json=nxt[0]["body"], timeout=30)
        )
    assert sorted(got) == sorted(want) and pages == -(-len(want) // 4)


def test_the_datetime_parameter_of_a_filtered_search_selects_like_stac_says(api):
    """The front selects filtered searches itself, datetime included: instants, closed, open
    and date-only intervals, against datetime or start/end_datetime (label items)."""
    from sen12ts_stac.distribute.cql2filter import BadRequest, select

    _, items = api

    def span(i):
        p = i["properties"]
        return ts(p.get("start_datetime") or p["datetime"]), ts(p.get("end_datetime") or p["datetime"])

    one = next(i for i in items if i["properties"].get("datetime"))
    cases = {
        "2020-09-01T00:00:00Z/..": (ts("2020-09-01T00:00:00Z"), None),
        "../2020-07-01T00:00:00Z": (None, ts("2020-07-01T00:00:00Z")),
        "2020-06-01/2020-06-30": (ts("2020-06-01T00:00:00+00:00"), ts("2020-06-30T23:59:59.999999+00:00")),
        one["properties"]["datetime"]: (ts(one["properties"]["datetime"]), ts(one["properties"]["datetime"])),
    }
    for value, (a, b) in cases.items():
        want = {i["id"] for i in items if (b is None or span(i)[0] <= b) and (a is None or span(i)[1] >= a)}
        got = {i["id"] for i in select(items, None, {"datetime": value})}
        assert got == want and got, value
    assert any(
        "start_datetime" in i["properties"] for i in select(items, None, {"datetime": "2020-09-01T00:00:00Z/.."})
    )
    with pytest.raises(BadRequest, match="not RFC 3339"):
        select(items, None, {"datetime": "yesterday"})


def test_bbox_and_intersects_with_a_filter(api):
    url, items = api
    one = next(i for i in items if "ml-aoi:split" in i["properties"])
    w, s, e, n = one["bbox"]
    box = [w, s, w + (e - w) / 4, s + (n - s) / 4]
    poly = {
        "type": "Polygon",
        "coordinates": [[[box[0], box[1]], [box[2], box[1]], [box[2], box[3]], [box[0], box[3]], [box[0], box[1]]]],
    }
    want = {
        i["id"]
        for i in items
        if i["properties"].get("ml-aoi:split") == one["properties"]["ml-aoi:split"]
        and shapely_geometry.shape(i["geometry"]).intersects(shapely_geometry.box(*box))
    }
    flt = {"op": "=", "args": [{"property": "ml-aoi:split"}, one["properties"]["ml-aoi:split"]]}
    assert one["id"] in want
    assert search(url, filter=flt, bbox=box) == want
    assert search(url, filter=flt, intersects=poly) == want
    r = requests.get(url + "/search", params={"filter": "1 = 1", "bbox": "1,2,3"}, timeout=30)
    assert r.status_code == 400 and "bbox" in r.json()["description"]
