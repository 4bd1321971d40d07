"""``sen12ts-stac export``: thin over :func:`sen12ts_stac.distribute.export.export_catalog`."""

from __future__ import annotations

from pathlib import Path

import click

from sen12ts_stac.distribute.export import export_catalog


@click.command("export")
@click.argument("catalog", type=click.Path(path_type=Path))
@click.option(
    "--format", "formats", default="ndjson,parquet", show_default=True, help="Comma-separated: ndjson, parquet."
)
@click.option("--workers", type=int, default=1, show_default=True, help="Collections exported at once (processes).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def export_command(catalog: Path, formats: str, workers: int, quiet: bool) -> None:
    """Write every collection's items as items.ndjson and items.parquet (stac-geoparquet) beside its
    collection.json, linked from it as collection assets."""
    results = export_catalog(
        catalog, [f.strip() for f in formats.split(",") if f.strip()], progress=not quiet, workers=workers
    )
    for r in results:
        click.echo(r.line())
