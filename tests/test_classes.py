"""The four land-cover class tables (reference spec §3 and Appendix A)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from sen12ts_stac.spec.classes import (
    CLASS_TABLE_IDS,
    ClassTable,
    LandCoverClass,
    _maximin_palette,
    _srgb_to_lab,
    class_table,
)

APPENDIX_A = frozenset(
    [*range(1, 7), *range(10, 15), *range(21, 40), *range(41, 59), *range(66, 70),
     *range(71, 73), *range(74, 78), *range(204, 251)]
)  # fmt: skip


@pytest.fixture(params=CLASS_TABLE_IDS)
def table(request) -> ClassTable:
    return class_table(request.param)


def test_ids_and_types(table):
    assert CLASS_TABLE_IDS == ("cdl", "sigpac", "worldcover", "scl")
    assert isinstance(table, ClassTable)
    assert all(isinstance(c, LandCoverClass) for c in table.classes)
    assert table.title and table.source_url.startswith("https://")
    assert table.values == tuple(sorted(c.value for c in table.classes))


def test_cached():
    assert class_table("cdl") is class_table("cdl")


@pytest.mark.parametrize("table_id,count", [("cdl", 134), ("sigpac", 171), ("worldcover", 11), ("scl", 12)])
def test_counts(table_id, count):
    assert len(class_table(table_id)) == count


def test_cdl_values():
    cdl = class_table("cdl")
    assert 0 in cdl and cdl.name(0) == "Background"
    assert 62 not in cdl  # the xlsx has no 62 (Pasture/Grass)
    assert cdl.values[-1] == 254


def test_sigpac_values_are_0_to_170():
    assert class_table("sigpac").values == tuple(range(171))


def test_worldcover_and_scl_values():
    assert class_table("worldcover").values == (10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 100)
    assert class_table("scl").values == tuple(range(12))


def test_cdl_cropland_is_appendix_a():
    cdl = class_table("cdl")
    assert len(APPENDIX_A) == 105
    assert cdl.crop_values == APPENDIX_A
    for v in (59, 60, 61, 70, 92, 254, 0, 176):
        assert not cdl[v].crop, v
    for v in (1, 204, 250):
        assert cdl[v].crop, v


def test_other_crop_flags():
    assert class_table("worldcover").crop_values == {40}
    assert class_table("scl").crop_values == frozenset()
    sigpac = class_table("sigpac")
    assert set(range(171)) - sigpac.crop_values == {0, 37, 45, 65, 125, 134}
    for v in (11, 75, 76, 77, 132, 169):  # rice, fallow (declared), grape, vineyards
        assert sigpac[v].crop


@pytest.mark.parametrize(
    "table_id,value,name",
    [
        ("cdl", 1, "Corn"),
        ("cdl", 26, "Dbl Crop WinWht/Soybeans"),
        ("cdl", 61, "Fallow/Idle Cropland"),
        ("cdl", 176, "Grass/Pasture"),
        ("cdl", 228, "Dbl Crop Triticale/Corn"),
        ("cdl", 250, "Cranberries"),
        ("cdl", 254, "Dbl Crop Barley/Soybeans"),
        ("sigpac", 0, "Agrostis"),
        ("sigpac", 27, "Pumkpin"),
        ("sigpac", 31, "Onions, Garlick"),
        ("sigpac", 42, "Cultivation of Fruits of the Forest "),
        ("sigpac", 54, "Woody Aromatiques "),
        ("sigpac", 103, "Blueberrys"),
        ("sigpac", 123, "Hypericum or Saint John's Wort"),
        ("sigpac", 165, "Non-Efa Vetch and Triticale "),
        ("sigpac", 166, "Efa Vetch and Triticale "),
        ("sigpac", 170, "Nursery Tree and Shrub"),
        ("worldcover", 40, "Cropland"),
        ("worldcover", 60, "Bare/Sparse Vegetation"),
        ("scl", 3, "Cloud Shadows"),
        ("scl", 11, "Snow"),
    ],
)
def test_names(table_id, value, name):
    assert class_table(table_id).name(value) == name


def test_trailing_spaces_only_where_the_reference_has_them():
    for tid in CLASS_TABLE_IDS:
        t = class_table(tid)
        spaced = {c.value for c in t.classes if c.name != c.name.strip()}
        assert spaced == ({42, 54, 165, 166} if tid == "sigpac" else set()), tid


def test_getitem_contains_errors():
    cdl = class_table("cdl")
    assert cdl[np.uint8(1)].name == "Corn"
    assert 1 in cdl and np.int16(176) in cdl
    assert 62 not in cdl and "1" not in cdl and None not in cdl and -3000 not in cdl
    with pytest.raises(KeyError, match="62 is not a class value of table 'cdl'"):
        cdl[62]
    with pytest.raises(KeyError):
        class_table("sigpac").name(171)


def test_unknown_table_id():
    with pytest.raises(ValueError, match="cdl, sigpac, worldcover, scl"):
        class_table("corine")


def test_is_crop_vectorised_2d():
    cdl = class_table("cdl")
    arr = np.array([[0, 1, 59, 254], [204, 250, 176, 62]], dtype=np.uint8)
    expected = np.array([[False, True, False, False], [True, True, False, False]])
    for dtype in (np.uint8, np.uint16, np.int16, np.int32, np.int64):
        out = cdl.is_crop(arr.astype(dtype))
        assert out.dtype == bool and out.shape == (2, 4)
        np.testing.assert_array_equal(out, expected)


def test_is_crop_nodata_and_out_of_range():
    wc = class_table("worldcover")
    arr = np.array([[-3000, 40, 40], [70000, 30, -1]], dtype=np.int32)
    np.testing.assert_array_equal(wc.is_crop(arr), [[False, True, True], [False, False, False]])
    np.testing.assert_array_equal(wc.is_crop(np.array([-3000, 40], dtype=np.int16)), [False, True])
    with pytest.raises(TypeError):
        wc.is_crop(np.array([40.0]))


def test_is_crop_matches_flags_everywhere(table):
    values = np.arange(256)
    expected = np.array([v in table.crop_values for v in values])
    np.testing.assert_array_equal(table.is_crop(values.astype(np.uint8)), expected)


def test_rgb_lut(table):
    lut = table.rgb_lut()
    assert lut.shape == (256, 3) and lut.dtype == np.uint8
    for c in table.classes:
        assert "#%02x%02x%02x" % tuple(lut[c.value]) == c.color
    unknown = [v for v in range(256) if v not in table]
    assert not lut[unknown].any()
    assert table.rgb_lut(65536).shape == (65536, 3)
    with pytest.raises(ValueError):
        table.rgb_lut(table.values[-1])


def test_colours_valid_hex(table):
    assert all(re.fullmatch(r"#[0-9a-f]{6}", c.color) for c in table.classes)


@pytest.mark.parametrize("table_id", ["worldcover", "scl", "sigpac"])
def test_colours_unique(table_id):
    colors = [c.color for c in class_table(table_id).classes]
    assert len(set(colors)) == len(colors)


def test_official_colours_spot_checks():
    wc = class_table("worldcover")
    assert [wc[v].color for v in wc.values] == [
        "#006400", "#ffbb22", "#ffff4c", "#f096ff", "#fa0000", "#b4b4b4",
        "#f0f0f0", "#0064c8", "#0096a0", "#00cf75", "#fae6a0",
    ]  # fmt: skip
    scl = class_table("scl")
    assert scl[4].color == "#00a000" and scl[9].color == "#ffffff" and scl[10].color == "#64c8ff"
    cdl = class_table("cdl")
    assert cdl[1].color == "#ffd300" and cdl[5].color == "#267000" and cdl[111].color == "#4b70a3"


def test_sigpac_palette_is_the_documented_invented_one():
    sigpac = class_table("sigpac")
    assert [c.color for c in sigpac.classes] == _maximin_palette(171)
    lab = _srgb_to_lab(np.array([c.rgb for c in sigpac.classes]))
    d = np.linalg.norm(lab[:, None] - lab[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    assert d.min() > 10  # distinguishable side by side
    assert (lab[:, 0] > 30).all()  # nothing near the black of unknown values


def test_to_stac_classes(table):
    out = table.to_stac_classes()
    assert len(out) == len(table)
    names = [d["name"] for d in out]
    assert len(set(names)) == len(names)
    for d in out:
        assert set(d) == {"value", "name", "title", "description", "color_hint"}
        assert re.fullmatch(r"[a-z0-9]+(_[a-z0-9]+)*", d["name"]), d["name"]
        assert re.fullmatch(r"[0-9A-F]{6}", d["color_hint"])
        assert d["description"] == table[d["value"]].name.strip()
        assert d["title"] == d["description"]
        assert d["color_hint"] == table[d["value"]].color[1:].upper()


def test_to_stac_classes_slugs_and_collisions():
    cdl = {d["value"]: d["name"] for d in class_table("cdl").to_stac_classes()}
    assert cdl[26] == "dbl_crop_winwht_soybeans"
    assert cdl[176] == "grass_pasture"
    # 65/131 Barren and 64/152 Shrubland collide: every member gets its value appended
    assert (cdl[65], cdl[131], cdl[64], cdl[152]) == (
        "barren_65", "barren_131", "shrubland_64", "shrubland_152",
    )  # fmt: skip
    assert cdl[63] == "forest"
    sigpac = {d["value"]: d for d in class_table("sigpac").to_stac_classes()}
    assert sigpac[42]["description"] == "Cultivation of Fruits of the Forest"
    assert sigpac[42]["name"] == "cultivation_of_fruits_of_the_forest"
    assert sigpac[123]["name"] == "hypericum_or_saint_john_s_wort"
