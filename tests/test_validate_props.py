"""Property tests for ``validate``: mutated catalogs never crash it, real breaks always fail it
with a finding naming the right file, harmless rewrites pass; and the fast schema path never
passes what the reference implementation (jsonschema) rejects."""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path

import pytest
from conftest import SCHEMAS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_validate import clone, replace_bytes

from sen12ts_stac.validate import ERROR, Options, validate
from sen12ts_stac.validate.schemas import SchemaChecker, SchemaStore, SchemaUnavailable, core_schema_url

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "catalogs"
REQUIRED = {
    "Feature": ("id", "type", "stac_version", "geometry", "bbox", "properties", "links", "assets"),
    "Catalog": ("id", "type", "stac_version", "description", "links"),
    "Collection": ("id", "type", "stac_version", "description", "links", "license", "extent"),
}
CHECKED_RELS = ("root", "parent", "child", "item", "collection", "source", "derived_from")


def _json_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.json") if ".sen12ts" not in p.parts)


def _users_of(root: Path, tif: Path) -> set[str]:
    """Item files with an asset whose href resolves to ``tif``."""
    out = set()
    for p in _json_files(root):
        d = json.loads(p.read_text())
        for a in (d.get("assets") or {}).values():
            if (p.parent / a["href"]).resolve() == tif.resolve():
                out.add(str(p))
    return out


def mutate(root: Path, kind: str, pick: int, cut: float) -> tuple[set[str], bool]:
    """Apply one mutation; return (files a finding may name, whether it is a real break)."""
    files = _json_files(root)
    path = files[pick % len(files)]
    if kind == "reformat":  # same content, different bytes: must still pass
        path.write_text(json.dumps(json.loads(path.read_text()), indent=pick % 5 or None, sort_keys=bool(pick % 2)))
        return set(), False
    if kind == "corrupt_json":
        text = path.read_text()
        path.write_text(text[: max(1, int(len(text) * cut))])
        return {str(path)}, True
    if kind == "delete_key":
        d = json.loads(path.read_text())
        keys = REQUIRED[d["type"]]
        del d[keys[(pick // len(files)) % len(keys)]]
        path.write_text(json.dumps(d))
        return {str(path)}, True
    if kind == "break_href":
        d = json.loads(path.read_text())
        links = [link for link in d["links"] if link["rel"] in CHECKED_RELS]
        link = links[(pick // len(files)) % len(links)]
        link["href"] = f"./missing-{pick}/gone.json"
        path.write_text(json.dumps(d))
        return {str(path)}, True
    if kind == "swap_label_type":
        labels = [p for p in files if p.name.startswith("label_")]
        path = labels[pick % len(labels)]
        d = json.loads(path.read_text())
        d["properties"]["label:type"] = "vector"
        path.write_text(json.dumps(d))
        return {str(path)}, True
    if kind == "truncate_cog":
        tifs = sorted(root.rglob("*.tif"))
        tif = tifs[pick % len(tifs)]
        data = tif.read_bytes()
        replace_bytes(tif, data[: max(1, int(len(data) * cut))])
        return _users_of(root, tif), True
    raise ValueError(kind)


@given(
    kind=st.sampled_from(["reformat", "corrupt_json", "delete_key", "break_href", "swap_label_type", "truncate_cog"]),
    pick=st.integers(0, 100_000),
    cut=st.floats(0.02, 0.98),
)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True, database=None)
def test_mutated_catalogs_never_crash_and_fail_naming_the_file(small_catalog, schemas_dir, kind, pick, cut):
    with tempfile.TemporaryDirectory() as tmp:
        root = clone(small_catalog, Path(tmp) / "c")
        where, broken = mutate(root, kind, pick, cut)
        opts = Options(
            schema_dir=str(schemas_dir),
            fetch_schemas=False,
            assets=kind == "truncate_cog",
            checksums=False,
            executor="serial",
        )
        report = validate(root, opts)  # never raises
        errs = [f for f in report.findings if f.level == ERROR]
        if not broken:
            assert report.ok, errs
            return
        assert not report.ok and report.exit_code() == 1
        assert any(f.where in where for f in errs), (kind, where, [f.line() for f in errs][:10])


# -- the fast schema path never passes what jsonschema rejects ------------------------------
_CHECKER = SchemaChecker(SchemaStore(SCHEMAS, fetch=False))
_BASES = [json.loads(p.read_text()) for p in _json_files(SAMPLE)] if SAMPLE.is_dir() else []
JUNK = st.sampled_from([None, True, 0, 1.5, -1, "", "x", [], {}, [1], {"a": 1}, "2020-13-45T00:00:00Z"])


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


@pytest.mark.skipif(not _BASES, reason="no sample catalog in the repository")
@given(data=st.data())
@settings(max_examples=120, deadline=None)
def test_fast_schema_path_never_passes_what_jsonschema_rejects(schemas_dir, data):
    obj = copy.deepcopy(data.draw(st.sampled_from(_BASES)))
    for _ in range(data.draw(st.integers(1, 3))):
        paths = [p for p in _paths(obj) if p]
        path = data.draw(st.sampled_from(paths))
        parent = obj
        for k in path[:-1]:
            parent = parent[k]
        if data.draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = data.draw(JUNK)
    urls = [
        u for u in [core_schema_url(obj)] + list(obj.get("stac_extensions") or []) if isinstance(u, str) and "://" in u
    ]
    for url in urls:
        try:
            c = _CHECKER.compiled(url)
        except SchemaUnavailable:
            continue
        if c.fast is None:
            continue
        try:
            c.fast(obj)
            fast_ok = True
        except Exception:
            fast_ok = False
        slow = _CHECKER._slow(c, obj, "x")  # jsonschema: errors, or "not checked" for a missing reference
        if any(f.level != ERROR for f in slow):
            continue
        assert not (fast_ok and slow), (url, [f.message for f in slow])
