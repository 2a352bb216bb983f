"""``remem bench pipeline --replay locomo-observations``: the LLM write path's LM calls, tokens and latency per
turn, before and after triage, from one run. No logic here: see :mod:`remem.bench.pipeline_replay` and
:mod:`remem.bench.floor`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from ..errors import ValidationError
from .app import console
from .bench import bench_app
from .bench_data import DataOpt, EmbedderOpt

Replay = Literal["locomo-observations"]


@bench_app.command("pipeline")
def pipeline(
    data: DataOpt,
    replay: Annotated[Replay, typer.Option("--replay", help="What to replay (LoCoMo's per-session observations).")]
    = "locomo-observations",  # the one replay there is; the option names it
    out: Annotated[Path, typer.Option("--out", help="Results directory.")] = Path("results"),
    embedder: EmbedderOpt = "local",
    turns_per_add: Annotated[int, typer.Option("--turns-per-add", min=1, help="Consecutive turns of a session "
                                               "per add (2: a message and its reply).")] = 2,
    floor: Annotated[float | None, typer.Option("--floor", help="Conflict floor (default: REMEM_CONFLICT_FLOOR, "
                                                "0.7).")] = None,
    update_at: Annotated[float, typer.Option("--update-at", help="The scripted agent's policy: update the most "
                                             "similar memory at this cosine or above, else add.")] = 0.8,
    lm_latency_ms: Annotated[float, typer.Option("--lm-latency-ms", min=0, help="Scripted LM wait per call (ms), "
                                                 "to time a slow model.")] = 0.0,
    modes: Annotated[str, typer.Option("--modes", help="Comma-separated: before, after, after+background.")]
    = "before,after,after+background",
    conversations: Annotated[str | None, typer.Option("--conversations", help="Comma-separated sample ids.")]
    = None,
) -> None:
    """Replay LoCoMo observations through the real pipeline with a scripted LM: LM calls per turn and per add,
    tokens per turn, the share of facts reaching the agent, duplicates left, add latency; plus the conflict
    floor table (facts sent to the agent vs hand-labelled conflicts kept). Measures the control flow's cost,
    not a model's judgement."""
    from ..bench.floor import floor_table, labelled, load_observations
    from ..bench.pipeline_replay import MODES, markdown, run_replay, write_report
    from ..embedders import get_embedder

    chosen = [m.strip() for m in modes.split(",") if m.strip()]
    unknown = [m for m in chosen if m not in MODES]
    if unknown or not chosen:
        raise ValidationError(f"--modes: use some of {', '.join(MODES)}", modes=modes)
    wanted = [c.strip() for c in conversations.split(",")] if conversations else None
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        report = run_replay(data, embedder=embedder, turns_per_add=turns_per_add, floor=floor, update_at=update_at,
                            lm_latency=lm_latency_ms / 1000.0, modes=chosen, conversations=wanted, progress=progress)
    observations = load_observations(data)
    rows = floor_table(observations, get_embedder(embedder)) if labelled(observations) else []
    md, js = write_report(report, out, rows)
    console.print(markdown(report, rows), markup=False, highlight=False, soft_wrap=True)
    if not rows:
        console.print("(the shipped conflict labels are for LoCoMo dev: no floor table for this file)")
    console.print(f"wrote {md}, {js}")
