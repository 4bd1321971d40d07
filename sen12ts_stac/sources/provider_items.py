"""What the providers' own STAC items say, read the way they are really written.

The stac-api source reads Planetary Computer, Earth Search and ASF items. Their documents differ
from the STAC ideal in ways that matter (``tests/fixtures/real-items/README.md`` lists them, with
the items themselves as test fixtures); the rules for each live here, as pure functions of an
item's properties and asset metadata, so they are tested on the real JSON:

* **Time**: ``datetime`` when set, else ``start_datetime``. Planetary Computer's
  ``sentinel-1-rtc`` writes ``start_datetime``/``end_datetime`` with a space instead of ``T``
  (``2024-04-19 04:58:39.221202+00:00``): read as ISO 8601, not as strict RFC 3339.
* **Sentinel-2 reflectance** = DN x scale + offset (:func:`s2_scale_offset`). The BOA offset
  (-0.1, i.e. DN - 1000) exists only from processing baseline 04.00 on, so an older baseline means
  offset 0 whatever the asset says. Earth Search ``sentinel-2-l2a`` items carry
  ``earthsearch:boa_offset_applied: true`` AND ``raster:bands.offset: -0.1``: the flag wins (the
  maintainers: "boa_offset_applied is the truth", Element84/earth-search#9). ``sentinel-2-c1-l2a``
  items have the offset and no flag: their DN keep the +1000, the offset applies. Planetary
  Computer items have no ``raster:bands`` at all: scale 1e-4, offset from the baseline rule.
* **ESA WorldCover version**: ``esa_worldcover:product_version``, which Planetary Computer's
  2020 (v100) items lacked; then the ``_v100_``/``_v200_`` of the item id; then the year of
  ``start_datetime`` (2020 = v100). A v200 item without the property is not taken for v100.
* **No-data**: ``raster:bands[0].nodata`` when given. Planetary Computer's ``cop-dem-glo-30`` has
  no ``raster:bands``: the file's own no-data is used. For the label maps a missing value falls
  back to the product's documented no-data (0 for both CDL and WorldCover; see docs/sources.md
  for why CDL's 0 "Background" is no-data here).
"""

from __future__ import annotations

import datetime as dt
import re

BOA_OFFSET = -0.1  # reflectance; DN carry +1000 from processing baseline 04.00
BOA_BASELINE = 4.0
S2_SCALE = 1e-4


def raster_meta(asset) -> dict:
    """The first ``raster:bands`` entry of an asset (a pystac Asset or a dict), or {}."""
    fields = asset if isinstance(asset, dict) else asset.extra_fields
    bands = fields.get("raster:bands") or [{}]
    first = bands[0] if isinstance(bands, list) and bands else {}
    return first if isinstance(first, dict) else {}


def parse_time(text: str) -> dt.datetime:
    """An ISO 8601 date-time as the providers write it ('T' or a space between date and time,
    'Z' or an offset, any fraction of a second); naive times are UTC."""
    from pystac.utils import str_to_datetime

    t = str_to_datetime(str(text).strip())
    return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)


def item_date(properties: dict) -> dt.date:
    """The UTC date of an item: ``datetime``, else ``start_datetime``."""
    text = properties.get("datetime") or properties.get("start_datetime")
    if not text:
        raise ValueError("item has neither datetime nor start_datetime")
    return parse_time(text).astimezone(dt.timezone.utc).date()


def processing_baseline(properties: dict) -> float | None:
    """``s2:processing_baseline`` ("05.09") as a number, or None when absent or unreadable."""
    try:
        return float(properties["s2:processing_baseline"])
    except (KeyError, TypeError, ValueError):
        return None


def s2_scale_offset(properties: dict, meta: dict) -> tuple[float, float]:
    """(scale, offset) turning a Sentinel-2 L2A DN into reflectance (see the module docstring)."""
    scale = float(meta.get("scale", S2_SCALE))
    baseline = processing_baseline(properties)
    if baseline is not None and baseline < BOA_BASELINE:
        return scale, 0.0  # no BOA offset exists before baseline 04.00, whatever the asset says
    if properties.get("earthsearch:boa_offset_applied") is True:
        return scale, 0.0  # Earth Search already removed it from the pixels: the flag wins
    if meta.get("offset") is not None:
        return scale, float(meta["offset"])
    return scale, (BOA_OFFSET if baseline is not None else 0.0)


_WC_VERSION = re.compile(r"_v(\d)(\d)(\d)_")


def worldcover_version(item_id: str, properties: dict) -> str | None:
    """The WorldCover product version ("1.0.0", "2.0.0"), or None when nothing tells."""
    v = properties.get("esa_worldcover:product_version")
    if v:
        return str(v)
    m = _WC_VERSION.search(item_id)
    if m:
        return ".".join(m.groups())
    start = properties.get("start_datetime") or properties.get("datetime")
    if start:
        year = parse_time(start).year
        return {2020: "1.0.0", 2021: "2.0.0"}.get(year)
    return None


def is_worldcover_2020(item_id: str, properties: dict) -> bool:
    """WorldCover 2020 is product version 1 (v100); 2021 is version 2 (v200)."""
    return str(worldcover_version(item_id, properties) or "").startswith("1")


def is_cdl_cropland(item_id: str, properties: dict) -> bool:
    """A CDL ``cropland`` item (not ``cultivated`` or ``frequency``)."""
    kind = properties.get("usda_cdl:type")
    if not kind:  # PC ids start with the type: cropland_2021_-2086095_1822575_90000
        prefix = item_id.split("_", 1)[0]
        kind = prefix if prefix in ("cropland", "cultivated", "frequency") else "cropland"
    return kind == "cropland"


__all__ = [
    "raster_meta",
    "parse_time",
    "item_date",
    "processing_baseline",
    "s2_scale_offset",
    "worldcover_version",
    "is_worldcover_2020",
    "is_cdl_cropland",
    "BOA_OFFSET",
]
