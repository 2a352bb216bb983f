"""``remem worker``: drain the LLM pipeline's pending queue in its own process. No logic here: see
:class:`remem.pipeline.worker.Worker` (claims are atomic across processes, so several workers are safe)."""

from __future__ import annotations

import signal
import threading
from typing import Annotated, Any

import typer
from rich.markup import escape

from .app import app, console
from .chat import ApiBaseOpt, HomeOpt, LmOpt, _memory_with_lm


@app.command()
def worker(
    lm: LmOpt = None,
    api_base: ApiBaseOpt = None,
    home: HomeOpt = None,
    once: Annotated[bool, typer.Option("--once", help="Process the free jobs, then exit (exit 1 if some failed).")]
    = False,
    poll: Annotated[float, typer.Option("--poll", min=0.05, help="Seconds between looks at an empty queue.")] = 1.0,
    max_attempts: Annotated[int, typer.Option("--max-attempts", min=1, help="Leave a job that failed this often "
                                              "to `remem reprocess`.")] = 3,
    retry_after: Annotated[float, typer.Option("--retry-after", min=0, help="Seconds before a failed job is "
                                               "retried.")] = 60.0,
    lease: Annotated[float, typer.Option("--lease", min=1, help="Seconds a claimed job stays ours before another "
                                         "worker may take it.")] = 900.0,
    name: Annotated[str | None, typer.Option("--name", help="Worker name in claims (default: random).")] = None,
) -> None:
    """Process queued `add(infer=True, background=True)` turns until stopped (Ctrl-C or SIGTERM).

    For the server deployment (REMEM_DATABASE_URL and a shared store: pgvector or a Qdrant server), run as
    many as you like next to `remem serve`: a job is claimed by one worker. The embedded default allows one
    process per data directory: there the server's own background thread does this work."""
    from ..pipeline.worker import Worker

    with _memory_with_lm(home, lm, api_base) as memory:
        w = Worker(memory.pipeline, name=name, lease_seconds=lease, max_attempts=max_attempts,
                   retry_after=retry_after, poll_seconds=poll)
        if once:
            outcomes = w.drain()
            failed = [o for o in outcomes if not o.ok]
            for o in failed:
                console.print(f"[red]pending[/] {o.job_id}  {escape(o.user_id)}: {escape(o.error or '')}",
                              highlight=False)
            console.print(f"{len(outcomes) - len(failed)} done, {len(failed)} failed ({w.id})", highlight=False)
            if failed:
                raise typer.Exit(1)
            return
        stop = threading.Event()

        def _stop(signum: int, frame: Any) -> None:
            stop.set()

        previous = {s: signal.signal(s, _stop) for s in (signal.SIGTERM, signal.SIGINT)}
        console.print(f"remem worker {w.id}: processing the pending queue (Ctrl-C to stop)", highlight=False)
        try:
            w.run(stop)
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
        console.print("stopped")
