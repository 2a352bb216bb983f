"""``remem chat`` (a terminal chat with a memory-using agent) and ``remem reprocess`` (retry the pending queue).

No logic here: the agent is :class:`remem.pipeline.Agent`, the queue :class:`remem.pipeline.PendingQueue`.
The chat shows, compactly, each memory search the agent made and what it found, and the memories added,
updated or deleted after the turn. Memory text is printed only to the user's own terminal.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from ..bounds import check_int
from ..errors import ConfigurationError, LLMError, RememError
from ..memory.core import Memory
from ..models import EventType, MemoryEvent
from ..render import markup_safe, safe
from ..timeexpr import zone
from ..validation import check_user_id
from .app import app, console, err_console

if TYPE_CHECKING:
    from ..pipeline.agent import Agent, AgentReply

HomeOpt = Annotated[Path | None, typer.Option("--home", help="Data directory (default: $REMEM_HOME or ~/.remem).",
                                              show_default=False)]
LmOpt = Annotated[str | None, typer.Option("--lm", help="Model: openai/gpt-4o-mini, ollama_chat/llama3.2, "
                                           "gguf:/path/model.gguf, scripted:script.json (default: $REMEM_LM).")]
ApiBaseOpt = Annotated[str | None, typer.Option("--api-base", help="Base URL of an OpenAI-compatible/Ollama server.")]

HELP = "/memories  /history  /forget  /help  /quit"


def _short(text: str | None, width: int = 70) -> str:
    """One line of user/LM text for a markup string: whitespace collapsed, cut, control characters escaped."""
    text = " ".join((text or "").split())
    return markup_safe(text if len(text) <= width else text[: width - 1] + "…")


@contextmanager
def _memory_with_lm(home: Path | None, lm: str | None, api_base: str | None) -> Iterator[Memory]:
    from ..config import Settings
    from ..pipeline.lm import resolve_lm

    spec = lm or Settings.from_env().lm
    if not spec:
        raise ConfigurationError("no language model: pass --lm (e.g. openai/gpt-4o-mini) or set REMEM_LM")
    memory = Memory(home, lm=resolve_lm(spec, api_base=api_base))
    try:
        yield memory
    finally:
        memory.close()


def _show_reply(reply: AgentReply) -> None:
    for call in reply.tool_calls:
        args = ", ".join(f"{k}={_short(str(v), 30)!s}" for k, v in call.args.items())
        if call.error:
            console.print(f"  [dim]⌕ {call.name}({args}) → error: {_short(call.error, 60)}[/]", highlight=False)
            continue
        found = "; ".join(f'"{_short(t, 50)}"' for t in call.texts[:3]) or "nothing"
        more = f" (+{len(call.texts) - 3})" if len(call.texts) > 3 else ""
        console.print(f"  [dim]⌕ {call.name}({args}) → {len(call.texts)}: {found}{more}[/]", highlight=False)
    console.print(f"[bold cyan]assistant>[/] {escape(safe(reply.response, multiline=True))}", highlight=False)
    _show_events(reply.events)
    if reply.memory_error:
        console.print(f"  [yellow]! memory not updated ({_short(reply.memory_error, 80)}); the turn is queued: "
                      "run `remem reprocess`[/]", highlight=False)
    elif reply.save_memory and not reply.events:
        console.print("  [dim]· remembering in the background[/]", highlight=False)
    u = reply.usage
    console.print(f"  [dim]· {u.calls} LM calls, {u.seconds:.1f}s, {u.prompt_tokens}+{u.completion_tokens} tokens[/]",
                  highlight=False)


def _show_events(events: list[MemoryEvent]) -> None:
    for e in events:
        if e.event is EventType.ADD:
            console.print(f'  [green]+ added[/] "{_short(e.text)}"', highlight=False)
        elif e.event is EventType.UPDATE:
            console.print(f'  [blue]~ updated[/] "{_short(e.old_text, 40)}" → "{_short(e.text, 50)}"', highlight=False)
        elif e.event is EventType.DELETE:
            console.print(f'  [red]- deleted[/] "{_short(e.old_text)}"', highlight=False)
        elif e.text:
            console.print(f'  [dim]= kept "{_short(e.text)}" ({e.reason})[/]', highlight=False)


def _command(line: str, memory: Memory, agent: Agent, user: str, tz: tzinfo) -> bool:
    """Run a /command; False means quit."""
    cmd = line.split()[0].lower()
    if cmd in ("/quit", "/exit"):
        return False
    if cmd == "/memories":
        page = memory.list(user_id=user, kinds=["fact"], limit=50)
        episodes = memory.list(user_id=user, kinds=["episode"], limit=1).total
        console.print(f"{page.total} facts, {episodes} raw turns for {markup_safe(user)}", highlight=False)
        for i, r in enumerate(page.items):
            when = (r.observed_at or r.created_at).astimezone(tz).date().isoformat()
            cats = f" [dim]{markup_safe('[' + ', '.join(r.categories) + ']')}[/]" if r.categories else ""
            console.print(f"  {i:>2}. ({when}) {markup_safe(r.text)}{cats}", highlight=False)
    elif cmd == "/history":
        for ev in memory.log.for_user(user)[-15:]:
            text = (f'"{_short(ev.old_text, 35)}" → "{_short(ev.new_text, 35)}"' if ev.event is EventType.UPDATE
                    else f'"{_short(ev.new_text or ev.old_text)}"')
            console.print(f"  {ev.created_at.astimezone(tz):%Y-%m-%d %H:%M} {ev.event.value:<7} {text} [dim]({markup_safe(ev.actor)})[/]",
                          highlight=False)
    elif cmd == "/forget":
        answer = input(f"erase every memory of {safe(user)}? type 'yes': ").strip().lower()
        if answer == "yes":
            result = memory.forget_user(user)
            agent.reset(user)
            console.print(f"forgot {markup_safe(user)}: {result.memories} memories, {result.history_events} history "
                          f"events, {result.other.get('pending_jobs', 0)} queued turns", highlight=False)
        else:
            console.print("kept everything")
    else:
        console.print(HELP)
    return True


@app.command()
def chat(
    user: Annotated[str, typer.Option("--user", "-u", envvar="REMEM_USER", help="User id (or $REMEM_USER).")],
    lm: LmOpt = None,
    api_base: ApiBaseOpt = None,
    home: HomeOpt = None,
    background: Annotated[bool, typer.Option("--background", help="Update memory after the reply, in a thread.")]
    = False,
    window: Annotated[int, typer.Option("--window", help="Messages of transcript the agent sees.")] = 12,
    tz: Annotated[str | None, typer.Option("--tz", envvar="REMEM_TZ", help="Your IANA time zone (e.g. "
                                           "Europe/Berlin): the agent's clock and calendar (default UTC).")] = None,
) -> None:
    """Chat with an agent that remembers you (reads stdin; /memories /history /forget /quit)."""
    from ..pipeline.agent import Agent

    check_user_id(user)
    zone_ = zone(tz, "--tz") if tz is not None else UTC

    with _memory_with_lm(home, lm, api_base) as memory:
        agent = Agent(memory, background=background, window=window)
        pending = memory.pipeline.queue.count(user_id=user)
        console.print(f"[bold]remem chat[/] — user {markup_safe(user)}, model {markup_safe(agent.lm.model)} ({HELP})",
                      highlight=False)
        if pending:
            console.print(f"[yellow]{pending} turns wait in the pending queue: `remem reprocess`[/]")
        reconfigure = getattr(sys.stdin, "reconfigure", None)
        if reconfigure is not None:  # bytes that are not UTF-8 reach the library (and its one-line error) intact
            reconfigure(errors="surrogateescape")
        while True:
            try:
                line = input("you> ").strip()
            except EOFError:
                break
            except UnicodeDecodeError:  # stdin bytes that are not UTF-8: one error line, the chat goes on
                err_console.print("[red]error:[/] the input is not valid UTF-8", highlight=False)
                continue
            if not line:
                continue
            if line.startswith("/"):
                if not _command(line, memory, agent, user, zone_):
                    break
                continue
            try:
                reply = agent.reply(user, line, now=datetime.now(zone_))
            except LLMError as exc:
                err_console.print(f"[red]the model failed:[/] {markup_safe(exc)}", highlight=False)
                continue
            except RememError as exc:
                err_console.print(f"[red]error:[/] {markup_safe(exc)}", highlight=False)
                continue
            _show_reply(reply)
        agent.wait()


@app.command()
def reprocess(
    user: Annotated[str | None, typer.Option("--user", "-u", help="Only this user's jobs.")] = None,
    lm: LmOpt = None,
    api_base: ApiBaseOpt = None,
    home: HomeOpt = None,
    list_only: Annotated[bool, typer.Option("--list", help="Only list pending jobs (no LM needed).")] = False,
    limit: Annotated[int | None, typer.Option("--limit", help="At most this many jobs.")] = None,
) -> None:
    """Retry extraction + maintenance for turns left in the pending queue (exit 1 if some still fail)."""
    if user is not None:
        check_user_id(user)
    if limit is not None:
        check_int(limit, "--limit", minimum=1, maximum=1_000_000)
    if list_only:
        from ..pipeline.queue import PendingQueue

        memory = Memory(home)
        try:
            jobs = PendingQueue(memory.log).pending(user_id=user, limit=limit)
        finally:
            memory.close()
        now = datetime.now(UTC)
        for job in jobs:
            held = (f"  claimed by {markup_safe(job.claimed_by)} until {job.claimed_until:%H:%M:%S}"
                    if job.claimed_by and job.claimed_until and job.claimed_until > now else "")
            console.print(f"{job.id}  {markup_safe(job.user_id)}  {len(job.payload.messages)} messages  "
                          f"attempts={job.attempts}{held}  {markup_safe(job.last_error or '')}", highlight=False)
        console.print(f"{len(jobs)} pending")
        return
    with _memory_with_lm(home, lm, api_base) as memory:
        report = memory.pipeline.reprocess(user_id=user, limit=limit)
    for o in report.outcomes:
        if o.ok:
            counts = ", ".join(f"{sum(e.event is t for e in o.events)} {t.value}" for t in EventType
                               if any(e.event is t for e in o.events)) or "no change"
            console.print(f"[green]done[/]    {o.job_id}  {markup_safe(o.user_id)}: {counts}", highlight=False)
        else:
            console.print(f"[red]pending[/] {o.job_id}  {markup_safe(o.user_id)}: {markup_safe(o.error or '')}",
                          highlight=False)
    u = report.usage
    console.print(f"{len(report.outcomes) - len(report.failed)} done, {len(report.failed)} still pending "
                  f"({u.calls} LM calls, {u.prompt_tokens}+{u.completion_tokens} tokens, {u.seconds:.1f}s)")
    if report.failed:
        raise typer.Exit(1)
