"""Benchmark the triplet stream: triplets per second from a local catalog and over loopback http,
against a plain ``torch.utils.data.DataLoader`` and against the decode limit, in one run.

    python benchmarks/bench_stream.py                   # full run (makes a 20-tile catalog once)
    python benchmarks/bench_stream.py --quick           # fewer triplets, one repeat
    python benchmarks/bench_stream.py --catalog DIR     # an existing catalog

Contestants (same triplets, same bands, same worker count, same conversions):

* ``triplet_loader``: this package (``torchdata.nodes``, reader threads).
* ``plain DataLoader``: ``torch.utils.data.DataLoader(num_workers=W, batch_size=B, shuffle=True)``
  over a ``Dataset`` whose ``__getitem__`` opens each file with ``rasterio.open`` and reads the
  bands (local path, or the URL as it is for http), then applies the same conversions (NaN -> 0,
  S2 x 1e-4, label 255 -> -1) and the default collate.
* ``decode limit``: every file's bytes are read into memory (GDAL ``/vsimem/``) once, before the
  clock starts; then W threads open and decode the same bands of every triplet straight into
  numpy. That is the same codec (GDAL's libtiff + libzstd with the files' predictors) with no
  file or network I/O and no pipeline: what the CPU can decode, per triplet, on this machine.
  A pure-codec bound (``imagecodecs``) is not used: it is not a dependency, and GDAL's per-open
  cost (~0.5 ms per file at 256 x 256) is part of what any COG reader pays.

The http server runs in a separate process (``sen12ts_stac.distribute.httpserve``), so it does not share the
GIL with the loaders. A second server delays every answer by ``--latency-ms`` (default 20 ms, the
first-byte latency of an object store) for the two "http + latency" rows. Contestants run in
rounds (each once per round, ``--repeats`` rounds), so load from elsewhere on the machine spreads
over all of them; the best rate of each is kept, and CPU milliseconds per triplet (the process
plus its worker processes) are reported beside it: unlike wall-clock rates, they hardly change
when other programs compete for the CPUs. Results: a table on stdout and
``benchmarks/results/stream.json``.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import platform
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.io import MemoryFile

from sen12ts_stac.fsio import write_json
from sen12ts_stac.stream import load_index, triplet_loader
from sen12ts_stac.stream.index import TripletRecord

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "stream.json"
DEFAULT_CATALOG = Path(tempfile.gettempdir()) / "sen12ts-bench-stream"


# --------------------------------------------------------------------------------------------
# The plain baseline
# --------------------------------------------------------------------------------------------


class PlainDataset(torch.utils.data.Dataset):
    """What one writes without this package: open each file with rasterio in ``__getitem__``."""

    def __init__(self, records: list[TripletRecord], s1: list[int], s2: list[int]):
        self.records, self.s1, self.s2 = records, s1, s2
        self.s2_scale = np.array([records[0].scale["s2"][i - 1] for i in s2], np.float32)[:, None, None]

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> dict:
        r = self.records[i]
        with rasterio.open(r.hrefs["s1"]) as ds:
            s1 = ds.read(self.s1)
        with rasterio.open(r.hrefs["s2"]) as ds:
            s2 = ds.read(self.s2)
        with rasterio.open(r.hrefs["labels"]) as ds:
            lab = ds.read(1)
        s1_valid = ~np.isnan(s1).any(0)
        s1 = np.nan_to_num(s1, copy=False)
        s2_invalid = s2 == -32768
        s2f = s2.astype(np.float32) * self.s2_scale
        s2f[s2_invalid] = 0
        label = lab.astype(np.int64)
        label[lab == 255] = -1
        return {
            "s1": torch.from_numpy(s1),
            "s1_valid": torch.from_numpy(s1_valid),
            "s2": torch.from_numpy(s2f),
            "s2_valid": torch.from_numpy(~s2_invalid.any(0)),
            "label": torch.from_numpy(label),
            "id": r.id,
        }


def run_plain(records, s1, s2, workers: int, batch: int) -> int:
    dl = torch.utils.data.DataLoader(PlainDataset(records, s1, s2), batch_size=batch, shuffle=True, num_workers=workers)
    return sum(len(b["id"]) for b in dl)


def run_stream(source, workers: int, batch: int, assets: dict, **kw) -> int:
    loader = triplet_loader(source, batch_size=batch, shuffle=True, num_workers=workers, assets=assets, **kw)
    n = sum(len(b["id"]) for b in loader)
    if loader.stats.skipped:
        raise SystemExit(f"bench: {loader.stats.skipped} triplets failed: {loader.stats.failures[:3]}")
    return n


# --------------------------------------------------------------------------------------------
# The decode limit
# --------------------------------------------------------------------------------------------


class Preloaded:
    """Every asset file of ``records`` in GDAL's /vsimem/ (read once, before timing)."""

    def __init__(self, records: list[TripletRecord]):
        self.mem: dict[str, MemoryFile] = {}
        for r in records:
            for key in ("s1", "s2", "labels"):
                href = r.hrefs[key]
                if href not in self.mem:
                    self.mem[href] = MemoryFile(Path(href).read_bytes())
        self.nbytes = sum(os.path.getsize(h) for h in self.mem)

    def decode(self, r: TripletRecord, s1: list[int], s2: list[int]) -> int:
        total = 0
        for key, bands in (("s1", s1), ("s2", s2), ("labels", [1])):
            with self.mem[r.hrefs[key]].open() as ds:
                total += ds.read(bands).nbytes
        return total

    def close(self) -> None:
        for m in self.mem.values():
            m.close()


