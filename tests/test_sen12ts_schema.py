"""The JSON schema of the sen12ts: fields: it agrees with the dataset's own tables, the committed
sample passes it, and validate applies it like an extension's schema to any object carrying a
sen12ts: field (a wrong type or an unknown season is an error naming the field)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema

from sen12ts_stac.spec.aois import AOIS
from sen12ts_stac.spec.seasons import SEASONS
from sen12ts_stac.spec.vocabulary import SCHEMA_URL
from sen12ts_stac.validate.engine import Options, validate
from sen12ts_stac.validate.schemas import BUNDLED_DIR

REPO = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((BUNDLED_DIR / SCHEMA_URL.split("://", 1)[1]).read_text())


def test_the_schema_agrees_with_the_spec():
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    d = SCHEMA["definitions"]
    assert set(d["aoi"]["enum"]) == set(AOIS)
    assert set(d["season"]["enum"]) == set(SEASONS)
    tables = {p.stem for p in (REPO / "sen12ts_stac" / "spec" / "data" / "classes").glob("*.csv")}
    assert set(d["fields"]["properties"]["sen12ts:class_table"]["enum"]) == tables


def test_validate_applies_it_to_sen12ts_fields(tmp_path, schemas_dir):
    root = tmp_path / "cat"
    shutil.copytree(REPO / "catalogs", root)
    opts = Options(schema_dir=str(schemas_dir), fetch_schemas=False, assets=False, workers=1, executor="serial")
    assert [f.line() for f in validate(root, opts).findings if f.check == "schema"] == []
    item_path = next(
        p
        for p in sorted((root / "california" / "triplets").rglob("*.json"))
        if json.loads(p.read_text()).get("type") == "Feature"
    )
    item = json.loads(item_path.read_text())
    item["properties"]["sen12ts:season"] = "monsoon"
    item_path.write_text(json.dumps(item))
    bad = [f for f in validate(root, opts).findings if f.check == "schema" and f.level == "error"]
    assert len(bad) == 1 and "monsoon" in bad[0].message and bad[0].where.endswith(item_path.name), bad
