"""The whole object-store journey on each real server on 127.0.0.1 (moto S3, Azurite Blob):
create -> export -> publish -> validate the published URL (zero findings) -> download a filtered
subset (the same bytes as from the local folder) -> stream one epoch (the local batches) -> one
training step of each recipe with ``--catalog`` the bucket URL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from streamfixtures import private_stream_cache  # noqa: F401 (autouse)

from sen12ts_stac.collect.run import CreateConfig, create
from sen12ts_stac.distribute.export import export_catalog
from sen12ts_stac.spec.seasons import PairingRules
from sen12ts_stac.stream import load_index, triplet_loader

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "sen12ts_stac.cli"]
CONFIGS = REPO / "training" / "configs"
TILES = ("10_53_1680", "10_85_1592", "10_93_1611", "10_71_1613")  # train, validate and test tiles

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("roundtrip")
    create(
        CreateConfig(
            aoi="california",
            out=root,
            tiles=TILES,
            seasons=("summer",),
            seed=0,
            rules=PairingRules(max_triplets_per_tile_season=1),
        ),
        progress=False,
    )
    export_catalog(root, progress=False)
    return root


def cli(*args: str, env: dict, cwd: Path | None = None) -> str:
    p = subprocess.run([*CLI, *args], capture_output=True, text=True, env={**os.environ, **env}, timeout=600, cwd=cwd)
    assert p.returncode == 0, f"{args}: {p.stdout}{p.stderr}"
    return p.stdout


def recipe(name: str, *args: str, env: dict) -> None:
    p = subprocess.run(
        [sys.executable, str(REPO / "training" / f"{name}.py"), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=900,
    )
    assert p.returncode == 0, f"{name}: {p.stdout[-2000:]}{p.stderr[-2000:]}"


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def journey(catalog: Path, prefix: str, env: dict, tmp_path: Path) -> None:
    cli("publish", str(catalog), prefix, "--quiet", env=env)
    url = prefix.rstrip("/") + "/catalog.json"
    # every check, every file hashed against its file:checksum: zero findings of any level
    report = json.loads(cli("validate", url, "--format", "json", "--quiet", "--remote-checksums", env=env))
    assert report["findings"] == [], report["findings"]
    assert report["counts"]["asset files"] > 0  # the COGs themselves were checked, through GDAL's /vsis3/ or /vsiaz/
    cli("download", url, str(tmp_path / "remote"), "--split", "train", "--quiet", env=env)
    cli("download", str(catalog), str(tmp_path / "local"), "--split", "train", "--quiet", env={})
    assert tree(tmp_path / "remote") == tree(tmp_path / "local") and tree(tmp_path / "local")
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        kw = {"batch_size": 2, "shuffle": True, "seed": 1, "num_workers": 2}
        remote = list(triplet_loader(load_index(url, cache=False), **kw))
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    local = list(triplet_loader(catalog, **kw))
    assert [b["id"] for b in remote] == [b["id"] for b in local] and remote
    for a, b in zip(remote, local):
        for k in ("s1", "s2", "label"):
            assert torch.equal(a[k], b[k]), k
    common = ["--catalog", url, "--max-steps", "1", "--eval-every", "0", "--loader-bench-batches", "0", "--quiet"]
    recipe("sar2vi", "--config", str(CONFIGS / "sar2vi-tiny.yaml"), "--out", str(tmp_path / "sar2vi"), *common, env=env)
    recipe(
        "crop_classification",
        "--config",
        str(CONFIGS / "crop-tiny.yaml"),
        "--out",
        str(tmp_path / "crop"),
        *common,
        env=env,
    )
    item = json.loads((tmp_path / "sar2vi" / "model-item.json").read_text())
    assert [ln["href"] for ln in item["links"] if ln["rel"] == "derived_from"] == [url]


def test_the_journey_on_s3(catalog, s3, tmp_path):
    bucket = s3.make_bucket()
    journey(catalog, s3.url(bucket, "datasets/sen12ts"), dict(s3.env), tmp_path)


def test_the_journey_on_azure_blob(catalog, azurite, tmp_path):
    container = azurite.make_container()
    journey(catalog, azurite.url(container, "sen12ts"), dict(azurite.env), tmp_path)
