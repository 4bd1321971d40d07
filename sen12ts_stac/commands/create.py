"""``sen12ts-stac create`` and ``import-legacy``: thin over :func:`sen12ts_stac.collect.run.create`
and :func:`sen12ts_stac.collect.legacy.import_legacy`."""

from __future__ import annotations

from pathlib import Path

import click

from sen12ts_stac.errors import Interrupted, UserError


def _out_folder(ctx, param, value: str) -> Path:
    """--out as a Path; an empty one (an unset "$OUT") would mean the current folder: refused."""
    if not value.strip():
        raise click.BadParameter("empty path (give a folder, e.g. --out catalogs)")
    return Path(value)


SEED = click.IntRange(0, 2**63 - 1)  # stored in the run state as JSON: a 64-bit integer

WORKERS_HELP = "Local worker processes (at most one per tile to collect and one per CPU)."


@click.command("create")
@click.option("--aoi", required=True, help="california, iowa, catalonia, ethiopia, uganda or sumatra.")
@click.option(
    "--source",
    default=None,
    help="Where pixels come from: stac-api (live; the default for a new folder), synthetic "
    "(offline), descartes (collect-dl extra). A resumed folder keeps its source.",
)
@click.option(
    "--source-option",
    "source_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Source setting, repeatable (e.g. stac_url=http://127.0.0.1:7822); see docs/sources.md.",
)
@click.option(
    "--out", type=click.Path(), default="catalogs", show_default=True, callback=_out_folder, help="Catalog root folder."
)
@click.option(
    "--max-tiles", type=int, default=16, show_default=True, help="Tiles to collect (a seeded, spread-out sample)."
)
@click.option("--bbox", default=None, help="Restrict the AOI: minlon,minlat,maxlon,maxlat.")
@click.option("--seasons", default=None, help="Comma-separated subset of spring,summer,fall,winter.")
@click.option(
    "--max-per-season",
    type=click.IntRange(max=1000),
    default=4,
    show_default=True,
    help="Triplets per tile and season.",
)
@click.option(
    "--seed", type=SEED, default=0, show_default=True, help="Seed for pixels (synthetic), candidate order and splits."
)
@click.option("--workers", type=int, default=1, show_default=True, help=WORKERS_HELP)
@click.option(
    "--scheduler", default=None, help="Run the tiles on a Dask cluster: tcp://HOST:PORT (see docs/distribute.md)."
)
@click.option(
    "--dask-local", type=int, default=None, help="Run the tiles on a local Dask cluster of N worker processes."
)
@click.option("--overwrite", is_flag=True, help="Delete this AOI's folder first instead of resuming.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def create(
    aoi,
    source,
    source_options,
    out,
    max_tiles,
    bbox,
    seasons,
    max_per_season,
    seed,
    workers,
    scheduler,
    dask_local,
    overwrite,
    quiet,
) -> None:
    """Collect triplets over an AOI into COGs and a STAC catalog (resumes an interrupted run)."""
    from sen12ts_stac.collect.run import CreateConfig
    from sen12ts_stac.collect.run import create as run_create
    from sen12ts_stac.spec.aois import parse_bbox
    from sen12ts_stac.spec.seasons import PairingRules, parse_seasons

    if max_per_season < 1:
        raise UserError(f"--max-per-season must be at least 1, got {max_per_season}")
    if workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    options = _key_values(source_options, "--source-option")
    if source is None:  # resume with what made the folder, else the live source
        from sen12ts_stac.collect.layout import Layout
        from sen12ts_stac.collect.state import previous_source

        source, options = previous_source(Layout(out, aoi.strip().lower()), options, damaged_ok=overwrite)
    config = CreateConfig(
        aoi=aoi.strip().lower(),
        out=out,
        source=source,
        source_options=options,
        seed=seed,
        max_tiles=max_tiles,
        bbox=parse_bbox(bbox) if bbox else None,
        seasons=tuple(s.name for s in parse_seasons(seasons)),
        workers=workers,
        rules=PairingRules(max_triplets_per_tile_season=max_per_season),
    )
    from sen12ts_stac.collect.executors import dask_executor

    try:
        with dask_executor(scheduler, dask_local) as executor:
            summary = run_create(config, overwrite=overwrite, progress=not quiet, executor=executor)
    except KeyboardInterrupt:
        raise Interrupted() from None
    click.echo(f"wrote {out / config.aoi}")
    for line in summary.lines():
        click.echo("  " + line)


def _key_values(pairs: tuple[str, ...], flag: str) -> dict:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"{flag} {pair!r}: expected KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


@click.command("import-legacy")
@click.argument("folder", type=click.Path(path_type=Path))
@click.option(
    "--aoi",
    default=None,
    help="The AOI of the files (inferred from the folder name or the files' lat/lon if not given).",
)
@click.option(
    "--out", type=click.Path(), default="catalogs", show_default=True, callback=_out_folder, help="Catalog root folder."
)
@click.option(
    "--max-invalid",
    type=float,
    default=1.0,
    show_default=True,
    help="Drop triplets with more than this fraction of invalid pixels (0.01 = the original rule; 1 keeps all).",
)
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed for the train/validate/test split.")
@click.option("--workers", type=int, default=1, show_default=True, help=WORKERS_HELP)
@click.option("--overwrite", is_flag=True, help="Delete this AOI's folder first instead of resuming.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def import_legacy(folder, aoi, out, max_invalid, seed, workers, overwrite, quiet) -> None:
    """Convert a folder of original SEN12TS GeoTIFFs (s1/, s2/, labels/) into COGs and the same catalog as create."""
    from sen12ts_stac.collect.legacy import import_legacy as run_import

    try:
        summary, report = run_import(
            folder,
            aoi=aoi,
            out=out,
            max_invalid=max_invalid,
            seed=seed,
            workers=workers,
            overwrite=overwrite,
            progress=not quiet,
        )
    except KeyboardInterrupt:
        raise Interrupted() from None
    click.echo(f"wrote {out / report.aoi}")
    for line in report.lines() + summary.lines():
        click.echo("  " + line)
