"""The ``remem`` command line (Typer + rich). It holds no logic: each command calls the library API and the
edge translates :class:`~remem.errors.RememError` into one red line and a non-zero exit (a traceback only with
``--debug``).

Command groups live in their own modules and register themselves on :data:`app` when imported below.
"""

from __future__ import annotations

# Importing a module registers its commands on ``app`` (or on ``bench_app`` for benchmarks).
from . import (  # noqa: F401
    bench,
    bench_data,
    bench_pipeline,
    bench_store,
    chat,
    commands,
    graph,
    markdown,
    ops,
    serve,
    worker,
)
from .app import app, main

__all__ = ["app", "main"]
