"""The Typer application, the shared ``--debug`` option and the error edge."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer
from rich.console import Console

from ..errors import RememError

app = typer.Typer(
    name="remem",
    help="remem — persistent, per-user memory for LLM agents.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)

_state = {"debug": False}


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    _state["debug"] = debug or bool(os.environ.get("REMEM_DEBUG"))


def main() -> None:
    """Entry point: run the app, turning remem errors into one line and exit code 1 (2 for bad input)."""
    try:
        app(standalone_mode=False)
    except RememError as exc:
        if _state["debug"]:
            raise
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, markup=True)
        from ..errors import ValidationError

        sys.exit(2 if isinstance(exc, ValidationError) else 1)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("aborted")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # click usage errors and unexpected failures: one line unless --debug
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if _state["debug"]:
            raise
        err_console.print(f"[bold red]unexpected error:[/] {type(exc).__name__}: {exc} (rerun with --debug)")
        sys.exit(1)
