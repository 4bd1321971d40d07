"""``publish SRC DEST_URL`` through the real CLI (main()) against moto's S3 API and Azurite, both
on 127.0.0.1: every object byte for byte with its Content-Type, leaves before parents and the
root catalog last, re-runs that upload nothing or only what changed, --dry-run, --delete, 503 /
500 / a reset mid-upload, wrong credentials and a missing bucket (one line, nothing written)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from objectstores import AZURITE_KEY, fault_proxy

from sen12ts_stac.cli import main
from sen12ts_stac.distribute import publish as publish_mod
from sen12ts_stac.distribute.export import export_catalog
from sen12ts_stac.storage import objects

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
COG = "image/tiff; application=geotiff; profile=cloud-optimized"
TYPES = {
    ".json": "application/json",
    ".tif": COG,
    ".png": "image/png",
    ".parquet": "application/vnd.apache.parquet",
    ".ndjson": "application/x-ndjson",
}
MANIFEST = ".sen12ts-publish.json"


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """The committed sample catalog (catalogs/) with its items exported to parquet and ndjson."""
    root = tmp_path_factory.mktemp("published") / "catalogs"
    shutil.copytree(REPO / "catalogs", root, ignore=shutil.ignore_patterns(".*"))
    export_catalog(root, progress=False)
    return root


@pytest.fixture
def src(exported, tmp_path) -> Path:
    """A fresh copy, with what must never be published: run state and an interrupted write."""
    root = tmp_path / "src"
    shutil.copytree(exported, root)
    (root / "california" / ".sen12ts").mkdir()
    (root / "california" / ".sen12ts" / "state.json").write_text("{}")
    (root / "california" / ".collection.json.0a1b2c3d.tmp").write_text("half")
    return root


@pytest.fixture(params=["s3", "azurite"])
def store(request, monkeypatch):
    """A server of each kind, the product pointed at it, and a fresh bucket/container."""
    kind = request.param
    server = request.getfixturevalue(kind)
    server.use(monkeypatch)
    bucket = server.make_bucket() if kind == "s3" else server.make_container()
    return Store(kind, server, bucket, monkeypatch)


class Store:
    def __init__(self, kind, server, bucket, monkeypatch):
        self.kind, self.server, self.bucket, self.mp = kind, server, bucket, monkeypatch

    def url(self, key: str = "") -> str:
        return self.server.url(self.bucket, key)

    def keys(self, prefix: str = "") -> list[str]:
        return self.server.keys(self.bucket, prefix)

    @property
    def upstream(self) -> str:
        return self.server.endpoint if self.kind == "s3" else self.server.endpoint.rsplit("/", 1)[0]

    def through(self, proxy) -> None:
        """Send the product's requests through ``proxy``."""
        if self.kind == "s3":
            self.mp.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        else:
            cs = self.server.env["AZURE_STORAGE_CONNECTION_STRING"]
            self.mp.setenv("AZURE_STORAGE_CONNECTION_STRING", cs.replace(self.upstream, proxy.endpoint))

    def rels(self, proxy, prefix: str) -> list[str]:
        """The keys below ``prefix`` the proxy saw become visible, in order."""
        cut = f"/{self.bucket}/{prefix}" if self.kind == "s3" else f"/devstoreaccount1/{self.bucket}/{prefix}"
        return [p[len(cut) :] for p in proxy.puts() if p.startswith(cut)]


def local_rels(root: Path) -> list[str]:
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )


def run(capsys, *args) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main(["publish", *map(str, args), "--quiet"])
        raise SystemExit(0)
    out = capsys.readouterr()
    return e.value.code or 0, out.out, out.err


