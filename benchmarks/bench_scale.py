"""Scale evidence: a metadata-only SEN12TS catalog of up to the full size (246,400 triplets, about
770k items) through catalog writing, export (ndjson + stac-geoparquet) and index loading.

    python benchmarks/bench_scale.py            # 1k, 10k, 100k triplets (growth)
    python benchmarks/bench_scale.py --quick    # 1k, 10k
    python benchmarks/bench_scale.py --full     # 1k, 10k, 100k and 246,400 (about 30 min, ~25 GB)

Each stage runs in its own subprocess, so its wall time and peak memory (ru_maxrss) are its own:

* ``write``: ``collect.simulate.simulate_catalog`` per AOI (items + tree, no pixels);
* ``export``: ``export.export_catalog`` (items.ndjson + items.parquet per collection, 2 processes);
* ``index_parquet``: ``stream.load_index`` on the six triplet-collection parquet files (if the
  stream package is importable, else pyarrow reading the same files, and the result says so);
* ``index_static``: ``stream.load_index`` on the static catalog folder (walks the JSON).

Triplets are spread over the six AOIs in proportion to their tile counts (the only per-AOI size
the spec gives), 8 per tile (the original's mean is 7.85): the full build then has six AOI trees
and 24 collections of very different sizes, as the real one would, and the largest collection
(Sumatra's triplets, ~110k items) is the worst case for per-collection export memory.
Results are merged into benchmarks/results/scale.json (keyed by size).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FULL = 246_400
PER_TILE = 8
RESULTS = Path(__file__).resolve().parent / "results" / "scale.json"


def aoi_shares(n_triplets: int) -> dict[str, int]:
    from sen12ts_stac.spec.aois import AOIS, get_aoi
    from sen12ts_stac.spec.grid import tiles_in

    tiles = {a: len(tiles_in(get_aoi(a).polygon)) for a in AOIS}
    total = sum(tiles.values())
    shares = {a: max(PER_TILE, round(n_triplets * t / total)) for a, t in tiles.items()}
    biggest = max(shares, key=shares.get)
    shares[biggest] += n_triplets - sum(shares.values())
    return shares


def stage(name: str, root: Path, n: int) -> dict:
    """Run one stage in this process; returns its measurements."""
    t0 = time.perf_counter()
    out: dict = {}
    if name == "write":
        from sen12ts_stac.collect.simulate import simulate_catalog

        items = triplets = 0
        for aoi, k in aoi_shares(n).items():
            r = simulate_catalog(root, aoi, k, seed=0, per_tile=PER_TILE)
            items += r["items"]
            triplets += r["triplets"]
        out = {"items": items, "triplets": triplets}
    elif name == "export":
        from sen12ts_stac.distribute.export import export_catalog

        res = export_catalog(root, progress=False, chunk_size=8192, workers=2)
        out = {
            "collections": len(res),
            "items": sum(r.items for r in res),
            "parquet_bytes": sum(p.stat().st_size for r in res for p in r.files if p.suffix == ".parquet"),
            "ndjson_bytes": sum(p.stat().st_size for r in res for p in r.files if p.suffix == ".ndjson"),
        }
    elif name == "index_parquet":
        files = sorted(root.glob("*/triplets/items.parquet"))
        try:
            from sen12ts_stac.stream.index import load_index
        except ImportError:
            import pyarrow.parquet as pq

            out = {
                "records": sum(pq.read_table(f).num_rows for f in files),
                "how": "pyarrow.parquet.read_table (stream.load_index not available)",
            }
        else:
            out = {
                "records": sum(len(load_index(f, progress=False)) for f in files),
                "how": "stream.load_index(items.parquet) per AOI",
            }
    elif name == "index_static":
        from sen12ts_stac.stream.index import load_index

        out = {"records": len(load_index(root, progress=False)), "how": "stream.load_index(catalog folder)"}
    else:
        raise SystemExit(f"unknown stage {name}")
    out["seconds"] = round(time.perf_counter() - t0, 2)
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    out["peak_rss_mb"] = round(max(own.ru_maxrss, kids.ru_maxrss) / 1024, 1)  # kids: the largest worker process
    # CPU seconds (this process + its workers): unlike wall time, not inflated by other load on the machine
    out["cpu_seconds"] = round(own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime, 2)
    return out


def run_stage(name: str, root: Path, n: int) -> dict:
    r = subprocess.run(
        [sys.executable, __file__, "--stage", name, "--root", str(root), "--n", str(n)], capture_output=True, text=True
    )
    if r.returncode != 0:
        return {"error": (r.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(r.stdout.strip().splitlines()[-1])


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="1k and 10k triplets only")
    ap.add_argument("--full", action="store_true", help="also the full 246,400 triplets")
    ap.add_argument("--sizes", default=None, help="comma-separated triplet counts (overrides the above)")
    ap.add_argument("--tmp", default=None, help="scratch folder (default: the system temp folder)")
    ap.add_argument("--stage", help=argparse.SUPPRESS)
    ap.add_argument("--root", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.stage:
        print(json.dumps(stage(args.stage, Path(args.root), args.n)))
        return
    sizes = (
        [int(s) for s in args.sizes.split(",")]
        if args.sizes
        else [1_000, 10_000] + ([] if args.quick else [100_000]) + ([FULL] if args.full else [])
    )
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    results.update({"machine": f"{platform.machine()} {os.cpu_count()} cores", "python": platform.python_version()})
    runs = results.setdefault("runs", {})
    for n in sizes:
        root = Path(tempfile.mkdtemp(prefix=f"scale{n}-", dir=args.tmp))
        try:
            row: dict = {"triplets_asked": n, "date": time.strftime("%Y-%m-%d")}
            for name in ("write", "export", "index_parquet", "index_static"):
                row[name] = run_stage(name, root, n)
                print(f"{n:>7} {name:<14} {row[name]}", flush=True)
                if name == "write":
                    row["catalog_bytes"] = du(root)
            row["items_per_s_write"] = round(
                row["write"].get("items", 0) / max(row["write"].get("seconds", 1), 1e-9), 1
            )
            runs[str(n)] = row
            RESULTS.parent.mkdir(parents=True, exist_ok=True)
            _growth(results)
            RESULTS.write_text(json.dumps(results, indent=2) + "\n")  # before the (slow) clean-up
        finally:
            shutil.rmtree(root, ignore_errors=True)
    print(f"wrote {RESULTS}")


def _growth(results: dict) -> None:
    """Seconds per item at each size relative to the smallest: 1.0 everywhere means linear."""
    runs = sorted(results["runs"].values(), key=lambda r: r["triplets_asked"])
    base = runs[0]
    out = {}
    for r in runs:
        per = {}
        for stage_name in ("write", "export", "index_parquet", "index_static"):
            a, b = r.get(stage_name, {}), base.get(stage_name, {})
            ka = a.get("items") or a.get("records")
            kb = b.get("items") or b.get("records")
            if a.get("seconds") and b.get("seconds") and ka and kb:
                per[stage_name] = round((a["seconds"] / ka) / (b["seconds"] / kb), 2)
        out[str(r["triplets_asked"])] = per
    results["seconds_per_item_vs_smallest"] = out


if __name__ == "__main__":
    main()
