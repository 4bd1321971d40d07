"""A bounded fuzz of ``validate`` (issue 11, closing ask): the committed sample catalog, copied,
then mutated (values changed, keys deleted, types swapped, files replaced by garbage, nothing, a
FIFO, a folder, a symlink to a device or to a file outside the root). Whatever the mutation, the
CLI ends with a report and exit 0 or 1 (never a traceback, never a hang); and when the mutation
makes a value the file also states disagree with the file, the report is never PASS.

Derandomized (the same examples every run) and small: about 30 s on one core."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import SCHEMAS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sen12ts_stac.cli import cli

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "catalogs"
pytestmark = [
    pytest.mark.skipif(not SAMPLE.is_dir(), reason="no sample catalog in the repository"),
    pytest.mark.timeout(300),
]
FUZZ = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
DEEP: list = []
for _ in range(200):
    DEEP = [DEEP]
JUNK = st.sampled_from(
    [
        None,
        True,
        False,
        0,
        -1,
        1.5,
        1e308,
        "",
        "x",
        "nan",
        [],
        {},
        [1, "a"],
        {"a": None},
        [[[[[]]]]],
        DEEP,
        "../../../../etc/passwd",
        "/dev/zero",
        "2020-13-45T00:00:00Z",
    ]
)  # no URLs: the fuzz stays off the network


def copy_sample(dst: Path) -> Path:
    """JSON files copied, binaries hard-linked (a mutation replaces a binary, never edits it)."""

    def copy(s, d):
        if s.endswith(".json"):
            return shutil.copy2(s, d)
        try:
            os.link(s, d)
        except OSError:  # another file system
            shutil.copy2(s, d)
        return d

    return Path(shutil.copytree(SAMPLE, dst, copy_function=copy))


def json_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.json"))


def run(root: Path) -> tuple[int, dict]:
    """The CLI, in this process: exit 0 or 1 with a parseable JSON report, or the test fails."""
    r = CliRunner().invoke(
        cli, ["validate", str(root), "--offline", "--schemas", str(SCHEMAS), "--format", "json", "--executor", "serial"]
    )
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        import traceback

        raise AssertionError("validate crashed:\n" + "".join(traceback.format_exception(r.exception)))
    assert r.exit_code in (0, 1), (r.exit_code, r.output[-2000:])
    return r.exit_code, json.loads(r.stdout)


def paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from paths(v, prefix + (i,))


def swap_type(v):
    """A value of another JSON type."""
    return {dict: [v], list: {"x": v}, str: [v], bool: str(v), type(None): {}}.get(type(v), str(v))


# -- anything goes: never a crash, never a hang ------------------------------------------------------
@pytest.mark.slow
@given(data=st.data())
@FUZZ
def test_mutated_catalogs_end_with_a_report(data):
    with tempfile.TemporaryDirectory() as tmp:
        root = copy_sample(Path(tmp) / "c")
        deep = None  # the file given a value nested 200 deep: malformed wherever it is, never a PASS
        (Path(tmp) / "outside.json").write_text(
            '{"type": "Catalog", "id": "secret", "stac_version": "1.1.0", "description": "d", "links": []}'
        )
        for _ in range(data.draw(st.integers(1, 3), label="mutations")):
            kind = data.draw(st.sampled_from(["value", "delete", "swap", "file"]), label="kind")
            if kind == "file":
                files = sorted(p for p in root.rglob("*") if p.is_file() or p.is_symlink())
                path = data.draw(st.sampled_from(files), label="file")
                deep = None if path == deep else deep
                what = data.draw(
                    st.sampled_from(["garbage", "empty", "fifo", "dev_zero", "outside", "folder", "json_scalar"]),
                    label="into",
                )
                path.unlink()
                if what == "garbage":
                    path.write_bytes(data.draw(st.binary(min_size=1, max_size=2000), label="bytes"))
                elif what == "empty":
                    path.write_bytes(b"")
                elif what == "fifo":
                    os.mkfifo(path)
                elif what == "dev_zero":
                    path.symlink_to("/dev/zero")
                elif what == "outside":
                    path.symlink_to(Path(tmp) / "outside.json")
                elif what == "folder":
                    path.mkdir()
                else:
                    path.write_text(json.dumps(data.draw(JUNK, label="json")))
                continue
            candidates = [p for p in json_files(root) if p.is_file() and not p.is_symlink()]
            if not candidates:
                continue
            path = data.draw(st.sampled_from(candidates), label="json file")
            try:
                doc = json.loads(path.read_text())
            except ValueError:
                continue
            where = [p for p in paths(doc) if p]
            if not where:
                continue
            at = data.draw(st.sampled_from(where), label="path")
            deep = None if path == deep else deep
            parent = doc
            for k in at[:-1]:
                parent = parent[k]
            if kind == "delete":
                del parent[at[-1]]
            elif kind == "swap":
                parent[at[-1]] = swap_type(parent[at[-1]])
            else:
                parent[at[-1]] = data.draw(JUNK, label="value")
                deep = path if parent[at[-1]] is DEEP else deep
            path.write_text(json.dumps(doc))
        code, rep = run(root)
        assert rep["ok"] == (code == 0)
        assert not (deep and rep["ok"]), f"a 200-deep value in {deep} passed"
        assert not any("secret" in f["message"] for f in rep["findings"])  # nothing of an outside file in the report


# -- a value the file states too: never PASS when it disagrees -----------------------------------------
@lru_cache(maxsize=None)
def file_says(tif: str) -> dict:
    import rasterio

    with rasterio.open(tif) as ds:
        return {
            "count": ds.count,
            "dtypes": ds.dtypes,
            "nodata": ds.nodatavals,
            "scales": ds.scales,
            "offsets": ds.offsets,
            "descriptions": ds.descriptions,
            "shape": [ds.height, ds.width],
            "transform": list(ds.transform)[:6],
            "crs": ds.crs.to_string(),
            "bounds": list(ds.bounds),
            "size": os.path.getsize(tif),
        }


def raster_assets(root: Path) -> list[tuple[Path, str]]:
    out = []
    for p in json_files(root):
        d = json.loads(p.read_text())
        out += [(p, k) for k, a in (d.get("assets") or {}).items() if a["href"].endswith(".tif")]
    return out


DTYPES = ["uint8", "int8", "uint16", "int16", "int32", "float32", "float64"]


def disagree(data, doc: dict, key: str, tif: str) -> str:
    """Change one value in ``doc`` that the file states too, so that it disagrees with the file."""
    f = file_says(tif)
    a = doc["assets"][key]
    i = data.draw(st.integers(0, f["count"] - 1), label="band")
    field = data.draw(
        st.sampled_from(
            [
                "scale",
                "offset",
                "nodata",
                "data_type",
                "bands",
                "eo:bands",
                "spatial_resolution",
                "file:size",
                "file:checksum",
                "proj:shape",
                "proj:transform",
                "proj:code",
                "proj:bbox",
            ]
        ),
        label="field",
    )
    rb = a["raster:bands"][i]
    if field == "scale":
        if f["scales"][i] != 1.0 and data.draw(st.booleans(), label="delete"):
            rb.pop("scale", None)
        else:
            rb["scale"] = f["scales"][i] * data.draw(st.sampled_from([10.0, 0.1, -1.0, 3.0]), label="factor")
    elif field == "offset":
        rb["offset"] = f["offsets"][i] + data.draw(st.sampled_from([1.0, -0.5, 100.0]), label="shift")
    elif field == "nodata":
        nd = f["nodata"][i]
        choices = [
            v
            for v in (0, 1, -9999, 255.5, "nan", "inf")
            if not (isinstance(v, str) and nd is not None and math.isnan(nd) and v == "nan")
            and not (isinstance(v, (int, float)) and v == nd)
        ]
        if nd is not None:
            choices.append("delete")
        v = data.draw(st.sampled_from(choices), label="nodata")
        if v == "delete":
            rb.pop("nodata", None)
        else:
            rb["nodata"] = v
    elif field == "data_type":
        rb["data_type"] = data.draw(st.sampled_from([t for t in DTYPES if t != f["dtypes"][i]]), label="dtype")
    elif field in ("bands", "eo:bands"):
        if field not in a:
            field = "bands"
        a[field][i]["name"] = f["descriptions"][i] + data.draw(st.sampled_from(["_x", "2", " "]), label="suffix")
    elif field == "spatial_resolution":
        rb["spatial_resolution"] = data.draw(st.sampled_from([20.0, 60.0, 1.0]), label="res")
    elif field == "file:size":
        a["file:size"] = f["size"] + data.draw(st.sampled_from([1, -1, 1000]), label="delta")
    elif field == "file:checksum":
        a["file:checksum"] = "1220" + data.draw(st.sampled_from(["00", "ab", "ff"]), label="byte") * 32
    else:
        props = doc["properties"]
        if field == "proj:shape":
            props[field] = [f["shape"][0] + 1, f["shape"][1]]
        elif field == "proj:transform":
            t = list(f["transform"])
            t[2] += data.draw(st.sampled_from([10.0, -2560.0, 1e5]), label="dx")
            props[field] = t
        elif field == "proj:code":
            props[field] = data.draw(
                st.sampled_from([c for c in ("EPSG:4326", "EPSG:32611", "EPSG:3857", "EPSG:x") if c != f["crs"]]),
                label="crs",
            )
        else:
            b = list(f["bounds"])
            b[0] -= 1000.0
            props[field] = b
    return field


@pytest.mark.slow
@given(data=st.data())
@FUZZ
def test_a_value_that_disagrees_with_its_file_never_passes(data):
    with tempfile.TemporaryDirectory() as tmp:
        root = copy_sample(Path(tmp) / "c")
        path, key = data.draw(st.sampled_from(raster_assets(root)), label="asset")
        doc = json.loads(path.read_text())
        tif = str((path.parent / doc["assets"][key]["href"]).resolve())
        field = disagree(data, doc, key, tif)
        path.write_text(json.dumps(doc))
        code, rep = run(root)
        assert code == 1 and not rep["ok"], (field, str(path))
        assert any(f["level"] == "error" and f["where"] == str(path) for f in rep["findings"]), (field, rep["findings"])
