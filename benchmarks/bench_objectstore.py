"""Benchmark object stores: triplets per second streamed from an S3 API (moto on 127.0.0.1),
direct and with 20 ms added per request, against a plain ``torch.utils.data.DataLoader`` reading
the same ``s3://`` assets; and ``publish`` throughput against a plain loop of obstore puts; in
one run.

    python benchmarks/bench_objectstore.py              # full run (makes a 3-tile catalog once)
    python benchmarks/bench_objectstore.py --quick      # one round
    python benchmarks/bench_objectstore.py --catalog DIR

Contestants (same triplets, all bands, same worker count, same conversions):

* ``fetch limit``: every asset object of the triplets fetched whole with ``workers`` threads
  (``storage.objects.get``, obstore), not decoded: what this S3 server delivers to one client,
  the ceiling of both readers below (moto is a Python server and costs CPU on the same machine).
* ``triplet_loader``: this package, ``num_workers=4``, the catalog indexed from
  ``s3://bucket/sen12ts/catalog.json`` (``load_index``, before the clock starts).
* ``plain DataLoader``: ``torch.utils.data.DataLoader(num_workers=4, batch_size=8,
  shuffle=True)`` over the ``Dataset`` of ``bench_stream.py`` (one ``rasterio.open`` per asset,
  every band read, the same NaN / scale / label conversions, the default collate), opening the
  same objects as ``/vsis3/bucket/key`` inside ``rasterio.Env(**gdal_options())``: the GDAL
  settings of :func:`sen12ts_stac.storage.raster.gdal_options` (endpoint, path-style, plain
  http, COG-friendly reads), the same the loader starts from.
* ``publish``: :func:`sen12ts_stac.distribute.publish.publish` (default 8 workers, no progress bar) of the
  catalog folder into a fresh bucket, listing, hashing and manifest included.
* ``put loop``: ``for f in files: obstore.put(store, key, f.read_bytes())``, sequential, over the
  same files (those ``publish`` uploads) into a fresh bucket, with the store ``publish`` uses
  (:func:`sen12ts_stac.storage.objects.store_for`): the library's own puts, nothing else.

The S3 server (moto's ``ThreadedMotoServer``, tests/objectstores.py) and the latency proxy
(``fault_proxy(..., fail=(), delay=0.020)``: 20 ms before every answer, the first-byte latency of
an object store) each run in a process of their own, so they do not share the GIL with the
contestants; they do share the machine's CPUs, as a local MinIO would. Every timed pass runs in a
fresh process; contestants run in rounds (``--repeats``), the best rate of each is kept, and the
ratios compare rates from the same run. Results: a table on stdout and
``benchmarks/results/objectstore.json``.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]  # bench_stream's helpers, the test servers

import obstore  # noqa: E402
import rasterio  # noqa: E402
import torch  # noqa: E402
from bench_stream import PlainDataset, _bands, _cpu, ensure_catalog, machine  # noqa: E402

from sen12ts_stac.distribute.publish import local_files, publish  # noqa: E402
from sen12ts_stac.fsio import write_json  # noqa: E402
from sen12ts_stac.storage import objects  # noqa: E402
from sen12ts_stac.storage.raster import gdal_options  # noqa: E402
from sen12ts_stac.stream import load_index, triplet_loader  # noqa: E402

RESULTS = HERE / "results" / "objectstore.json"
DEFAULT_CATALOG = Path(tempfile.gettempdir()) / "sen12ts-bench-objectstore"
PREFIX = "sen12ts"
STREAMERS = ("fetch_limit", "stream_s3", "plain_s3", "stream_s3_latency", "plain_s3_latency")
UPLOADERS = ("publish", "put_loop")
CONTESTANTS = STREAMERS + UPLOADERS


# --------------------------------------------------------------------------------------------
# The plain baseline: bench_stream's Dataset, opening /vsis3/ paths in the package's GDAL env
# --------------------------------------------------------------------------------------------


class PlainS3Dataset(PlainDataset):
    """``rasterio.open("/vsis3/bucket/key")`` per asset inside ``rasterio.Env(**gdal_options())``."""

    def __init__(self, records, s1, s2):
        records = [dataclasses.replace(r, hrefs={k: objects.gdal_path(v) for k, v in r.hrefs.items()}) for r in records]
        super().__init__(records, s1, s2)
        self.env = gdal_options()

    def __getitem__(self, i: int) -> dict:
        with rasterio.Env(**self.env):
            return super().__getitem__(i)


def run_plain(records, s1, s2, workers: int, batch: int) -> int:
    dl = torch.utils.data.DataLoader(
        PlainS3Dataset(records, s1, s2), batch_size=batch, shuffle=True, num_workers=workers
    )
    return sum(len(b["id"]) for b in dl)


def run_fetch(records, workers: int) -> int:
    """Every asset object of ``records`` fetched whole (obstore GETs through the storage layer,
    ``workers`` threads), not decoded: what the S3 server can deliver to this client."""
    hrefs = sorted({r.hrefs[k] for r in records for k in ("s1", "s2", "labels")})
    with cf.ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda h: len(objects.get(h, 1 << 30)), hrefs))
    return len(records)


def run_stream(records, workers: int, batch: int, assets: dict) -> int:
    loader = triplet_loader(records, batch_size=batch, shuffle=True, num_workers=workers, assets=assets)
    n = sum(len(b["id"]) for b in loader)
    if loader.stats.skipped:
        raise SystemExit(f"bench: {loader.stats.skipped} triplets failed: {loader.stats.failures[:3]}")
    return n


# --------------------------------------------------------------------------------------------
# Uploads
# --------------------------------------------------------------------------------------------


def _client():
    import boto3

    return boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1")


def fresh_bucket(tag: str) -> str:
    name = f"bench-{tag.replace('_', '-')}-{os.getpid()}-{time.time_ns() % 10**9}"
    _client().create_bucket(Bucket=name)
    return name


def drop_bucket(name: str) -> None:
    """Delete the bucket and its objects (moto keeps them in memory)."""
    c = _client()
    for page in c.get_paginator("list_objects_v2").paginate(Bucket=name):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            c.delete_objects(Bucket=name, Delete={"Objects": keys})
    c.delete_bucket(Bucket=name)


def run_publish(catalog: Path, bucket: str) -> int:
    report = publish(catalog, f"s3://{bucket}/{PREFIX}", progress=False)
    return report.bytes


def run_put_loop(catalog: Path, bucket: str) -> int:
    files, _ = local_files(catalog.resolve())
    store = objects.store_for(objects.ObjectURL.parse(f"s3://{bucket}/"))
    total = 0
    for f in files:
        data = f.path.read_bytes()
        obstore.put(store, f"{PREFIX}/{f.rel}", data)
        total += len(data)
    return total


# --------------------------------------------------------------------------------------------
# Harness
# --------------------------------------------------------------------------------------------


def one_pass(args) -> dict:
    """One timed pass of one contestant in this (fresh) process; AWS_ENDPOINT_URL points at moto
    or at the latency proxy. Indexing and bucket creation happen before the clock starts."""
    name = args.one
    torch.set_num_threads(1)
    if name in UPLOADERS:
        bucket = fresh_bucket(name)
        fn = run_publish if name == "publish" else run_put_loop
        c0, t0 = _cpu(), time.perf_counter()
        nbytes = fn(args.catalog, bucket)
        dt, dc = time.perf_counter() - t0, _cpu() - c0
        drop_bucket(bucket)
        return {"bytes": nbytes, "seconds": dt, "cpu_seconds": dc, "loadavg": os.getloadavg()[0]}
    records = load_index(args.url, cache=False)[: args.triplets]
    s1, s2, assets = _bands(records[0], "all")
    w, b = args.workers, args.batch_size
    if name == "fetch_limit":
        fn = lambda: run_fetch(records, w)  # noqa: E731
    elif name.startswith("stream"):
        fn = lambda: run_stream(records, w, b, assets)  # noqa: E731
    else:
        fn = lambda: run_plain(records, s1, s2, w, b)  # noqa: E731
    c0, t0 = _cpu(), time.perf_counter()
    n = fn()
    dt, dc = time.perf_counter() - t0, _cpu() - c0
    return {"triplets": n, "seconds": dt, "cpu_ms_per_triplet": 1000 * dc / n, "loadavg": os.getloadavg()[0]}


def run_round_robin(names: list[str], repeats: int, common: list[str], endpoints: dict[str, str], env: dict) -> dict:
    runs: dict[str, list] = {k: [] for k in names}
    for round_ in range(repeats):
        for name in names:
            cmd = [sys.executable, "-W", "ignore", __file__, "--one", name, *common]
            for attempt in range(3):  # a pass that fails is run again once or twice (e.g. a checkout mid-edit)
                done = subprocess.run(
                    cmd,
                    capture_output=True,
                    text=True,
                    timeout=1800,
                    env={**os.environ, **env, "AWS_ENDPOINT_URL": endpoints[name]},
                )
                if done.returncode == 0:
                    break
                print(f"  {name} failed (attempt {attempt + 1}): {done.stderr.strip().splitlines()[-1:]}", flush=True)
                time.sleep(20)
            else:
                raise SystemExit(f"bench: {name} failed: {done.stderr.strip()[-2000:]}")
            r = json.loads(done.stdout.strip().splitlines()[-1])
            runs[name].append(r)
            if name in UPLOADERS:
                shown = f"{r['bytes'] / 1e6 / r['seconds']:7.1f} MB/s        {r['cpu_seconds']:6.2f} CPU s"
            else:
                shown = f"{r['triplets'] / r['seconds']:7.1f} triplets/s  {r['cpu_ms_per_triplet']:6.1f} CPU ms/triplet"
            print(f"  round {round_ + 1}/{repeats} {name:<18} {shown}", flush=True)
    out = {}
    for name, r in runs.items():
        if name in UPLOADERS:
            rates = [x["bytes"] / 1e6 / x["seconds"] for x in r]
            out[name] = {
                "bytes": r[0]["bytes"],
                "seconds": [x["seconds"] for x in r],
                "runs_mb_per_s": rates,
                "mb_per_s": max(rates),
                "cpu_seconds": min(x["cpu_seconds"] for x in r),
                "loadavg": [x["loadavg"] for x in r],
            }
        else:
            rates = [x["triplets"] / x["seconds"] for x in r]
            out[name] = {
                "triplets": r[0]["triplets"],
                "seconds": [x["seconds"] for x in r],
                "runs_per_s": rates,
                "triplets_per_s": max(rates),
                "cpu_ms_per_triplet": min(x["cpu_ms_per_triplet"] for x in r),
                "loadavg": [x["loadavg"] for x in r],
            }
    return out


# --------------------------------------------------------------------------------------------
# Servers, each in a process of its own
# --------------------------------------------------------------------------------------------


def serve(kind: str, upstream: str | None, delay: float) -> None:
    """Run moto (``kind == "s3"``) or the latency proxy in front of ``upstream``; print one JSON
    line with the endpoint (and moto's credentials), then serve until stdin closes."""
    from objectstores import fault_proxy, s3_server

    if kind == "s3":
        with s3_server() as s3:
            print(json.dumps({"endpoint": s3.endpoint, "env": s3.env}), flush=True)
            sys.stdin.read()
    else:
        with fault_proxy(upstream, fail=(), delay=delay) as proxy:
            print(json.dumps({"endpoint": proxy.endpoint}), flush=True)
            sys.stdin.read()


def start_server(*args: str) -> tuple[subprocess.Popen, dict]:
    proc = subprocess.Popen(
        [sys.executable, "-W", "ignore", __file__, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    line = proc.stdout.readline()
    if not line.strip():
        raise SystemExit(f"bench: the server {args} did not start")
    return proc, json.loads(line)


def upload(catalog: Path, prefix_url: str) -> None:
    """The catalog's files under ``prefix_url`` with plain puts (the stream rows do not depend on
    publish)."""
    files, _ = local_files(catalog.resolve())
    for f in files:
        objects.put(prefix_url.rstrip("/") + "/" + f.rel, f.path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--catalog", type=Path, default=DEFAULT_CATALOG, help="catalog root (made with `create` if missing)"
    )
    ap.add_argument("--tiles", type=int, default=3, help="tiles when the catalog has to be made")
    ap.add_argument("--workers", type=int, default=4, help="worker threads / processes for the stream contestants")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--triplets", type=int, default=None, help="triplets per stream pass (default: all)")
    ap.add_argument(
        "--repeats", type=int, default=None, help="rounds over all contestants, best kept (default 3; --quick: 1)"
    )
    ap.add_argument("--latency-ms", type=float, default=20.0, help="added before every answer by the proxy")
    ap.add_argument("--quick", action="store_true", help="one round")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--one", choices=CONTESTANTS, help=argparse.SUPPRESS)  # internal: one pass, JSON on stdout
    ap.add_argument("--url", help=argparse.SUPPRESS)  # internal: the catalog's s3:// URL for --one
    ap.add_argument("--serve", choices=("s3", "proxy"), help=argparse.SUPPRESS)  # internal: a server process
    ap.add_argument("--upstream", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)

    if args.serve:
        serve(args.serve, args.upstream, args.latency_ms / 1000.0)
        return 0
    if args.one:
        print(json.dumps(one_pass(args)))
        return 0

    catalog = ensure_catalog(args.catalog, args.tiles)
    local = load_index(catalog)[: args.triplets]
    files, _ = local_files(catalog.resolve())
    total_mb = sum(f.size for f in files) / 1e6
    mb_per_triplet = (
        sum(os.path.getsize(h) for h in {r.hrefs[k] for r in local for k in ("s1", "s2", "labels")}) / len(local) / 1e6
    )
    w, b = args.workers, args.batch_size
    load0 = os.getloadavg()[0]
    print(
        f"{len(local)} triplets ({mb_per_triplet:.2f} MB compressed each, all bands), {w} workers, batch {b}; "
        f"publish: {len(files)} files, {total_mb:.1f} MB; {repeats} round(s), {os.cpu_count()} CPUs",
        flush=True,
    )
    servers = []
    try:
        moto, info = start_server("--serve", "s3")
        servers.append(moto)
        proxy, pinfo = start_server(
            "--serve", "proxy", "--upstream", info["endpoint"], "--latency-ms", str(args.latency_ms)
        )
        servers.append(proxy)
        env = info["env"]
        os.environ.update(env)
        bucket = fresh_bucket("catalog")
        t0 = time.perf_counter()
        upload(catalog, f"s3://{bucket}/{PREFIX}")
        upload_s = time.perf_counter() - t0
        url = f"s3://{bucket}/{PREFIX}/catalog.json"
        endpoints = {n: pinfo["endpoint"] if n.endswith("_latency") else info["endpoint"] for n in CONTESTANTS}
        common = [
            "--catalog",
            str(catalog),
            "--url",
            url,
            "--triplets",
            str(len(local)),
            "--workers",
            str(w),
            "--batch-size",
            str(b),
        ]
        results = run_round_robin(list(CONTESTANTS), repeats, common, endpoints, env)
    finally:
        for proc in servers:
            proc.stdin.close()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    rate = {k: v["triplets_per_s"] for k, v in results.items() if k in STREAMERS}
    cpu = {k: v["cpu_ms_per_triplet"] for k, v in results.items() if k in STREAMERS}
    mbs = {k: v["mb_per_s"] for k, v in results.items() if k in UPLOADERS}
    ratios = {
        "stream_vs_plain_s3": rate["stream_s3"] / rate["plain_s3"],
        "stream_s3_vs_fetch_limit": rate["stream_s3"] / rate["fetch_limit"],
        "plain_s3_vs_fetch_limit": rate["plain_s3"] / rate["fetch_limit"],
        "stream_vs_plain_s3_latency": rate["stream_s3_latency"] / rate["plain_s3_latency"],
        "stream_latency_vs_direct": rate["stream_s3_latency"] / rate["stream_s3"],
        "plain_latency_vs_direct": rate["plain_s3_latency"] / rate["plain_s3"],
        "cpu_plain_over_stream_s3": cpu["plain_s3"] / cpu["stream_s3"],
        "publish_vs_put_loop": mbs["publish"] / mbs["put_loop"],
    }
    lat = f"+{args.latency_ms:g} ms"
    print(f"\n{'contestant':<40} {'triplets/s':>10} {'MB/s':>8} {'CPU ms/triplet':>15}")
    for label, key in (
        ("fetch limit (whole objects, no decoding)", "fetch_limit"),
        ("triplet_loader, moto S3", "stream_s3"),
        ("plain DataLoader, moto S3", "plain_s3"),
        (f"triplet_loader, moto S3 {lat}", "stream_s3_latency"),
        (f"plain DataLoader, moto S3 {lat}", "plain_s3_latency"),
    ):
        print(f"{label:<40} {rate[key]:>10.1f} {rate[key] * mb_per_triplet:>8.1f} {cpu[key]:>15.1f}")
    for label, key in (("publish (8 workers)", "publish"), ("obstore.put loop (sequential)", "put_loop")):
        print(f"{label:<40} {'':>10} {mbs[key]:>8.1f} {'':>15}")
    print()
    for k, v in ratios.items():
        print(f"{k:<34} {v:>8.2f}")
    print(f"catalog upload before the passes (plain puts, untimed in the table): {upload_s:.1f} s")
    print(
        f"load average (1 min) at the start: {load0:.2f}, at the end: {os.getloadavg()[0]:.2f} "
        f"on {os.cpu_count()} CPUs (other work on the machine lowers every wall-clock rate)"
    )

    out = {
        "machine": {**machine(), "obstore": obstore.__version__},
        "params": {
            "catalog": str(catalog),
            "triplets": len(local),
            "workers": w,
            "batch_size": b,
            "repeats": repeats,
            "latency_ms": args.latency_ms,
            "bands": "all",
            "compressed_mb_per_triplet": mb_per_triplet,
            "publish_files": len(files),
            "publish_mb": total_mb,
            "publish_workers": 8,
            "server": "moto ThreadedMotoServer on 127.0.0.1 (own process); latency: fault_proxy (own process)",
            "quick": args.quick,
        },
        "results": results,
        "ratios": ratios,
        "loadavg_start": load0,
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
    }
    write_json(args.out, out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
