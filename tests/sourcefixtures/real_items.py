"""The providers' real STAC documents (``tests/fixtures/real-items``, byte copies of
``../shared/reference/real-items``; see its README for where each comes from), moved onto the
fixture tile at fixture time. The stored files are never changed.

:func:`relocate` copies a real item and changes only what a copy at another place and time must
change: the id (ids name the date and tile), the geometry and bbox, the time fields (written in the
document's own style: PC RTC's ``start_datetime`` keeps its space), the fields given in
``properties`` (for Sentinel-1 the orbit of the fixture's tracks, for Sentinel-2 the scene cloud,
for the tiled products their tile name and ``proj:transform``/``proj:shape``), every asset href
(the assets read point at COGs of the fixture; the others at a local URL that is never read, so
nothing leaves 127.0.0.1 and ``planetary_computer.sign_inplace`` never asks for a token), and the
links the serving API writes itself (``self``, ``root``, ``parent``, ``collection``). Everything
else (asset keys, ``raster:bands`` or their absence, ``earthsearch:*``, ``s2:processing_baseline``,
``esa_worldcover:product_version``, extensions, the other links) is the provider's document.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from pathlib import Path

from shapely.affinity import translate
from shapely.geometry import mapping, shape

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "real-items"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "reference" / "real-items"
SERVER_LINKS = {"self", "root", "parent", "collection"}
TIME_FIELDS = ("datetime", "start_datetime", "end_datetime")

S1_RTC = "sentinel-1-rtc/S1A_IW_GRDH_1SDV_20240419T045839_20240419T045904_053498_067DF2_rtc.json"
S1_RTC_NEXT = "sentinel-1-rtc/S1A_IW_GRDH_1SDV_20240419T045904_20240419T045916_053498_067DF2_rtc.json"  # the next slice
ES_L2A = "sentinel-2-l2a/S2A_13TDE_20231008_0_L2A.json"  # flag true, offset -0.1 (baseline 05.09)
ES_C1 = "sentinel-2-c1-l2a/S2B_T20EPT_20250731T131905_L2A.json"  # offset -0.1, no flag (05.11)
PC_L2A_0212 = "sentinel-2-l2a/S2B_MSIL2A_20200606T080609_R078_T35MNM_20200826T094900.json"  # no raster:bands, 02.12
PC_L2A_0510 = "sentinel-2-l2a/S2B_MSIL2A_20240419T095549_R122_T46XER_20240419T124342.json"  # no raster:bands, 05.10
PC_DEM = "cop-dem-glo-30/Copernicus_DSM_COG_10_S90_00_W180_00_DEM.json"  # no raster:bands
ASF_COH = "sentinel-1-global-coherence/N48W090_fall_vv_COH12.json"
CDL_CROPLAND = "usda-cdl/cropland_2021_-106095_1807575_15000.json"
CDL_CULTIVATED = "usda-cdl/cultivated_2021_-106095_1807575_15000.json"
WC_V100 = "esa-worldcover/ESA_WorldCover_10m_2020_v100_N00E006.json"
WC_V200 = "esa-worldcover/ESA_WorldCover_10m_2021_v200_S60W030.json"
COLLECTIONS = {  # served collection documents
    "earth-search": ("sentinel-2-l2a/collection.earth-search.json", "sentinel-2-c1-l2a/collection.json"),
    "planetary-computer": ("sentinel-2-l2a/collection.planetary-computer.json",),
    "common": (
        "sentinel-1-rtc/collection.json",
        "cop-dem-glo-30/collection.json",
        "sentinel-1-global-coherence/collection.json",
        "usda-cdl/collection.json",
        "esa-worldcover/collection.json",
    ),
}


def document(rel: str) -> dict:
    """A stored real document, parsed (key order kept)."""
    return json.loads((FIXTURES / rel).read_bytes())


def fixture_files() -> list[str]:
    return sorted(p.relative_to(FIXTURES).as_posix() for p in FIXTURES.rglob("*") if p.is_file())


def time_text(original: str | None, when: dt.datetime) -> str:
    """``when`` (UTC) written like ``original``: ``2020-06-05T01:45:12Z`` or, as PC RTC writes its
    start/end times, ``2020-06-05 01:45:12.000000+00:00``."""
    when = when.astimezone(dt.timezone.utc)
    if original and " " in original.strip():
        return when.isoformat(sep=" ", timespec="microseconds")
    frac = "." in (original or "")
    return when.strftime("%Y-%m-%dT%H:%M:%S" + (".%fZ" if frac else "Z"))


def servable_collection(doc: dict) -> dict:
    """A collection as rustac serve accepts it. ASF's coherence collection writes its spatial
    extent as one flat bbox (``[-180, -90, 180, 90]``), not a list of them (STAC 1.0): rustac
    refuses to load it, so the served copy wraps it. Only the served copy."""
    d = copy.deepcopy(doc)
    bbox = d.get("extent", {}).get("spatial", {}).get("bbox")
    if isinstance(bbox, list) and bbox and not isinstance(bbox[0], list):
        d["extent"]["spatial"]["bbox"] = [bbox]
    return d


def collections(api: str) -> list[dict]:
    return [servable_collection(document(rel)) for rel in COLLECTIONS[api] + COLLECTIONS["common"]]


def relocate(
    doc: dict,
    *,
    id: str,
    hrefs: dict[str, str],
    geometry: dict | None = None,
    shift: tuple[float, float] | None = None,
    times: dict[str, dt.datetime | None] | None = None,
    properties: dict | None = None,
) -> dict:
    """A copy of the real item ``doc`` at the fixture's place and time (see the module docstring).
    ``hrefs``: asset key -> href (relative to the asset server) of the assets the source reads."""
    d = copy.deepcopy(doc)
    d["id"] = id
    geom = shape(geometry) if geometry is not None else shape(d["geometry"])
    if shift is not None:
        geom = translate(geom, *shift)
    d["geometry"] = json.loads(json.dumps(mapping(geom)))
    d["bbox"] = [round(v, 9) for v in geom.bounds]
    props = d["properties"]
    for key, when in (times or {}).items():
        props[key] = None if when is None else time_text(props.get(key), when)
    props.update(properties or {})
    d["links"] = [link for link in d.get("links", []) if link.get("rel") not in SERVER_LINKS]
    for key, asset in d["assets"].items():
        asset["href"] = hrefs.get(key, f"unused/{d['collection']}/{id}/{key}")
    missing = set(hrefs) - set(d["assets"])
    assert not missing, f"{id}: the real item has no asset {missing}"
    return d


def slice_boundary_shift(
    doc: dict, next_doc: dict, fraction: float, target: tuple[float, float]
) -> tuple[float, float]:
    """The (dlon, dlat) that puts ``target`` (lon, lat) on the boundary between two real slices of
    one radar datatake, ``fraction`` of the way along it, so the tile there intersects both."""
    from shapely.ops import linemerge

    a, b = shape(doc["geometry"]), shape(next_doc["geometry"])
    edge = a.exterior.intersection(b.buffer(0.01))
    edge = linemerge(edge) if edge.geom_type == "MultiLineString" else edge
    point = edge.interpolate(fraction, normalized=True)
    return target[0] - point.x, target[1] - point.y