def run_decode(pre: Preloaded, records, s1, s2, workers: int) -> int:
    with rasterio.Env(GDAL_NUM_THREADS="1"), cf.ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda r: pre.decode(r, s1, s2), records))
    return len(records)


# --------------------------------------------------------------------------------------------
# Harness
# --------------------------------------------------------------------------------------------


def _cpu() -> float:
    """CPU seconds of this process and its reaped children (DataLoader workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


CONTESTANTS = (
    "decode_limit",
    "stream_local",
    "plain_local",
    "stream_http",
    "plain_http",
    "stream_http_latency",
    "plain_http_latency",
)


def one_pass(args) -> dict:
    """One timed pass of one contestant, in this (fresh) process: the records are indexed and,
    for the decode limit, the bytes preloaded before the clock starts."""
    name = args.one
    records = load_index(args.catalog)[: args.triplets]
    s1, s2, assets = _bands(records[0], args.bands)
    if name.endswith(("_http", "_http_latency")):
        wanted = {r.id for r in records}
        records = [r for r in load_index(args.base + "/catalog.json", cache=False) if r.id in wanted]
    w, b = args.workers, args.batch_size
    torch.set_num_threads(1)
    if name == "decode_limit":
        pre = Preloaded(records)
        run_decode(pre, records[:8], s1, s2, w)  # warm-up
        fn = lambda: run_decode(pre, records, s1, s2, w)  # noqa: E731
    elif name.startswith("stream"):
        fn = lambda: run_stream(records, w, b, assets)  # noqa: E731
    else:
        fn = lambda: run_plain(records, s1, s2, w, b)  # noqa: E731
    c0, t0 = _cpu(), time.perf_counter()
    n = fn()
    dt, dc = time.perf_counter() - t0, _cpu() - c0
    return {"triplets": n, "seconds": dt, "cpu_ms_per_triplet": 1000 * dc / n, "loadavg": os.getloadavg()[0]}


def run_round_robin(names: list[str], repeats: int, common: list[str], bases: dict[str, str]) -> dict[str, dict]:
    """``repeats`` rounds, each running every contestant once in turn, each pass in a fresh
    process (no threads, caches or forked state carried from one contestant to the next; a
    DataLoader forking a process that has run other thread pools can deadlock). Per contestant:
    the best wall-clock rate, and the CPU milliseconds per triplet (the pass's process and its
    worker processes) of its cheapest pass, which other load on the machine hardly changes."""
    runs: dict[str, list] = {k: [] for k in names}
    for round_ in range(repeats):
        for name in names:
            cmd = [sys.executable, "-W", "ignore", __file__, "--one", name, *common]
            if name in bases:
                cmd += ["--base", bases[name]]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
            if done.returncode != 0:
                raise SystemExit(f"bench: {name} failed: {done.stderr.strip()[-2000:]}")
            r = json.loads(done.stdout.strip().splitlines()[-1])
            runs[name].append(r)
            print(
                f"  round {round_ + 1}/{repeats} {name:<22} {r['triplets'] / r['seconds']:7.1f} triplets/s  "
                f"{r['cpu_ms_per_triplet']:6.1f} CPU ms/triplet",
                flush=True,
            )
    return {
        name: {
            "triplets": r[0]["triplets"],
            "seconds": [x["seconds"] for x in r],
            "runs_per_s": [x["triplets"] / x["seconds"] for x in r],
            "triplets_per_s": max(x["triplets"] / x["seconds"] for x in r),
            "cpu_ms_per_triplet": min(x["cpu_ms_per_triplet"] for x in r),
            "loadavg": [x["loadavg"] for x in r],
        }
        for name, r in runs.items()
    }


def _bands(r0: TripletRecord, which: str) -> tuple[list[int], list[int], dict]:
    if which == "all":
        s1_names, s2_names = list(r0.bands["s1"]), list(r0.bands["s2"])
    else:
        s1_names = [b for b in r0.bands["s1"] if b != "valid"]
        s2_names = ["B02", "B03", "B04", "B08"]
    s1 = [r0.bands["s1"].index(b) + 1 for b in s1_names]
    s2 = [r0.bands["s2"].index(b) + 1 for b in s2_names]
    return s1, s2, {"s1": s1_names, "s2": s2_names, "label": True}


def serve_in_subprocess(folder: Path, latency_ms: float = 0.0) -> tuple[subprocess.Popen, str]:
    """The catalog folder over http on 127.0.0.1 from another process (``RangeHandler``), each
    answer delayed by ``latency_ms`` (the first-byte latency of an object store) if given.
    The listen backlog is raised from socketserver's 5 to 1024: with 5, more than five
    connections opened at once overflow it and the extra ones wait a 1 s TCP retransmit."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = f"""
