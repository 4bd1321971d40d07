"""The triplet index: the same records from a local catalog, the catalog over http, a STAC API
(rustac serve), the MLHub client against that API and stac-geoparquet files; filters; caching."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import shutil
from pathlib import Path

import pytest
from streamfixtures import private_stream_cache  # noqa: F401 (autouse)
from streamfixtures.servers import export_catalog, flaky_handler, rustac_api

from sen12ts_stac.errors import SourceError, UserError
from sen12ts_stac.stream import FetchStats, TripletRecord, load_index


def _triplet_files(root: Path) -> list[Path]:
    return sorted((root / "california" / "triplets").glob("*/*/triplet_*.json"))


@pytest.fixture(scope="module")
def local_records(small_catalog):
    return load_index(small_catalog)


def test_local_index_has_every_triplet_with_absolute_hrefs_and_stats(small_catalog, local_records):
    files = _triplet_files(small_catalog)
    assert [r.id for r in local_records] == sorted(p.stem for p in files)
    r = local_records[0]
    assert isinstance(r, TripletRecord)
    assert r.aoi == "california" and r.split in ("train", "validate", "test") and r.season in ("summer", "fall")
    assert isinstance(r.s2_date, dt.date) and len(r.radar_dates) == 4 and r.radar_dates[0] >= r.radar_dates[-1]
    for key in ("s1", "s2", "labels"):
        assert os.path.isabs(r.hrefs[key]) and os.path.exists(r.hrefs[key])
    assert r.bands["s1"][:2] == ("vh_t0", "vv_t0") and len(r.bands["s1"]) == 19
    assert r.bands["s2"][-2:] == ("SCL", "cloud_mask") and r.scale["s2"][1] == pytest.approx(1e-4)
    assert math.isnan(r.nodata["s1"]) and r.nodata["s2"] == -32768 and r.nodata["labels"] == 255
    assert r.shape == (256, 256)
    # statistics come from the S1/S2 collections' item_assets, in stored units
    coll = json.loads((small_catalog / "california" / "s2" / "collection.json").read_text())
    want = coll["item_assets"]["s2"]["raster:bands"][1]["statistics"]
    assert r.stats["s2"]["B02"] == (want["mean"], want["stddev"])
    assert "vh_t0" in r.stats["s1"]


def test_filters(small_catalog, local_records):
    by = lambda **kw: [r.id for r in load_index(small_catalog, **kw)]  # noqa: E731
    for split in {r.split for r in local_records}:
        assert by(split=split) == [r.id for r in local_records if r.split == split]
    assert by(seasons="summer") == [r.id for r in local_records if r.season == "summer"]
    assert by(split="val") == by(split="validate")
    tile = local_records[0].tile
    assert by(tiles=[tile]) == [r.id for r in local_records if r.tile == tile]
    assert by(date_range="2020-07-01/..") == [r.id for r in local_records if r.s2_date >= dt.date(2020, 7, 1)]
    assert by(date_range=(None, dt.date(2020, 7, 1))) == [
        r.id for r in local_records if r.s2_date <= dt.date(2020, 7, 1)
    ]
    assert by(bbox=local_records[0].bbox) == [r.id for r in local_records if r.tile == tile]
    assert by(aoi="California") == [r.id for r in local_records]
    assert by(aoi="iowa") == []
    assert by(collections=["sen12ts_california_triplets"]) == [r.id for r in local_records]
    with pytest.raises(UserError, match="unknown split"):
        load_index(small_catalog, split="holdout")
    with pytest.raises(UserError, match="unknown season"):
        load_index(small_catalog, seasons="monsoon")
    with pytest.raises(UserError, match="date_range"):
        load_index(small_catalog, date_range="2020-09-01/2020-01-01")


def test_entry_points_and_errors(small_catalog, local_records, tmp_path):
    ids = [r.id for r in local_records]
    assert [r.id for r in load_index(small_catalog / "catalog.json")] == ids
    assert [r.id for r in load_index(small_catalog / "california" / "triplets" / "collection.json")] == ids
    with pytest.raises(UserError, match="no such file or folder"):
        load_index(tmp_path / "nope")
    with pytest.raises(UserError, match="no catalog.json"):
        load_index(tmp_path)
    bad = tmp_path / "catalog.json"
    bad.write_text("{not json")
    with pytest.raises(UserError, match=f"{bad}: not valid JSON"):
        load_index(bad)


def test_static_catalog_over_http_is_cached_and_revalidated(small_catalog, local_records, serve_dir, tmp_path):
    handler = flaky_handler()
    url = serve_dir(small_catalog, handler=handler) + "/catalog.json"
    cold, warm, revalidated = FetchStats(), FetchStats(), FetchStats()
    records = load_index(url, cache_dir=tmp_path, stats_out=cold)
    assert [r.id for r in records] == [r.id for r in local_records]
    assert records[0].hrefs["s1"].startswith("http://127.0.0.1:") and records[0].hrefs["s1"].endswith("/s1.tif")
    assert records[0].stats == local_records[0].stats
    # only the triplet branch is walked: no S1/S2/label item is requested
    item_gets = [
        p
        for _, p, _, _ in handler.log
        if p.endswith(".json") and "/triplets/" not in p and "collection" not in p and "catalog" not in p
    ]
    assert item_gets == []
    assert cold.requests == cold.documents >= len(records)
    # inside the TTL: no request at all
    load_index(url, cache_dir=tmp_path, stats_out=warm)
    assert warm.requests == 0 and warm.cache_hits == cold.documents
    # TTL 0: every document revalidated with a conditional request, answered 304
    n = len(handler.log)
    load_index(url, cache_dir=tmp_path, cache_ttl=0, stats_out=revalidated)
    assert revalidated.requests == cold.documents and revalidated.not_modified == cold.documents
    assert len(handler.log) - n == cold.documents


def test_http_index_retries_transient_errors_and_names_the_url_on_failure(small_catalog, serve_dir, tmp_path):
    handler = flaky_handler(fail_first=1, codes=(503,), suffixes=(".json",))
    url = serve_dir(small_catalog, handler=handler)
    records = load_index(url + "/catalog.json", cache=False)
    assert len(records) == len(_triplet_files(small_catalog))
    failed = [p for _, p, status, _ in handler.log if status == 503]
    assert len(failed) == len(set(failed)) >= len(records)  # every document failed once, then came
    with pytest.raises(SourceError, match=r"/nothing/catalog.json: HTTP 404"):
        load_index(url + "/nothing/catalog.json", cache=False)


@pytest.mark.slow
def test_stac_api_and_mlhub_client_against_rustac(small_catalog, local_records, serve_dir, tmp_path):
    pytest.importorskip("radiant_mlhub")
    assets = serve_dir(small_catalog / "california")
    with rustac_api(tmp_path / "api", small_catalog / "california", assets) as api:
        ids = [r.id for r in local_records]
        auto = load_index(api, page_size=5)  # detected from the landing page's conformance
        explicit = load_index("stac-api+" + api, page_size=7)
        mlhub = load_index("mlhub+" + api, api_key="loopback-key", page_size=4)
        for got in (auto, explicit, mlhub):
            assert [r.id for r in got] == ids
            assert got[0].hrefs["s2"].startswith(assets) and got[0].stats == local_records[0].stats
            assert got[0].bands == local_records[0].bands and got[0].split == local_records[0].split
        # server-side (bbox, datetime) and client-side (split, season, tile) filters agree with local ones
        for kw in (
            {"bbox": local_records[0].bbox},
            {"date_range": ("2020-06-01", "2020-08-31")},
            {"split": local_records[0].split, "seasons": "fall"},
            {"tiles": [local_records[-1].tile]},
        ):
            want = [r.id for r in load_index(small_catalog, **kw)]
            assert [r.id for r in load_index(api, **kw)] == want, kw
            assert [r.id for r in load_index("mlhub+" + api, api_key="k", **kw)] == want, kw
        assert load_index(api, aoi="iowa") == []


def test_stac_geoparquet_from_stac_geoparquet_and_rustac(small_catalog, local_records, tmp_path, serve_dir):
    import rustac
    from stac_geoparquet.arrow import parse_stac_items_to_arrow, to_parquet

    collections, items = export_catalog(small_catalog / "california")
    sg = tmp_path / "triplets.parquet"
    to_parquet(parse_stac_items_to_arrow(items), sg, collections=collections)
    rs = tmp_path / "rustac.parquet"
    rustac.write_sync(str(rs), items)
    for path, has_stats in ((sg, True), (rs, False)):
        got = load_index(path)
        assert [r.id for r in got] == [r.id for r in local_records]
        assert got[0].hrefs == local_records[0].hrefs
        assert (got[0].stats == local_records[0].stats) if has_stats else got[0].stats == {}
        split, season = local_records[0].split, local_records[0].season
        assert [r.id for r in load_index(path, split=split, seasons=season)] == [
            r.id for r in local_records if r.split == split and r.season == season
        ]
    # the `export` layout: items.parquet beside the triplet collection, hrefs relative to that
    # folder, only that collection in the metadata: statistics come through its parent link
    tree = tmp_path / "tree"
    shutil.copytree(small_catalog, tree, ignore=shutil.ignore_patterns("*.tif", "*.png"))
    folder = tree / "california" / "triplets"
    triplets = json.loads((folder / "collection.json").read_text())
    rel_items = []
    for item in items:
        item = json.loads(json.dumps(item))
        for a in item["assets"].values():
            a["href"] = os.path.relpath(a["href"], small_catalog / "california" / "triplets")
        rel_items.append(item)
    to_parquet(parse_stac_items_to_arrow(rel_items), folder / "items.parquet", collections={triplets["id"]: triplets})
    exported = load_index(folder / "items.parquet")
    assert [r.id for r in exported] == [r.id for r in local_records]
    assert exported[0].stats == local_records[0].stats
    assert exported[0].hrefs["s1"] == str(tree / os.path.relpath(local_records[0].hrefs["s1"], small_catalog))
    base = serve_dir(tree)  # the same file over http: hrefs become URLs, statistics still found
    remote = load_index(base + "/california/triplets/items.parquet")
    assert [r.id for r in remote] == [r.id for r in local_records] and remote[0].stats == local_records[0].stats
    assert remote[0].hrefs["s1"] == base + "/" + os.path.relpath(local_records[0].hrefs["s1"], small_catalog)
    with pytest.raises(UserError, match="not a readable stac-geoparquet"):
        (tmp_path / "bad.parquet").write_text("nope")
        load_index(tmp_path / "bad.parquet")