def test_publish_rerun_and_change(store, src, capsys):
    files = local_rels(src)
    assert {Path(f).suffix for f in files} == set(TYPES)  # COGs, thumbnails, JSON and both exports
    with fault_proxy(store.upstream, fail=()) as proxy:
        store.through(proxy)
        code, out, err = run(capsys, src, store.url("pub/v1"))
        assert code == 0, err
        assert f"published {len(files)} files" in out and "0 already there" in out

        # every object, byte for byte, with its Content-Type; nothing hidden went up
        assert store.keys("pub/v1/") == sorted([f"pub/v1/{f}" for f in files] + [f"pub/v1/{MANIFEST}"])
        for f in files:
            assert store.server.read(store.bucket, f"pub/v1/{f}") == (src / f).read_bytes(), f
            assert store.server.headers(store.bucket, f"pub/v1/{f}")["content-type"] == TYPES[Path(f).suffix], f

        # order: assets, then items and exports, then collections and catalogs bottom-up, root last
        order = store.rels(proxy, "pub/v1/")
        assert sorted(order) == sorted(files + [MANIFEST]) and order[-2:] == ["catalog.json", MANIFEST]
        pos = {rel: i for i, rel in enumerate(order)}
        assets = [f for f in files if f.endswith((".tif", ".png"))]
        items = [
            f
            for f in files
            if f.endswith((".parquet", ".ndjson"))
            or (f.endswith(".json") and Path(f).name not in ("catalog.json", "collection.json"))
        ]
        parents = [f for f in files if Path(f).name in ("catalog.json", "collection.json")]
        assert max(pos[a] for a in assets) < min(pos[i] for i in items)
        assert max(pos[i] for i in items) < min(pos[p] for p in parents)
        assert max(pos[p] for p in parents if p.endswith("collection.json")) < pos["california/catalog.json"]
        assert pos["california/catalog.json"] < pos["catalog.json"]

        # a re-run uploads nothing (not even the manifest)
        n = len(proxy.puts())
        code, out, _ = run(capsys, src, store.url("pub/v1/"))
        assert code == 0 and "published 0 files" in out and f"{len(files)} already there" in out
        assert len(proxy.puts()) == n

        # one COG changed in place (same size): only it goes up, then the manifest
        cog = next(src.rglob("*.tif"))
        data = bytearray(cog.read_bytes())
        data[-1] ^= 0xFF
        cog.write_bytes(bytes(data))
        code, out, _ = run(capsys, src, store.url("pub/v1"))
        assert code == 0 and "published 1 files" in out
        assert store.rels(proxy, "pub/v1/")[-2:] == [cog.relative_to(src).as_posix(), MANIFEST]
        assert len(proxy.puts()) == n + 2
        assert store.server.read(store.bucket, f"pub/v1/{cog.relative_to(src).as_posix()}") == bytes(data)


def test_dry_run_writes_nothing_and_delete(s3, src, capsys, monkeypatch):
    s3.use(monkeypatch)
    bucket = s3.make_bucket()
    s3.client.put_object(Bucket=bucket, Key="elsewhere/keep.txt", Body=b"not ours")
    files = local_rels(src)
    code, out, _ = run(capsys, src, s3.url(bucket, "cat"), "--dry-run")
    assert code == 0 and s3.keys(bucket) == ["elsewhere/keep.txt"]
    assert sum(line.startswith("would upload ") for line in out.splitlines()) == len(files)
    assert f"dry run: {len(files)} files" in out and "0 would be deleted" in out
    assert "would upload catalog.json (" in out

    assert run(capsys, src, s3.url(bucket, "cat"))[0] == 0
    s3.client.put_object(Bucket=bucket, Key="cat/stray.bin", Body=b"left by someone")
    gone = next(src.rglob("*.png"))
    gone_rel = gone.relative_to(src).as_posix()
    gone.unlink()
    (src / "README.md").write_text("hello\n")
    before = s3.keys(bucket)

    code, out, _ = run(capsys, src, s3.url(bucket, "cat"), "--dry-run", "--delete")
    assert code == 0 and s3.keys(bucket) == before
    assert "would upload README.md (6 bytes, text/markdown; charset=utf-8)" in out
    assert f"would delete {gone_rel}" in out and "would delete stray.bin" in out and "2 would be deleted" in out

    code, out, _ = run(capsys, src, s3.url(bucket, "cat"))  # no --delete: nothing is removed
    assert code == 0 and "published 1 files" in out and "0 deleted" in out
    assert f"cat/{gone_rel}" in s3.keys(bucket) and "cat/stray.bin" in s3.keys(bucket)

    code, out, _ = run(capsys, src, s3.url(bucket, "cat"), "--delete")
    assert code == 0 and "published 0 files" in out and "2 deleted" in out
    assert s3.keys(bucket) == sorted(["elsewhere/keep.txt", f"cat/{MANIFEST}"] + [f"cat/{f}" for f in local_rels(src)])


def test_faults_are_ridden_out(store, src, capsys):
    """503 SlowDown and 500 once for every request, and every upload of a file of 100 kB or more
    reset half-way once."""
    files = local_rels(src)
    with fault_proxy(store.upstream, reset_put=True, min_reset_bytes=100_000) as proxy:
        store.through(proxy)
        code, out, err = run(capsys, src, store.url("f"), "--workers", "4")
    assert code == 0, err
    big = sum((src / f).stat().st_size >= 100_000 for f in files)
    assert big and proxy.counts["reset_put"] == big, (big, proxy.counts)  # each upload of a big file cut once
    assert proxy.counts["503"] >= len(files) and proxy.counts["500"] >= len(files)
    for f in files:
        assert store.server.read(store.bucket, f"f/{f}") == (src / f).read_bytes(), f


