"""The ``sen12ts-stac`` command line: the click group, one command per module of
:mod:`sen12ts_stac.commands` (each thin over a library function the tests call directly), and
:func:`main`, which turns every error a user can cause into one line.

Every error a user can cause is printed as one line, ``sen12ts-stac: error: ...``, with exit
code 2 (bad input) or 1 (a check failed); never a traceback.
"""

from __future__ import annotations

import sys

import click

from sen12ts_stac import __version__
from sen12ts_stac.commands.create import create, import_legacy
from sen12ts_stac.commands.download import download_command
from sen12ts_stac.commands.export import export_command
from sen12ts_stac.commands.info import info
from sen12ts_stac.commands.publish import publish_command
from sen12ts_stac.commands.serve import serve_command
from sen12ts_stac.commands.validate import validate_command
from sen12ts_stac.errors import Interrupted, UserError, os_error_message


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="sen12ts-stac")
def cli() -> None:
    """Make, check, distribute and train on SEN12TS-style Sentinel-1/2 + land-cover triplets."""


for command in (
    create,
    import_legacy,
    info,
    validate_command,
    export_command,
    publish_command,
    download_command,
    serve_command,
):
    cli.add_command(command)


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
