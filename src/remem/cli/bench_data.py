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
GraphOpt = Annotated[bool, typer.Option("--graph", help="With --lm: build graph memory too, and compare search "
                                        "with graph facts (remem-both+graph) against without (remem-both).")]
StoreOpt = Annotated[list[str] | None, typer.Option(
    "--store", help="Also run remem's systems on this store (a store spec: markdown, pgvector, pgvector:fts; "
    "repeatable), against the edge store in the same run. pgvector runs on a fresh database of "
    "REMEM_DATABASE_URL, else of a throw-away local Postgres.")]
KeywordOpt = Annotated[bool, typer.Option("--keyword-only", help="Also measure each store's keyword signal alone "
                                          "(system remem-keyword).")]
AblationsOpt = Annotated[bool, typer.Option(
    "--ablations", help="Also measure remem-context with one packing knob changed (rank order, value per token, "
    "no neighbours), in the same run.")]
FactsOpt = Annotated[str | None, typer.Option(
    "--facts", help="'observations': also store LoCoMo's LLM-written observations as fact memories (their "
    "evidence turns as source ids), a stand-in for LLM extraction.")]


def _select(conversations: list[Any], which: str | None, limit: int | None) -> list[Any]:
    if which:
        if which.isascii() and which.isdigit():
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
         graph: bool = False, stores: list[str] | None = None, facts: str | None = None,
         ablations: bool = False, keyword_only: bool = False) -> None:
    from ..bench.report import markdown, write_report
    from ..bench.runner import CONTEXT_ABLATIONS, CONTEXT_SYSTEMS, run_retrieval

    if graph and not lm:
        raise ValidationError("--graph needs --lm: graph memory is built by the LLM pipeline (triplet extraction)")
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
                            answer_system=answer_system, facts_lm=model, graph=graph, stores=stores or (),
                            facts_label=facts,
                            contexts={**CONTEXT_SYSTEMS, **(CONTEXT_ABLATIONS if ablations else {})},
                            keyword_only=keyword_only)
        if model is not None and answer_system:
            from ..bench.answer import AnswerScorer, answer_all

            scorer = AnswerScorer(model)
            for name in [answer_system, *(["remem-both", "remem-both+graph"] if graph else [])]:
                run.answers[name] = answer_all(scorer, conversations, run.systems[name].ranked)
    paths = write_report(run, out or Path("results") / dataset, name=f"{dataset}-{facts}" if facts else None)
    console.print(markdown(run), markup=False, highlight=False, soft_wrap=True)  # the pipe tables, unwrapped
    console.print(f"wrote {paths['json']}, {paths['markdown']}, {paths['png']}")


@bench_app.command("locomo")
def locomo(data: DataOpt, out: OutOpt = None, limit: LimitOpt = None, conversations: ConvOpt = None,
           lm: LmOpt = None, embedder: EmbedderOpt = "local", graph: GraphOpt = False,
           store: StoreOpt = None, facts: FactsOpt = None, ablations: AblationsOpt = False,
           keyword_only: KeywordOpt = False) -> None:
    """LoCoMo: evidence recall within 500/1,000/2,000 tokens and @k per category vs BM25-only and dense-only
    baselines (with --facts observations: LoCoMo's observations stored as facts; with --lm: answers; with --graph
    too: graph memory on and off in one run; with --store: the same systems on other stores)."""
    from ..bench.locomo import load_locomo

    if facts not in (None, "observations"):
        raise ValidationError(f"--facts: unknown source {facts!r} (use observations)", option="--facts")
    convs = load_locomo(data, observations=facts == "observations")
    _run("locomo", _select(convs, conversations, limit), out, lm, embedder, graph, store, facts, ablations,
         keyword_only)


@bench_app.command("longmemeval")
def longmemeval(data: DataOpt, out: OutOpt = None, limit: LimitOpt = None, conversations: ConvOpt = None,
                lm: LmOpt = None, embedder: EmbedderOpt = "local", graph: GraphOpt = False,
                store: StoreOpt = None, ablations: AblationsOpt = False, keyword_only: KeywordOpt = False) -> None:
    """LongMemEval: turn recall within 500/1,000/2,000 tokens, session recall_any/all@k and turn recall@k per
    question type vs baselines."""
    from ..bench.longmemeval import load_longmemeval

    _run("longmemeval", _select(load_longmemeval(data), conversations, limit), out, lm, embedder, graph, store,
         ablations=ablations, keyword_only=keyword_only)
