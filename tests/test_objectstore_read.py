"""Every reader takes an object-store URL: info, validate (COG checks included), download, the
stream index (static tree and stac-geoparquet) and the loader, on a real S3 API (moto) and on
Azure Blob (Azurite), both on 127.0.0.1; with faults injected by a proxy, and anonymous reads of
a public bucket. The published catalog is the local one byte for byte (links stay relative)."""

from __future__ import annotations

import filecmp
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from objectstores import fault_proxy
from streamfixtures import private_stream_cache  # noqa: F401 (autouse)

from sen12ts_stac.collect.run import CreateConfig, create
from sen12ts_stac.distribute.export import export_catalog
from sen12ts_stac.storage import objects
from sen12ts_stac.stream import load_index, triplet_loader

CLI = [sys.executable, "-m", "sen12ts_stac.cli"]
FAST = {"retries": 4, "backoff": 0.02, "max_backoff": 0.1, "gdal_retries": 2, "gdal_retry_delay": 0.05, "timeout": 10}


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Path:
    """A small catalog (2 tiles, summer: 8 triplets), exported (ndjson + parquet beside each
    collection)."""
    root = tmp_path_factory.mktemp("objcat")
    create(
        CreateConfig(aoi="california", out=root, source="synthetic", max_tiles=2, seasons=("summer",), seed=0),
        progress=False,
    )
    export_catalog(root, progress=False)
    return root


def upload(root: Path, prefix_url: str) -> None:
    """Every file of the catalog, byte for byte, under ``prefix_url`` (publish's own tests cover
    the publish command; these cover the readers)."""
    for dirpath, dirnames, files in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in files:
            if name.startswith("."):
                continue
            p = Path(dirpath, name)
            objects.put(prefix_url.rstrip("/") + "/" + p.relative_to(root).as_posix(), p.read_bytes())