def test_wrong_credentials_publish_nothing(s3, azurite, src, capsys, monkeypatch):
    s3.use(monkeypatch)
    bucket = s3.make_bucket()
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-4242")
    with s3.auth_required():
        code, out, err = run(capsys, src, s3.url(bucket, "cat"))
    assert code == 2 and err.count("\n") == 1 and "access denied" in err and "nothing was uploaded" in err
    assert err.startswith("sen12ts-stac: error: s3://") and "not-the-secret-4242" not in err + out
    assert "--anonymous" not in err  # a reader's hint, not publish's
    assert s3.keys(bucket) == []

    azurite.use(monkeypatch)
    cont = azurite.make_container()
    wrong = "bm90LXRoZS1henVyZS1rZXktNDI0Mg=="
    monkeypatch.setenv(
        "AZURE_STORAGE_CONNECTION_STRING", azurite.env["AZURE_STORAGE_CONNECTION_STRING"].replace(AZURITE_KEY, wrong)
    )
    code, out, err = run(capsys, src, azurite.url(cont, "cat"))
    assert code == 2 and err.count("\n") == 1 and "access denied" in err and wrong not in err + out
    assert azurite.keys(cont) == []


def test_missing_bucket(store, src, capsys):
    code, out, err = run(capsys, src, store.url("x").replace(store.bucket, "no-such-bucket-here"))
    assert code == 2 and err.count("\n") == 1 and "no such bucket" in err and "nothing was uploaded" in err


@pytest.mark.parametrize(
    "args, message",
    [
        (["{missing}", "s3://b/p"], "no such folder"),
        (["{empty}", "s3://b/p"], "not a catalog folder (no catalog.json in it)"),
        (["http://example.org/catalog.json", "s3://b/p"], "SRC must be a local catalog folder, not a URL"),
        (["{src}", "{tmp}/out"], "DEST_URL must be an object-store URL"),
        (["{src}", "https://example.org/bucket"], "DEST_URL must be an object-store URL"),
        (["{src}", "s3://bucket/cat/catalog.json"], "the prefix (folder) to publish into, not a file"),
        (["{src}", "s3://b/p", "--workers", "0"], "--workers must be at least 1"),
    ],
)
def test_refusals(src, tmp_path, capsys, args, message):
    (tmp_path / "empty").mkdir()
    subs = {"missing": tmp_path / "nope", "empty": tmp_path / "empty", "src": src, "tmp": tmp_path}
    code, _, err = run(capsys, *[a.format(**subs) for a in args])
    assert code == 2 and err.count("\n") == 1 and message in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("how", ["store error", "ctrl-c"])
def test_failure_midway_resumes(s3, src, capsys, monkeypatch, how):
    """An upload failing for good (or Ctrl-C) stops the run before the parents (the root
    catalog is not published); the manifest keeps what got up, so the next run uploads only
    what is still missing."""
    s3.use(monkeypatch)
    bucket = s3.make_bucket()
    files = local_rels(src)
    real_put = objects.put
    item = next(f for f in files if f.endswith(".json") and Path(f).name not in ("catalog.json", "collection.json"))

    def flaky_put(url, data, content_type=None):
        if url.endswith(item):
            if how == "ctrl-c":
                raise KeyboardInterrupt
            raise objects.ObjectStoreError(f"{url}: Generic S3 error: the network went away")
        return real_put(url, data, content_type=content_type)

    monkeypatch.setattr(publish_mod.objects, "put", flaky_put)
    code, _, err = run(capsys, src, s3.url(bucket, "cat"))
    if how == "ctrl-c":
        assert code == 130 and err == "sen12ts-stac: interrupted; run the same command again to resume\n"
    else:
        assert (
            code == 2
            and err.count("\n") == 1
            and "the root catalog not yet" in err
            and "run the same command again" in err
        )
    up = s3.keys(bucket, "cat/")
    assert "cat/catalog.json" not in up and f"cat/{item}" not in up and f"cat/{MANIFEST}" in up
    assert not any(k.endswith("collection.json") for k in up)  # parents wait for every item

    monkeypatch.setattr(publish_mod.objects, "put", real_put)
    code, out, _ = run(capsys, src, s3.url(bucket, "cat"))
    assert code == 0 and f"{len(up) - 1} already there" in out
    assert f"published {len(files) - (len(up) - 1)} files" in out
    assert s3.keys(bucket, "cat/") == sorted([f"cat/{f}" for f in files] + [f"cat/{MANIFEST}"])


def test_bucket_root_and_catalog_json_as_src(store, src, capsys):
    """DEST_URL may be the bucket itself; SRC may name the root catalog.json."""
    url = store.url().rstrip("/")
    code, out, err = run(capsys, src / "catalog.json", url)
    assert code == 0, err
    assert store.keys() == sorted(local_rels(src) + [MANIFEST])
    assert "published 0 files" in run(capsys, src, url + "/")[1]
