"""The ``sen12ts-stac`` command line: a thin layer over functions the tests call directly.

Every error a user can cause is printed as one line, ``sen12ts-stac: error: ...``, with exit
code 2 (bad input) or 1 (a check failed); never a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from sen12ts_stac import __version__
from sen12ts_stac.distribute.download import download_command
from sen12ts_stac.distribute.export import export_command
from sen12ts_stac.distribute.publish import publish_command
from sen12ts_stac.distribute.serve import serve_command
from sen12ts_stac.errors import Interrupted, UserError, os_error_message
from sen12ts_stac.validate.command import validate_command


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sen12ts-stac")
def cli() -> None:
    """Make, check, distribute and train on SEN12TS-style Sentinel-1/2 + land-cover triplets."""


def _out_folder(ctx, param, value: str) -> Path:
    """--out as a Path; an empty one (an unset "$OUT") would mean the current folder: refused."""
    if not value.strip():
        raise click.BadParameter("empty path (give a folder, e.g. --out catalogs)")
    return Path(value)


SEED = click.IntRange(0, 2**63 - 1)  # stored in the run state as JSON: a 64-bit integer
WORKERS_HELP = "Local worker processes (at most one per tile to collect and one per CPU)."


@cli.command()
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


@cli.command("import-legacy")
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


@cli.command()
@click.argument("path")
@click.option("--anonymous", is_flag=True, help="Read a public bucket without credentials (unsigned requests).")
def info(path: str, anonymous: bool) -> None:
    """Summarise a catalog (folder, catalog file, or http(s)/s3/az/gs URL): collections, item
    counts, splits, tiles, dates, bytes."""
    from sen12ts_stac.distribute.inspect import summarise
    from sen12ts_stac.storage import set_anonymous

    set_anonymous(anonymous)
    for line in summarise(path):
        click.echo(line)


cli.add_command(validate_command)


cli.add_command(export_command)
cli.add_command(serve_command)
cli.add_command(download_command)
cli.add_command(publish_command)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the click group, turning every user error into one line."""
    try:
        rv = cli.main(args=argv, prog_name="sen12ts-stac", standalone_mode=False)
        if isinstance(rv, int) and rv:
            sys.exit(rv)
    except click.exceptions.Abort as e:  # click's form of Ctrl-C (and of a declined prompt)
        ctrl_c = isinstance(e.__context__, KeyboardInterrupt)
        click.echo(f"sen12ts-stac: {'interrupted' if ctrl_c else 'aborted'}", err=True)
        sys.exit(130)
    except Interrupted as e:
        click.echo(f"sen12ts-stac: {e}", err=True)
        sys.exit(130)
    except click.exceptions.ClickException as e:
        click.echo(f"sen12ts-stac: error: {e.format_message()}", err=True)
        sys.exit(e.exit_code)
    except UserError as e:
        click.echo(f"sen12ts-stac: error: {e}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("sen12ts-stac: interrupted; run the same command again to resume", err=True)
        sys.exit(130)
    except OSError as e:
        click.echo(f"sen12ts-stac: error: {os_error_message(e)}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