def run(*args, env=None, check=True) -> subprocess.CompletedProcess:
    p = subprocess.run([*CLI, *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=300)
    if check:
        assert p.returncode == 0, p.stdout + p.stderr
    return p


@pytest.fixture(scope="module")
def on_s3(s3, catalog):
    """(catalog URL, env) of the catalog in a moto bucket."""
    bucket = s3.make_bucket()
    with pytest.MonkeyPatch.context() as mp:
        s3.use(mp)
        upload(catalog, s3.url(bucket, "sen12ts"))
    return s3.url(bucket, "sen12ts/catalog.json"), dict(s3.env)


def _batches(src, **kw):
    kw = {"batch_size": 3, "shuffle": True, "seed": 2, "num_workers": 2, "read_options": FAST, **kw}
    return list(triplet_loader(src, **kw))


def _same_batches(a: list, b: list) -> None:
    assert [x["id"] for x in a] == [x["id"] for x in b] and a
    for x, y in zip(a, b):
        for k in ("s1", "s2", "label", "s1_valid", "s2_valid"):
            assert torch.equal(x[k], y[k]), k


def _without_hrefs(records):
    return [(r.id, r.split, r.tile, r.s2_date, r.bands, r.stats) for r in records]


def test_index_and_loader_from_s3_equal_local(catalog, on_s3, monkeypatch):
    url, env = on_s3
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    remote = load_index(url, cache=False)
    local = load_index(catalog)
    assert _without_hrefs(remote) == _without_hrefs(local) and remote
    assert all(h.startswith("s3://") for r in remote for h in r.hrefs.values())
    _same_batches(_batches(remote), _batches(local))


def test_index_from_the_exported_parquet_on_s3(catalog, on_s3, monkeypatch):
    url, env = on_s3
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    parquet = url.replace("catalog.json", "california/triplets/items.parquet")
    remote = load_index(parquet)
    local = load_index(catalog)
    assert _without_hrefs(remote) == _without_hrefs(local) and remote
    _same_batches(_batches(remote), _batches(local))


@pytest.mark.slow
def test_validate_info_and_download_from_s3(catalog, on_s3, tmp_path):
    url, env = on_s3
    report = json.loads(run("validate", url, "--format", "json", env=env).stdout)
    assert report["errors"] == 0 and report["counts"]["asset files"] > 0, report["findings"]
    local_info = run("info", str(catalog)).stdout.splitlines()[2:]
    remote_info = run("info", url, env=env).stdout.splitlines()[2:]
    assert remote_info == local_info
    # a filtered subset: the same files, byte for byte, as a download from the local folder
    run("download", url, str(tmp_path / "remote"), "--split", "train", "--quiet", env=env)
    run("download", str(catalog), str(tmp_path / "local"), "--split", "train", "--quiet")
    cmp = filecmp.dircmp(tmp_path / "remote", tmp_path / "local")
    assert _tree(tmp_path / "remote") == _tree(tmp_path / "local") and _tree(tmp_path / "local")
    assert not cmp.diff_files


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_validate_finds_a_broken_cog_on_s3(catalog, s3, tmp_path, monkeypatch):
    s3.use(monkeypatch)
    bucket = s3.make_bucket()
    upload(catalog, s3.url(bucket, "c"))
    victim = next(k for k in s3.keys(bucket, "c/") if k.endswith("/s2.tif"))
    objects.put(s3.url(bucket, victim), b"II*\x00 not a tiff")
    p = run("validate", s3.url(bucket, "c/catalog.json"), check=False)
    assert p.returncode == 1 and victim.rsplit("/", 2)[-2] in p.stdout and "GeoTIFF" in p.stdout, p.stdout


def test_faults_503_500_and_resets_are_retried(catalog, s3, monkeypatch):
    s3.use(monkeypatch)
    bucket = s3.make_bucket()
    upload(catalog, s3.url(bucket, "f"))
    local = _batches(catalog, assets={"s1": ["vv_t0"], "s2": True, "label": True})
    with fault_proxy(s3.endpoint, fail=(503, 500), reset_get=True) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        records = load_index(s3.url(bucket, "f/catalog.json"), cache=False)
        remote = _batches(records, assets={"s1": ["vv_t0"], "s2": True, "label": True})
        assert proxy.counts["503"] and proxy.counts["500"] and proxy.counts["reset_get"], proxy.counts
    _same_batches(remote, local)


def test_anonymous_read_of_a_public_bucket(catalog, s3, monkeypatch):
    s3.use(monkeypatch)
    public = s3.make_bucket(public=True)
    upload(catalog, s3.url(public, "p"))
    for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(k, raising=False)
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    p = subprocess.run(
        [*CLI, "info", s3.url(public, "p/catalog.json"), "--anonymous"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert p.returncode == 0 and "triplets:" in p.stdout, p.stdout + p.stderr
    monkeypatch.setenv("AWS_NO_SIGN_REQUEST", "YES")
    records = load_index(s3.url(public, "p/catalog.json"), cache=False)
    _same_batches(_batches(records), _batches(catalog))


def test_a_missing_bucket_and_wrong_credentials_are_one_line(s3, monkeypatch):
    s3.use(monkeypatch)
    p = run("info", "s3://no-such-bucket-here/catalog.json", check=False)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1 and "no such bucket" in p.stderr, p.stderr
    bucket = s3.make_bucket()
    objects.put(s3.url(bucket, "catalog.json"), b'{"type": "Catalog"}')
    with s3.auth_required():
        p = run("info", s3.url(bucket, "catalog.json"), env={"AWS_SECRET_ACCESS_KEY": "wrong-secret-1234"}, check=False)
    assert p.returncode == 2 and "access denied" in p.stderr and "wrong-secret-1234" not in p.stderr + p.stdout, (
        p.stderr
    )


def test_azure_blob_index_loader_and_validate(catalog, azurite, monkeypatch):
    azurite.use(monkeypatch)
    container = azurite.make_container()
    upload(catalog, azurite.url(container, "sen12ts"))
    url = azurite.url(container, "sen12ts/catalog.json")
    records = load_index(url, cache=False)
    assert all(h.startswith("az://") for r in records for h in r.hrefs.values())
    _same_batches(_batches(records), _batches(catalog))
    p = run("validate", url, check=False)
    assert p.returncode == 0, p.stdout + p.stderr


def test_gdal_settings_follow_the_ecosystem_variables(monkeypatch):
    from sen12ts_stac.storage import gdal_options, set_anonymous

    for k in (
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_NO_SIGN_REQUEST",
        "AZURE_STORAGE_ACCOUNT",
        "AZURE_STORAGE_ACCESS_KEY",
    ):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", "acct")
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", "a2V5")
    opts = gdal_options()
    assert (opts["AWS_S3_ENDPOINT"], opts["AWS_HTTPS"], opts["AWS_VIRTUAL_HOSTING"]) == (
        "127.0.0.1:9000",
        "NO",
        "FALSE",
    )
    assert opts["AWS_REGION"] == "us-east-1"
    assert (opts["AZURE_STORAGE_ACCOUNT"], opts["AZURE_STORAGE_ACCESS_KEY"]) == ("acct", "a2V5")
    assert "AWS_NO_SIGN_REQUEST" not in opts
    set_anonymous(True)
    try:
        assert gdal_options()["AWS_NO_SIGN_REQUEST"] == "YES"
    finally:
        set_anonymous(False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://minio.example:9000/")
    assert gdal_options()["AWS_HTTPS"] == "YES"


def test_remote_checksums_catch_a_changed_file_of_the_same_size(catalog, s3, monkeypatch):
    s3.use(monkeypatch)
    bucket = s3.make_bucket()
    upload(catalog, s3.url(bucket, "k"))
    victim = next(k for k in s3.keys(bucket, "k/") if k.endswith("/s1.tif"))
    data = bytearray(s3.read(bucket, victim))
    data[-1] ^= 0xFF  # one byte of the last block: same size, the header and layout intact
    objects.put(s3.url(bucket, victim), bytes(data))
    url = s3.url(bucket, "k/catalog.json")
    plain = json.loads(run("validate", url, "--format", "json", "--no-rules", check=False).stdout)
    assert not any("does not match" in f["message"] for f in plain["findings"])
    assert any(f["level"] == "not-checked" and "--remote-checksums" in f["message"] for f in plain["findings"])
    hashed = json.loads(
        run("validate", url, "--format", "json", "--no-rules", "--remote-checksums", check=False).stdout
    )
    bad = [f for f in hashed["findings"] if "does not match" in f["message"]]
    # the S1 item and the triplet item that repeats its asset: both about the changed file
    folder = victim.rsplit("/", 2)[-2]
    assert len(bad) == 2 and all(folder in f["where"] + f["message"] for f in bad), [f["message"] for f in bad]
