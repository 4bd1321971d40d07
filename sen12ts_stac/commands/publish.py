"""``sen12ts-stac publish``: thin over :func:`sen12ts_stac.distribute.publish.publish`."""

from __future__ import annotations

import click

from sen12ts_stac.distribute.publish import publish


@click.command("publish")
@click.argument("src")
@click.argument("dest_url")
@click.option("--workers", type=int, default=8, show_default=True, help="Concurrent uploads.")
@click.option("--dry-run", is_flag=True, help="List what would be uploaded and deleted; write nothing.")
@click.option(
    "--delete", is_flag=True, help="After the uploads, delete the objects under DEST_URL that SRC does not have."
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def publish_command(src: str, dest_url: str, workers: int, dry_run: bool, delete: bool, quiet: bool) -> None:
    """Upload a local catalog folder to an object store (s3://, az://, gs://): leaves first, the root
    catalog last, only what is missing or changed (see docs/distribute.md)."""
    report = publish(src, dest_url, workers=workers, dry_run=dry_run, delete=delete, progress=not quiet)
    for line in report.lines():
        click.echo(line)
