"""The Typer application, the shared ``--debug`` option and the error edge."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from ..errors import RememError
from ..render import safe

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


def _usage_error(exc: BaseException) -> int | None:
    """Print a typer/click usage error (unknown option, missing argument, bad value) as one line.

    Typer ≥ 0.26 vendors click, older versions use click itself: match by shape, not by class.
    Returns the exit code, or None when ``exc`` is not such an error.
    """
    exit_code = getattr(exc, "exit_code", None)
    format_message = getattr(exc, "format_message", None)
    if not isinstance(exit_code, int) or not callable(format_message):
        return None
    if type(exc).__name__ == "NoArgsIsHelpError":  # `remem` or a group with no arguments: show its help
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        return exit_code
    ctx = getattr(exc, "ctx", None)
    path = getattr(ctx, "command_path", None)
    hint = f" (see: {path} --help)" if path else ""
    err_console.print(f"[bold red]error:[/] {escape(safe(format_message()))}{escape(safe(hint))}", highlight=False,
                      soft_wrap=True)
    return exit_code


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app; errors become one red line on stderr and a non-zero exit code.

    Exit codes: 0 ok, 1 a remem error (or an unexpected one), 2 bad input or usage, 130 interrupted.
    A traceback is shown only with ``remem --debug`` (or ``REMEM_DEBUG=1``). The message is always one line,
    with control characters and lone surrogates escaped (:func:`remem.render.safe`).
    """
    from ..errors import ValidationError

    _state["debug"] = bool(os.environ.get("REMEM_DEBUG"))
    try:
        rc = app(args=argv, prog_name="remem", standalone_mode=False)
    except RememError as exc:
        if _state["debug"]:
            raise
        err_console.print(f"[bold red]error:[/] {escape(safe(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2 if isinstance(exc, ValidationError) else 1)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except Exception as exc:
        if type(exc).__name__ == "Abort":  # a declined confirmation (typer.Abort / click.Abort)
            err_console.print("aborted")
            sys.exit(1)
        code = _usage_error(exc)
        if code is not None:
            sys.exit(code)
        if _state["debug"]:
            raise
        err_console.print(f"[bold red]unexpected error:[/] {type(exc).__name__}: {escape(safe(exc))} "
                          "(rerun with --debug)", highlight=False, soft_wrap=True)
        sys.exit(1)
    sys.exit(rc if isinstance(rc, int) else 0)
