"""``sen12ts-stac info``: thin over :func:`sen12ts_stac.distribute.inspect.summarise`."""

from __future__ import annotations

import click


@click.command("info")
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
