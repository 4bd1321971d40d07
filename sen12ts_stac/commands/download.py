"""``sen12ts-stac download``: thin over :func:`sen12ts_stac.distribute.download.download`."""

from __future__ import annotations

from pathlib import Path

import click

from sen12ts_stac.distribute.download import DEFAULT_MAX_SIZE, download
from sen12ts_stac.storage import set_anonymous


@click.command("download")
@click.argument("src")
@click.argument("dest", type=click.Path(path_type=Path))
@click.option("--collection", "collections", multiple=True, help="Collection id (repeatable or comma-separated).")
@click.option("--assets", default=None, help="Asset keys to fetch, comma-separated (e.g. s1,labels); default all.")
@click.option("--bbox", default=None, help="minlon,minlat,maxlon,maxlat: items whose bbox intersects it.")
@click.option("--datetime", "datetime_", default=None, help="RFC 3339 date/time or interval START/END ('..' open).")
@click.option("--aoi", default=None, help="AOI name(s), comma-separated (california, iowa, ...).")
@click.option("--split", default=None, help="train, validate and/or test (items without a split are left out).")
@click.option("--workers", type=int, default=8, show_default=True, help="Concurrent downloads.")
@click.option(
    "--max-size",
    type=int,
    default=DEFAULT_MAX_SIZE,
    show_default=True,
    help="Refuse files declared (or found) larger than this many bytes.",
)
@click.option("--dry-run", is_flag=True, help="Only count the items and files that would be fetched.")
@click.option("--anonymous", is_flag=True, help="Read a public bucket without credentials (unsigned requests).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def download_command(
    src, dest, collections, assets, bbox, datetime_, aoi, split, workers, max_size, dry_run, anonymous, quiet
) -> None:
    """Download a filtered subset of a catalog (a local folder, or an http(s), s3://, az:// or gs://
    URL) into DEST, resumably."""
    set_anonymous(anonymous)
    report = download(
        src,
        dest,
        collections=collections or None,
        assets=assets,
        bbox=bbox,
        datetime=datetime_,
        aoi=aoi,
        split=split,
        workers=workers,
        max_size=max_size,
        dry_run=dry_run,
        progress=not quiet,
    )
    for line in report.lines():
        click.echo(line)
    if report.findings:
        raise click.exceptions.Exit(1)
