"""``sen12ts-stac serve``: thin over :func:`sen12ts_stac.distribute.serve.run`."""

from __future__ import annotations

from pathlib import Path

import click

from sen12ts_stac.distribute.serve import run

PORT = click.IntRange(0, 65535)


@click.command("serve")
@click.argument("root", type=click.Path(path_type=Path))
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to bind; loopback unless you say otherwise."
)
@click.option(
    "--port", type=PORT, default=8000, show_default=True, help="Port of the static server (0: any free port)."
)
@click.option(
    "--api", is_flag=True, help="Also run a STAC API (rustac serve, memory backend) over the catalog's items."
)
@click.option("--api-port", type=PORT, default=7822, show_default=True, help="Port of the STAC API.")
@click.option(
    "--browser",
    is_flag=True,
    help="Build STAC Browser for this URL (npm; about 1.5 min the first time, "
    "cached after) and serve it under /browser/.",
)
@click.option(
    "--idle-timeout",
    type=click.FloatRange(0, min_open=True),
    default=30.0,
    show_default=True,
    help="Seconds before the static server closes a connection that sends nothing.",
)
def serve_command(root, host, port, api, api_port, browser, idle_timeout) -> None:
    """Serve a catalog folder over HTTP (Range + CORS) for STAC Browser, GDAL and the loaders."""
    run(
        root,
        host=host,
        port=port,
        api=api,
        api_port=api_port,
        browser=browser,
        idle_timeout=idle_timeout,
        say=click.echo,
        warn=lambda m: click.echo(m, err=True),
    )
