"""The catalog as the ecosystem's tools read it (issue 12): odc-stac loads our bands by name,
pystac reads every item without migrating it and ``validate_all()`` passes offline, and the
GeoTIFFs themselves carry what the STAC says (units, class colours and names, 256 x 256 tiles)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from pystac.validation import JsonSchemaSTACValidator, RegisteredValidator
from rio_cogeo.cogeo import cog_validate

from sen12ts_stac.collect.run import CreateConfig, create
from sen12ts_stac.spec import bands
from sen12ts_stac.spec.seasons import PairingRules
from sen12ts_stac.validate.schemas import BUNDLED_DIR

odc_stac = pytest.importorskip("odc.stac")


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("interop")
    create(
        CreateConfig(
            aoi="california",
            out=root,
            max_tiles=2,
            seasons=("summer",),
            seed=0,
            rules=PairingRules(max_triplets_per_tile_season=1),
        ),
        progress=False,
    )
    return root


def _item(root: Path, kind: str) -> pystac.Item:
    return pystac.Item.from_file(sorted(root.glob(f"california/{kind}/block_*/*/*.json"))[0])


def _raw(item: pystac.Item) -> dict:
    return json.loads(Path(item.get_self_href()).read_text())


def _asset_of(name: str) -> tuple[str, int]:
    """The asset key and 1-based band index of a band name."""
    for product in (bands.S1, bands.S2, bands.LABEL):
        if name in product.names:
            return product.key, product.index([name])[0] + 1
    raise KeyError(name)


@pytest.mark.parametrize(
    "kind, names",
    [
        ("s1", ["vh_t0", "phase_t3", "lia", "valid"]),
        ("s2", ["B04", "B8A", "SCL", "red"]),  # "red": the eo common name of B04
        ("labels", ["class"]),
        ("triplets", ["vv_t1", "B04", "cloud_mask", "class"]),
    ],
)
def test_odc_stac_loads_our_band_names_with_the_pixels_rasterio_reads(catalog, kind, names):
    item = _item(catalog, kind)
    ds = odc_stac.load([item], bands=names)
    for name in names:
        key, index = _asset_of("B04" if name == "red" else name)
        with rasterio.open(item.assets[key].get_absolute_href()) as src:
            expected = src.read(index)
        got = ds[name].values
        assert got.shape == (1, *expected.shape), name
        assert got.dtype == expected.dtype, name
        np.testing.assert_array_equal(got[0], expected, err_msg=name)


def _tiff_tags(path: str) -> dict[int, int]:
    """Single-value SHORT/LONG tags of a classic TIFF's first IFD (enough for the tiling tags)."""
    with open(path, "rb") as f:
        head = f.read(1 << 16)
    bo = "<" if head[:2] == b"II" else ">"
    assert struct.unpack(bo + "H", head[2:4])[0] == 42, "not a classic TIFF"
    off = struct.unpack(bo + "I", head[4:8])[0]
    tags = {}
    for i in range(struct.unpack(bo + "H", head[off : off + 2])[0]):
        tag, typ, count, value = struct.unpack(bo + "HHI4s", head[off + 2 + 12 * i : off + 14 + 12 * i])
        if count == 1 and typ in (3, 4):
            tags[tag] = struct.unpack(bo + ("H" if typ == 3 else "I"), value[:2] if typ == 3 else value)[0]
    return tags


TILE_WIDTH, TILE_LENGTH, PLANAR_CONFIG = 322, 323, 284


@pytest.mark.parametrize("kind", ["s1", "s2", "labels"])
def test_cogs_are_tiled_256_and_carry_names_units_scales(catalog, kind):
    item = _item(catalog, kind)
    asset = item.assets[kind]
    path = asset.get_absolute_href()
    tags = _tiff_tags(path)
    # rio-cogeo's "Tiled" compares block and image width, so it says False for one tile per band;
    # the TIFF itself says tiles: TileWidth/TileLength 256, one plane per band.
    assert (tags.get(TILE_WIDTH), tags.get(TILE_LENGTH), tags.get(PLANAR_CONFIG)) == (256, 256, 2)
    assert cog_validate(path, quiet=True) == (True, [], [])
    rb = asset.extra_fields["raster:bands"]
    with rasterio.open(path) as src:
        assert list(src.descriptions) == [b["name"] for b in asset.extra_fields["bands"]]
        assert [u or None for u in src.units] == [b.get("unit") for b in rb]
        assert list(src.scales) == [b.get("scale", 1.0) for b in rb]
        assert list(src.offsets) == [b.get("offset", 0.0) for b in rb]
    if kind == "s1":
        assert {b.get("unit") for b in rb} == {"dB", "rad", "deg", None}


def test_label_cog_has_the_class_colours_and_names_of_the_stac(catalog):
    item = _item(catalog, "labels")
    asset = item.assets["labels"]
    classes = asset.extra_fields["classification:classes"]
    with rasterio.open(asset.get_absolute_href()) as src:
        assert src.colorinterp[0] == rasterio.enums.ColorInterp.palette
        cmap, tags = src.colormap(1), src.tags(1)
    assert tags["CLASS_TABLE"] == item.properties["sen12ts:class_table"]
    for c in classes:
        assert cmap[c["value"]] == (*bytes.fromhex(c["color_hint"]), 255), c
        assert tags[f"CLASS_{c['value']}"] == c["title"], c
    assert cmap[255][3] == 0  # no label: transparent
    assert len(classes) == 134 and len([k for k in tags if k.startswith("CLASS_")]) == 134 + 1


@pytest.fixture
def offline_validator(schemas_dir):
    validator = JsonSchemaSTACValidator()
    for folder in (schemas_dir, BUNDLED_DIR):
        for p in folder.rglob("*.json"):
            validator.schema_cache["https://" + p.relative_to(folder).as_posix()] = json.loads(p.read_text())
    RegisteredValidator.set_validator(validator)
    yield
    RegisteredValidator.set_validator(JsonSchemaSTACValidator())


def test_pystac_reads_without_migrating_and_validate_all_passes_offline(catalog, offline_validator):
    root = pystac.Catalog.from_file(str(catalog / "catalog.json"))
    root.validate_all()  # raises STACValidationError (or a network error: offline) on failure
    n = 0
    for item in root.get_items(recursive=True):
        assert item.stac_extensions == _raw(item)["stac_extensions"], item.id  # nothing migrated on read
        n += 1
    assert n == len(list(catalog.glob("california/*/block_*/*/*.json"))) > 0
    for coll in root.get_all_collections():
        raw = json.loads(Path(coll.get_self_href()).read_text())
        assert coll.stac_extensions == raw["stac_extensions"], coll.id
