"""Run a validation: find the catalog root, walk catalogs and collections (concurrently), check
items in parallel (worker processes for local catalogs, threads for http ones), then the links,
the cross-object rules and the asset files. Every per-object step is wrapped, so one bad object
is one finding and the run always ends with a report.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import time
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from sen12ts_stac.errors import UserError
from sen12ts_stac.storage.locations import origin
from sen12ts_stac.storage.walk import walk
from sen12ts_stac.validate import checks, claims, rules
from sen12ts_stac.validate.locations import (
    MAX_JSON_BYTES,
    exists,
    folder_of,
    inside,
    is_url,
    read_json,
    read_json_at,
    resolve,
)
from sen12ts_stac.validate.report import ERROR, WARNING, Finding, Report
from sen12ts_stac.validate.schemas import SchemaChecker, SchemaStore

Progress = Callable[[str, int, int | None], None]  # (phase, advance, total)


@dataclass
class Options:
    schemas: bool = True
    links: bool = True
    rules: bool = True
    assets: bool = True
    schema_dir: str | None = None  # None: $SEN12TS_SCHEMAS or ~/.cache/sen12ts-stac/schemas
    fetch_schemas: bool = True  # fetch (and cache) schemas missing from the cache
    workers: int = 0  # 0: one per CPU
    executor: str = "auto"  # items of local catalogs: auto | process | thread | serial
    max_json_bytes: int = MAX_JSON_BYTES
    checksums: bool = True  # hash local asset files against file:checksum
    remote_checksums: bool = False  # also download remote asset files to hash them
    process_threshold: int = 400  # auto: worker processes from this many items on
    follow_symlinks: bool = False  # read local files that symlinks inside the root point to outside it
    network: bool = (
        True  # False: a local catalog's remote asset URLs are not probed (nor schemas fetched: fetch_schemas)
    )

    def n_workers(self) -> int:
        return self.workers if self.workers > 0 else (os.cpu_count() or 1)


@dataclass
class _Walk:
    root: str  # boundary: a folder, or an URL origin
    root_where: str | None  # the root catalog file/URL, when known
    records: dict[str, dict] = field(default_factory=dict)
    linked_from: dict[str, str] = field(default_factory=dict)
    items: list[str] = field(default_factory=list)
    via: dict[str, tuple[str, str, str]] = field(default_factory=dict)  # target -> (linker, rel, href)
    follow_symlinks: bool = False
    _real: dict[str, str] = field(default_factory=dict)  # folder -> its real path (memo)

    def _real_dir(self, d: str) -> str:
        hit = self._real.get(d)
        if hit is None:
            parent = os.path.dirname(d)
            if parent == d:
                hit = d
            elif os.path.islink(d):
                hit = os.path.realpath(d)
            else:
                hit = os.path.join(self._real_dir(parent), os.path.basename(d))
            self._real[d] = hit
        return hit

    def escape(self, target: str) -> str | None:
        """The real path of a local ``target`` that lies in the root by name but outside it
        through a symlink (of the file or of a folder on the way); None when it does not (or
        symlinks are followed). Two lstat calls per file: folders are remembered."""
        if self.follow_symlinks or is_url(target) or is_url(self.root):
            return None
        real = (
            os.path.realpath(target)
            if os.path.islink(target)
            else os.path.join(self._real_dir(os.path.dirname(target)), os.path.basename(target))
        )
        return None if inside(self._real_dir(self.root), real) else real

    def read_problem(self, f: Finding) -> Finding:
        """A missing child/item is the linking file's broken link; other read errors stay put."""
        if f.check == "read" and f.message.startswith("no such file") and f.where in self.via:
            linker, rel, href = self.via[f.where]
            return Finding(ERROR, "links", linker, f"broken link rel={rel} href {href}: {f.message}: {f.where}")
        return f


# -- per-object work (runs in worker processes too) -----------------------------------------
_CHECKERS: dict[tuple, SchemaChecker] = {}


def _checker(opts: Options) -> SchemaChecker:
    key = (opts.schema_dir, opts.fetch_schemas)
    c = _CHECKERS.get(key)
    if c is None:
        c = _CHECKERS[key] = SchemaChecker(SchemaStore(opts.schema_dir, fetch=opts.fetch_schemas))
    return c


