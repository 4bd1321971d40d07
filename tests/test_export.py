"""export: items.ndjson + items.parquet per collection, linked from the collection, round-trip
equal to the JSON items (hrefs rebased to the collection folder and back)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest

from sen12ts_stac.cli import main
from sen12ts_stac.distribute.export import (
    NDJSON_KEY,
    PARQUET_KEY,
    export_catalog,
    find_collections,
    iter_items,
    read_parquet_items,
    rebase_href,
    rebase_item,
)
from sen12ts_stac.storage.checksums import sha256_multihash


@pytest.fixture(scope="module")
def exported(small_catalog, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("export") / "cat"
    shutil.copytree(small_catalog, root)
    export_catalog(root, progress=False, workers=2)
    return root


def _normalise(x):
    """What stac-geoparquet legitimately changes: every struct has all fields of its column (absent
    ones come back as null), datetimes come back with microseconds, tuples for arrays."""
    if isinstance(x, dict):
        return {k: _normalise(v) for k, v in x.items() if v is not None}
    if isinstance(x, (list, tuple)):
        return [_normalise(v) for v in x]
    if isinstance(x, str) and len(x) >= 20 and x[4] == "-" and x[10] == "T":
        try:
            return dt.datetime.fromisoformat(x.replace("Z", "+00:00")).isoformat()
        except ValueError:
            return x
    return x


def test_rebase_href():
    assert rebase_href("./s1.tif", "blk/item", "") == "./blk/item/s1.tif"
    assert rebase_href("../../../s1/blk/x/s1.tif", "blk/item", "") == "../s1/blk/x/s1.tif"
    assert rebase_href("../../collection.json", "blk/item", "") == "./collection.json"
    assert rebase_href("../../../../catalog.json", "blk/item", "") == "../../catalog.json"
    for h in ("./s1.tif", "../../../s1/blk/x/s1.tif", "../catalog.json", "../../../../catalog.json"):
        assert rebase_href(rebase_href(h, "blk/item", ""), "", "blk/item") == h
    assert rebase_href("https://x.org/a.tif", "blk/item", "") == "https://x.org/a.tif"
    assert rebase_href("/abs/a.tif", "blk/item", "") == "/abs/a.tif"


def test_collections_link_their_exports(exported):
    colls = find_collections(exported)
    assert len(colls) == 4
    for c in colls:
        obj = json.loads(c.read_text())
        pq, nd = obj["assets"][PARQUET_KEY], obj["assets"][NDJSON_KEY]
        assert pq["type"] == "application/vnd.apache.parquet" and pq["roles"] == ["stac-items"]
        assert nd["type"] == "application/x-ndjson" and nd["roles"] == ["stac-items"]
        for a in (pq, nd):
            f = c.parent / a["href"]
            assert f.is_file() and a["file:size"] == f.stat().st_size and a["file:checksum"] == sha256_multihash(f)
        assert not list(c.parent.glob(".*tmp")), "temporary files left behind"


def test_ndjson_and_parquet_round_trip(exported):
    n_total = 0
    for c in find_collections(exported):
        on_disk = {item["id"]: (d, item) for d, item in iter_items(c)}
        lines = [json.loads(line) for line in (c.parent / "items.ndjson").read_text().splitlines()]
        parquet = read_parquet_items(c.parent / "items.parquet")
        assert sorted(i["id"] for i in lines) == sorted(on_disk) == sorted(i["id"] for i in parquet)
        for item in lines:  # ndjson: exact, once hrefs are moved back to the item's folder
            d, original = on_disk[item["id"]]
            assert rebase_item(item, "", d) == original
        for item in parquet:
            d, original = on_disk[item["id"]]
            assert _normalise(rebase_item(item, "", d)) == _normalise(original)
            # relative hrefs in the export resolve, from the collection folder, to the real files
            for a in item["assets"].values():
                assert (c.parent / a["href"]).resolve().is_file(), a["href"]
        n_total += len(parquet)
    assert n_total > 40


def test_stream_index_reads_the_parquet_like_the_catalog(exported):
    index = pytest.importorskip("sen12ts_stac.stream.index")
    parquet = exported / "california" / "triplets" / "items.parquet"
    from_parquet = index.load_index(parquet, progress=False)
    from_json = index.load_index(exported, progress=False)
    assert [r.id for r in from_parquet] == [r.id for r in from_json]
    assert [dict(r.hrefs) for r in from_parquet] == [dict(r.hrefs) for r in from_json]


def test_export_twice_and_cli(exported, tmp_path, capsys):
    before = (exported / "california" / "s1" / "items.ndjson").read_bytes()
    main(["export", str(exported), "--format", "ndjson", "--quiet"])
    assert "sen12ts_california_triplets" in capsys.readouterr().out
    assert (exported / "california" / "s1" / "items.ndjson").read_bytes() == before
    with pytest.raises(SystemExit) as e:
        main(["export", str(tmp_path / "nothing")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no catalog.json" in err[0]
    with pytest.raises(SystemExit):
        main(["export", str(exported), "--format", "csv"])
    assert "unknown export format csv" in capsys.readouterr().err
