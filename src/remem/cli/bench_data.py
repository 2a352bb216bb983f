"""``remem bench locomo`` and ``remem bench longmemeval``: retrieval quality on public long-conversation data.

No logic here: load (``remem.bench.locomo`` / ``.longmemeval``), run (``remem.bench.runner``), optionally
answer with an LM (``remem.bench.answer``), write the report (``remem.bench.report``), print the table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..errors import ValidationError
from .app import console
from .bench import bench_app

DataOpt = Annotated[Path, typer.Option("--data", help="Path to the dataset JSON file, in its public format.")]
OutOpt = Annotated[Path | None, typer.Option("--out", help="Results directory (default results/<dataset>).")]
LimitOpt = Annotated[int | None, typer.Option("--limit", help="At most this many questions per history.")]
ConvOpt = Annotated[
    str | None, typer.Option("--conversations", help="How many histories (a number) or which (comma-separated ids).")
]
LmOpt = Annotated[str | None, typer.Option("--lm", help="LM to answer and judge with (e.g. openai/gpt-4o-mini).")]
EmbedderOpt = Annotated[str, typer.Option("--embedder", help="Embedder spec (default: the packaged local model).")]
StoreOpt = Annotated[str, typer.Option("--store", help="Vector store: edge, or pgvector[:fts|bm25] (on "
                                       "REMEM_DATABASE_URL, else a throw-away local Postgres).")]
KeywordOpt = Annotated[bool, typer.Option("--keyword-only", help="Also measure the store's keyword signal alone "
                                          "(system remem-keyword).")]


def _select(conversations: list[Any], which: str | None, limit: int | None) -> list[Any]:
    if which:
        if which.isdigit():
            conversations = conversations[: int(which)]
        else:
            wanted = [w.strip() for w in which.split(",") if w.strip()]
            known = {c.id: c for c in conversations}
            known.update({c.id.removeprefix("lme-"): c for c in conversations})
            missing = [w for w in wanted if w not in known]
            if missing:
                raise ValidationError(f"unknown conversation ids: {', '.join(missing)}", missing=missing)
            conversations = [known[w] for w in wanted]
    if limit is not None:
        if limit < 1:
            raise ValidationError("--limit must be at least 1")
        for c in conversations:
            c.questions = c.questions[:limit]
    return conversations


def _run(dataset: str, conversations: list[Any], out: Path | None, lm: str | None, embedder: str,
         store: str = "edge", keyword_only: bool = False) -> None:
    from ..bench.report import markdown, write_report
    from ..bench.runner import run_retrieval

    answer_system = "remem-hybrid+expand" if lm else None
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        tasks: dict[str, Any] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        model = None
        if lm:
            from ..pipeline.lm import resolve_lm

            model = resolve_lm(lm)
        run = run_retrieval(dataset, conversations, embedder=embedder, progress=progress,
                            answer_system=answer_system, facts_lm=model, store=store, keyword_only=keyword_only)
        if model is not None and answer_system:
            from ..bench.answer import AnswerScorer, answer_all

            scorer = AnswerScorer(model)
            run.answers[answer_system] = answer_all(scorer, conversations, run.systems[answer_system].ranked)
    paths = write_report(run, out or Path("results") / dataset)
    console.print(markdown(run), markup=False, highlight=False, soft_wrap=True)  # the pipe tables, unwrapped
    console.print(f"wrote {paths['json']}, {paths['markdown']}, {paths['png']}")


@bench_app.command("locomo")
def locomo(data: DataOpt, out: OutOpt = None, limit: LimitOpt = None, conversations: ConvOpt = None,
           lm: LmOpt = None, embedder: EmbedderOpt = "local", store: StoreOpt = "edge",
           keyword_only: KeywordOpt = False) -> None:
    """LoCoMo: evidence recall@k per category vs BM25-only and dense-only baselines (with --lm: answers)."""
    from ..bench.locomo import load_locomo

    _run("locomo", _select(load_locomo(data), conversations, limit), out, lm, embedder, store, keyword_only)


@bench_app.command("longmemeval")
def longmemeval(data: DataOpt, out: OutOpt = None, limit: LimitOpt = None, conversations: ConvOpt = None,
                lm: LmOpt = None, embedder: EmbedderOpt = "local", store: StoreOpt = "edge",
                keyword_only: KeywordOpt = False) -> None:
    """LongMemEval: session recall_any/all@k and turn recall@k per question type vs baselines."""
    from ..bench.longmemeval import load_longmemeval

    _run("longmemeval", _select(load_longmemeval(data), conversations, limit), out, lm, embedder, store,
         keyword_only)
