"""Foundation commands: add, search, list, show, history, update, delete, restore, forget-user, export,
import, stats, demo.

No logic lives here: each command parses its options, calls one :class:`remem.Memory` method and renders the
pydantic result (a rich table, or JSON with ``--json``). Errors propagate to the edge in :mod:`.app`.
Configuration comes from ``REMEM_*`` variables (see :mod:`remem.config`); ``--home`` overrides ``REMEM_HOME``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .. import render
from ..bounds import shown
from ..errors import ValidationError
from ..graph.transfer import graph_counts
from ..importers import SOURCES, import_export
from ..memory.core import Memory, SearchMode
from ..models import AddResult, EventType, MemoryKind
from ..render import markup_safe, safe
from ..retrieval.search import TimeMode
from ..timeexpr import parse_date, reference_time, zone
from ..validation import check_text
from .app import app, console, err_console

# -- shared options ------------------------------------------------------------------------------------------
Home = Annotated[Path | None, typer.Option("--home", help="Data directory (default: $REMEM_HOME or ~/.remem).",
                                           show_default=False)]
User = Annotated[str, typer.Option("--user", "-u", envvar="REMEM_USER", help="User id (or $REMEM_USER).")]
Categories = Annotated[list[str] | None, typer.Option("--category", "-c", help="Category (repeatable).")]
Since = Annotated[str | None, typer.Option("--since", help="Only memories observed at/after this ISO date or time.")]
Until = Annotated[str | None, typer.Option("--until", help="… at/before this ISO date (whole day) or time.")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the result as JSON (pydantic models).")]
Tz = Annotated[str | None, typer.Option("--tz", envvar="REMEM_TZ", help="IANA time zone (e.g. Europe/Berlin) of "
                                        "naive --since/--until/--at and of 'yesterday' in a query (default UTC).")]
Kinds = Annotated[list[str] | None, typer.Option("--kind", "-k", help="episode or fact (repeatable).")]


@contextmanager
def open_memory(home: Path | None) -> Iterator[Memory]:
    """The configured :class:`Memory` (env + ``--home``), closed when the command ends."""
    memory = Memory(home)
    try:
        yield memory
    finally:
        memory.close()


def parse_when(value: str | None, option: str, *, end_of_day: bool = False, tz: tzinfo = UTC) -> datetime | None:
    """ISO date (``2023-05-08``) or timestamp (``2023-05-08T14:00:00Z``); naive values are wall times in ``tz``
    (``--tz``, default UTC), a bare date is that day on ``tz``'s calendar (:func:`remem.timeexpr.parse_date`).

    A bare date given to ``--until`` means the end of that day, so ``--since D --until D`` covers day D.
    """
    if value is None:
        return None
    parsed = parse_date(value, tz, end_of_day=end_of_day)
    if parsed is None:
        raise ValidationError(f"{option}: {shown(value)} is not an ISO date or time whose UTC form lies in years "
                              "1-9999 (e.g. 2023-05-08 or 2023-05-08T14:30:00Z)", option=option)
    return parsed


def zone_of(tz: str | None) -> tzinfo:
    """``--tz`` → its ``ZoneInfo`` (UTC when not given); a typed error naming the option otherwise."""
    return zone(tz, "--tz") if tz is not None else UTC


def parse_kinds(kinds: Sequence[str] | None) -> list[MemoryKind] | None:
    if not kinds:
        return None
    out: list[MemoryKind] = []
    for k in kinds:
        if k == "episode":
            out.append("episode")
        elif k == "fact":
            out.append("fact")
        else:
            raise ValidationError(f"--kind: unknown kind {shown(k)} (use episode or fact)")
    return out


def parse_metadata(value: str | None) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        data = json.loads(value)
    except ValueError as exc:  # JSONDecodeError, or an integer of more than 4,300 digits
        raise ValidationError(f"--metadata is not valid JSON: {getattr(exc, 'msg', exc)}") from None
    except RecursionError:
        raise ValidationError("--metadata is nested too deeply") from None
    if not isinstance(data, dict):
        raise ValidationError("--metadata must be a JSON object, e.g. '{\"source\": \"crm\"}'")
    return data


def read_messages(path: Path) -> list[dict[str, Any]]:
    """Messages from a JSON file (a list, or ``{"messages": [...]}``) or JSONL (one message per line)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ValidationError(f"cannot read {shown(str(path))}: {exc.strerror}", path=shown(str(path))) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ValidationError(f"{shown(str(path))}:{line}: not valid UTF-8", line=line) from None
    items: Any
    try:
        items = json.loads(text)
    except RecursionError:
        raise ValidationError(f"{shown(str(path))}: JSON nested too deeply") from None
    except json.JSONDecodeError:
        items = None
    except ValueError as exc:  # valid JSON syntax, but e.g. an integer of more than 4,300 digits
        raise ValidationError(f"{shown(str(path))}: not usable JSON ({exc})") from None
    if items is None:
        items = []
        for number, line_text in enumerate(text.splitlines(), start=1):
            if not line_text.strip():
                continue
            try:
                items.append(json.loads(line_text))
            except ValueError as exc:  # JSONDecodeError, or an integer of more than 4,300 digits
                raise ValidationError(f"{shown(str(path))}:{number}: not valid JSON ({getattr(exc, 'msg', exc)})",
                                      line=number) from None
            except RecursionError:
                raise ValidationError(f"{shown(str(path))}:{number}: JSON nested too deeply", line=number) from None
    if isinstance(items, dict):
        items = items.get("messages", [items])
    if not isinstance(items, list) or not all(isinstance(m, dict) for m in items):
        raise ValidationError(f"{shown(str(path))}: expected a list of message objects (role, content, name, "
                              "timestamp, id)")
    return items