def check_object(obj: Any, where: str, opts: Options) -> tuple[list[Finding], dict | None]:
    """Schema and per-object rule findings, and the record for the later checks."""
    try:
        if not isinstance(obj, dict):
            return [Finding(ERROR, "read", where, f"not a JSON object but a {type(obj).__name__}")], None
        enabled = {
            "read": True,
            "schema": opts.schemas,
            "links": opts.links,
            "rules": opts.rules,
            "assets": opts.assets,
        }
        findings = [f for f in checks.structure(obj, where) if enabled.get(f.check, True)]
        if opts.schemas:
            findings += _checker(opts).check(obj, where)
        if opts.rules:
            findings += rules.object_rules(obj, where)
        return findings, checks.record(obj, where, opts.assets)
    except Exception as e:  # a bug or an object so odd a check tripped: one finding, go on
        return [Finding(ERROR, "read", where, f"could not be checked ({type(e).__name__}: {str(e)[:160]})")], None


def check_file(where: str, opts: Options) -> tuple[list[Finding], dict | None]:
    obj, problem = read_json(where, opts.max_json_bytes)
    if problem is not None:
        return [problem], None
    return check_object(obj, where, opts)


def _check_files(wheres: list[str], opts: Options) -> list[tuple[list[Finding], dict | None]]:
    return [check_file(w, opts) for w in wheres]


# -- the run ---------------------------------------------------------------------------------
def resolve_target(target: str | os.PathLike) -> str:
    """The entry file or URL: a folder means its catalog.json (or collection.json)."""
    s = str(target)
    if is_url(s):
        return s + "catalog.json" if s.endswith("/") else s
    p = Path(s).expanduser()
    if p.is_dir():
        for name in ("catalog.json", "collection.json"):
            if os.path.lexists(p / name):  # a FIFO, device or folder of that name: the read's finding
                return os.path.abspath(p / name)
        raise UserError(f"{p}: no catalog.json or collection.json in this folder")
    if not p.exists():
        raise UserError(f"{p}: no such file or folder")
    return os.path.abspath(p)


def _find_root(entry: str, obj: Any, opts: Options) -> tuple[str, str | None]:
    """(boundary, root catalog). The root link of the entry, if it leads to a readable catalog
    above the entry; else the entry itself. Local boundary: the root's folder; http: the origin."""
    root_where = None
    if isinstance(obj, dict):
        links = obj.get("links")
        for link in (
            links if isinstance(links, list) else []
        ):  # malformed links: the schema's and links check's findings
            if isinstance(link, dict) and link.get("rel") == "root":
                target = resolve(entry, link.get("href"))
                if target == entry:
                    root_where = entry
                elif target and inside(origin(target) if is_url(target) else folder_of(target), entry):
                    # read only a root above the entry: never a local file for a remote catalog, never /dev/zero
                    robj, problem = read_json(target, opts.max_json_bytes)
                    if problem is None and isinstance(robj, dict) and robj.get("type") in checks.CONTAINERS:
                        root_where = target
                break
        if root_where is None and obj.get("type") in checks.CONTAINERS:
            root_where = entry
    where = root_where or entry
    boundary = origin(where) if is_url(where) else folder_of(where)
    if not inside(boundary, entry):
        boundary, root_where = (origin(entry) if is_url(entry) else folder_of(entry)), None
    return boundary, root_where


def _ancestors(where: str | None, parent_of: dict[str, str | None]) -> Iterator[str]:
    while where is not None:
        yield where
        where = parent_of.get(where)


