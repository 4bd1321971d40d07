"""The ``sen12ts-stac validate`` command: options in, report out, exit 0 (pass), 1 (fail) or 2
(usage). All the work is in ``sen12ts_stac.validate.engine.validate``."""

from __future__ import annotations

import math
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

import click

from sen12ts_stac.errors import UserError

if TYPE_CHECKING:
    from rich.progress import TaskID


class _UsageError(click.ClickException):
    exit_code = 2


class _Progress:
    """A rich progress display on stderr: catalogs walked, items checked, asset files read."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(
            TextColumn("{task.description:<9}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self.tasks: dict[str, TaskID] = {}

    def __enter__(self):
        self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        return self.bar.__exit__(*exc)

    def __call__(self, phase: str, advance: int, total: int | None) -> None:
        if phase not in self.tasks:
            self.tasks[phase] = self.bar.add_task(phase, total=total)
        elif total is not None:
            self.bar.update(self.tasks[phase], total=total)
        if advance:
            self.bar.advance(self.tasks[phase], advance)


@click.command("validate")
@click.argument("target")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True, help="Report format."
)
@click.option(
    "--schemas",
    "schema_dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="SEN12TS_SCHEMAS",
    help="Schema cache folder, laid out by URL (env SEN12TS_SCHEMAS; default ~/.cache/sen12ts-stac/schemas).",
)
@click.option("--offline", is_flag=True, help="Never fetch schemas; those not in the cache are reported 'not checked'.")
@click.option(
    "--no-network",
    is_flag=True,
    help="Stay off the network (for untrusted local catalogs): --offline, and asset URLs are reported 'not checked', "
    "never requested.",
)
@click.option("--no-schemas", is_flag=True, help="Skip JSON-schema validation.")
@click.option("--no-links", is_flag=True, help="Skip link checks.")
@click.option("--no-rules", is_flag=True, help="Skip ids, labels, triplets, splits and date rules.")
@click.option(
    "--no-assets", is_flag=True, help="Skip asset files (existence, COG structure, dtype, bands, proj, footprint)."
)
@click.option("--no-checksums", is_flag=True, help="Do not hash local asset files against file:checksum.")
@click.option(
    "--remote-checksums",
    is_flag=True,
    help="Also download remote asset files (http(s), s3, az, gs) to hash them against file:checksum.",
)
@click.option(
    "--follow-symlinks",
    is_flag=True,
    help="Read files that symlinks inside a local catalog point to outside it (by default such links are errors, "
    "never read).",
)
@click.option("--workers", type=int, default=0, show_default=True, help="Parallel workers (0: one per CPU).")
@click.option(
    "--executor",
    type=click.Choice(["auto", "process", "thread", "serial"]),
    default="auto",
    show_default=True,
    help="How items of a local catalog are checked in parallel.",
)
@click.option(
    "--max-json-mb", type=float, default=64.0, show_default=True, help="Refuse STAC JSON files larger than this."
)
@click.option(
    "--max-findings", type=int, default=20, show_default=True, help="Text report: lines per check and level (0: all)."
)
@click.option("--strict", is_flag=True, help="Also fail (exit 1) when something could not be checked.")
@click.option(
    "--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Also write the JSON report to this file."
)
@click.option("--anonymous", is_flag=True, help="Read a public bucket without credentials (unsigned requests).")
@click.option("--quiet", is_flag=True, help="No progress display.")
@click.pass_context
def validate_command(
    ctx,
    target,
    fmt,
    schema_dir,
    offline,
    no_network,
    no_schemas,
    no_links,
    no_rules,
    no_assets,
    no_checksums,
    remote_checksums,
    follow_symlinks,
    workers,
    executor,
    max_json_mb,
    max_findings,
    strict,
    output,
    anonymous,
    quiet,
) -> None:
    """Check a STAC catalog: schemas (offline cache), links, SEN12TS rules and COG assets.

    TARGET is a catalog folder, a catalog.json / collection.json / item file, or an http(s),
    s3://, az:// or gs:// URL. Exit 0 when everything passes, 1 when something fails, 2 on a
    usage error."""
    from sen12ts_stac.fsio import write_bytes
    from sen12ts_stac.storage import set_anonymous

    set_anonymous(anonymous)
    from sen12ts_stac.validate.engine import Options, validate

    if workers < 0:
        raise _UsageError(f"--workers must be 0 (one per CPU) or more, got {workers}")
    if not math.isfinite(max_json_mb) or max_json_mb <= 0:
        raise _UsageError(f"--max-json-mb must be positive, got {max_json_mb}")
    opts = Options(
        schemas=not no_schemas,
        links=not no_links,
        rules=not no_rules,
        assets=not no_assets,
        schema_dir=str(schema_dir) if schema_dir else None,
        fetch_schemas=not (offline or no_network),
        workers=workers,
        executor=executor,
        max_json_bytes=int(max_json_mb * (1 << 20)),
        checksums=not no_checksums,
        remote_checksums=remote_checksums,
        follow_symlinks=follow_symlinks,
        network=not no_network,
    )
    show = not quiet and sys.stderr.isatty()
    try:
        with _Progress() if show else nullcontext(None) as progress:
            report = validate(target, opts, progress=progress)
    except UserError as e:
        raise _UsageError(str(e)) from None
    click.echo(report.dumps() if fmt == "json" else report.text(max_findings))
    if output:
        try:
            write_bytes(output, report.dumps().encode() + b"\n")
        except OSError as e:  # a full disk: name the report file (a failed write() names no file)
            from sen12ts_stac.errors import os_error_message

            raise _UsageError(os_error_message(OSError(e.errno, e.strerror, str(output)))) from None
    ctx.exit(report.exit_code(strict))
