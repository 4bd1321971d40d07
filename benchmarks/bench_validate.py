"""Benchmark ``validate``: STAC objects per second for the schema part, against ``stac-valid``.

    python benchmarks/bench_validate.py            # >= 10k items (stac-valid alone takes ~15 min)
    python benchmarks/bench_validate.py --quick    # ~500 items, about a minute

One run on this machine, both tools on the same metadata-only catalog (``simulate_catalog``, the
layout ``create`` writes, no COGs) and the same local schemas (the cache folder + pystac's
bundled core v1.1.0/GeoJSON schemas; stac-valid gets every URL through ``-s URL FILE``):

* ours, schema only (``--no-links --no-rules --no-assets``), as the real CLI in a subprocess
  (wall clock, start-up included, like stac-valid), with items checked serially, in threads and
  in worker processes; then the full check without assets (schemas + links + rules);
* ``stac-valid validate --recursive`` with the schema map (its only offline mode).

Wall clock and CPU seconds (the command and its worker processes) are both recorded: on a shared
machine the wall clock depends on what else runs, CPU seconds much less.

Results: a table on stdout and benchmarks/results/validate.json.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import importlib.resources
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "validate.json"
BIN = Path(sys.executable).parent


def schema_map(schemas: Path) -> list[str]:
    """``-s URL FILE`` for pystac's bundled core/GeoJSON schemas and every file in the cache."""
    from pystac.validation.local_validator import VERSION

    base = Path(str(importlib.resources.files("pystac.validation.jsonschemas")))
    pairs = {}
    for name in ("item", "catalog", "collection"):
        pairs[f"https://schemas.stacspec.org/v{VERSION}/{name}-spec/json-schema/{name}.json"] = (
            base / f"stac-spec/v{VERSION}/{name}.json"
        )
    for name in ("Feature", "Geometry"):
        pairs[f"https://geojson.org/schema/{name}.json"] = base / f"geojson/{name}.json"
    for name in ("bands", "basics", "common", "data-values", "datetime", "instrument", "licensing", "provider"):
        pairs[f"https://schemas.stacspec.org/v{VERSION}/item-spec/json-schema/{name}.json"] = (
            base / f"stac-spec/v{VERSION}/{name}.json"
        )
    for p in sorted(schemas.rglob("*.json")):
        pairs.setdefault("https://" + p.relative_to(schemas).as_posix(), p)
    args: list[str] = []
    for url, path in pairs.items():
        args += ["-s", url, str(path)]
    return args


def _child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run(cmd: list[str], log: Path | None = None) -> tuple[float, float, subprocess.CompletedProcess]:
    """(wall seconds, CPU seconds of the command and its worker processes, result)."""
    c0, t0 = _child_cpu(), time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    dt, cpu = time.perf_counter() - t0, _child_cpu() - c0
    if log:
        log.write_text(p.stdout[-20000:] + "\n--- stderr ---\n" + p.stderr[-20000:])
    return dt, cpu, p


def ours(root: Path, schemas: Path, executor: str, workers: int, schema_only: bool) -> dict:
    cmd = [
        str(BIN / "sen12ts-stac"),
        "validate",
        str(root),
        "--offline",
        "--schemas",
        str(schemas),
        "--format",
        "json",
        "--no-assets",
        "--executor",
        executor,
        "--workers",
        str(workers),
        "--quiet",
    ]
    if schema_only:
        cmd += ["--no-links", "--no-rules"]
    dt, cpu, p = run(cmd)
    if p.returncode not in (0, 1):
        raise SystemExit(f"sen12ts-stac validate failed ({p.returncode}): {p.stderr[-2000:]}")
    rep = json.loads(p.stdout)
    c = rep["counts"]
    objects = c.get("catalogs", 0) + c.get("collections", 0) + c.get("items", 0)
    return {
        "tool": "sen12ts-stac validate",
        "mode": f"{'schemas only' if schema_only else 'schemas+links+rules'}, {executor}"
        + (f" x{workers}" if executor != "serial" else ""),
        "seconds": dt,
        "cpu_seconds": cpu,
        "objects": objects,
        "items": c.get("items", 0),
        "objects_per_s": objects / dt,
        "objects_per_cpu_s": objects / cpu,
        "ok": rep["ok"],
        "errors": rep["errors"],
        "not_checked": rep["not_checked"],
        "phase_seconds": rep["seconds"],
    }