def emit_json(value: BaseModel | Sequence[BaseModel]) -> None:
    """Plain JSON on stdout (no rich markup or wrapping), for scripts."""
    data = value.model_dump(mode="json") if isinstance(value, BaseModel) else [v.model_dump(mode="json")
                                                                              for v in value]
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


@contextmanager
def progress_bar(description: str) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar (on stderr) driven by the library's ``progress(done, total)`` callbacks."""
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err_console, transient=True) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update


# -- writes --------------------------------------------------------------------------------------------------
@app.command()
def add(
    texts: Annotated[list[str] | None, typer.Argument(help="Memory texts: each argument is one memory.",
                                                      show_default=False)] = None,
    user: User = ...,  # type: ignore[assignment]
    file: Annotated[Path | None, typer.Option("--file", "-f", help="JSON/JSONL file of messages.")] = None,
    category: Categories = None,
    metadata: Annotated[str | None, typer.Option("--metadata", "-m", help="JSON object stored with each.")] = None,
    session: Annotated[str | None, typer.Option("--session", help="Session id for messages from --file.")] = None,
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    """Store memories: text arguments become facts, messages from --file become episodes (speaker, time, id)."""
    if not texts and file is None:
        raise ValidationError("nothing to add: give text arguments or --file")
    if texts and file is not None:
        raise ValidationError("give text arguments or --file, not both")
    meta = parse_metadata(metadata)
    with open_memory(home) as memory:
        if file is not None:
            messages = read_messages(file)
            with progress_bar(f"adding {len(messages)} messages") as update:
                result = memory.add(messages, user_id=user, categories=category, metadata=meta,
                                    session_id=session, actor="cli", progress=update)
        else:
            for text in texts or []:  # validate every text first: a bad one means nothing is written
                check_text(text, memory.settings.max_text_chars)
            result = AddResult()
            for text in texts or []:
                result.events.extend(memory.add(text, user_id=user, categories=category, metadata=meta,
                                                actor="cli").events)
    if as_json:
        emit_json(result)
        return
    added = [e for e in result.events if e.event is EventType.ADD]
    for e in result.events:
        if e.event is EventType.ADD:
            console.print(f"[green]ADD[/]  {e.memory_id}", highlight=False)
        else:
            console.print(f"[dim]{e.event.value} {e.memory_id} ({markup_safe(e.reason)})[/]", highlight=False)
    console.print(f"{len(added)} added, {len(result.events) - len(added)} unchanged for user {markup_safe(user)}",
                  highlight=False)


@app.command()
def update(
    memory_id: Annotated[str, typer.Argument(metavar="ID")],
    text: Annotated[str | None, typer.Argument(help="The new text (omit to change only categories/metadata).")]
    = None,
    user: User = ...,  # type: ignore[assignment]
    category: Categories = None,
    metadata: Annotated[str | None, typer.Option("--metadata", "-m", help="JSON object merged in.")] = None,
    reason: Annotated[str | None, typer.Option("--reason", help="Why (kept in history).")] = None,
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    """Change a memory in place: same id, version + 1, the old text kept in its history."""
    with open_memory(home) as memory:
        record = memory.update(memory_id, text, user_id=user, categories=category,
                               metadata=parse_metadata(metadata), actor="cli", reason=reason)
    if as_json:
        emit_json(record)
    else:
        console.print(f"[yellow]UPDATE[/] {record.id} (version {record.version})", highlight=False)


@app.command()
def delete(
    memory_id: Annotated[str, typer.Argument(metavar="ID")],
    user: User = ...,  # type: ignore[assignment]
    reason: Annotated[str | None, typer.Option("--reason", help="Why (kept in history).")] = None,
    home: Home = None,
) -> None:
    """Soft-delete a memory (hidden from search and list; `remem restore` undoes it)."""
    with open_memory(home) as memory:
        record = memory.delete(memory_id, user_id=user, actor="cli", reason=reason)
    console.print(f"[red]DELETE[/] {record.id} (restorable: remem restore {record.id} -u {markup_safe(user)})",
                  highlight=False)


@app.command()
def restore(
    memory_id: Annotated[str, typer.Argument(metavar="ID")],
    user: User = ...,  # type: ignore[assignment]
    reason: Annotated[str | None, typer.Option("--reason", help="Why (kept in history).")] = None,
    home: Home = None,
) -> None:
    """Undo a soft delete."""
    with open_memory(home) as memory:
        record = memory.restore(memory_id, user_id=user, actor="cli", reason=reason)
    console.print(f"[cyan]RESTORE[/] {record.id}", highlight=False)


@app.command("forget-user")
def forget_user(
    user_id: Annotated[str, typer.Argument(metavar="USER", help="The user to erase.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    """Erase a user everywhere (vector store, history, queue): irreversible."""
    if not yes:
        typer.confirm(f"Erase every memory and all history of user {shown(user_id)}? This cannot be undone",
                      abort=True, err=True)
    with open_memory(home) as memory:
        result = memory.forget_user(user_id)
    if as_json:
        emit_json(result)
        return
    extra = "".join(f", {n} {name}" for name, n in result.other.items())
    console.print(f"forgot user {markup_safe(result.user_id)}: {result.memories} memories, {result.history_events} history "
                  f"events{extra} removed", highlight=False)


@app.command("export")
def export_(
    path: Annotated[Path, typer.Argument(help="Output JSONL file, - for standard output (a directory with "
                                         "--format markdown).")],
    user: Annotated[str | None, typer.Option("--user", "-u", help="Only this user (default: everyone).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="jsonl (with history) or markdown (PATH/<user>/*.md).")]
    = "jsonl",
    home: Home = None,
) -> None:
    """Write memories (live and deleted) and their full history as JSONL (lossless), or as Markdown files."""
    if fmt not in ("jsonl", "markdown"):
        raise ValidationError(f"--format: unknown format {fmt!r} (use jsonl or markdown)")
    with open_memory(home) as memory:
        extra = ""
        if fmt == "markdown":
            from ..markdown.transfer import export_markdown

            count = export_markdown(memory, path, user_id=user)
        elif str(path) == "-":
            import sys
            import tempfile

            with tempfile.TemporaryDirectory(prefix="remem-export-") as tmp:
                count = memory.export(Path(tmp) / "export.jsonl", user_id=user)
                with (Path(tmp) / "export.jsonl").open("rb") as src:
                    while chunk := src.read(1 << 20):
                        sys.stdout.buffer.write(chunk)
                sys.stdout.buffer.flush()
            err_console.print(f"exported {count} memories to standard output", highlight=False)
            return
        else:
            count = memory.export(path, user_id=user)  # the user id is checked: count that user's graph
            if (graph := graph_counts(memory.parts, user))["graph_entities"]:
                extra = (f" and {graph['graph_entities']} graph entities, {graph['graph_relations']} relations, "
                         f"{graph['graph_events']} graph events")
    console.print(f"exported {count} memories{extra} to {markup_safe(path)}", highlight=False)


@app.command("import")
def import_(
    path: Annotated[Path, typer.Argument(help="A `remem export` JSONL file or Markdown directory, or an export of --from.")],
    source: Annotated[str, typer.Option("--from", help="remem (default), chatgpt or claude (conversations.json "
                                        "of their data export), mem0 (a get_all JSON dump).")] = "remem",
    user: Annotated[str | None, typer.Option("--user", "-u", help="Whose chat export it is (chatgpt, claude); "
                                             "for mem0, the user of memories without a user_id.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="remem files: replace memories whose id exists.")]
    = False,
    max_bytes: Annotated[int | None, typer.Option("--max-bytes", help="--from: largest JSON document read, after "
                                                  "unzipping (default 268435456 = 256 MiB).")] = None,
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    """Load an export file (or Markdown directory); it is validated first, so a bad file means nothing is written."""
    if source == "remem":
        if user is not None:
            raise ValidationError("--user applies to --from chatgpt, claude or mem0 (a remem export names its users)")
        if max_bytes is not None:
            raise ValidationError("--max-bytes applies to --from chatgpt, claude or mem0")
        with open_memory(home) as memory, progress_bar(f"importing {markup_safe(path.name)}") as update:
            if path.is_dir():
                from ..markdown.transfer import import_markdown

                counts = import_markdown(memory, path, overwrite=overwrite, progress=update)
            else:
                counts = memory.import_(path, overwrite=overwrite, progress=update)
        graph = (f", {counts['graph_entities']} graph entities, {counts['graph_relations']} relations and "
                 f"{counts['graph_events']} graph events ({counts['graph_skipped']} already present, skipped)"
                 if "graph_entities" in counts else "")
        console.print(f"imported {counts['memories']} memories and {counts['events']} history events"
                      f" ({counts['skipped']} already present, skipped){graph}", highlight=False)
        return
    if source not in SOURCES:
        raise ValidationError(f"--from: unknown format {source!r} (use remem, {', '.join(SOURCES)})")
    if overwrite:
        raise ValidationError("--overwrite applies to remem export files only")
    with open_memory(home) as memory, progress_bar(f"importing {markup_safe(path.name)}") as update:
        summary = import_export(memory, path, source, user_id=user, progress=update,
                                **({} if max_bytes is None else {"max_bytes": max_bytes}))
    if as_json:
        emit_json(summary)
        return
    what = "messages" if source != "mem0" else "memories"
    where = f" from {summary.conversations} conversations" if source != "mem0" else ""
    console.print(f"imported {summary.imported} {what}{where} for {', '.join(summary.users) or 'nobody'}"
                  f" ({source})", highlight=False)
    if summary.skipped:
        console.print(f"skipped {len(summary.skipped)}:", highlight=False)
        for reason, count in summary.skipped_by_reason.items():
            console.print(f"  {count:>6}  {reason}", highlight=False)


# -- reads ---------------------------------------------------------------------------------------------------
@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    user: User = ...,  # type: ignore[assignment]
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many hits.")] = 10,
    category: Categories = None,
    kind: Kinds = None,
    since: Since = None,
    until: Until = None,
    threshold: Annotated[float | None, typer.Option("--threshold", help="Minimum cosine similarity.")] = None,
    mode: Annotated[str, typer.Option("--mode", help="hybrid (dense + BM25, fused), dense or bm25.")] = "hybrid",
    time_expressions: Annotated[str, typer.Option(
        "--time-expressions", help="A time in QUERY ('yesterday', 'last week'): boost, filter or off.")] = "boost",
    at: Annotated[str | None, typer.Option(
        "--at", help="Count relative times in QUERY from this ISO time instead of now.")] = None,
    tz: Tz = None,
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    """A user's memories most relevant to QUERY, with why: fused score, dense and BM25 signals."""
    if mode not in ("hybrid", "dense", "bm25"):
        raise ValidationError(f"--mode: unknown mode {mode!r} (use hybrid, dense or bm25)")
    search_mode: SearchMode = "hybrid" if mode == "hybrid" else "dense" if mode == "dense" else "bm25"
    if time_expressions not in ("boost", "filter", "off"):
        raise ValidationError(f"--time-expressions: unknown value {time_expressions!r} (use boost, filter or off)")
    time_mode: TimeMode = ("boost" if time_expressions == "boost" else "filter" if time_expressions == "filter"
                           else "off")
    zone_ = zone_of(tz)
    now = reference_time(parse_when(at, "--at", tz=zone_), tz)  # --at's own offset, or in --tz; default now
    with open_memory(home) as memory:
        hits = memory.search(query, user_id=user, limit=limit, categories=category, kinds=parse_kinds(kind),
                             since=parse_when(since, "--since", tz=zone_),
                             until=parse_when(until, "--until", end_of_day=True, tz=zone_),
                             threshold=threshold, mode=search_mode, time_expressions=time_mode, reference_time=now)
    if as_json:
        emit_json(hits)
    elif not hits:
        console.print(f"no memories of {markup_safe(user)} match", highlight=False)
    else:
        console.print(render.hits_table(hits, title=f"{len(hits)} hits for {user} ({mode})", show_speaker=True))


@app.command("context")
def context(
    query: Annotated[str, typer.Argument(help="What the agent is about to answer.")],
    user: User = ...,  # type: ignore[assignment]
    max_tokens: Annotated[int, typer.Option("--max-tokens", "-t", help="Budget (cl100k tokens).")] = 1000,
    category: Categories = None,
    kind: Kinds = None,
    since: Since = None,
    until: Until = None,
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    """The user's best memory for QUERY within --max-tokens: the prompt-ready Markdown block, then its size."""
    with open_memory(home) as memory:
        ctx = memory.context(query, user_id=user, max_tokens=max_tokens, categories=category,
                             kinds=parse_kinds(kind), since=parse_when(since, "--since"),
                             until=parse_when(until, "--until", end_of_day=True))
    if as_json:
        emit_json(ctx)
        return
    if ctx.text:
        typer.echo(safe(ctx.text, multiline=True))  # stored text never reaches the terminal as instructions
    err_console.print(f"{ctx.tokens}/{ctx.max_tokens} {ctx.tokenizer} tokens, {len(ctx.items)} blocks, "
                      f"{len(ctx.source_ids)} source ids" if ctx.items else
                      f"no memories of {safe(user)} for this query within {max_tokens} tokens",
                      highlight=False, style="dim", markup=False)


@app.command("list")
def list_(
    user: User = ...,  # type: ignore[assignment]
    offset: Annotated[int, typer.Option("--offset", help="Skip this many (paging).")] = 0,
    limit: Annotated[int, typer.Option("--limit", "-n", help="Page size.")] = 20,
    category: Categories = None,
    kind: Kinds = None,
    since: Since = None,
    until: Until = None,
    deleted: Annotated[bool, typer.Option("--deleted", help="Show the trash (soft-deleted memories).")] = False,
    oldest_first: Annotated[bool, typer.Option("--oldest-first", help="Order by time ascending.")] = False,
    tz: Tz = None,
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    """A page of a user's memories, newest first."""
    zone_ = zone_of(tz)
    with open_memory(home) as memory:
        page = memory.list(user_id=user, offset=offset, limit=limit, categories=category, kinds=parse_kinds(kind),
                           since=parse_when(since, "--since", tz=zone_),
                           until=parse_when(until, "--until", end_of_day=True, tz=zone_),
                           deleted=deleted, order="asc" if oldest_first else "desc")
    if as_json:
        emit_json(page)
        return
    what = "deleted memories" if deleted else "memories"
    if not page.items:
        console.print(f"no {what} for {markup_safe(user)} (total {page.total})", highlight=False)
        return
    console.print(render.records_table(page.items, title=f"{what} of {user}: {offset + 1}–{offset + len(page.items)}"
                                                          f" of {page.total}"))
    if page.next_offset is not None:
        console.print(f"[dim]more: --offset {page.next_offset}[/]")


@app.command()
def show(
    memory_id: Annotated[str, typer.Argument(metavar="ID")],
    user: User = ...,  # type: ignore[assignment]
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    """One memory, every field (deleted ones too)."""
    with open_memory(home) as memory:
        record = memory.get(memory_id, user_id=user, include_deleted=True)
    if as_json:
        emit_json(record)
    else:
        console.print(render.record_table(record))


@app.command()
def history(
    memory_id: Annotated[str, typer.Argument(metavar="ID")],
    user: User = ...,  # type: ignore[assignment]
    home: Home = None,
    as_json: AsJson = False,
) -> None:
    """A memory's timeline: every ADD/UPDATE/DELETE/RESTORE, with the old and new text."""
    with open_memory(home) as memory:
        events = memory.history(memory_id, user_id=user)
    if as_json:
        emit_json(events)
    else:
        console.print(render.history_table(events, title=f"history of {memory_id}"))


@app.command()
def stats(home: Home = None, as_json: AsJson = False) -> None:
    """Counts (users, live and deleted memories, history events) and the configured store/embedder."""
    with open_memory(home) as memory:
        result = memory.stats()
    if as_json:
        emit_json(result)
    else:
        console.print(render.stats_table(result))


@app.command()
def demo(home: Home = None, store: Annotated[str | None, typer.Option(
        "--store", help="Store spec (default $REMEM_STORE or edge); markdown also shows the files and a hand edit.")]
        = None) -> None:
    """Ingest a small multi-user conversation and show search, time filters, history and user isolation.

    Idempotent: the demo's own users (demo-*) are erased first, then ingested again.
    """
    from ..demo import run_demo

    report = run_demo(home=home, console=console, store=store)
    if not report.ok:
        raise typer.Exit(1)