def validate(target: str | os.PathLike, opts: Options | None = None, progress: Progress | None = None) -> Report:
    """Validate a catalog folder, a catalog/collection/item JSON file or an http(s) URL."""
    opts = opts or Options()
    tick = progress or (lambda phase, n, total: None)
    entry = resolve_target(target)
    if not opts.network and is_url(entry):
        raise UserError(f"{entry}: a remote catalog cannot be validated without the network (--no-network)")
    report = Report(
        target=entry, checks={"schemas": opts.schemas, "links": opts.links, "rules": opts.rules, "assets": opts.assets}
    )
    t0 = time.perf_counter()
    remote = is_url(entry)
    entry_obj, final, problem = read_json_at(entry, opts.max_json_bytes)
    entry = final  # an entry that redirects: its links are relative to where it really is
    if problem is not None:
        report.add(problem)
        report.seconds["walk"] = time.perf_counter() - t0
        return report
    root, root_where = _find_root(entry, entry_obj, opts)
    w = _Walk(root, root_where, follow_symlinks=opts.follow_symlinks)
    io_workers = max(8, opts.n_workers()) if remote else max(2, opts.n_workers())
    with cf.ThreadPoolExecutor(io_workers, thread_name_prefix="validate-io") as pool:
        _walk(entry, entry_obj, w, report, opts, io_workers, tick)
        report.seconds["walk"] = time.perf_counter() - t0
        t = time.perf_counter()
        if remote:
            _check_items(w, report, opts, pool, tick)
    if not remote:  # after the I/O threads are gone: worker processes are forked from here
        _check_items(w, report, opts, None, tick)
    report.seconds["items"] = time.perf_counter() - t
    for rec in w.records.values():
        kind = {"Catalog": "catalogs", "Collection": "collections", "Feature": "items"}.get(
            rec["type"], "other objects"
        )
        report.counts[kind] += 1
    if opts.rules:
        t = time.perf_counter()
        report.extend(_guard("rules", entry, lambda: rules.cross_rules(w.records)))
        report.seconds["rules"] = time.perf_counter() - t
    if opts.links:
        t = time.perf_counter()
        report.extend(_guard("links", entry, lambda: _links(w, report, io_workers)))
        report.seconds["links"] = time.perf_counter() - t
    if opts.assets:
        t = time.perf_counter()
        report.extend(
            _guard("assets", entry, lambda: _assets(w, report, opts, io_workers if remote else opts.n_workers(), tick))
        )
        report.seconds["assets"] = time.perf_counter() - t
    return report


def _guard(check: str, where: str, fn: Callable[[], list[Finding]]) -> list[Finding]:
    try:
        return fn()
    except Exception as e:  # never a traceback: a failed check is a finding
        return [Finding(ERROR, check, where, f"the {check} check failed ({type(e).__name__}: {str(e)[:200]})")]


def _walk(entry: str, entry_obj: Any, w: _Walk, report: Report, opts: Options, workers: int, tick: Progress) -> None:
    """Catalogs and collections through the storage walker (read and checked concurrently);
    items are only listed here, and checked afterwards in bulk. What to follow is decided here,
    in the order objects arrive, so loops and links to an object already reached are findings."""
    parent_of: dict[str, str | None] = {entry: None}

    class _Unreadable(Exception):
        def __init__(self, finding: Finding):
            self.finding = finding

    def read(where: str) -> tuple[Any, str]:
        if where == entry:
            return entry_obj, entry
        obj, final, problem = read_json_at(where, opts.max_json_bytes)
        if problem is not None:
            raise _Unreadable(problem)
        return obj, final

    def visit(where: str, obj: Any) -> tuple[dict, list[str]]:
        findings, rec = check_object(obj, where, opts)
        return {"where": where, "findings": findings, "rec": rec, "follow": []}, []

    def on_error(where: str, e: Exception) -> dict:
        if not isinstance(e, _Unreadable):
            raise e
        return {"where": where, "problem": e.finding, "follow": []}

    for step in walk(entry, visit, read=read, workers=workers, on_error=on_error, expand=lambda r: r["follow"]):
        where = step["where"]
        if "problem" in step:
            report.add(w.read_problem(step["problem"]))
            continue
        report.extend(step["findings"])
        tick("catalogs", 1, None)
        rec = step["rec"]
        if rec is None:
            continue
        w.records[where] = rec
        if rec["type"] == "Feature":
            continue  # an item given as the entry or linked as a child: checked, no children
        for rel, target, href, _ in rec["links"]:
            if rel not in ("child", "item") or target is None or not inside(w.root, target):
                continue  # unusable and outside links are the links check's findings
            real = w.escape(target)
            if real is not None:
                report.add(
                    Finding(
                        ERROR,
                        "links",
                        where,
                        f"rel={rel} {href} is a symlink to {real}, outside the catalog root "
                        "(not read; --follow-symlinks reads it)",
                    )
                )
                w.linked_from.setdefault(target, where)  # reported here: not again as a broken link
                continue
            if target in parent_of:
                if target in _ancestors(where, parent_of):
                    report.add(
                        Finding(
                            ERROR,
                            "links",
                            where,
                            f"link loop: rel={rel} {href} leads back to {target}, which contains this object",
                        )
                    )
                else:
                    report.add(
                        Finding(
                            WARNING,
                            "links",
                            where,
                            f"rel={rel} {href} is also linked from {w.linked_from.get(target, parent_of.get(target))}",
                        )
                    )
                continue
            parent_of[target] = where
            w.linked_from[target] = where
            w.via[target] = (where, rel, href)
            if rel == "child":
                step["follow"].append(target)
            else:
                w.items.append(target)