def stac_valid(root: Path, schemas: Path, log: Path) -> dict:
    exe = shutil.which("stac-valid", path=str(BIN)) or shutil.which("stac-valid")
    if exe is None:
        raise SystemExit("stac-valid is not installed (pip install 'stac-valid~=4.2.2', in the dev extra)")
    dt, cpu, p = run([exe, "validate", str(root / "catalog.json"), "--recursive", *schema_map(schemas)], log)
    m = re.search(r"Stac objects passed: (\d+)/(\d+)", p.stdout)
    if not m:
        raise SystemExit(f"stac-valid gave no summary (exit {p.returncode}); see {log}")
    passed, objects = int(m.group(1)), int(m.group(2))
    return {
        "tool": "stac-valid validate --recursive",
        "mode": "schemas only, -s URL FILE map, 1 process",
        "seconds": dt,
        "cpu_seconds": cpu,
        "objects": objects,
        "passed": passed,
        "objects_per_s": objects / dt,
        "objects_per_cpu_s": objects / cpu,
        "ok": passed == objects,
        "version": md.version("stac-valid"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="~500 items instead of >= 10k")
    ap.add_argument("--triplets", type=int, default=None, help="triplets to simulate (3300 -> ~10.3k items)")
    ap.add_argument(
        "--schemas", type=Path, default=Path(os.environ.get("SEN12TS_SCHEMAS", REPO.parent / "shared" / "stac-schemas"))
    )
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--skip-baseline", action="store_true", help="do not run stac-valid (no speed-up figure)")
    ap.add_argument(
        "--keep", type=Path, default=None, help="simulate into (or reuse) this folder instead of a temp dir"
    )
    args = ap.parse_args()
    from sen12ts_stac.collect.simulate import simulate_catalog

    n = args.triplets or (150 if args.quick else 3300)
    tmp = Path(tempfile.mkdtemp(prefix="bench_validate_"))
    root = args.keep or tmp / "catalog"
    try:
        if not (root / "catalog.json").exists():
            t0 = time.perf_counter()
            sim = simulate_catalog(root, "california", n, seed=0)
            print(
                f"simulated {sim['items']:,} items ({sim['triplets']:,} triplets) in {time.perf_counter() - t0:.1f} "
                f"s: {root}",
                flush=True,
            )
        rows = []
        for executor in ("serial", "thread", "process"):
            rows.append(ours(root, args.schemas, executor, args.workers, schema_only=True))
            print(f"  {rows[-1]['mode']:<40} {rows[-1]['objects_per_s']:>8.1f} objects/s", flush=True)
        rows.append(ours(root, args.schemas, "auto", args.workers, schema_only=False))
        print(f"  {rows[-1]['mode']:<40} {rows[-1]['objects_per_s']:>8.1f} objects/s", flush=True)
        baseline = None
        if not args.skip_baseline:
            print("  stac-valid (this is the slow part) ...", flush=True)
            baseline = stac_valid(root, args.schemas, tmp / "stac-valid.log")
            rows.append(baseline)
        best = max(
            (r for r in rows if r["tool"].startswith("sen12ts") and r["mode"].startswith("schemas only")),
            key=lambda r: r["objects_per_s"],
        )
        speedup = best["objects_per_s"] / baseline["objects_per_s"] if baseline else None
        serial = rows[0]
        cpu_speedup = serial["objects_per_cpu_s"] / baseline["objects_per_cpu_s"] if baseline else None
        print()
        print(
            f"{'tool':<32} {'mode':<42} {'objects':>8} {'wall s':>8} {'CPU s':>8} {'objects/s':>10} {'obj/CPU s':>10} "
            f"{'ok':>4}"
        )
        for r in rows:
            print(
                f"{r['tool']:<32} {r['mode']:<42} {r['objects']:>8,} {r['seconds']:>8.1f} {r['cpu_seconds']:>8.1f} "
                f"{r['objects_per_s']:>10.1f} {r['objects_per_cpu_s']:>10.1f} {str(r['ok']):>4}"
            )
        print(
            f"load average (1, 5, 15 min) at the end: {', '.join(f'{x:.1f}' for x in os.getloadavg())} on "
            f"{os.cpu_count()} CPUs"
        )
        if speedup:
            print(
                f"\nschema validation: {speedup:.1f}x stac-valid by wall clock ({best['mode']}), "
                f"{cpu_speedup:.1f}x per CPU second (serial); goal >= 10x"
            )
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        from sen12ts_stac.fsio import write_json

        write_json(
            RESULTS,
            {
                "command": " ".join(["python", "benchmarks/bench_validate.py", *sys.argv[1:]]),
                "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "platform": platform.platform(),
                    "load_average_at_end": os.getloadavg(),
                },
                "versions": {k: md.version(k) for k in ("fastjsonschema", "jsonschema", "stac-valid", "pystac")},
                "catalog": {
                    "triplets": n,
                    "items": rows[0]["items"],
                    "objects": rows[0]["objects"],
                    "kind": "simulate_catalog (metadata only)",
                },
                "rows": rows,
                "speedup_schema_vs_stac_valid": speedup,
                "speedup_per_cpu_second_serial": cpu_speedup,
                "best_mode": best["mode"],
            },
        )
        print(f"wrote {RESULTS.relative_to(REPO)}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
