"""Benchmark ``create``: triplets per second, bytes per triplet, and catalog-writing cost.

    python benchmarks/bench_create.py            # full run (a few minutes on 2 cores)
    python benchmarks/bench_create.py --quick    # smaller sizes

Everything is measured in one run on this machine, with baselines measured alongside:
* create throughput (workers 1 and 2) and bytes per triplet, against the original's uncompressed
  GeoTIFFs (6.68 MB per triplet: S1 19 x float32 + S2 13 x int16, 256 x 256) and against writing
  the same arrays as plain uncompressed GeoTIFF here;
* catalog writing (items + tree, metadata only) at 1k and 10k triplets, with the growth ratio,
  against pystac's usual path (Items in one Collection, normalize_hrefs, save) at the same sizes.
Results go to benchmarks/results/create.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pystac
import rasterio

from sen12ts_stac.collect.run import CreateConfig, create
from sen12ts_stac.collect.simulate import simulate_catalog

ORIGINAL_BYTES = 19 * 4 * 65536 + 13 * 2 * 65536  # 6,684,672 B per triplet, uncompressed


def bench_create(tiles: int, workers: int, tmp: Path) -> dict:
    out = tmp / f"create_w{workers}"
    t0 = time.perf_counter()
    s = create(CreateConfig(aoi="california", out=out, max_tiles=tiles, workers=workers), progress=False)
    dt = time.perf_counter() - t0
    sizes = {"s1": [], "s2": [], "labels": [], "thumbnail": [], "json": []}
    for p in (out / "california").rglob("*"):
        if p.suffix == ".tif":
            sizes[p.stem].append(p.stat().st_size)
        elif p.suffix == ".png":
            sizes["thumbnail"].append(p.stat().st_size)
        elif p.suffix == ".json" and ".sen12ts" not in p.parts:
            sizes["json"].append(p.stat().st_size)
    n = s.triplets
    return {
        "tiles": tiles,
        "workers": workers,
        "triplets": n,
        "seconds": dt,
        "triplets_per_s": n / dt,
        "bytes_per_triplet": {k: sum(v) / n for k, v in sizes.items()},
        "cog_bytes_per_triplet": (sum(sizes["s1"]) + sum(sizes["s2"])) / n + sum(sizes["labels"]) / n,
        "out": out,
    }


def bench_plain_gtiff(out: Path, n: int = 20) -> dict:
    """Write the same S1/S2 arrays as the original did (plain, uncompressed, striped GTiff)."""
    s1s = sorted((out / "california" / "s1").rglob("s1.tif"))[:n]
    t_plain = t_read = 0.0
    nbytes = 0
    with tempfile.TemporaryDirectory() as d:
        for i, p in enumerate(s1s):
            s2p = Path(str(p).replace("/s1/", "/s2/").replace("s1_", "s2_")).with_name("s2.tif")
            for src_path in (p, s2p):
                t0 = time.perf_counter()
                with rasterio.open(src_path) as src:
                    arr, prof = src.read(), src.profile
                t_read += time.perf_counter() - t0
                prof.update(
                    driver="GTiff",
                    compress=None,
                    tiled=False,
                    interleave="pixel",
                    predictor=None,
                    blockxsize=None,
                    blockysize=None,
                )
                prof = {k: v for k, v in prof.items() if v is not None}
                dst = Path(d) / f"{i}_{src_path.stem}.tif"
                t0 = time.perf_counter()
                with rasterio.open(dst, "w", **prof) as ds:
                    ds.write(arr)
                t_plain += time.perf_counter() - t0
                nbytes += dst.stat().st_size
    return {
        "triplets": len(s1s),
        "plain_write_s_per_triplet": t_plain / len(s1s),
        "plain_bytes_per_triplet": nbytes / len(s1s),
    }


def bench_catalog(n_triplets: int, tmp: Path) -> dict:
    out = tmp / f"meta_{n_triplets}"
    r = simulate_catalog(out, "iowa", n_triplets)
    return {
        "triplets": r["triplets"],
        "items": r["items"],
        "seconds": r["seconds_items"] + r["seconds_tree"],
        "seconds_tree": r["seconds_tree"],
        "out": out,
    }


def bench_pystac(meta_root: Path, tmp: Path) -> dict:
    """pystac's usual path on the same items: read dicts, one Collection, normalize, save."""
    dicts = [
        json.loads(p.read_text())
        for p in meta_root.rglob("*.json")
        if json.loads(p.read_text()).get("type") == "Feature"
    ]
    t0 = time.perf_counter()
    col = pystac.Collection(
        "bench",
        "pystac baseline",
        pystac.Extent(pystac.SpatialExtent([[-180, -90, 180, 90]]), pystac.TemporalExtent([[None, None]])),
    )
    for d in dicts:
        d = dict(d, links=[])
        col.add_item(pystac.Item.from_dict(d, preserve_dict=False))
    col.normalize_hrefs(str(tmp / "pystac_out"))
    col.save(pystac.CatalogType.SELF_CONTAINED)
    return {"items": len(dicts), "seconds": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller sizes (CI smoke run)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "create.json")
    args = ap.parse_args()
    tiles = 4 if args.quick else 12
    sizes = (200, 1000) if args.quick else (1000, 10000)
    tmp = Path(tempfile.mkdtemp(prefix="bench_create_"))
    try:
        results: dict = {
            "machine": f"{platform.node()} {platform.processor() or platform.machine()}",
            "python": sys.version.split()[0],
        }
        c1 = bench_create(tiles, 1, tmp)
        c2 = bench_create(tiles, 2, tmp)
        plain = bench_plain_gtiff(c1["out"])
        cat = [bench_catalog(n, tmp) for n in sizes]
        base = [bench_pystac(c["out"], tmp / f"pystac_{c['triplets']}") for c in cat]
        for r in (c1, c2, *cat):
            r.pop("out")
        results.update(create_w1=c1, create_w2=c2, plain_gtiff=plain, catalog=cat, pystac=base)
        growth = (cat[1]["seconds"] / cat[0]["seconds"]) / (cat[1]["triplets"] / cat[0]["triplets"])
        pgrowth = (base[1]["seconds"] / base[0]["seconds"]) / (base[1]["items"] / base[0]["items"])
        results["catalog_growth_per_item"] = growth
        results["pystac_growth_per_item"] = pgrowth
        bpt = c1["bytes_per_triplet"]
        cog = bpt["s1"] + bpt["s2"]
        print(f"\ncreate, california, {tiles} tiles ({c1['triplets']} triplets)")
        print(
            f"  workers 1: {c1['triplets_per_s']:.2f} triplets/s   workers 2: {c2['triplets_per_s']:.2f} triplets/s  "
            f"(x{c2['triplets_per_s'] / c1['triplets_per_s']:.2f})"
        )
        print(
            f"  bytes per triplet: S1 {bpt['s1'] / 1e6:.2f} MB + S2 {bpt['s2'] / 1e6:.2f} MB = {cog / 1e6:.2f} MB COG"
            f" vs {ORIGINAL_BYTES / 1e6:.2f} MB original (ratio {ORIGINAL_BYTES / cog:.2f}x);"
            f" label {bpt['labels'] / 1e3:.1f} kB/triplet, quick-looks {bpt['thumbnail'] / 1e3:.0f} kB, JSON "
            f"{bpt['json'] / 1e3:.0f} kB"
        )
        print(
            f"  same arrays as plain uncompressed GTiff here: {plain['plain_bytes_per_triplet'] / 1e6:.2f} MB/triplet"
        )
        print("\ncatalog writing, metadata only (items + tree)")
        for c, b in zip(cat, base):
            print(
                f"  {c['triplets']:>6} triplets / {c['items']:>6} items: {c['seconds']:7.1f} s "
                f"({c['items'] / c['seconds']:.0f} items/s)"
                f"   pystac one-collection save: {b['seconds']:7.1f} s  -> {b['seconds'] / c['seconds']:.1f}x faster"
            )
        print(
            f"  growth per item from {cat[0]['triplets']} to {cat[1]['triplets']} triplets: ours {growth:.2f} (1.0 = "
            f"linear), pystac {pgrowth:.2f}"
        )
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2, default=float) + "\n")
        print(f"\nwrote {args.out}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
