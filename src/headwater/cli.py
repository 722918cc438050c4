"""The ``headwater`` command: a thin Typer app; each command calls one function elsewhere.

Subsystems add their own sub-apps (``app.add_typer``) at the bottom of this file.
Errors derived from :class:`HeadwaterError` are printed as one line and exit non-zero.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from headwater.errors import ConfigError, HeadwaterError

app = typer.Typer(
    name="headwater",
    help="Fresh, trustworthy customer analytics on a laptop.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def main() -> None:
    """Entry point: run the app, turning our errors into one readable line and exit code 1 (2: usage)."""
    try:
        app(standalone_mode=False)
    except HeadwaterError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2 if isinstance(exc, ConfigError) else 1)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Exit):
            sys.exit(exc.exit_code)
        raise


# --- sub-apps of other subsystems are mounted below -----------------------------------------
