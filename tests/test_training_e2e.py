"""The training recipes end to end on a tiny synthetic catalog (4 tiles: train, validate and
test): tiny configs run, every output exists and is well-formed, the model's STAC item validates
against the MLM v1.4.0 schema offline, --resume continues mid-epoch, torchrun runs two gloo
processes, and user errors are one line with exit code 2."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import torch
from PIL import Image
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7
from test_training import recipe

from sen12ts_stac.collect.run import CreateConfig, create
from sen12ts_stac.spec.classes import class_table
from sen12ts_stac.spec.seasons import PairingRules
from sen12ts_stac.train.runtime import run_main
from sen12ts_stac.validate.report import ERROR, NOT_CHECKED
from sen12ts_stac.validate.schemas import SchemaChecker, SchemaStore

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "training" / "configs"
# one tile per split, two in train (so two torchrun ranks get one tile series each)
TILES = ("10_53_1680", "10_85_1592", "10_93_1611", "10_71_1613")


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("train-catalog")
    create(
        CreateConfig(
            aoi="california",
            out=root,
            tiles=TILES,
            seasons=("summer", "fall"),
            seed=0,
            rules=PairingRules(max_triplets_per_tile_season=1),
        ),
        progress=False,
    )
    return root


def run(name: str, *args: str) -> int:
    mod = recipe(name)
    return run_main(mod.PROG, mod.main, list(args))


def mlm_errors(item: dict, schemas_dir: Path) -> list[str]:
    """Errors of ``item`` against the MLM v1.4.0 schema (jsonschema, offline references) and
    against the core item and every other extension it names (the project's checker)."""

    def retrieve(uri: str):
        path = schemas_dir / uri.split("://", 1)[1].split("#")[0]
        return Resource.from_contents(json.loads(path.read_text()), default_specification=DRAFT7)

    schema = json.loads((schemas_dir / "stac-extensions.github.io/mlm/v1.4.0/schema.json").read_text())
    validator = jsonschema.Draft7Validator(schema, registry=Registry(retrieve=retrieve))
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(item)]
    findings = SchemaChecker(SchemaStore(schemas_dir, fetch=False)).check(item, "model-item.json")
    return errors + [f.line() for f in findings if f.level in (ERROR, NOT_CHECKED)]


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def assert_png(path: Path) -> None:
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 200 and im.size[1] > 100, path


def test_sar2vi_tiny_outputs_resume_and_model_item(catalog, tmp_path, schemas_dir, capsys):
    out = tmp_path / "sar2vi"
    common = ["--config", str(CONFIGS / "sar2vi-tiny.yaml"), "--catalog", str(catalog), "--out", str(out)]
    # stop after one of the epoch's two batches: a mid-epoch checkpoint ...
    assert run("sar2vi", *common, "--max-steps", "1") == 0
    first = torch.load(out / "checkpoints" / "last.pt", weights_only=False)
    assert (first["epoch"], first["step"]) == (0, 1)
    # ... that --resume continues: the epoch's one remaining batch, not a new epoch
    assert run("sar2vi", *common, "--resume") == 0
    last = torch.load(out / "checkpoints" / "last.pt", weights_only=False)
    assert (last["epoch"], last["step"]) == (1, 2)
    assert [int(r["step"]) for r in read_csv(out / "train_log.csv")] == [1, 2]
    assert "resumed from" in capsys.readouterr().err

    for name in (
        "config.yaml",
        "metrics.json",
        "per_class.csv",
        "per_month.csv",
        "timeseries.csv",
        "model.pt",
        "model-item.json",
        "eval_log.csv",
        "checkpoints/best.pt",
    ):
        assert (out / name).is_file(), name
    m = json.loads((out / "metrics.json").read_text())
    assert m["splits"]["report_split"] == "test" and m["splits"]["note"] is None
    assert m["splits"]["monitor"]["tiles"] == 1 and m["training"]["steps"] == 2
    rep = m["report"]
    for method in (rep["model"], rep["baselines"]["train_mean"], rep["baselines"]["linear_regression"]):
        assert method["n"] > 0
        for k in ("rmse", "mae", "r2", "bias", "ssim"):
            assert isinstance(method[k], float), k
    assert rep["baselines"]["train_mean"]["pearson_r"] is None  # a constant has no correlation
    assert set(rep["model_beats_baselines"]) == {"rmse", "mae", "r2"}
    assert m["throughput"]["training"]["samples"] > 0 and 0 <= m["throughput"]["training"]["loader_wait_fraction"] <= 1
    cdl = class_table("cdl")
    classes = read_csv(out / "per_class.csv")
    codes = [r["class"] for r in classes]
    assert {"cropland", "other"} <= set(codes)
    assert all(int(c) in cdl for c in codes if c not in ("cropland", "other"))
    assert {"model_rmse", "train_mean_rmse", "linear_regression_rmse"} <= set(classes[0])
    assert all(1 <= int(r["month"]) <= 12 for r in read_csv(out / "per_month.csv"))

    pngs = sorted((out / "figures").glob("*.png"))
    names = {p.name for p in pngs}
    assert {"vi_timeseries.png", "losses.png"} <= names and any(n.startswith("panel_") for n in names)
    for p in pngs:
        assert_png(p)

    item = json.loads((out / "model-item.json").read_text())
    assert mlm_errors(item, schemas_dir) == []
    assert item["properties"]["mlm:input"][0]["bands"][:2] == ["vh_t0", "vv_t0"]
    link = [ln for ln in item["links"] if ln["rel"] == "derived_from"]
    assert link and link[0]["href"] == str(catalog.resolve() / "catalog.json")
    model = item["assets"]["model"]
    assert model["mlm:artifact_type"] == "torch.save" and (out / model["href"]).is_file()
    state = torch.load(out / model["href"], weights_only=False)
    gen = recipe("sar2vi").UNetGenerator(18, 1, depth=5, base_filters=8, max_filters=32)
    gen.load_state_dict(state["generator"])  # the weights rebuild the model


