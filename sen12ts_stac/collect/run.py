"""``create``: plan -> per-tile collection (COGs, quick-looks, items) -> catalog tree.

Each tile is one unit of work, done by ``collect_tile`` in any process (or on a Dask worker):
it reads pixels from the source, applies the pairing rules, writes every file atomically and
finally writes a small state record ``<aoi>/.sen12ts/tiles/<tile>.json``. That record is the
commit point: a run that is killed and started again skips tiles that have one and redoes the
others, whose file names are deterministic, so nothing is duplicated or missing. The catalog tree
is rebuilt from all state records at the end of every run.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import json
import os
import shutil
import time
from collections import Counter
from concurrent.futures import BrokenExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, overload

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from sen12ts_stac import __version__
from sen12ts_stac.collect import quicklook
from sen12ts_stac.collect.catalog import BandStats, ItemRecord, write_tile_items, write_tree
from sen12ts_stac.collect.cog import write_cog
from sen12ts_stac.collect.executors import busy, interrupt_workers, local_pool, sigterm_as_interrupt, usable_cpus
from sen12ts_stac.collect.items import FileInfo, ItemBuilder, TripletMeta
from sen12ts_stac.collect.layout import Layout, item_id
from sen12ts_stac.collect.state import TileState, check_identity, finished_tiles, redact, scrub, scrub_error, tile_state
from sen12ts_stac.errors import SourceError, UserError, is_disk_full, os_error_message
from sen12ts_stac.fsio import (
    check_writable,
    disk_full_as_oserror,
    remove_stale_root_leftovers,
    remove_stale_temps,
    write_bytes,
    write_json,
)
from sen12ts_stac.sources.base import Source
from sen12ts_stac.sources.registry import make_source
from sen12ts_stac.spec import bands
from sen12ts_stac.spec.aois import get_aoi, restrict
from sen12ts_stac.spec.classes import class_table
from sen12ts_stac.spec.grid import Tile, tiles_in
from sen12ts_stac.spec.seasons import SEASONS, PairingRules, candidate_order, candidates, split_for

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class CreateConfig:
    aoi: str
    out: Path
    source: str = "synthetic"
    seed: int = 0
    max_tiles: int | None = 16
    bbox: tuple[float, float, float, float] | None = None
    seasons: tuple[str, ...] = tuple(SEASONS)
    workers: int = 1
    rules: PairingRules = field(default_factory=PairingRules)
    source_options: dict = field(default_factory=dict)
    tiles: tuple[str, ...] | None = None  # explicit tile ids (e.g. those of legacy files) instead of the AOI's tiles

    def identity(self) -> dict:
        """The settings that decide the content; a resumed run must use the same ones. Secret
        source options (tokens, keys, ...) are there by key only (see collect.state)."""
        return {
            "aoi": self.aoi,
            "source": self.source,
            "seed": self.seed,
            "seasons": list(self.seasons),
            "rules": dataclasses.asdict(self.rules),
            "source_options": redact(self.source_options),
        }


@dataclass
class RunSummary:
    tiles_planned: int = 0
    tiles_done_before: int = 0
    tiles_done_now: int = 0
    tiles_with_triplets: int = 0
    triplets: int = 0
    triplets_now: int = 0
    items: int = 0
    files: int = 0
    bytes: int = 0
    seconds: float = 0.0
    rejected: Counter = field(default_factory=Counter)

    def lines(self) -> list[str]:
        per = self.bytes / self.triplets if self.triplets else 0
        rate = self.triplets_now / self.seconds if self.seconds else 0
        return [
            f"tiles: {self.tiles_planned} planned, {self.tiles_done_now} collected now, {self.tiles_done_before} "
            f"resumed from an earlier run, {self.tiles_with_triplets} with triplets",
            f"triplets: {self.triplets}  items: {self.items}  files: {self.files}  bytes: {self.bytes:,} "
            f"({per / 1e6:.2f} MB per triplet vs 6.68 MB uncompressed originals)",
            f"rejected candidates: {dict(self.rejected) or 'none'}",
            f"seconds: {self.seconds:.1f} ({rate:.2f} triplets/s this run)",
        ]


# One source per process, built on first use (sources may hold caches and HTTP sessions).
_SOURCES: dict[tuple, Source] = {}


def _source(config: CreateConfig) -> Source:
    key = (config.source, config.aoi, config.seed, json.dumps(config.source_options, sort_keys=True))
    if key not in _SOURCES:
        _SOURCES[key] = make_source(
            config.source, get_aoi(config.aoi), seed=config.seed, rules=config.rules, **config.source_options
        )
    return _SOURCES[key]


def plan(config: CreateConfig) -> list[Tile]:
    if config.max_tiles is not None and config.max_tiles < 1:
        raise UserError(f"--max-tiles must be at least 1, got {config.max_tiles}")
    aoi = get_aoi(config.aoi)
    tiles = tiles_in(restrict(aoi, config.bbox)) if config.tiles is None else [Tile.from_id(t) for t in config.tiles]
    if not tiles:
        raise UserError(
            f"no tile centre falls inside AOI {aoi.name!r}{' and the bbox' if config.bbox else ''}; use a larger bbox"
        )
    return tiles[: config.max_tiles] if config.max_tiles else tiles


def collect_tile(config: CreateConfig, tile: Tile) -> dict:
    """Collect one tile: every accepted triplet as COGs + quick-looks + items, then its state record.

    On any error, the files this call wrote are removed again before the error propagates."""
    t0 = time.perf_counter()
    layout = Layout(config.out, config.aoi)
    aoi = get_aoi(config.aoi)
    source = _source(config)
    builder = ItemBuilder(layout, aoi, source.name)
    rules = config.rules
    written: list[Path] = []
    stats = {"s1": BandStats(len(bands.S1.bands)), "s2": BandStats(len(bands.S2.bands))}
    rejected: Counter = Counter()
    triplets: list[TripletMeta] = []
    split = split_for(tile.split_group, config.seed)

    @overload
    def put(path: Path, data: bytes) -> None: ...
    @overload
    def put(path: Path, data: tuple[bands.Product, np.ndarray]) -> FileInfo: ...
    def put(path: Path, data) -> FileInfo | None:
        written.append(path)
        if isinstance(data, bytes):
            write_bytes(path, data)
            return None
        product, arr = data
        with disk_full_as_oserror(path):
            w = write_cog(
                path, arr, product, tile, classes=class_table(aoi.label_table) if product is bands.LABEL else None
            )
        return FileInfo(w.size, w.checksum)

    try:
        for season in (SEASONS[s] for s in config.seasons):
            if hasattr(source, "triplets"):  # a source of already-paired triplets (legacy files) names them itself
                cands = source.triplets(tile, season)
            else:
                cands = candidate_order(
                    candidates(source.inventory(tile, season), season, rules), config.seed, tile.id, season.name
                )
            accepted = attempts = 0
            for cand in cands:
                if accepted >= rules.max_triplets_per_tile_season or attempts >= rules.max_attempts_per_tile_season:
                    break
                attempts += 1
                s2 = source.read_s2(tile, cand.optical)
                clear = s2.data[bands.S2.index(["cloud_mask"])[0]] == 1
                if not rules.invalid_ok(~clear):
                    rejected["s2_invalid"] += 1
                    continue
                s1 = source.read_s1(tile, cand.series)
                if not rules.invalid_ok(s1.data[bands.S1.index(["valid"])[0]] != 1):
                    rejected["s1_invalid"] += 1
                    continue
                d1 = layout.item_path("s1", tile, item_id("s1", tile, cand.key)).parent
                d2 = layout.item_path("s2", tile, item_id("s2", tile, cand.key)).parent
                f1 = put(d1 / "s1.tif", (bands.S1, s1.data))
                put(d1 / "thumbnail.png", quicklook.s1_png(s1.data))
                f2 = put(d2 / "s2.tif", (bands.S2, s2.data))
                put(d2 / "thumbnail.png", quicklook.s2_png(s2.data))
                if split == "train":
                    stats["s1"].update(s1.data, bands.S1)
                    stats["s2"].update(s2.data, bands.S2)
                triplets.append(
                    TripletMeta(
                        tile,
                        season.name,
                        split,
                        cand,
                        f1,
                        f2,
                        s1.properties,
                        s2.properties,
                        s1.derived_from,
                        s2.derived_from,
                    )
                )
                accepted += 1
        records: list[ItemRecord] = []
        if triplets:
            label = source.read_label(tile)
            dl = layout.item_path("labels", tile, item_id("labels", tile)).parent
            fl = put(dl / "labels.tif", (bands.LABEL, label.data))
            put(dl / "thumbnail.png", quicklook.label_png(label.data, class_table(aoi.label_table)))
            paths, records = write_tile_items(layout, builder, tile, triplets, fl, label.derived_from)
            written += paths
        sizes = sum(p.stat().st_size for p in written)
        state = {
            "tile": tile.id,
            "version": __version__,
            "triplets": len(triplets),
            "files": len(written),
            "bytes": sizes,
            "rejected": dict(rejected),
            "seconds": round(time.perf_counter() - t0, 3),
            "records": [r.to_json() for r in records],
            "stats": {k: v.to_json() for k, v in stats.items()},
        }
        write_json(layout.tile_state(tile.id), state, indent=False)
        return state
    except BaseException:
        for p in written:
            p.unlink(missing_ok=True)
        raise


def worker_count(requested: int, tiles: int) -> int:
    """Local worker processes for ``tiles`` tiles: at most one per tile and one per CPU."""
    return max(1, min(requested, tiles, usable_cpus()))


def create(
    config: CreateConfig, *, overwrite: bool = False, progress: bool = True, executor: cf.Executor | None = None
) -> RunSummary:
    """Run ``create`` end to end; returns the summary. Raises UserError on bad input or a failing
    source, leaving every finished tile in place for a resumed run. A run that fails before any
    tile of a new AOI folder is finished removes the folders it made (nothing to resume)."""
    t0 = time.perf_counter()
    get_aoi(config.aoi)
    tiles = plan(config)
    layout = Layout(config.out, config.aoi)
    made = _missing_folders(layout, overwrite)
    try:
        check_writable(config.out)
        if not overwrite:
            check_identity(layout, config.identity())
            finished = finished_tiles(layout)  # every record checked before any work: a damaged one stops the run now
        _source(config)  # fail fast (bad option, no network) before any state is written or work is scheduled
        remove_stale_root_leftovers(config.out)  # a killed run's root catalog.json temporary and writability probe
        if overwrite:
            shutil.rmtree(layout.aoi_dir, ignore_errors=True)
            finished = {}
        write_json(layout.state_dir / "run.json", {"identity": config.identity(), "version": __version__})
        remove_stale_temps(layout.aoi_dir)  # a killed run's half-written files; their tiles are redone below
        with sigterm_as_interrupt():  # kill, systemd, docker stop: stop like Ctrl-C, workers included
            collected = _collect(config, layout, tiles, finished, executor, progress)
    except BaseException as e:
        _undo(layout, made)
        scrub_error(e, config.source_options)
        raise
    try:
        return _finish(config, layout, finished, collected, t0)
    except OSError as e:
        if is_disk_full(e):
            raise UserError(
                f"{os_error_message(e)}; free some space and run the same command again to resume"
            ) from None
        raise


def _missing_folders(layout: Layout, overwrite: bool) -> list[Path]:
    """The AOI folder, the root and its parents that this run is about to make, deepest first."""
    made = [layout.aoi_dir] if overwrite or not layout.aoi_dir.exists() else []
    p = layout.root
    while not p.exists() and p != p.parent:
        made.append(p)
        p = p.parent
    return made


def _undo(layout: Layout, made: list[Path]) -> None:
    """After a failure: remove the folders this run made, unless a tile in them is finished
    (then they are a resumable run)."""
    if layout.aoi_dir not in made or any((layout.state_dir / "tiles").glob("*.json")):
        return
    shutil.rmtree(layout.aoi_dir, ignore_errors=True)
    for p in made[1:]:
        try:
            p.rmdir()  # only if empty
        except OSError:
            return


def _collect(
    config: CreateConfig,
    layout: Layout,
    tiles: list[Tile],
    finished: dict[str, TileState],
    executor: cf.Executor | None,
    progress: bool,
) -> tuple[RunSummary, dict[str, str], int]:
    """Collect every planned tile not yet finished (adding it to ``finished``); returns the
    summary so far, the tiles that failed (id -> error) and how many were tried."""
    todo = [t for t in tiles if t.id not in finished]
    summary = RunSummary(tiles_planned=len(tiles), tiles_done_before=len(tiles) - len(todo))
    failed: dict[str, str] = {}  # tile id -> error; recorded in <aoi>/.sen12ts/failed/ and retried by the next run

    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("tiles, {task.fields[triplets]} triplets"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, disable=not progress, transient=False) as bar:
        task = bar.add_task(f"create {config.aoi}", total=len(tiles), completed=summary.tiles_done_before, triplets=0)

        def done(tile: Tile, state: dict) -> None:
            finished[tile.id] = tile_state(layout.tile_state(tile.id), state)
            summary.tiles_done_now += 1
            summary.triplets_now += state["triplets"]
            bar.update(task, advance=1, triplets=summary.triplets_now)

        def run(tile: Tile, result) -> None:
            record = layout.state_dir / "failed" / f"{tile.id}.json"
            try:
                done(tile, result())
                record.unlink(missing_ok=True)
            except SourceError as e:  # the tile keeps no state record, so the next run retries it
                failed[tile.id] = str(e) if tile.id in str(e) else f"tile {tile.id}: {e}"
                write_json(
                    record,
                    {
                        "tile": tile.id,
                        "error": failed[tile.id],
                        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    },
                )
                if len(failed) >= 3 and not summary.tiles_done_now:
                    raise SourceError(f"{e} (and the {len(failed) - 1} tiles before it failed too; stopping)") from None

        own_pool = None
        workers = worker_count(config.workers, len(todo))
        if executor is None and workers > 1:
            executor = own_pool = local_pool(workers)
        try:
            if executor is None:
                for tile in todo:
                    run(tile, lambda tile=tile: _guarded(config, tile))
            else:
                futures = {executor.submit(_guarded, config, tile): tile for tile in todo}
                try:
                    for fut in cf.as_completed(futures):
                        run(futures[fut], fut.result)
                except BrokenExecutor:  # a worker process died (killed, out of memory, a crash in C code)
                    for f in futures:
                        f.cancel()
                    raise UserError(
                        "a worker process died (killed or out of memory?); the finished tiles are kept: run the same "
                        "command again to resume, with fewer --workers if memory is short"
                    ) from None
                except BaseException as e:
                    for f in futures:
                        f.cancel()
                    if isinstance(e, KeyboardInterrupt) and own_pool is not None:
                        interrupt_workers(own_pool)  # their tiles stop now (a terminal's Ctrl-C reached them already)
                    raise
        finally:
            if own_pool is not None:
                own_pool.shutdown(wait=True, cancel_futures=True)
    return summary, failed, len(todo)


def _finish(
    config: CreateConfig,
    layout: Layout,
    finished: dict[str, TileState],
    collected: tuple[RunSummary, dict[str, str], int],
    t0: float,
) -> RunSummary:
    """Rebuild the tree from every tile that has ever finished in this folder."""
    summary, failed, tried = collected
    for path in sorted((layout.state_dir / "tiles").glob("*.json")):  # also tiles another process finished meanwhile
        if path.stem not in finished:
            finished[path.stem] = tile_state(path)
    records: list[ItemRecord] = []
    stats = {"s1": BandStats(len(bands.S1.bands)), "s2": BandStats(len(bands.S2.bands))}
    for tid in sorted(finished):
        state = finished[tid]
        records += state.records
        for k in stats:
            stats[k].merge(state.stats[k])
        summary.triplets += state.triplets
        summary.files += state.files
        summary.bytes += state.bytes
        summary.rejected.update(state.rejected)
        summary.tiles_with_triplets += bool(state.triplets)
    source = _source(config)
    summary.files += write_tree(layout, get_aoi(config.aoi), records, stats, source.license, source.providers)
    summary.items = len(records)
    summary.seconds = time.perf_counter() - t0
    if failed:
        first = next(iter(failed.values()))
        raise SourceError(
            f"{len(failed)} of {tried} tiles failed ({first}); the catalog holds the finished tiles, the errors are "
            f"in {layout.state_dir / 'failed'}; run the same command again to retry them"
        )
    return summary


def _guarded(config: CreateConfig, tile: Tile) -> dict:
    """collect_tile with source failures turned into one clear line naming the tile. A full disk,
    or any other failure to write in the output folder, is not the source's fault: a UserError
    that stops the run (the tile keeps no state record, so a later run redoes it)."""
    try:
        with busy():  # Ctrl-C stops this tile (in a pool worker too)
            return collect_tile(config, tile)
    except UserError as e:
        scrub_error(e, config.source_options)
        raise
    except OSError as e:
        if is_disk_full(e) or _inside(e.filename, config.out):
            hint = "; free some space and run the same command again to resume" if is_disk_full(e) else ""
            raise UserError(f"{os_error_message(e)}{hint}") from None
        raise SourceError(_source_failed(config, tile, e)) from e
    except Exception as e:  # a source failed on this tile
        raise SourceError(_source_failed(config, tile, e)) from e


def _source_failed(config: CreateConfig, tile: Tile, e: Exception) -> str:
    return scrub(
        f"tile {tile.id}: {config.source} source failed: {type(e).__name__}: {e}".replace("\n", " "),
        config.source_options,
    )


def _inside(filename, folder: Path) -> bool:
    if not isinstance(filename, (str, os.PathLike)):
        return False
    try:
        return Path(filename).resolve().is_relative_to(Path(folder).resolve())
    except (OSError, ValueError):
        return False
