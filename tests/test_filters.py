"""The one Filter (spec.filters) that the stream index and download share: a triplet record and
its STAC item are chosen alike, whichever way the time interval is written."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from sen12ts_stac.errors import UserError
from sen12ts_stac.spec.filters import Filter

RECORD = SimpleNamespace(
    aoi="california",
    split="validate",
    season="summer",
    tile="10_85_1592",
    collection="sen12ts_california_triplets",
    s2_date=dt.date(2020, 7, 24),
    bbox=(-120.6, 36.7, -120.5, 36.8),
)
ITEM = {
    "type": "Feature",
    "collection": "sen12ts_california_triplets",
    "bbox": [-120.6, 36.7, -120.5, 36.8],
    "properties": {
        "datetime": "2020-07-24T18:40:00Z",
        "ml-aoi:split": "validate",
        "sen12ts:season": "summer",
        "sen12ts:tile": "10_85_1592",
    },
}


@pytest.mark.parametrize(
    "kw, wanted",
    [
        ({}, True),
        ({"split": "val"}, True),
        ({"split": ["train", "test"]}, False),
        ({"aoi": "California"}, True),
        ({"aoi": "iowa"}, False),
        ({"seasons": "summer,fall"}, True),
        ({"tiles": ["10_85_1592"]}, True),
        ({"collections": ("sen12ts_iowa_triplets,sen12ts_california_triplets",)}, True),
        ({"bbox": "-121,36,-120,37"}, True),
        ({"bbox": (0, 0, 1, 1)}, False),
        ({"date_range": "2020-07-24/.."}, True),
        ({"date_range": (None, dt.date(2020, 7, 23))}, False),
        ({"datetime": "2020-07-24"}, True),
        ({"datetime": "2020-07-25T00:00:00Z/.."}, False),
    ],
)
def test_a_record_and_its_item_are_chosen_alike(kw, wanted):
    f = Filter.make(**kw)
    assert f.match(RECORD) is wanted
    assert f.wants_item(ITEM) is wanted


def test_a_record_matches_by_the_day_of_its_s2_date():
    # an item has a time of day, a triplet record only its S2 date: the whole day counts
    f = Filter.make(datetime="../2020-07-24T00:00:00Z")
    assert f.match(RECORD) and not f.wants_item(ITEM)


def test_bad_filters_are_one_line_errors():
    for kw, words in [
        ({"split": "dev"}, "unknown split dev"),
        ({"split": ""}, "empty split"),
        ({"seasons": "monsoon"}, "unknown season"),
        ({"bbox": (1, 2, 3)}, "bad bbox"),
        ({"date_range": "2020-09-01/2020-01-01"}, "date_range"),
        ({"datetime": "June"}, "bad datetime 'June'"),
    ]:
        with pytest.raises(UserError, match=words):
            Filter.make(**kw)


def test_the_api_interval_and_block_pruning():
    assert Filter.make(date_range="2020-03-01/2020-06-30").datetime == "2020-03-01T00:00:00Z/2020-06-30T23:59:59Z"
    assert Filter.make().datetime is None
    assert Filter.make(tiles="10_85_1592").blocks() == frozenset({"block_10_10_199"})
    assert Filter.make(tiles="not-a-tile").blocks() is None
    assert Filter.make(aoi="iowa").wants_collection("sen12ts_california_s1_source") is False