def _check_items(w: _Walk, report: Report, opts: Options, io_pool: cf.Executor | None, tick: Progress) -> None:
    items = w.items
    if not items:
        return
    tick("items", 0, len(items))

    def take(results) -> None:
        for findings, rec in results:
            report.extend(w.read_problem(f) for f in findings)
            if rec is not None:
                w.records[rec["where"]] = rec
        tick("items", len(results), None)

    if io_pool is not None:  # http: I/O bound, threads
        for one in io_pool.map(lambda x: check_file(x, opts), items):
            take([one])
        return
    mode = opts.executor
    n = opts.n_workers()
    if mode == "auto":
        mode = "process" if n > 1 and len(items) >= opts.process_threshold else "serial"
    chunk = max(20, min(500, len(items) // (n * 8) or 1))
    chunks = [items[i : i + chunk] for i in range(0, len(items), chunk)]
    if mode == "serial" or n == 1:
        for c in chunks:
            take(_check_files(c, opts))
        return
    pool: cf.Executor
    if mode == "thread":
        with cf.ThreadPoolExecutor(n) as pool:
            for res in pool.map(lambda c: _check_files(c, opts), chunks):
                take(res)
        return
    # Processes: check the first chunk here so the compiled schemas are inherited by fork.
    take(_check_files(chunks[0], opts))
    done = 1
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
    try:
        with cf.ProcessPoolExecutor(n, mp_context=ctx) as pool:
            for res in pool.map(_check_files, chunks[1:], [opts] * (len(chunks) - 1)):
                take(res)
                done += 1
    except (BrokenProcessPool, OSError):  # a worker died (memory?): go on here
        for c in chunks[done:]:
            take(_check_files(c, opts))


def _links(w: _Walk, report: Report, io_workers: int) -> list[Finding]:
    def exists_many(targets: list[str]) -> dict[str, tuple[bool | None, str]]:
        local: dict[str, tuple[bool | None, str]] = {
            t: (os.path.isfile(t), "not a regular file" if os.path.exists(t) else "no such file")
            for t in targets
            if not is_url(t)
        }
        remote = [t for t in targets if is_url(t)]
        if remote:
            with cf.ThreadPoolExecutor(io_workers) as pool:
                local.update(zip(remote, pool.map(exists, remote)))
        return local

    findings, n = checks.link_findings(w.records, w.root, w.root_where, w.linked_from, exists_many)
    report.counts["links"] = n
    return findings


def _assets(w: _Walk, report: Report, opts: Options, workers: int, tick: Progress) -> list[Finding]:
    wanted: dict[str, tuple[bool, set[str], bool]] = {}  # target -> (raster?, checksum codes, image?)
    probes: dict[str, dict] = {}
    for rec in w.records.values():
        for _key, target, a in claims.asset_targets(rec):
            if not is_url(target) and not inside(w.root, target):
                continue  # outside the root: a finding, never read
            if is_url(target) and not opts.network:
                probes[target] = {
                    "target": target,
                    "exists": True,
                    "not_checked": "remote assets are not checked (--no-network)",
                }
                continue
            raster, codes, image = wanted.get(target, (False, set(), False))
            hashed = opts.checksums and (opts.remote_checksums or not is_url(target))
            code = claims.checksum_code(a.get("file:checksum")) if hashed else None
            wanted[target] = (
                raster or checks.is_raster_asset(a),
                codes | ({code} if code else set()),
                image or (claims.image_format(a) is not None and not is_url(target)),
            )
    tick("assets", 0, len(wanted))
    for t in list(wanted):
        real = w.escape(t)
        if real is not None:
            del wanted[t]
            probes[t] = {
                "target": t,
                "exists": False,
                "problem": f"is a symlink to {real}, outside the catalog root (not read; --follow-symlinks reads it)",
            }
    with cf.ThreadPoolExecutor(max(1, workers)) as pool:
        futures = {pool.submit(checks.probe_asset, t, r, c, i): t for t, (r, c, i) in wanted.items()}
        for fut in cf.as_completed(futures):
            probes[futures[fut]] = fut.result()
            tick("assets", 1, None)
    report.counts["asset files"] = len(probes)
    out: list[Finding] = []
    for rec in w.records.values():
        if rec["type"] == "Feature":
            try:
                out += claims.asset_findings(rec, probes, w.root, opts.checksums)
            except Exception as e:
                out.append(
                    Finding(ERROR, "assets", rec["where"], f"could not be checked ({type(e).__name__}: {str(e)[:160]})")
                )
    return out + claims.item_assets_findings(w.records)