def test_sar2vi_streams_from_an_http_catalog(catalog, tmp_path, serve_dir, monkeypatch):
    monkeypatch.setenv("SEN12TS_CACHE_DIR", str(tmp_path / "cache"))
    url = serve_dir(catalog) + "/catalog.json"
    out = tmp_path / "http"
    assert (
        run(
            "sar2vi",
            "--config",
            str(CONFIGS / "sar2vi-tiny.yaml"),
            "--catalog",
            url,
            "--out",
            str(out),
            "--max-steps",
            "1",
            "--eval-every",
            "0",
            "--loader-bench-batches",
            "0",
            "--quiet",
        )
        == 0
    )
    item = json.loads((out / "model-item.json").read_text())
    assert [ln["href"] for ln in item["links"] if ln["rel"] == "derived_from"] == [url]
    assert json.loads((out / "metrics.json").read_text())["report"]["model"]["n"] > 0


def test_crop_all_variants_compared(catalog, tmp_path, schemas_dir):
    out = tmp_path / "crop"
    assert (
        run(
            "crop_classification",
            "--config",
            str(CONFIGS / "crop-tiny.yaml"),
            "--catalog",
            str(catalog),
            "--out",
            str(out),
            "--inputs",
            "all",
            "--quiet",
        )
        == 0
    )
    rows = read_csv(out / "comparison.csv")
    assert [r["inputs"] for r in rows] == ["s1", "s2", "s1+s2"]
    assert (out / "comparison.md").read_text().count("\n|") >= 4
    classes = read_csv(out / "classes.csv")
    cdl = class_table("cdl")
    assert len(classes) == 4 and all(int(c["code"]) in cdl.crop_values for c in classes)
    counts = [int(c["training_pixels"]) for c in classes]
    assert counts == sorted(counts, reverse=True)
    for variant in ("s1", "s2", "s1+s2"):
        sub = out / variant
        m = json.loads((sub / "metrics.json").read_text())
        r = m["report"]
        assert m["inputs"] == variant and r["split"] == "test"
        assert r["n"] > 0 and r["n_ignored"] > 0  # non-crop pixels are ignored, not class 0
        assert len(m["confusion_matrix"]) == 4 and sum(map(sum, m["confusion_matrix"])) == r["n"]
        for k in ("overall_accuracy", "macro_f1", "kappa", "miou", "top1_accuracy", "top3_accuracy"):
            assert r[k] is None or 0 <= r[k] <= 1 or k == "kappa", k
        assert len(read_csv(sub / "per_class.csv")) == 4
        for p in (sub / "figures").glob("*.png"):
            assert_png(p)
        assert (sub / "figures" / "confusion_matrix.png").is_file()
        item = json.loads((sub / "model-item.json").read_text())
        assert mlm_errors(item, schemas_dir) == []
        assert [i["name"] for i in item["properties"]["mlm:input"]] == variant.split("+")
        assert len(item["properties"]["mlm:output"][0]["classification:classes"]) == 4


@pytest.mark.parametrize(
    "name,config,extra",
    [
        ("sar2vi", "sar2vi-tiny.yaml", []),
        ("crop_classification", "crop-tiny.yaml", ["--inputs", "s1,s2"]),
    ],
)
def test_torchrun_two_gloo_processes(catalog, tmp_path, name, config, extra):
    out = tmp_path / name
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        str(REPO / "training" / f"{name}.py"),
        "--config",
        str(CONFIGS / config),
        "--catalog",
        str(catalog),
        "--out",
        str(out),
        "--epochs",
        "2",
        "--quiet",
        *extra,
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["training"]["processes"] == 2
    per_rank = m["throughput"]["training"]["per_rank"]
    assert len(per_rank) == 2 and all(r["samples"] > 0 for r in per_rank)
    ck = torch.load(out / "checkpoints" / "last.pt", weights_only=False)
    assert ck["world_size"] == 2 and len(ck["loader"]) == 2 and ck["epoch"] == 2


def test_user_errors_are_one_line(tmp_path, catalog, capsys):
    # the script itself: exit code 2 and one line on stderr, no traceback
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "training" / "sar2vi.py"),
            "--catalog",
            str(tmp_path / "nowhere"),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert lines[0].startswith("sar2vi: error: ") and "nowhere" in lines[0]
    # the same wrapper in-process, for the other cases
    cases = [
        (["--catalog", str(catalog), "--out", str(tmp_path / "o2"), "--resume"], "no checkpoint to resume from"),
        (["--catalog", str(catalog), "--crop", "100"], "--crop 100 must be a multiple"),
        (
            ["--catalog", str(catalog), "--out", str(tmp_path / "o3"), "--eval-split", "holdout"],
            "--eval-split must be one of",
        ),
    ]
    for argv, needle in cases:
        capsys.readouterr()
        assert run("sar2vi", *argv) == 2
        err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
        assert len(err) == 1 and err[0].startswith("sar2vi: error: ") and needle in err[0], err