import http.server, sys, time
from sen12ts_stac.distribute.httpserve import RangeHandler, start_server
http.server.ThreadingHTTPServer.request_queue_size = 1024  # a listen backlog like a real server's (default 5)
class Slow(RangeHandler):
    def send_response(self, *a, **k):
        time.sleep({latency_ms / 1000.0})
        super().send_response(*a, **k)
start_server(sys.argv[1], port={port}, handler=Slow if {latency_ms} > 0 else RangeHandler)
print("ready", flush=True)
time.sleep(1e9)
"""
    proc = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True)
    if proc.stdout.readline().strip() != "ready":
        raise SystemExit("bench: the http server did not start")
    return proc, f"http://127.0.0.1:{port}"


def machine() -> dict:
    """What the figures were measured on (stored beside them in the results)."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "rasterio": rasterio.__version__,
        "gdal": rasterio.__gdal_version__,
    }


def ensure_catalog(path: Path, tiles: int) -> Path:
    if (path / "catalog.json").exists():
        return path
    print(f"making the benchmark catalog ({tiles} tiles, ~1.5 triplets/s per core) in {path} ...", flush=True)
    cli = [sys.executable, "-c", "from sen12ts_stac.cli import main; main()"]
    subprocess.run(
        [
            *cli,
            "create",
            "--aoi",
            "california",
            "--source",
            "synthetic",
            "--max-tiles",
            str(tiles),
            "--out",
            str(path),
            "--quiet",
            "--workers",
            "2",
        ],
        check=True,
    )
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--catalog", type=Path, default=DEFAULT_CATALOG, help="catalog root (made with `create` if missing)"
    )
    ap.add_argument("--tiles", type=int, default=20, help="tiles when the catalog has to be made")
    ap.add_argument("--workers", type=int, default=4, help="worker threads / processes for every contestant")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--triplets", type=int, default=None, help="triplets per pass (default: all; --quick: 48)")
    ap.add_argument(
        "--repeats", type=int, default=None, help="rounds over all contestants, best kept (default 3; --quick: 1)"
    )
    ap.add_argument(
        "--bands",
        choices=("all", "sar2vi"),
        default="all",
        help="all: every band of S1, S2, label; sar2vi: 16 SAR bands + LIA/slope, 4 S2 bands, label",
    )
    ap.add_argument(
        "--latency-ms",
        type=float,
        default=20.0,
        help="also serve with this delay per answer (object-store latency); 0 skips those rows",
    )
    ap.add_argument("--quick", action="store_true", help="a fast smoke run")
    ap.add_argument("--one", choices=CONTESTANTS, help=argparse.SUPPRESS)  # internal: one pass, JSON on stdout
    ap.add_argument("--base", help=argparse.SUPPRESS)  # internal: the http server for --one
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    n_max = args.triplets or (48 if args.quick else None)
    repeats = args.repeats or (1 if args.quick else 3)

    if args.one:
        print(json.dumps(one_pass(args)))
        return 0
    catalog = ensure_catalog(args.catalog, args.tiles)
    records = load_index(catalog)[:n_max]
    s1, s2, assets = _bands(records[0], args.bands)
    w, b = args.workers, args.batch_size
    load0 = os.getloadavg()[0]
    mb_per_triplet = (
        sum(os.path.getsize(h) for h in {r.hrefs[k] for r in records for k in ("s1", "s2", "labels")})
        / len(records)
        / 1e6
    )
    print(
        f"{len(records)} triplets ({mb_per_triplet:.2f} MB compressed each, {len(s1)} S1 + {len(s2)} S2 bands + "
        "label), "
        f"{w} workers, batch {b}, {repeats} round(s), {os.cpu_count()} CPUs",
        flush=True,
    )
    servers = []
    try:
        for latency in (0.0, args.latency_ms):
            servers.append(serve_in_subprocess(catalog, latency))
        t0 = time.perf_counter()
        remote = load_index(servers[0][1] + "/catalog.json", cache=False, concurrency=16)
        index_http_s = time.perf_counter() - t0
        names = list(CONTESTANTS if args.latency_ms > 0 else CONTESTANTS[:5])
        bases = {n: servers[1 if n.endswith("_latency") else 0][1] for n in names if "_http" in n}
        common = [
            "--catalog",
            str(catalog),
            "--triplets",
            str(len(records)),
            "--workers",
            str(w),
            "--batch-size",
            str(b),
            "--bands",
            args.bands,
        ]
        results = run_round_robin(names, repeats, common, bases)
    finally:
        for proc, _ in servers:
            proc.terminate()
            proc.wait(10)

    rate = {k: v["triplets_per_s"] for k, v in results.items()}
    cpu = {k: v["cpu_ms_per_triplet"] for k, v in results.items()}
    ratios = {
        "stream_vs_plain_local": rate["stream_local"] / rate["plain_local"],
        "stream_vs_plain_http": rate["stream_http"] / rate["plain_http"],
        "stream_local_vs_decode_limit": rate["stream_local"] / rate["decode_limit"],
        "stream_http_vs_decode_limit": rate["stream_http"] / rate["decode_limit"],
        "cpu_plain_over_stream_local": cpu["plain_local"] / cpu["stream_local"],
        "cpu_decode_over_stream_local": cpu["decode_limit"] / cpu["stream_local"],
    }
    if args.latency_ms > 0:
        ratios["stream_vs_plain_http_latency"] = rate["stream_http_latency"] / rate["plain_http_latency"]
    goals = {
        "stream >= 2x plain DataLoader (local)": ratios["stream_vs_plain_local"] >= 2.0,
        "stream >= 2x plain DataLoader (http)": ratios["stream_vs_plain_http"] >= 2.0,
        "stream within 75% of the decode limit (local)": ratios["stream_local_vs_decode_limit"] >= 0.75,
    }
    if args.latency_ms > 0:
        goals[f"stream >= 2x plain DataLoader (http, {args.latency_ms:g} ms latency)"] = (
            ratios["stream_vs_plain_http_latency"] >= 2.0
        )

    rows = [
        ("decode limit (vsimem, threads)", "decode_limit"),
        ("triplet_loader, local", "stream_local"),
        ("plain DataLoader, local", "plain_local"),
        ("triplet_loader, http 127.0.0.1", "stream_http"),
        ("plain DataLoader, http 127.0.0.1", "plain_http"),
    ]
    if args.latency_ms > 0:
        rows += [
            (f"triplet_loader, http +{args.latency_ms:g} ms", "stream_http_latency"),
            (f"plain DataLoader, http +{args.latency_ms:g} ms", "plain_http_latency"),
        ]
    print(f"\n{'contestant':<34} {'triplets/s':>10} {'MB/s (compressed)':>18} {'CPU ms/triplet':>15}")
    for label, key in rows:
        print(f"{label:<34} {rate[key]:>10.1f} {rate[key] * mb_per_triplet:>18.1f} {cpu[key]:>15.1f}")
    print()
    for k, v in ratios.items():
        print(f"{k:<34} {v:>10.2f}")
    for k, ok in goals.items():
        print(f"goal: {k:<58} {'met' if ok else 'NOT met'}")
    print(f"index over http ({len(remote)} triplets in the catalog, cold, 16 threads): {index_http_s:.2f} s")
    print(
        f"load average (1 min) at the start: {load0:.2f}, at the end: {os.getloadavg()[0]:.2f} "
        f"on {os.cpu_count()} CPUs (other work on the machine lowers every wall-clock rate)"
    )

    out = {
        "machine": machine(),
        "params": {
            "catalog": str(catalog),
            "triplets": len(records),
            "workers": w,
            "batch_size": b,
            "repeats": repeats,
            "latency_ms": args.latency_ms,
            "bands": {"s1": assets["s1"], "s2": assets["s2"], "labels": ["class"]},
            "compressed_mb_per_triplet": mb_per_triplet,
            "quick": args.quick,
        },
        "results": results,
        "ratios": ratios,
        "goals": goals,
        "index_http_cold_seconds": index_http_s,
        "loadavg_start": load0,
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
    }
    write_json(args.out, out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
