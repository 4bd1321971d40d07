"""The SEN12TS vocabulary in STAC, in one place: the ``sen12ts:`` field prefix and field names,
the asset keys of a triplet record, how collection ids are made from an AOI and a kind and read
back (nobody parses ids with a regex of their own), and the split names with the aliases users
type. Pure data and pure functions: no I/O.
"""

from __future__ import annotations

import re

from sen12ts_stac.spec.seasons import SPLITS

PREFIX = "sen12ts"
ROOT_ID = PREFIX  # the root catalog's id

# ``sen12ts:`` item properties
AOI = f"{PREFIX}:aoi"
TILE = f"{PREFIX}:tile"
SEASON = f"{PREFIX}:season"
S2_DATE = f"{PREFIX}:s2_date"
RADAR_DATES = f"{PREFIX}:radar_dates"
SPLIT = "ml-aoi:split"  # the ML-AOI extension's field (not ours, but the dataset's first filter)

# a triplet record's assets (the S1 and S2 COGs and the label COG of its tile)
ASSET_KEYS = ("s1", "s2", "labels")

# collections: one per AOI and kind
KINDS = ("s1", "s2", "labels", "triplets")
_SOURCE_KINDS = ("s1", "s2")
_COLLECTION = re.compile(rf"^{PREFIX}_(?P<aoi>[a-z0-9-]+?)_(?P<kind>s1_source|s2_source|labels|triplets)$")

# The STAC extensions the catalog uses, by short name (schema URLs, pinned versions)
EXTENSIONS = {
    "proj": "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "raster": "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "eo": "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "sar": "https://stac-extensions.github.io/sar/v1.0.0/schema.json",
    "sat": "https://stac-extensions.github.io/sat/v1.0.0/schema.json",
    "file": "https://stac-extensions.github.io/file/v2.1.0/schema.json",
    "label": "https://stac-extensions.github.io/label/v1.0.1/schema.json",
    "ml-aoi": "https://stac-extensions.github.io/ml-aoi/v0.2.0/schema.json",
    "classification": "https://stac-extensions.github.io/classification/v2.0.0/schema.json",
    "mlm": "https://stac-extensions.github.io/mlm/v1.4.0/schema.json",
}

# The JSON schema of the sen12ts: fields (shipped in spec/data/stac-schemas under this URL):
# validate applies it to every object that carries a sen12ts: field, as it does an extension's.
SCHEMA_URL = "https://sen12ts-stac.github.io/schemas/v1.0.0/schema.json"


def has_fields(obj: object) -> bool:
    """True when a STAC object carries a ``sen12ts:`` field (in properties or summaries)."""
    if not isinstance(obj, dict):
        return False
    for part in (obj.get("properties"), obj.get("summaries")):
        if isinstance(part, dict) and any(isinstance(k, str) and k.startswith(PREFIX + ":") for k in part):
            return True
    return False


SPLIT_ALIASES = {
    "val": "validate",
    "valid": "validate",
    "validation": "validate",
    "training": "train",
    "testing": "test",
}


def collection_id(aoi: str, kind: str) -> str:
    """MLHub-style collection ids: ``sen12ts_<aoi>_s1_source``, ``..._s2_source``,
    ``..._labels``, ``..._triplets``."""
    if kind not in KINDS:
        raise ValueError(f"unknown collection kind {kind!r}; known: {', '.join(KINDS)}")
    return f"{PREFIX}_{aoi}_{kind}_source" if kind in _SOURCE_KINDS else f"{PREFIX}_{aoi}_{kind}"


def parse_collection_id(cid: object) -> tuple[str, str] | None:
    """``(aoi, kind)`` of a SEN12TS collection id (the inverse of :func:`collection_id`); None
    for any other id."""
    m = _COLLECTION.match(cid) if isinstance(cid, str) else None
    if m is None:
        return None
    kind = m.group("kind")
    return m.group("aoi"), kind.removesuffix("_source")


def aoi_of_collection(cid: object) -> str | None:
    """The AOI a SEN12TS collection id names, else None."""
    parsed = parse_collection_id(cid)
    return parsed[0] if parsed else None


def sibling_collection_ids(cid: object) -> list[str]:
    """The other collections of the same AOI as ``cid`` (S1, S2, labels for a triplet
    collection), in that order; [] for an id that is not SEN12TS's."""
    parsed = parse_collection_id(cid)
    if parsed is None:
        return []
    aoi, kind = parsed
    return [collection_id(aoi, k) for k in KINDS if k != kind]


def aoi_catalog_id(aoi: str) -> str:
    """The id of an AOI's catalog: ``sen12ts_<aoi>``."""
    return f"{PREFIX}_{aoi}"


def aoi_of_catalog(cid: object) -> str | None:
    """The AOI an AOI catalog's id names (the inverse of :func:`aoi_catalog_id`), else None."""
    m = re.match(rf"^{PREFIX}_([a-z0-9-]+)$", cid) if isinstance(cid, str) else None
    return m.group(1) if m else None


def normalise_split(name: str) -> str:
    """A split name as stored (``train``, ``validate``, ``test``) from what a user typed
    (``val``, ``Validation``, ...); unknown names are returned lower-cased, for the caller to
    refuse."""
    key = name.strip().lower()
    return SPLIT_ALIASES.get(key, key)


__all__ = [
    "AOI",
    "ASSET_KEYS",
    "EXTENSIONS",
    "KINDS",
    "PREFIX",
    "RADAR_DATES",
    "ROOT_ID",
    "S2_DATE",
    "SCHEMA_URL",
    "SEASON",
    "SPLIT",
    "SPLITS",
    "SPLIT_ALIASES",
    "TILE",
    "aoi_catalog_id",
    "aoi_of_catalog",
    "aoi_of_collection",
    "collection_id",
    "has_fields",
    "normalise_split",
    "parse_collection_id",
    "sibling_collection_ids",
]
